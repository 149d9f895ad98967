-- enterprise_lab 0.2.0 -> 0.3.0.
--
-- Every change to src/sql/ after 0.2.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.3.0'" to load this file. \quit

-- reset_demo() empties every lifecycle table (documents and SLA breaches
-- too, and through CASCADE any table added later) and names the objects it
-- leaves in the bucket.
CREATE OR REPLACE FUNCTION enterprise_lab.reset_demo() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  objects bigint;
BEGIN
  -- Demo databases only.  Every lifecycle table hangs off these by a
  -- foreign key, so CASCADE also empties the ones a later version adds.
  SELECT count(*) INTO objects FROM document_repo.documents WHERE status = 'stored';
  TRUNCATE intake.submissions, source_system.service_requests, integration.events,
           integration.sync_logs, operational.operation_cases, operational.case_status_history,
           operational.sla_breaches, canonical.business_objects, canonical.lineage_records,
           document_repo.documents, integration.deliveries CASCADE;
  PERFORM setval('source_system.request_number_seq', 1, false);
  IF objects > 0 THEN
    -- The bucket is not emptied here: deleting objects cannot be undone if
    -- this transaction rolls back.
    RAISE NOTICE '% stored document object(s) stay in the bucket', objects
      USING HINT = 'SELECT document_repo.reconcile_storage(grace => ''0 seconds'') removes them (and any upload in flight).';
  END IF;
  RETURN enterprise_lab.load_demo_data();
END $$;
COMMENT ON FUNCTION enterprise_lab.reset_demo() IS
  'Demo databases only: delete every lifecycle row (documents and SLA breaches included; their objects stay in the bucket until reconcile_storage removes them) and load the demo data again; returns how many requests it loaded.';
-- COMMIT and ROLLBACK never wait on S3: transaction callbacks hand objects
-- to a cleanup queue that the first worker drains (src/object_cleanup.c).
CREATE FUNCTION document_repo.abandoned_objects()
RETURNS TABLE (bucket text, object_key text, reason text, failed_attempts integer, next_attempt_at timestamptz)
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'el_abandoned_objects';
COMMENT ON FUNCTION document_repo.abandoned_objects() IS
  'S3 objects waiting to be deleted (reason aborted_upload or deleted_document), held in shared memory until the first worker deletes them; empty without shared_preload_libraries.';

CREATE FUNCTION document_repo.delete_abandoned_objects(max_objects integer DEFAULT 100)
RETURNS integer LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_delete_abandoned_objects';
COMMENT ON FUNCTION document_repo.delete_abandoned_objects(integer) IS
  'Delete up to max_objects due abandoned objects now (what the first worker does on its own); returns how many were deleted.';

REVOKE ALL ON FUNCTION
  document_repo.abandoned_objects(),
  document_repo.delete_abandoned_objects(integer)
FROM PUBLIC;

COMMENT ON FUNCTION document_repo.s3_put_object(text, bytea, text) IS
  'PUT an object; if the calling (sub)transaction aborts, the object is handed to the cleanup queue (document_repo.abandoned_objects) and deleted soon after. Returns the ETag.';
COMMENT ON FUNCTION document_repo.s3_delete_object_at_commit(text) IS
  'Hand an object to the cleanup queue once the calling transaction commits; it is deleted soon after (nothing happens if the transaction aborts).';
COMMENT ON FUNCTION document_repo.upload_document(uuid, text, text, bytea, text) IS
  'Validate a document (name, extension, content type, magic bytes, size), PUT it to the bucket under submissions/<submission>/<document>/<safe name> and record it. If the transaction aborts, the object is deleted soon after, by a worker.';
COMMENT ON FUNCTION document_repo.delete_document(uuid) IS
  'Mark a document deleted; once the transaction commits, a worker deletes its object from the bucket.';

-- Bad input: names and descriptions made only of invisible characters are
-- blank; who changes a case and why have length limits on every path;
-- uploaded_by names the caller as submitted_by does.
CREATE FUNCTION enterprise_lab.has_visible_text(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT value OPERATOR(pg_catalog.~)
    '[^[:space:]\u0085\u00A0\u00AD\u034F\u061C\u115F\u1160\u1680\u180E\u2000-\u200F\u2028-\u202F\u205F-\u206F\u3000\u3164\uFEFF\uFFA0]'
$$;
COMMENT ON FUNCTION enterprise_lab.has_visible_text(text) IS
  'Does the text contain a visible character? Spaces of every kind, zero-width and other invisible characters do not count.';

ALTER TABLE intake.submissions
  DROP CONSTRAINT submissions_requester_name_valid,
  ADD CONSTRAINT submissions_requester_name_valid CHECK (enterprise_lab.has_visible_text(requester_name) AND length(requester_name) <= 200),
  DROP CONSTRAINT submissions_description_valid,
  ADD CONSTRAINT submissions_description_valid CHECK (enterprise_lab.has_visible_text(description) AND length(description) <= 4000);

CREATE OR REPLACE FUNCTION intake.validate_submission() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  agr reference.agreements;
  cust reference.customers;
BEGIN
  IF NEW.requester_name IS NULL OR NEW.requester_name !~ '\S' THEN
    RAISE EXCEPTION 'requester_name must not be blank'
      USING ERRCODE = 'not_null_violation', COLUMN = 'requester_name',
            HINT = 'Give the name of the person making the request.';
  ELSIF NOT enterprise_lab.has_visible_text(NEW.requester_name) THEN
    RAISE EXCEPTION 'requester_name must not be blank'
      USING ERRCODE = 'not_null_violation', COLUMN = 'requester_name',
            DETAIL = 'It has no visible character: no-break, zero-width and other invisible characters do not count.',
            HINT = 'Give the name of the person making the request.';
  ELSIF length(NEW.requester_name) > 200 THEN
    RAISE EXCEPTION 'requester_name is too long'
      USING ERRCODE = 'string_data_right_truncation', COLUMN = 'requester_name',
            DETAIL = format('It has %s characters; the limit is 200.', length(NEW.requester_name));
  END IF;

  IF NEW.requester_email IS NULL
     OR length(NEW.requester_email) > 254
     OR NEW.requester_email !~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$' THEN
    RAISE EXCEPTION 'requester_email is not a valid e-mail address'
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'requester_email',
            DETAIL = format('The value given was %s.', coalesce(quote_literal(left(NEW.requester_email, 100)), 'NULL')),
            HINT = 'Use the form name@example.test.';
  END IF;

  IF NEW.description IS NULL OR NEW.description !~ '\S' THEN
    RAISE EXCEPTION 'description must not be blank'
      USING ERRCODE = 'not_null_violation', COLUMN = 'description',
            HINT = 'Describe what is requested.';
  ELSIF NOT enterprise_lab.has_visible_text(NEW.description) THEN
    RAISE EXCEPTION 'description must not be blank'
      USING ERRCODE = 'not_null_violation', COLUMN = 'description',
            DETAIL = 'It has no visible character: no-break, zero-width and other invisible characters do not count.',
            HINT = 'Describe what is requested.';
  ELSIF length(NEW.description) > 4000 THEN
    RAISE EXCEPTION 'description is too long'
      USING ERRCODE = 'string_data_right_truncation', COLUMN = 'description',
            DETAIL = format('It has %s characters; the limit is 4000.', length(NEW.description));
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.request_types WHERE code = NEW.request_type_code AND active) THEN
    RAISE EXCEPTION 'request_type "%" does not exist', NEW.request_type_code
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'request_type_code',
            DETAIL = format('Known request types: %s.', (SELECT string_agg(code, ', ' ORDER BY code) FROM reference.request_types WHERE active)),
            HINT = 'Choose one of reference.request_types.';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.priorities WHERE code = NEW.priority_code) THEN
    RAISE EXCEPTION 'priority "%" does not exist', NEW.priority_code
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'priority_code',
            DETAIL = format('Known priorities: %s.', (SELECT string_agg(code, ', ' ORDER BY rank) FROM reference.priorities)),
            HINT = 'Choose one of reference.priorities.';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.teams WHERE code = NEW.team_code AND active) THEN
    RAISE EXCEPTION 'team "%" does not exist', NEW.team_code
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'team_code',
            DETAIL = format('Known teams: %s.', (SELECT string_agg(code, ', ' ORDER BY code) FROM reference.teams WHERE active)),
            HINT = 'Choose one of reference.teams.';
  END IF;

  SELECT * INTO cust FROM reference.customers WHERE id = NEW.customer_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'customer % does not exist', coalesce(NEW.customer_id::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'customer_id',
            HINT = 'Choose a customer id from reference.customers.';
  ELSIF cust.status <> 'active' THEN
    RAISE EXCEPTION 'customer % (%) is not active', cust.code, NEW.customer_id
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'customer_id',
            DETAIL = format('Its status is %s.', cust.status);
  END IF;

  IF NEW.agreement_id IS NOT NULL THEN
    SELECT * INTO agr FROM reference.agreements WHERE id = NEW.agreement_id;
    IF NOT FOUND THEN
      RAISE EXCEPTION 'agreement % does not exist', NEW.agreement_id
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'agreement_id',
              HINT = 'Choose an agreement id from reference.agreements, or leave it empty.';
    ELSIF agr.customer_id <> NEW.customer_id THEN
      RAISE EXCEPTION 'agreement % belongs to another customer', agr.agreement_number
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'agreement_id',
              DETAIL = format('Agreement %s is not an agreement of customer %s.', agr.agreement_number, cust.code),
              HINT = 'Choose one of the customer''s own agreements.';
    ELSIF agr.status <> 'active' THEN
      RAISE EXCEPTION 'agreement % is not active', agr.agreement_number
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'agreement_id',
              DETAIL = format('Its status is %s.', agr.status);
    ELSIF current_date < agr.valid_from OR (agr.valid_to IS NOT NULL AND current_date > agr.valid_to) THEN
      RAISE EXCEPTION 'agreement % is not valid today', agr.agreement_number
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'agreement_id',
              DETAIL = format('It is valid from %s to %s.', agr.valid_from, coalesce(agr.valid_to::text, 'open end'));
    END IF;
  END IF;

  RETURN NEW;
END $$;

ALTER TABLE operational.operation_cases
  ADD CONSTRAINT operation_cases_status_changed_by_length CHECK (length(status_changed_by) <= 200),
  ADD CONSTRAINT operation_cases_status_change_reason_length CHECK (length(status_change_reason) <= 1000);

ALTER TABLE operational.case_status_history
  ADD CONSTRAINT case_status_history_changed_by_valid
  CHECK (enterprise_lab.has_visible_text(changed_by) AND length(changed_by) <= 200),
  ADD CONSTRAINT case_status_history_change_reason_length CHECK (length(change_reason) <= 1000);

CREATE FUNCTION operational.check_change_note(changed_by text, change_reason text) RETURNS void
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF changed_by IS NULL OR NOT enterprise_lab.has_visible_text(changed_by) THEN
    RAISE EXCEPTION 'changed_by must not be blank'
      USING ERRCODE = 'not_null_violation', HINT = 'Say who changes the case.';
  ELSIF length(changed_by) > 200 THEN
    RAISE EXCEPTION 'changed_by is too long'
      USING ERRCODE = 'string_data_right_truncation',
            DETAIL = format('It has %s characters; the limit is 200.', length(changed_by));
  END IF;
  IF length(change_reason) > 1000 THEN
    RAISE EXCEPTION 'change_reason is too long'
      USING ERRCODE = 'string_data_right_truncation',
            DETAIL = format('It has %s characters; the limit is 1000.', length(change_reason)),
            HINT = 'Keep the reason short; details belong in the case''s own system.';
  END IF;
END $$;
COMMENT ON FUNCTION operational.check_change_note(text, text) IS
  'Raise unless changed_by is a visible name of at most 200 characters and change_reason at most 1000 characters.';

CREATE OR REPLACE FUNCTION operational.check_status_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  allowed text;
BEGIN
  IF NEW.processing_status IS NOT DISTINCT FROM OLD.processing_status THEN
    NEW.updated_at := now();
    RETURN NEW;
  END IF;

  IF (SELECT is_terminal FROM operational.case_statuses WHERE status = OLD.processing_status) THEN
    RAISE EXCEPTION 'case % is % and can no longer change', OLD.external_reference, OLD.processing_status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = format('%s is a terminal status.', OLD.processing_status),
            HINT = 'Open a new request instead.';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM operational.status_transitions
                  WHERE from_status = OLD.processing_status AND to_status = NEW.processing_status) THEN
    SELECT string_agg(to_status, ', ' ORDER BY to_status) INTO allowed
      FROM operational.status_transitions WHERE from_status = OLD.processing_status;
    RAISE EXCEPTION 'case status cannot change from % to %', OLD.processing_status, NEW.processing_status
      USING ERRCODE = 'check_violation',
            DETAIL = format('From %s a case may move to: %s.', OLD.processing_status, coalesce(allowed, 'nothing')),
            HINT = 'The allowed moves are listed in operational.status_transitions.';
  END IF;

  -- set_case_status() says who and why; a direct UPDATE is recorded as
  -- made by the current user, without a reason.
  NEW.status_changed_by := coalesce(nullif(current_setting('operational.changed_by', true), ''), current_user);
  NEW.status_change_reason := nullif(current_setting('operational.change_reason', true), '');
  PERFORM operational.check_change_note(NEW.status_changed_by, NEW.status_change_reason);
  NEW.status_changed_at := now();
  NEW.updated_at := now();
  RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION operational.set_case_status(case_id uuid, new_status text, changed_by text, change_reason text DEFAULT NULL)
RETURNS operational.operation_cases
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  c operational.operation_cases;
  updated integer;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM operational.case_statuses WHERE status = new_status) THEN
    RAISE EXCEPTION 'case status "%" does not exist', new_status
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Known statuses: %s.', (SELECT string_agg(status, ', ' ORDER BY status) FROM operational.case_statuses)),
            HINT = 'See operational.case_statuses.';
  END IF;
  PERFORM operational.check_change_note(changed_by, change_reason);

  PERFORM set_config('operational.changed_by', changed_by, true),
          set_config('operational.change_reason', coalesce(change_reason, ''), true);
  UPDATE operational.operation_cases oc
     SET processing_status = set_case_status.new_status
   WHERE oc.id = set_case_status.case_id
  RETURNING oc.* INTO c;
  GET DIAGNOSTICS updated = ROW_COUNT;
  PERFORM set_config('operational.changed_by', '', true),
          set_config('operational.change_reason', '', true);

  IF updated = 0 THEN
    RAISE EXCEPTION 'case % does not exist', case_id
      USING ERRCODE = 'no_data_found',
            HINT = 'Cases are opened by the worker once the request is integrated; see operational.operation_cases.';
  END IF;
  RETURN c;
END $$;

-- Identity: request.jwt.claims counts only in a session of the
-- authenticator; a direct login is its session user, with its teams in
-- operational.role_teams.
CREATE TABLE operational.role_teams (
  role_name  name NOT NULL,
  team_code  text NOT NULL REFERENCES reference.teams (code),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (role_name, team_code)
);
COMMENT ON TABLE operational.role_teams IS
  'Teams of roles that log in directly (not through PostgREST or the gateway): a session is in the teams of every role it is a member of. Kept by administrators.';
SELECT pg_catalog.pg_extension_config_dump('operational.role_teams', '');

CREATE FUNCTION enterprise_lab.request_trusts_claims() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_has_role(session_user, 'lab_authenticator', 'MEMBER')
$$;
COMMENT ON FUNCTION enterprise_lab.request_trusts_claims() IS
  'Whether request.jwt.claims counts: only in a session of lab_authenticator (or of a role granted it, or a superuser), which verified the token.';

CREATE OR REPLACE FUNCTION enterprise_lab.request_claims() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN enterprise_lab.request_trusts_claims()
              THEN coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb, '{}'::jsonb)
              ELSE '{}'::jsonb
         END
$$;
COMMENT ON FUNCTION enterprise_lab.request_claims() IS
  'The JWT claims of the request (request.jwt.claims) in a session of the authenticator, else {} (no token, or a direct login, whose claims are ignored).';

CREATE OR REPLACE FUNCTION enterprise_lab.request_subject() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN enterprise_lab.request_trusts_claims()
              THEN coalesce(nullif(btrim(c -> 'sub' #>> '{}'), ''), enterprise_lab.request_role()::text)
              ELSE session_user::text
         END
    FROM enterprise_lab.request_claims() AS c
$$;
COMMENT ON FUNCTION enterprise_lab.request_subject() IS
  'Who acts: the JWT "sub" claim (else the request role''s name) through the authenticator; the login role''s name for a direct login. Recorded as changed_by and submitted_by.';

CREATE OR REPLACE FUNCTION enterprise_lab.request_teams() RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE
           WHEN NOT enterprise_lab.request_trusts_claims() THEN
             ARRAY(SELECT DISTINCT t.team_code
                     FROM operational.role_teams t
                     JOIN pg_roles r ON r.rolname = t.role_name
                    WHERE pg_has_role(session_user, r.oid, 'MEMBER')
                    ORDER BY 1)
           WHEN jsonb_typeof(c -> 'teams') = 'array' THEN
             ARRAY(SELECT e.v #>> '{}' FROM jsonb_array_elements(c -> 'teams') AS e(v)
                    WHERE jsonb_typeof(e.v) = 'string')
           WHEN jsonb_typeof(c -> 'team') = 'string' THEN ARRAY[c ->> 'team']
           ELSE '{}'::text[]
         END
    FROM enterprise_lab.request_claims() AS c
$$;
COMMENT ON FUNCTION enterprise_lab.request_teams() IS
  'Teams of the request: named in the JWT claims ("teams": [...] or "team": "...") through the authenticator, else those operational.role_teams gives the login role; empty without.';

COMMENT ON FUNCTION enterprise_lab.request_may_change_team(text) IS
  'Row-level security predicate: admins may change every team''s cases, operators those of their teams (request_teams()).';

GRANT EXECUTE ON FUNCTION enterprise_lab.request_trusts_claims() TO lab_operator, lab_auditor, lab_admin, lab_case_writer;
GRANT SELECT ON operational.role_teams TO lab_operator, lab_auditor, lab_admin, lab_case_writer;
COMMENT ON POLICY cases_read_own_teams ON operational.operation_cases IS
  'An operator reading the table sees the cases of its teams (enterprise_lab.request_teams()).';
COMMENT ON POLICY cases_change_own_teams ON operational.operation_cases IS
  'api.set_case_status changes a case only for an admin or an operator of the case''s team (enterprise_lab.request_teams()).';
COMMENT ON POLICY history_written_with_change ON operational.case_status_history IS
  'api.set_case_status records history rows in the name of the request''s subject only (enterprise_lab.request_subject()).';

CREATE OR REPLACE FUNCTION api.set_case_status(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'set_case_status';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['case_id', 'new_status', 'reason']);
  v_case uuid := enterprise_lab.api_uuid(fn, b, 'case_id', true);
  v_status text := enterprise_lab.api_text(fn, b, 'new_status', true, 40);
  v_reason text := enterprise_lab.api_text(fn, b, 'reason', false, 1000);
  before operational.operation_cases;
  after operational.operation_cases;
  msg text;
  det text;
  hnt text;
BEGIN
  SELECT * INTO before FROM operational.operation_cases WHERE id = v_case;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('case', v_case);
  END IF;

  BEGIN
    after := operational.set_case_status(v_case, v_status, enterprise_lab.request_subject(), v_reason);
  EXCEPTION
    -- The case exists (read above), so the UPDATE found no row because
    -- row-level security hid it: a refusal, never a silent no-op.
    WHEN no_data_found THEN
      RAISE EXCEPTION '%: not allowed to change case % of team %', fn, before.external_reference, before.team_code
        USING ERRCODE = 'insufficient_privilege',
              DETAIL = format('Your teams: %s.',
                              coalesce(nullif(array_to_string(enterprise_lab.request_teams(), ', '), ''), 'none')),
              HINT = 'An operator changes the cases of its teams: the "teams" (or "team") claim of its JWT, or for a direct login the rows of operational.role_teams.';
    WHEN object_not_in_prerequisite_state THEN
      GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hnt = PG_EXCEPTION_HINT;
      RAISE EXCEPTION '%', msg USING ERRCODE = 'PT409', DETAIL = det, HINT = hnt;
  END;

  RETURN jsonb_build_object('case_id', after.id,
                            'external_reference', after.external_reference,
                            'team', after.team_code,
                            'previous_status', before.processing_status,
                            'processing_status', after.processing_status,
                            'changed_by', after.status_changed_by,
                            'change_reason', after.status_change_reason,
                            'status_changed_at', after.status_changed_at);
END $$;

CREATE OR REPLACE FUNCTION document_repo.upload_document(
  submission_id uuid, file_name text, content_type text, content bytea,
  document_type text DEFAULT 'supporting_document')
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  req source_system.service_requests;
  v record;
  doc_id uuid := gen_random_uuid();
  key text;
  tag text;
BEGIN
  IF upload_document.submission_id IS NULL THEN
    RAISE EXCEPTION 'submission_id must not be null'
      USING ERRCODE = 'not_null_violation', COLUMN = 'submission_id';
  END IF;
  SELECT r.* INTO req FROM source_system.service_requests r
   WHERE r.submission_id = upload_document.submission_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'submission % does not exist', upload_document.submission_id
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'submission_id',
            HINT = 'Attach documents to an existing submission (intake.submissions).';
  END IF;
  IF document_type IS NULL OR document_type !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION 'document_type "%" is not valid', document_type
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'document_type',
            HINT = 'Use lowercase letters, digits and underscores, e.g. supporting_document.';
  END IF;

  v := document_repo.validate_document(file_name, content_type, content);
  -- uploaded_by names the caller exactly as submitted_by and changed_by do.
  key := format('submissions/%s/%s/%s', upload_document.submission_id, doc_id, v.stored_file_name);
  tag := document_repo.s3_put_object(key, content,
           CASE WHEN v.content_type LIKE 'text/%' THEN v.content_type || '; charset=utf-8' ELSE v.content_type END);

  INSERT INTO document_repo.documents
         (id, submission_id, service_request_id, document_type, original_file_name,
          stored_file_name, file_extension, declared_content_type, content_type,
          detected_content_type, size_bytes, sha256, bucket, object_key, etag, uploaded_by)
  VALUES (doc_id, upload_document.submission_id, req.id, upload_document.document_type, file_name,
          v.stored_file_name, v.file_extension, upload_document.content_type, v.content_type,
          v.detected_content_type, v.size_bytes, v.sha256,
          document_repo.s3_bucket(), key, tag,
          enterprise_lab.request_subject());

  INSERT INTO canonical.lineage_records (submission_id, from_type, from_id, to_type, to_id, relationship)
  VALUES (upload_document.submission_id, 'service_request', req.id, 'document', doc_id, 'documented_by')
  ON CONFLICT DO NOTHING;
  RETURN doc_id;
END $$;

-- Documents: details and download links for operators, auditors and admins
-- only; the anonymous role learns that a document exists.
CREATE FUNCTION enterprise_lab.api_may_see_documents() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(enterprise_lab.request_access() IN ('operator', 'auditor', 'admin'), false)
$$;
COMMENT ON FUNCTION enterprise_lab.api_may_see_documents() IS
  'api helper: true for operators, auditors and admins, who see documents'' details and download links; the anonymous role sees only that a document exists.';

CREATE OR REPLACE FUNCTION api.submission_detail(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'submission_detail';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id']);
  v_id uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', true);
  emails boolean := enterprise_lab.api_may_see_emails();
  see_documents boolean := enterprise_lab.api_may_see_documents();
  submission jsonb;
  request jsonb;
  operational_case jsonb;
  documents jsonb := '[]';
  d record;
  url text;
BEGIN
  SELECT to_jsonb(s) || jsonb_build_object(
           'requester_email', CASE WHEN emails THEN s.requester_email END,
           'customer_code', c.code, 'customer_name', c.name,
           'agreement_number', a.agreement_number, 'agreement_name', a.name)
    INTO submission
    FROM intake.submissions s
    JOIN reference.customers c ON c.id = s.customer_id
    LEFT JOIN reference.agreements a ON a.id = s.agreement_id
   WHERE s.id = v_id;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('submission', v_id);
  END IF;

  FOR d IN SELECT to_jsonb(x) AS doc, x.id, x.status FROM document_repo.documents x
            WHERE x.submission_id = v_id ORDER BY x.uploaded_at, x.id LOOP
    IF see_documents THEN
      url := CASE WHEN d.status = 'stored' THEN document_repo.presigned_url(d.id, interval '15 minutes') END;
      documents := documents || jsonb_build_array(d.doc || jsonb_build_object('download_url', url));
    ELSE
      documents := documents || jsonb_build_array(jsonb_build_object('id', d.id, 'download_url', NULL));
    END IF;
  END LOOP;

  SELECT to_jsonb(r), to_jsonb(c) INTO request, operational_case
    FROM source_system.service_requests r
    LEFT JOIN operational.operation_cases c ON c.service_request_id = r.id
   WHERE r.submission_id = v_id;

  RETURN jsonb_build_object(
    'submission', submission,
    'service_request', request,
    'case', operational_case,
    'status_history', coalesce((SELECT jsonb_agg(to_jsonb(h) ORDER BY h.id)
                                  FROM operational.case_status_history h
                                 WHERE h.case_id = (operational_case ->> 'id')::uuid), '[]'),
    'canonical', (SELECT to_jsonb(o) FROM canonical.business_objects o
                   WHERE o.submission_id = v_id AND o.object_type = 'service_request'),
    'documents', documents,
    'events', coalesce((SELECT jsonb_agg(to_jsonb(e) ORDER BY e.seq)
                          FROM integration.events e WHERE e.submission_id = v_id), '[]'),
    'sync_logs', coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.id)
                             FROM integration.sync_logs l WHERE l.submission_id = v_id), '[]'),
    'lineage', coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.created_at, enterprise_lab.api_lineage_rank(l.from_type),
                                          l.from_type, l.to_type, l.relationship)
                           FROM canonical.lineage_records l WHERE l.submission_id = v_id), '[]'));
END $$;
COMMENT ON FUNCTION api.submission_detail(jsonb) IS
  'One submission across every layer: {"submission_id"} -> submission, service_request, case, status_history, canonical, documents (for operators, auditors and admins with a 15-minute presigned download_url; only their ids for the anonymous role), events, sync_logs, lineage. PT404 (HTTP 404) when unknown.';

-- Custom event handlers run as their owner (src/handlers.c), so only the
-- owner may register one.
COMMENT ON TABLE integration.event_handlers IS
  'SQL handlers for custom event types: a function taking one integration.events row. It runs in the worker''s transaction as the function''s owner, who must be the role that registers it; raise an error to fail the event.';

CREATE OR REPLACE FUNCTION integration.check_event_handler() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p record;
BEGIN
  SELECT proargtypes, proowner, prokind, proretset INTO p FROM pg_proc WHERE oid = NEW.handler;
  IF array_length(p.proargtypes::oid[], 1) IS DISTINCT FROM 1
     OR p.proargtypes[0] <> 'integration.events'::regtype THEN
    RAISE EXCEPTION 'handler % must take exactly one argument of type integration.events', NEW.handler
      USING ERRCODE = 'invalid_function_definition',
            HINT = 'Declare it as CREATE FUNCTION my_handler(e integration.events) RETURNS void ...';
  END IF;
  IF p.prokind <> 'f' OR p.proretset THEN
    RAISE EXCEPTION 'handler % must be a plain function', NEW.handler
      USING ERRCODE = 'invalid_function_definition',
            DETAIL = 'Procedures, aggregates and set-returning functions cannot be handlers.',
            HINT = 'Declare it as CREATE FUNCTION my_handler(e integration.events) RETURNS void ...';
  END IF;
  IF (TG_OP = 'INSERT' OR NEW.handler IS DISTINCT FROM OLD.handler)
     AND NOT pg_has_role(current_user, p.proowner, 'USAGE') THEN
    RAISE EXCEPTION 'must be the owner of function % to register it as a handler', NEW.handler
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = format('The handler would run as its owner, %s.', p.proowner::regrole),
            HINT = 'Register a function you own; a handler runs with its owner''s rights.';
  END IF;
  RETURN NEW;
END $$;

-- The gateway connects as the authenticator (never as a superuser), so the
-- authenticator logs in.
DO $$
BEGIN
  IF NOT (SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = 'lab_authenticator') THEN
    ALTER ROLE lab_authenticator LOGIN;
  END IF;
END $$;

CREATE OR REPLACE FUNCTION api.health(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('health', body, '{}');
  -- Anyone may ask, as often as they like: the counts walk partial indexes
  -- and stop at 10000, so an answer costs the same however many events
  -- there are.
  RETURN jsonb_build_object(
    'status', 'ok',
    'database', true,
    'workers_running', (SELECT count(*) FROM integration.worker_status),
    'pending_events', (SELECT count(*) FROM (SELECT FROM integration.events
                         WHERE status IN ('pending', 'failed') LIMIT 10000) AS e),
    'dead_letters', (SELECT count(*) FROM (SELECT FROM integration.events
                       WHERE status = 'dead_letter' LIMIT 10000) AS e),
    'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'));
END $$;
COMMENT ON FUNCTION api.health(jsonb) IS
  'Liveness: {"status": "ok", "database": true, workers running, pending events and dead letters (each counted up to 10000), extension version}. Body: {}.';

-- Webhook delivery (src/sql/08_delivery.sql).
-- integration (delivery): webhooks to external systems.  Subscriptions are
-- data; deliveries are outbox rows written in the transaction that completes
-- an event (process.c), one per matching subscription.  The delivery worker
-- (delivery_worker.c) leases due deliveries, commits, sends them over HTTP
-- with no transaction open, and records each outcome in a short
-- transaction.  Order holds per (subscription, submission): a delivery waits
-- while an earlier one of the same pair is unfinished.  See docs/delivery.md.

CREATE TABLE integration.subscriptions (
  id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name                 text NOT NULL
                       CONSTRAINT subscriptions_name_format CHECK (name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$'),
  url                  text NOT NULL,
  event_types          text[]
                       CONSTRAINT subscriptions_event_types_valid CHECK (
                         event_types IS NULL OR (cardinality(event_types) BETWEEN 1 AND 50
                           AND array_position(event_types, NULL) IS NULL)),
  enabled              boolean NOT NULL DEFAULT true,
  paused_at            timestamptz,
  paused_reason        text,
  timeout_ms           integer NOT NULL DEFAULT 10000
                       CONSTRAINT subscriptions_timeout_range CHECK (timeout_ms BETWEEN 100 AND 60000),
  headers              jsonb NOT NULL DEFAULT '{}',
  consecutive_failures integer NOT NULL DEFAULT 0,
  delivered_count      bigint NOT NULL DEFAULT 0,
  failed_count         bigint NOT NULL DEFAULT 0,
  last_success_at      timestamptz,
  last_failure_at      timestamptz,
  created_at           timestamptz NOT NULL DEFAULT now(),
  updated_at           timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT subscriptions_name_unique UNIQUE (name),
  CONSTRAINT subscriptions_paused_with_reason CHECK ((paused_at IS NULL) = (paused_reason IS NULL))
);
COMMENT ON TABLE integration.subscriptions IS
  'Webhook subscriptions: where to deliver which event types. enabled = false writes no deliveries; a paused subscription (paused_at, paused_reason: by an admin, a 410 Gone, or the failure threshold) keeps its deliveries until resumed.';
COMMENT ON COLUMN integration.subscriptions.event_types IS 'Event types delivered; NULL means every type.';
COMMENT ON COLUMN integration.subscriptions.headers IS 'Extra request headers, {"Name": "value"}; webhook-*, content-type, host and the like are reserved.';
COMMENT ON COLUMN integration.subscriptions.consecutive_failures IS
  'Failed attempts since the last success; at enterprise_lab.delivery_failure_threshold the subscription is paused (circuit breaker).';

-- Kept apart so that only superusers and lab_admin can read it (95/96).
CREATE TABLE integration.subscription_secrets (
  subscription_id uuid PRIMARY KEY REFERENCES integration.subscriptions (id) ON DELETE CASCADE,
  secret          text NOT NULL
                  CONSTRAINT subscription_secrets_format CHECK (
                    secret ~ '^whsec_[A-Za-z0-9+/]+={0,2}$' AND length(secret) BETWEEN 38 AND 94),
  created_at      timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE integration.subscription_secrets IS
  'Standard Webhooks signing secrets (whsec_ + base64 of 24 to 64 random bytes). Readable by superusers and lab_admin only.';

CREATE TABLE integration.deliveries (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  subscription_id  uuid NOT NULL REFERENCES integration.subscriptions (id) ON DELETE CASCADE,
  event_id         uuid NOT NULL,
  event_seq        bigint NOT NULL,
  submission_id    uuid NOT NULL,
  event_type       text NOT NULL,
  payload          jsonb NOT NULL,
  status           text NOT NULL DEFAULT 'pending'
                   CONSTRAINT deliveries_status_valid CHECK (
                     status IN ('pending', 'in_flight', 'failed', 'delivered', 'dead_letter', 'skipped')),
  attempts         integer NOT NULL DEFAULT 0 CONSTRAINT deliveries_attempts_not_negative CHECK (attempts >= 0),
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  lease_until      timestamptz,
  last_http_status integer,
  last_error       text,
  response_excerpt text CONSTRAINT deliveries_excerpt_short CHECK (length(response_excerpt) <= 256),
  created_at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  first_attempt_at timestamptz,
  last_attempt_at  timestamptz,
  delivered_at     timestamptz,
  last_duration_ms double precision,
  CONSTRAINT deliveries_once_per_event UNIQUE (subscription_id, event_id),
  CONSTRAINT deliveries_in_flight_leased CHECK ((status = 'in_flight') = (lease_until IS NOT NULL))
);
-- The claim walks the unfinished deliveries oldest first.
CREATE INDEX deliveries_due_idx ON integration.deliveries (event_seq)
  WHERE status IN ('pending', 'in_flight', 'failed');
-- Per-pair order: "is there an earlier unfinished delivery?"
CREATE INDEX deliveries_unfinished_idx ON integration.deliveries (subscription_id, submission_id, event_seq)
  WHERE status IN ('pending', 'in_flight', 'failed', 'dead_letter');
CREATE INDEX deliveries_submission_idx ON integration.deliveries (submission_id, event_seq);
COMMENT ON TABLE integration.deliveries IS
  'Webhook deliveries (outbox): one per event and matching subscription, written when the event completes. id is the webhook-id, stable across retries.';
COMMENT ON COLUMN integration.deliveries.status IS
  'pending, in_flight (leased to the delivery worker until lease_until), failed (retry at next_attempt_at), delivered, dead_letter (holds later deliveries of its subscription and submission), skipped.';
COMMENT ON COLUMN integration.deliveries.payload IS 'The CloudEvents 1.0 event sent as the request body.';

-- Wake the delivery worker when a transaction that wrote deliveries, or
-- changed a subscription, commits.
CREATE FUNCTION integration.wake_delivery_worker_at_commit() RETURNS trigger
  AS 'MODULE_PATHNAME', 'el_wake_delivery_worker_at_commit' LANGUAGE C;
COMMENT ON FUNCTION integration.wake_delivery_worker_at_commit() IS
  'Trigger: sets the delivery worker''s latch when the transaction commits.';
CREATE TRIGGER deliveries_wake_worker AFTER INSERT OR UPDATE ON integration.deliveries
  FOR EACH STATEMENT EXECUTE FUNCTION integration.wake_delivery_worker_at_commit();
CREATE TRIGGER subscriptions_wake_worker AFTER INSERT OR UPDATE ON integration.subscriptions
  FOR EACH STATEMENT EXECUTE FUNCTION integration.wake_delivery_worker_at_commit();
CREATE TRIGGER subscriptions_touch_updated_at BEFORE UPDATE ON integration.subscriptions
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.touch_updated_at();

-- C helpers (webhook_sign.c, webhook_address.c).
CREATE FUNCTION integration.check_webhook_url(url text) RETURNS void
  AS 'MODULE_PATHNAME', 'el_check_webhook_url' LANGUAGE C STABLE STRICT;
COMMENT ON FUNCTION integration.check_webhook_url(text) IS
  'Raises 22023 unless url is an http(s) URL without credentials whose host, when it is an IP address, is public or in enterprise_lab.delivery_allowed_networks.';

CREATE FUNCTION integration.generate_webhook_secret() RETURNS text
  AS 'MODULE_PATHNAME', 'el_generate_webhook_secret' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION integration.generate_webhook_secret() IS
  'A new Standard Webhooks secret: whsec_ + base64 of 32 random bytes.';

CREATE FUNCTION integration.webhook_signature(secret text, webhook_id text, webhook_timestamp bigint, body text)
RETURNS text
  AS 'MODULE_PATHNAME', 'el_webhook_signature' LANGUAGE C IMMUTABLE STRICT;
COMMENT ON FUNCTION integration.webhook_signature(text, text, bigint, text) IS
  'The webhook-signature header value: v1, + base64 HMAC-SHA256 of "id.timestamp.body" with the decoded whsec_ secret.';

-- Every write to a subscription is checked here, whichever way it comes.
CREATE FUNCTION integration.check_subscription() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  k text;
  v jsonb;
  t text;
BEGIN
  IF length(NEW.url) > 2000 THEN
    RAISE EXCEPTION 'subscription url is too long'
      USING ERRCODE = 'string_data_right_truncation',
            DETAIL = format('It has %s characters; the limit is 2000.', length(NEW.url));
  END IF;
  PERFORM integration.check_webhook_url(NEW.url);

  IF NEW.event_types IS NOT NULL THEN
    FOREACH t IN ARRAY NEW.event_types LOOP
      IF t !~ '^[A-Za-z][A-Za-z0-9_.]{0,99}$' THEN
        RAISE EXCEPTION 'event type "%" is not a valid event type name', left(t, 100)
          USING ERRCODE = 'invalid_parameter_value',
                HINT = 'Event types are names such as RequestCreated or OperationalCaseStatusChanged; leave event_types out for all.';
      END IF;
    END LOOP;
  END IF;

  IF jsonb_typeof(NEW.headers) IS DISTINCT FROM 'object' THEN
    RAISE EXCEPTION 'subscription headers must be a JSON object'
      USING ERRCODE = 'invalid_parameter_value', HINT = 'Send {"Header-Name": "value", ...}.';
  END IF;
  IF (SELECT count(*) FROM jsonb_object_keys(NEW.headers)) > 20 OR length(NEW.headers::text) > 4000 THEN
    RAISE EXCEPTION 'subscription headers are too many or too long'
      USING ERRCODE = 'program_limit_exceeded', DETAIL = 'At most 20 headers and 4000 characters.';
  END IF;
  FOR k, v IN SELECT * FROM jsonb_each(NEW.headers) LOOP
    IF k !~ '^[A-Za-z0-9!#$%&''*+.^_`|~-]{1,100}$' THEN
      RAISE EXCEPTION 'header name "%" is not valid', left(k, 100)
        USING ERRCODE = 'invalid_parameter_value', HINT = 'Header names are HTTP tokens such as X-Team.';
    END IF;
    IF lower(k) ~ '^(webhook-|ce-)' OR lower(k) IN ('content-type', 'content-length', 'host', 'transfer-encoding',
                                                  'connection', 'expect', 'user-agent', 'te', 'upgrade') THEN
      RAISE EXCEPTION 'header "%" is set by enterprise_lab and cannot be overridden', k
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF jsonb_typeof(v) <> 'string' OR v #>> '{}' ~ '[\x01-\x08\x0a-\x1f\x7f]' THEN
      RAISE EXCEPTION 'header "%" must have a string value without control characters', k
        USING ERRCODE = 'invalid_parameter_value';
    END IF;
  END LOOP;
  RETURN NEW;
END $$;
COMMENT ON FUNCTION integration.check_subscription() IS
  'Trigger: validates a subscription''s url, event types and headers (22023, 22001, 54000).';
CREATE TRIGGER subscriptions_check BEFORE INSERT OR UPDATE ON integration.subscriptions
  FOR EACH ROW EXECUTE FUNCTION integration.check_subscription();

CREATE FUNCTION integration.create_subscription(
  name text, url text, event_types text[] DEFAULT NULL, secret text DEFAULT NULL,
  timeout_ms integer DEFAULT 10000, headers jsonb DEFAULT '{}', enabled boolean DEFAULT true)
RETURNS integration.subscriptions
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s integration.subscriptions;
BEGIN
  IF secret IS NOT NULL AND (secret !~ '^whsec_[A-Za-z0-9+/]+={0,2}$' OR length(secret) NOT BETWEEN 38 AND 94
                             OR length(secret) % 4 <> 2) THEN
    RAISE EXCEPTION 'the signing secret is not a Standard Webhooks secret'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'It must be whsec_ followed by the base64 of 24 to 64 random bytes.',
            HINT = 'Leave it out and one is generated: integration.generate_webhook_secret().';
  END IF;
  INSERT INTO integration.subscriptions AS x (name, url, event_types, timeout_ms, headers, enabled)
  VALUES (create_subscription.name, create_subscription.url, create_subscription.event_types,
          create_subscription.timeout_ms, coalesce(create_subscription.headers, '{}'),
          coalesce(create_subscription.enabled, true))
  RETURNING * INTO s;
  INSERT INTO integration.subscription_secrets (subscription_id, secret)
  VALUES (s.id, coalesce(create_subscription.secret, integration.generate_webhook_secret()));
  RETURN s;
END $$;
COMMENT ON FUNCTION integration.create_subscription(text, text, text[], text, integer, jsonb, boolean) IS
  'Subscribe a URL to events (all types when event_types is NULL); a secret is generated unless given. Read it from integration.subscription_secrets.';

CREATE FUNCTION integration.pause_subscription(subscription_id uuid, reason text) RETURNS integration.subscriptions
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s integration.subscriptions;
BEGIN
  IF reason IS NULL OR reason !~ '\S' THEN
    RAISE EXCEPTION 'a reason is required to pause a subscription'
      USING ERRCODE = 'not_null_violation', HINT = 'Say why; it is shown with the subscription.';
  END IF;
  UPDATE integration.subscriptions x SET paused_at = coalesce(x.paused_at, now()), paused_reason = left(reason, 500)
   WHERE x.id = pause_subscription.subscription_id RETURNING * INTO s;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'subscription % does not exist', subscription_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN s;
END $$;
COMMENT ON FUNCTION integration.pause_subscription(uuid, text) IS
  'Stop sending to a subscription; its deliveries wait until it is resumed.';

CREATE FUNCTION integration.resume_subscription(subscription_id uuid) RETURNS integration.subscriptions
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s integration.subscriptions;
BEGIN
  UPDATE integration.subscriptions x SET paused_at = NULL, paused_reason = NULL, consecutive_failures = 0
   WHERE x.id = resume_subscription.subscription_id RETURNING * INTO s;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'subscription % does not exist', subscription_id USING ERRCODE = 'no_data_found';
  END IF;
  -- Waiting retries are due at once: the receiver is back.
  UPDATE integration.deliveries d SET next_attempt_at = now()
   WHERE d.subscription_id = s.id AND d.status IN ('pending', 'failed') AND d.next_attempt_at > now();
  RETURN s;
END $$;
COMMENT ON FUNCTION integration.resume_subscription(uuid) IS
  'Send to a paused subscription again, resetting its failure count; waiting retries become due now.';

-- Lease due deliveries to the delivery worker.  Only the first unfinished
-- delivery of each (subscription, submission) qualifies, and only for
-- enabled, unpaused subscriptions; an expired lease makes a delivery due
-- again.  The attempt is counted here, so a delivery that crashes its
-- worker every time still reaches the dead letter.
CREATE FUNCTION integration.claim_deliveries(max_deliveries integer, lease interval)
RETURNS TABLE (id uuid, attempt integer, url text, secret text, header_lines text[],
               timeout_ms integer, body text)
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  WITH due AS (
    SELECT d.id
      FROM integration.deliveries d
      JOIN integration.subscriptions s ON s.id = d.subscription_id
     WHERE d.status IN ('pending', 'in_flight', 'failed')
       AND CASE WHEN d.status = 'in_flight' THEN d.lease_until <= clock_timestamp()
                ELSE d.next_attempt_at <= clock_timestamp() END
       AND s.enabled AND s.paused_at IS NULL
       AND NOT EXISTS (SELECT 1 FROM integration.deliveries p
                        WHERE p.subscription_id = d.subscription_id
                          AND p.submission_id = d.submission_id
                          AND p.event_seq < d.event_seq
                          AND p.status IN ('pending', 'in_flight', 'failed', 'dead_letter'))
     ORDER BY d.event_seq
     LIMIT max_deliveries
       FOR UPDATE OF d SKIP LOCKED),
  leased AS (
    UPDATE integration.deliveries d
       SET status = 'in_flight', attempts = d.attempts + 1,
           lease_until = clock_timestamp() + lease,
           first_attempt_at = coalesce(d.first_attempt_at, clock_timestamp()),
           last_attempt_at = clock_timestamp()
      FROM due
     WHERE d.id = due.id
    RETURNING d.id, d.attempts, d.subscription_id, d.payload, d.event_seq)
  SELECT l.id, l.attempts, s.url, k.secret,
         ARRAY(SELECT h.key || ': ' || h.value FROM jsonb_each_text(s.headers) h ORDER BY h.key),
         s.timeout_ms, l.payload::text
    FROM leased l
    JOIN integration.subscriptions s ON s.id = l.subscription_id
    JOIN integration.subscription_secrets k ON k.subscription_id = l.subscription_id
   ORDER BY l.event_seq
$$;
COMMENT ON FUNCTION integration.claim_deliveries(integer, interval) IS
  'Delivery worker: lease up to max_deliveries due deliveries (in flight until now() + lease) and return what to send.';

-- Record what the receivers answered, for a set of deliveries at once.
-- Only a delivery still leased for that attempt is updated: a lease that
-- ran out and was claimed again belongs to the newer attempt.
CREATE FUNCTION integration.record_delivery_outcomes(
  ids uuid[], attempts integer[], http_statuses integer[], errors text[], excerpts text[],
  retry_after_seconds integer[], durations_ms double precision[],
  max_attempts integer, backoff_base_ms integer, backoff_max_ms integer, failure_threshold integer)
RETURNS integer
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  WITH o AS (
    SELECT * FROM unnest(ids, attempts, http_statuses, errors, excerpts, retry_after_seconds, durations_ms)
                  WITH ORDINALITY AS o(id, attempt, http_status, error, excerpt, retry_after, duration_ms, ord)),
  k AS (
    SELECT o.*, d.subscription_id,
           CASE WHEN o.http_status BETWEEN 200 AND 299 THEN 'delivered'
                WHEN o.http_status = 410 THEN 'gone'
                WHEN d.attempts >= max_attempts THEN 'dead_letter'
                ELSE 'failed' END AS kind,
           least(backoff_max_ms / 1000.0,
                 backoff_base_ms / 1000.0 * power(2, least(d.attempts - 1, 40))) AS backoff
      FROM o JOIN integration.deliveries d
        ON d.id = o.id AND d.attempts = o.attempt AND d.status = 'in_flight'),
  upd AS (
    UPDATE integration.deliveries d
       SET status = CASE k.kind WHEN 'gone' THEN 'pending' ELSE k.kind END,
           lease_until = NULL,
           last_http_status = k.http_status,
           last_error = CASE WHEN k.kind = 'delivered' THEN NULL ELSE left(k.error, 1000) END,
           response_excerpt = left(k.excerpt, 256),
           last_duration_ms = k.duration_ms,
           delivered_at = CASE WHEN k.kind = 'delivered' THEN clock_timestamp() END,
           next_attempt_at = CASE
             WHEN k.kind = 'failed' AND k.http_status IN (429, 503) AND k.retry_after IS NOT NULL
               THEN clock_timestamp() + make_interval(secs => least(k.retry_after, backoff_max_ms / 1000.0))
             WHEN k.kind = 'failed'
               THEN clock_timestamp() + make_interval(secs => k.backoff / 2 + random() * k.backoff / 2)
             ELSE d.next_attempt_at END
      FROM k
     WHERE d.id = k.id
    RETURNING d.id, d.subscription_id, k.kind, k.ord, d.last_error),
  -- Per subscription, in the order the answers came: the circuit breaker
  -- counts the failures after the last success.
  ranked AS (
    SELECT u.*, max(u.ord) FILTER (WHERE u.kind = 'delivered') OVER (PARTITION BY u.subscription_id) AS last_ok
      FROM upd u),
  a AS (
    SELECT r.subscription_id,
           count(*) FILTER (WHERE r.kind = 'delivered') AS delivered,
           count(*) FILTER (WHERE r.kind <> 'delivered') AS failures,
           count(*) FILTER (WHERE r.kind <> 'delivered' AND r.ord > r.last_ok) AS failures_after_success,
           bool_or(r.kind = 'gone') AS gone,
           (array_agg(r.last_error ORDER BY r.ord DESC) FILTER (WHERE r.kind <> 'delivered'))[1] AS last_error
      FROM ranked r GROUP BY r.subscription_id),
  b AS (
    SELECT a.*, s.id,
           CASE WHEN a.delivered > 0 THEN a.failures_after_success
                ELSE s.consecutive_failures + a.failures END AS failing
      FROM a JOIN integration.subscriptions s ON s.id = a.subscription_id),
  subs AS (
    UPDATE integration.subscriptions s
       SET delivered_count = s.delivered_count + b.delivered,
           failed_count = s.failed_count + b.failures,
           consecutive_failures = b.failing,
           last_success_at = CASE WHEN b.delivered > 0 THEN now() ELSE s.last_success_at END,
           last_failure_at = CASE WHEN b.failures > 0 THEN now() ELSE s.last_failure_at END,
           paused_at = CASE WHEN s.paused_at IS NULL AND (b.gone OR b.failing >= failure_threshold)
                            THEN now() ELSE s.paused_at END,
           paused_reason = CASE WHEN s.paused_at IS NOT NULL THEN s.paused_reason
                                WHEN b.gone THEN 'the receiver answered 410 Gone'
                                WHEN b.failing >= failure_threshold
                                  THEN format('%s consecutive failed attempts (last: %s)', b.failing, b.last_error)
                           END
      FROM b
     WHERE s.id = b.id
    RETURNING s.id)
  SELECT count(*)::integer FROM upd
$$;
COMMENT ON FUNCTION integration.record_delivery_outcomes(uuid[], integer[], integer[], text[], text[], integer[], double precision[], integer, integer, integer, integer) IS
  'Delivery worker: record attempts (2xx delivered; 410 pauses the subscription; others retry with backoff and jitter, Retry-After on 429/503, then dead letter) and apply the circuit breaker.';

CREATE FUNCTION integration.replay_delivery(delivery_id uuid) RETURNS integration.deliveries
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integration.deliveries;
BEGIN
  SELECT * INTO d FROM integration.deliveries x WHERE x.id = delivery_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'delivery % does not exist', delivery_id USING ERRCODE = 'no_data_found';
  END IF;
  IF d.status NOT IN ('dead_letter', 'failed', 'skipped') THEN
    RAISE EXCEPTION 'delivery % is % and cannot be replayed', delivery_id, d.status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'Only dead_letter, failed and skipped deliveries can be replayed.';
  END IF;
  UPDATE integration.deliveries x
     SET status = 'pending', attempts = 0, next_attempt_at = now()
   WHERE x.id = delivery_id RETURNING * INTO d;
  RETURN d;
END $$;
COMMENT ON FUNCTION integration.replay_delivery(uuid) IS
  'Send a dead-lettered, failed or skipped delivery again, with a fresh attempt count and the same webhook-id.';

CREATE FUNCTION integration.replay_dead_deliveries(subscription_id uuid) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM integration.subscriptions s WHERE s.id = replay_dead_deliveries.subscription_id) THEN
    RAISE EXCEPTION 'subscription % does not exist', subscription_id USING ERRCODE = 'no_data_found';
  END IF;
  UPDATE integration.deliveries d
     SET status = 'pending', attempts = 0, next_attempt_at = now()
   WHERE d.subscription_id = replay_dead_deliveries.subscription_id AND d.status = 'dead_letter';
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
COMMENT ON FUNCTION integration.replay_dead_deliveries(uuid) IS
  'Replay every dead letter of one subscription; returns how many.';

CREATE FUNCTION integration.skip_delivery(delivery_id uuid, reason text) RETURNS integration.deliveries
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integration.deliveries;
BEGIN
  IF reason IS NULL OR reason !~ '\S' THEN
    RAISE EXCEPTION 'a reason is required to skip a delivery'
      USING ERRCODE = 'not_null_violation', HINT = 'Say why the receiver may miss this event; it is kept as last_error.';
  END IF;
  UPDATE integration.deliveries x
     SET status = 'skipped', lease_until = NULL,
         last_error = left(format('skipped by %s: %s', enterprise_lab.request_subject(), reason), 1000)
   WHERE x.id = delivery_id AND x.status IN ('dead_letter', 'failed', 'pending')
  RETURNING * INTO d;
  IF NOT FOUND THEN
    IF EXISTS (SELECT 1 FROM integration.deliveries x WHERE x.id = delivery_id) THEN
      RAISE EXCEPTION 'delivery % is in flight or finished and cannot be skipped', delivery_id
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RAISE EXCEPTION 'delivery % does not exist', delivery_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN d;
END $$;
COMMENT ON FUNCTION integration.skip_delivery(uuid, text) IS
  'Give up on a delivery on purpose, releasing the later deliveries of its subscription and submission.';

CREATE VIEW integration.held_deliveries AS
SELECT d.subscription_id,
       s.name          AS subscription_name,
       d.submission_id,
       d.id            AS holding_delivery_id,
       d.event_type    AS holding_event_type,
       d.last_http_status,
       d.last_error,
       d.last_attempt_at AS held_since,
       (SELECT count(*) FROM integration.deliveries w
         WHERE w.subscription_id = d.subscription_id AND w.submission_id = d.submission_id
           AND w.event_seq > d.event_seq AND w.status IN ('pending', 'failed')) AS waiting_deliveries
  FROM integration.deliveries d
  JOIN integration.subscriptions s ON s.id = d.subscription_id
 WHERE d.status = 'dead_letter';
COMMENT ON VIEW integration.held_deliveries IS
  'Subscription and submission pairs held by a dead-lettered delivery: later deliveries wait until it is replayed or skipped.';

CREATE VIEW integration.subscription_status AS
SELECT s.id AS subscription_id, s.name, s.url, s.event_types,
       CASE WHEN NOT s.enabled THEN 'disabled' WHEN s.paused_at IS NOT NULL THEN 'paused' ELSE 'active' END AS state,
       s.paused_at, s.paused_reason, s.consecutive_failures,
       s.delivered_count, s.failed_count, s.last_success_at, s.last_failure_at,
       count(d.id) FILTER (WHERE d.status IN ('pending', 'failed')) AS waiting,
       count(d.id) FILTER (WHERE d.status = 'in_flight') AS in_flight,
       count(d.id) FILTER (WHERE d.status = 'dead_letter') AS dead_letters
  FROM integration.subscriptions s
  LEFT JOIN integration.deliveries d
    ON d.subscription_id = s.id AND d.status IN ('pending', 'in_flight', 'failed', 'dead_letter')
 GROUP BY s.id;
COMMENT ON VIEW integration.subscription_status IS
  'One row per subscription: active, paused (with the reason) or disabled; counters; deliveries waiting, in flight and dead-lettered.';

CREATE FUNCTION integration.delivery_worker_rows(
  OUT pid integer, OUT started_at timestamptz, OUT in_flight integer, OUT attempts_finished bigint,
  OUT delivered bigint, OUT failed bigint, OUT refused bigint, OUT last_outcome_at timestamptz)
RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'el_delivery_worker_status' LANGUAGE C VOLATILE;

CREATE VIEW integration.delivery_worker_status AS
  SELECT * FROM integration.delivery_worker_rows();
COMMENT ON VIEW integration.delivery_worker_status IS
  'The delivery worker, from shared memory: requests in flight and counters since it started (no row when it is not running).';

REVOKE EXECUTE ON FUNCTION integration.claim_deliveries(integer, interval),
  integration.record_delivery_outcomes(uuid[], integer[], integer[], text[], text[], integer[], double precision[], integer, integer, integer, integer),
  integration.generate_webhook_secret(),
  integration.webhook_signature(text, text, bigint, text)
  FROM PUBLIC;

SELECT pg_catalog.pg_extension_config_dump('integration.subscriptions', '');
SELECT pg_catalog.pg_extension_config_dump('integration.subscription_secrets', '');
SELECT pg_catalog.pg_extension_config_dump('integration.deliveries', '');

-- Its api functions (src/sql/31_api_delivery.sql).
-- api (delivery): webhook subscriptions and their deliveries over HTTP.
-- Admins manage subscriptions; operators and admins replay or skip
-- deliveries; operators, auditors and admins read them.  Signing secrets
-- are returned once, to the admin who creates a subscription.

CREATE FUNCTION enterprise_lab.api_subscription_fields(fn text, b jsonb, OUT event_types text[], OUT headers jsonb,
                                                       OUT enabled boolean, OUT timeout_ms integer)
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF b ? 'event_types' AND jsonb_typeof(b -> 'event_types') <> 'null' THEN
    IF jsonb_typeof(b -> 'event_types') <> 'array' OR EXISTS (
         SELECT 1 FROM jsonb_array_elements(b -> 'event_types') v WHERE jsonb_typeof(v) <> 'string') THEN
      RAISE EXCEPTION '%: event_types must be an array of strings', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'event_types',
              HINT = 'Send ["RequestCreated", "OperationalCaseStatusChanged"], or leave it out for every type.';
    END IF;
    event_types := ARRAY(SELECT jsonb_array_elements_text(b -> 'event_types'));
    IF cardinality(event_types) NOT BETWEEN 1 AND 50 THEN
      RAISE EXCEPTION '%: event_types must name 1 to 50 event types', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'event_types',
              HINT = 'Leave event_types out to receive every type.';
    END IF;
  END IF;
  IF b ? 'headers' AND jsonb_typeof(b -> 'headers') <> 'null' THEN
    IF jsonb_typeof(b -> 'headers') <> 'object' THEN
      RAISE EXCEPTION '%: headers must be an object', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'headers', HINT = 'Send {"Header-Name": "value"}.';
    END IF;
    headers := b -> 'headers';
  END IF;
  IF b ? 'enabled' AND jsonb_typeof(b -> 'enabled') <> 'null' THEN
    IF jsonb_typeof(b -> 'enabled') <> 'boolean' THEN
      RAISE EXCEPTION '%: enabled must be true or false', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'enabled';
    END IF;
    enabled := (b -> 'enabled')::boolean;
  END IF;
  timeout_ms := enterprise_lab.api_integer(fn, b, 'timeout_ms', NULL, 100, 60000);
END $$;
COMMENT ON FUNCTION enterprise_lab.api_subscription_fields(text, jsonb) IS
  'api helper: the optional fields of a subscription body (event_types, headers, enabled, timeout_ms), checked (22023).';

CREATE FUNCTION api.subscriptions(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('subscriptions', body, '{}');
  RETURN jsonb_build_object('items', coalesce((
    SELECT jsonb_agg(to_jsonb(s) || jsonb_build_object('id', s.subscription_id) ORDER BY s.name)
      FROM integration.subscription_status s), '[]'));
END $$;
COMMENT ON FUNCTION api.subscriptions(jsonb) IS
  'Webhook subscriptions with their state (active, paused with the reason, disabled), failures, last success and waiting, in-flight and dead-lettered deliveries. Body: {}.';

CREATE FUNCTION api.create_subscription(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'create_subscription';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['name', 'url', 'event_types', 'secret', 'timeout_ms', 'headers', 'enabled']);
  v_name text := enterprise_lab.api_text(fn, b, 'name', true, 63);
  v_url text := enterprise_lab.api_text(fn, b, 'url', true, 2000);
  v_secret text := enterprise_lab.api_text(fn, b, 'secret', false, 300);
  f record := enterprise_lab.api_subscription_fields(fn, b);
  s integration.subscriptions;
BEGIN
  IF v_name !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' THEN
    RAISE EXCEPTION '%: name "%" is not a valid subscription name', fn, v_name
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'name',
            HINT = 'Use letters, digits, _, . and -, starting with a letter or digit.';
  END IF;
  s := integration.create_subscription(v_name, v_url, f.event_types, v_secret,
                                       coalesce(f.timeout_ms, 10000), coalesce(f.headers, '{}'), coalesce(f.enabled, true));
  RETURN to_jsonb(s) || jsonb_build_object(
    'secret', (SELECT k.secret FROM integration.subscription_secrets k WHERE k.subscription_id = s.id));
END $$;
COMMENT ON FUNCTION api.create_subscription(jsonb) IS
  'Admins: subscribe a URL to events: {"name", "url", "event_types"?, "secret"?, "timeout_ms"?, "headers"?, "enabled"?}. Returns the subscription and its signing secret. 23505 (HTTP 409) when the name is taken.';

CREATE FUNCTION api.update_subscription(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'update_subscription';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['subscription_id', 'url', 'event_types', 'timeout_ms', 'headers', 'enabled', 'paused', 'reason']);
  v_id uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', true);
  v_url text := enterprise_lab.api_text(fn, b, 'url', false, 2000);
  v_reason text := enterprise_lab.api_text(fn, b, 'reason', false, 500);
  f record := enterprise_lab.api_subscription_fields(fn, b);
  s integration.subscriptions;
BEGIN
  IF b ? 'paused' AND jsonb_typeof(b -> 'paused') <> 'boolean' THEN
    RAISE EXCEPTION '%: paused must be true or false', fn USING ERRCODE = 'invalid_parameter_value', COLUMN = 'paused';
  END IF;
  UPDATE integration.subscriptions x
     SET url = coalesce(v_url, x.url),
         event_types = CASE WHEN b ? 'event_types' THEN f.event_types ELSE x.event_types END,
         timeout_ms = coalesce(f.timeout_ms, x.timeout_ms),
         headers = coalesce(f.headers, x.headers),
         enabled = coalesce(f.enabled, x.enabled)
   WHERE x.id = v_id RETURNING * INTO s;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('subscription', v_id);
  END IF;
  IF (b -> 'paused') = 'true' THEN
    s := integration.pause_subscription(v_id, coalesce(v_reason, 'paused by ' || enterprise_lab.request_subject()));
  ELSIF (b -> 'paused') = 'false' THEN
    s := integration.resume_subscription(v_id);
  END IF;
  RETURN to_jsonb(s);
END $$;
COMMENT ON FUNCTION api.update_subscription(jsonb) IS
  'Admins: change a subscription: {"subscription_id", "url"?, "event_types"?, "timeout_ms"?, "headers"?, "enabled"?, "paused"?, "reason"?}. paused=false resumes it. PT404 when unknown.';

CREATE FUNCTION api.delete_subscription(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'delete_subscription';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['subscription_id']);
  v_id uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', true);
  s integration.subscriptions;
BEGIN
  DELETE FROM integration.subscriptions x WHERE x.id = v_id RETURNING * INTO s;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('subscription', v_id);
  END IF;
  RETURN to_jsonb(s);
END $$;
COMMENT ON FUNCTION api.delete_subscription(jsonb) IS
  'Admins: remove a subscription with its secret and deliveries: {"subscription_id"}. PT404 when unknown.';

CREATE FUNCTION api.deliveries(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'deliveries';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'subscription_id', 'status', 'limit']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_subscription uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', false);
  v_status text := enterprise_lab.api_text(fn, b, 'status', false, 40);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
BEGIN
  IF v_status NOT IN ('pending', 'in_flight', 'failed', 'delivered', 'dead_letter', 'skipped') THEN
    RAISE EXCEPTION '%: status "%" is not a delivery status', fn, v_status
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'status',
            HINT = 'Use pending, in_flight, failed, delivered, dead_letter or skipped.';
  END IF;
  RETURN jsonb_build_object('items', coalesce((
    SELECT jsonb_agg(to_jsonb(x) - 'payload' ORDER BY x.event_seq DESC, x.subscription_name)
      FROM (SELECT d.*, s.name AS subscription_name
              FROM integration.deliveries d
              JOIN integration.subscriptions s ON s.id = d.subscription_id
             WHERE (v_submission IS NULL OR d.submission_id = v_submission)
               AND (v_subscription IS NULL OR d.subscription_id = v_subscription)
               AND (v_status IS NULL OR d.status = v_status)
             ORDER BY d.event_seq DESC
             LIMIT v_limit) x), '[]'));
END $$;
COMMENT ON FUNCTION api.deliveries(jsonb) IS
  'Webhook deliveries, newest event first: {"submission_id"?, "subscription_id"?, "status"?, "limit"? (1..1000, default 100)}.';

CREATE FUNCTION api.replay_delivery(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'replay_delivery';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['delivery_id', 'subscription_id']);
  v_delivery uuid := enterprise_lab.api_uuid(fn, b, 'delivery_id', false);
  v_subscription uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', false);
  msg text;
  det text;
BEGIN
  IF (v_delivery IS NULL) = (v_subscription IS NULL) THEN
    RAISE EXCEPTION '%: give either delivery_id or subscription_id', fn
      USING ERRCODE = 'invalid_parameter_value',
            HINT = '{"delivery_id": ...} replays one delivery; {"subscription_id": ...} every dead letter of a subscription.';
  END IF;
  IF v_delivery IS NOT NULL THEN
    RETURN to_jsonb(integration.replay_delivery(v_delivery)) - 'payload';
  END IF;
  RETURN jsonb_build_object('replayed', integration.replay_dead_deliveries(v_subscription));
EXCEPTION
  WHEN no_data_found THEN
    PERFORM enterprise_lab.api_not_found(CASE WHEN v_delivery IS NULL THEN 'subscription' ELSE 'delivery' END,
                                         coalesce(v_delivery, v_subscription));
  WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION '%', msg USING ERRCODE = 'PT409', DETAIL = det;
END $$;
COMMENT ON FUNCTION api.replay_delivery(jsonb) IS
  'Operators and admins: send a dead-lettered, failed or skipped delivery again ({"delivery_id"}), or every dead letter of a subscription ({"subscription_id"}). PT404, PT409.';

CREATE FUNCTION api.skip_delivery(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'skip_delivery';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['delivery_id', 'reason']);
  v_delivery uuid := enterprise_lab.api_uuid(fn, b, 'delivery_id', true);
  v_reason text := enterprise_lab.api_text(fn, b, 'reason', true, 500);
  msg text;
BEGIN
  RETURN to_jsonb(integration.skip_delivery(v_delivery, v_reason)) - 'payload';
EXCEPTION
  WHEN no_data_found THEN
    PERFORM enterprise_lab.api_not_found('delivery', v_delivery);
  WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
    RAISE EXCEPTION '%', msg USING ERRCODE = 'PT409';
END $$;
COMMENT ON FUNCTION api.skip_delivery(jsonb) IS
  'Operators and admins: give up on a delivery, releasing the later ones of its subscription and submission: {"delivery_id", "reason"}. PT404, PT409.';

REVOKE ALL ON FUNCTION api.subscriptions(jsonb), api.create_subscription(jsonb), api.update_subscription(jsonb),
  api.delete_subscription(jsonb), api.deliveries(jsonb), api.replay_delivery(jsonb), api.skip_delivery(jsonb)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions(jsonb), api.deliveries(jsonb) TO lab_operator, lab_auditor, lab_admin;
GRANT EXECUTE ON FUNCTION api.replay_delivery(jsonb), api.skip_delivery(jsonb) TO lab_operator, lab_admin;
GRANT EXECUTE ON FUNCTION api.create_subscription(jsonb), api.update_subscription(jsonb), api.delete_subscription(jsonb)
  TO lab_admin;

-- The read grants 95_access.sql gives every table of the schema.
GRANT SELECT ON integration.subscriptions, integration.subscription_secrets, integration.deliveries,
  integration.held_deliveries, integration.subscription_status, integration.delivery_worker_status
  TO lab_operator, lab_auditor, lab_admin;
-- Access (delivery): webhook signing secrets and a subscription's extra
-- headers (which may carry credentials) are for superusers and lab_admin
-- only.  Runs after 95_access.sql, whose read grant covers every table of
-- the integration schema.

REVOKE SELECT ON integration.subscription_secrets FROM lab_operator, lab_auditor;
REVOKE SELECT ON integration.subscriptions FROM lab_operator, lab_auditor;
GRANT SELECT (id, name, url, event_types, enabled, paused_at, paused_reason, timeout_ms, consecutive_failures,
              delivered_count, failed_count, last_success_at, last_failure_at, created_at, updated_at)
  ON integration.subscriptions TO lab_operator, lab_auditor;

-- api.submission_detail lists the submission's deliveries (src/sql/30_api.sql).
CREATE OR REPLACE FUNCTION api.submission_detail(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'submission_detail';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id']);
  v_id uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', true);
  emails boolean := enterprise_lab.api_may_see_emails();
  see_documents boolean := enterprise_lab.api_may_see_documents();
  submission jsonb;
  request jsonb;
  operational_case jsonb;
  documents jsonb := '[]';
  d record;
  url text;
BEGIN
  SELECT to_jsonb(s) || jsonb_build_object(
           'requester_email', CASE WHEN emails THEN s.requester_email END,
           'customer_code', c.code, 'customer_name', c.name,
           'agreement_number', a.agreement_number, 'agreement_name', a.name)
    INTO submission
    FROM intake.submissions s
    JOIN reference.customers c ON c.id = s.customer_id
    LEFT JOIN reference.agreements a ON a.id = s.agreement_id
   WHERE s.id = v_id;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('submission', v_id);
  END IF;

  FOR d IN SELECT to_jsonb(x) AS doc, x.id, x.status FROM document_repo.documents x
            WHERE x.submission_id = v_id ORDER BY x.uploaded_at, x.id LOOP
    IF see_documents THEN
      url := CASE WHEN d.status = 'stored' THEN document_repo.presigned_url(d.id, interval '15 minutes') END;
      documents := documents || jsonb_build_array(d.doc || jsonb_build_object('download_url', url));
    ELSE
      documents := documents || jsonb_build_array(jsonb_build_object('id', d.id, 'download_url', NULL));
    END IF;
  END LOOP;

  SELECT to_jsonb(r), to_jsonb(c) INTO request, operational_case
    FROM source_system.service_requests r
    LEFT JOIN operational.operation_cases c ON c.service_request_id = r.id
   WHERE r.submission_id = v_id;

  RETURN jsonb_build_object(
    'submission', submission,
    'service_request', request,
    'case', operational_case,
    'status_history', coalesce((SELECT jsonb_agg(to_jsonb(h) ORDER BY h.id)
                                  FROM operational.case_status_history h
                                 WHERE h.case_id = (operational_case ->> 'id')::uuid), '[]'),
    'canonical', (SELECT to_jsonb(o) FROM canonical.business_objects o
                   WHERE o.submission_id = v_id AND o.object_type = 'service_request'),
    'documents', documents,
    'events', coalesce((SELECT jsonb_agg(to_jsonb(e) ORDER BY e.seq)
                          FROM integration.events e WHERE e.submission_id = v_id), '[]'),
    'sync_logs', coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.id)
                             FROM integration.sync_logs l WHERE l.submission_id = v_id), '[]'),
    'lineage', coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.created_at, enterprise_lab.api_lineage_rank(l.from_type),
                                          l.from_type, l.to_type, l.relationship)
                           FROM canonical.lineage_records l WHERE l.submission_id = v_id), '[]'),
    'deliveries', coalesce((SELECT jsonb_agg(to_jsonb(dl) - 'payload' || jsonb_build_object('subscription_name', sub.name)
                                             ORDER BY dl.event_seq, sub.name)
                              FROM integration.deliveries dl
                              JOIN integration.subscriptions sub ON sub.id = dl.subscription_id
                             WHERE dl.submission_id = v_id
                               AND enterprise_lab.request_access() IN ('operator', 'auditor', 'admin')), '[]'));
END $$;
COMMENT ON FUNCTION api.submission_detail(jsonb) IS
  'One submission across every layer: {"submission_id"} -> submission, service_request, case, status_history, canonical, documents (for operators, auditors and admins with a 15-minute presigned download_url; only their ids for the anonymous role), events, sync_logs, lineage, webhook deliveries (not for the anonymous role). PT404 (HTTP 404) when unknown.';

-- enterprise_lab.status() counts deliveries (src/sql/45_status.sql).
CREATE OR REPLACE FUNCTION enterprise_lab.status() RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  retention interval := enterprise_lab.event_retention();   -- also loads the library and its GUCs
  result jsonb;
  s3 jsonb;
  jobs jsonb;
BEGIN
  SELECT jsonb_build_object(
           'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'),
           'database', current_database(),
           'workers', jsonb_build_object(
             'preloaded', 'enterprise_lab' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')),
             'serving_this_database', current_setting('enterprise_lab.database', true) = current_database(),
             'configured', current_setting('enterprise_lab.worker_count', true)::integer,
             'running', (SELECT count(*) FROM integration.worker_status),
             'detail', coalesce((SELECT jsonb_agg(to_jsonb(w) ORDER BY w.worker) FROM integration.worker_status w), '[]')),
           'events', (SELECT jsonb_build_object(
                        'pending', count(*) FILTER (WHERE status = 'pending'),
                        'failed', count(*) FILTER (WHERE status = 'failed'),
                        'dead_lettered', count(*) FILTER (WHERE status = 'dead_letter'),
                        'oldest_pending_age_seconds',
                          round(extract(epoch FROM now() - min(created_at) FILTER (WHERE status IN ('pending', 'failed'))), 3),
                        'held_submissions', (SELECT count(*) FROM integration.held_submissions))
                        FROM integration.events
                       WHERE status IN ('pending', 'failed', 'dead_letter')),
           'deliveries', jsonb_build_object(
             'worker', (SELECT to_jsonb(w) FROM integration.delivery_worker_status w),
             'subscriptions', (SELECT count(*) FROM integration.subscriptions),
             'paused_subscriptions', (SELECT count(*) FROM integration.subscriptions WHERE paused_at IS NOT NULL),
             'waiting', (SELECT count(*) FROM integration.deliveries WHERE status IN ('pending', 'failed')),
             'in_flight', (SELECT count(*) FROM integration.deliveries WHERE status = 'in_flight'),
             'dead_lettered', (SELECT count(*) FROM integration.deliveries WHERE status = 'dead_letter'),
             'oldest_waiting_age_seconds',
               (SELECT round(extract(epoch FROM now() - min(created_at)), 3) FROM integration.deliveries
                 WHERE status IN ('pending', 'failed', 'in_flight'))),
           'sla', jsonb_build_object(
             'open_breaches', (SELECT coalesce(sum(open_breaches), 0) FROM dashboard.sla_metrics),
             'overdue_cases', (SELECT coalesce(sum(overdue_cases), 0) FROM dashboard.sla_metrics)),
           'event_retention_seconds', extract(epoch FROM retention)::bigint)
    INTO result;

  -- S3 reachability.  s3_health() reports S3 failures itself; anything
  -- else (a missing privilege, say) must not keep status() from answering.
  BEGIN
    s3 := document_repo.s3_health();
  EXCEPTION WHEN OTHERS THEN
    s3 := jsonb_build_object('reachable', false, 'error', SQLERRM, 'sqlstate', SQLSTATE);
  END;
  result := result || jsonb_build_object('s3', s3);

  -- Our pg_cron jobs and how their last run went, when pg_cron is here.
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
    EXECUTE $q$
      SELECT coalesce(jsonb_agg(jsonb_build_object(
               'jobid', j.jobid, 'jobname', j.jobname, 'schedule', j.schedule,
               'command', j.command, 'active', j.active,
               'last_status', r.status, 'last_start', r.start_time,
               'last_message', r.return_message) ORDER BY j.jobname), '[]')
        FROM cron.job j
        LEFT JOIN LATERAL (SELECT d.status, d.start_time, d.return_message
                             FROM cron.job_run_details d
                            WHERE d.jobid = j.jobid
                            ORDER BY d.start_time DESC NULLS LAST LIMIT 1) r ON true
       WHERE j.jobname LIKE 'enterprise\_lab.%' AND j.database = current_database()
    $q$ INTO jobs;
  END IF;
  RETURN result || jsonb_build_object('scheduled_jobs', jobs);
END $$;
COMMENT ON FUNCTION enterprise_lab.status() IS
  'Operator summary as jsonb: version, workers, pending/failed/dead-lettered events and the oldest pending age, webhook deliveries (worker, waiting, in flight, dead letters, paused subscriptions), SLA breaches, retention, S3 reachability and the scheduled maintenance jobs.';

-- Counts maintained where they change (src/sql/21_counts.sql): the
-- dashboard's refresh no longer counts the tables.  The counts start from
-- the rows already there (recount() at the end).
CREATE FUNCTION enterprise_lab.count_slot() RETURNS integer
  AS 'MODULE_PATHNAME', 'el_count_slot' LANGUAGE C STABLE;
COMMENT ON FUNCTION enterprise_lab.count_slot() IS
  'The counter slot of this backend (its process number, unique among running backends).';

CREATE TABLE dashboard.status_count_slots (
  layer  text NOT NULL,
  status text NOT NULL,
  slot   integer NOT NULL,
  part   integer NOT NULL DEFAULT 0,
  count  bigint NOT NULL,
  CONSTRAINT status_count_slots_pkey PRIMARY KEY (layer, status, slot, part)
) WITH (fillfactor = 50);  -- room for the HOT updates every delta makes
COMMENT ON TABLE dashboard.status_count_slots IS
  'Rows per status in each layer, split into one row per backend slot and summed on read; maintained by triggers, rebuilt by enterprise_lab.recount().';

-- A plain UPDATE, then an INSERT of the statuses it did not find, and not
-- INSERT ... ON CONFLICT DO UPDATE: an upsert locks the row before it
-- updates it, and a worker's chunks run in subtransactions, where a lock
-- and an update of one row by two of them make a MultiXact.  Only this
-- backend writes its slot, so no one inserts the same row in between.
CREATE FUNCTION enterprise_lab.add_status_counts(count_layer text, count_part integer, statuses text[], deltas bigint[])
RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  WITH d AS (
    SELECT x.status, x.delta FROM unnest(statuses, deltas) AS x(status, delta) WHERE x.delta <> 0
  ), updated AS (
    UPDATE dashboard.status_count_slots c SET count = c.count + d.delta
      FROM d
     WHERE c.layer = count_layer AND c.status = d.status
       AND c.slot = enterprise_lab.count_slot() AND c.part = count_part
    RETURNING c.status
  )
  INSERT INTO dashboard.status_count_slots (layer, status, slot, part, count)
  SELECT count_layer, d.status, enterprise_lab.count_slot(), count_part, d.delta
    FROM d WHERE d.status NOT IN (SELECT u.status FROM updated u);
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.add_status_counts(text, integer, text[], bigint[]) FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.add_status_counts(text, integer, text[], bigint[]) IS
  'Count triggers: add per-status deltas of one layer to this backend''s slot.';

CREATE FUNCTION enterprise_lab.fold_count_parts() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  layers text[];
  statuses text[];
  deltas bigint[];
BEGIN
  WITH moved AS (
    DELETE FROM dashboard.status_count_slots
     WHERE slot = enterprise_lab.count_slot() AND part > 0
    RETURNING layer, status, count
  )
  SELECT array_agg(m.layer), array_agg(m.status), array_agg(m.n) INTO layers, statuses, deltas
    FROM (SELECT layer, status, sum(count)::bigint AS n FROM moved GROUP BY layer, status) m;
  FOR i IN 1 .. coalesce(cardinality(layers), 0) LOOP
    PERFORM enterprise_lab.add_status_counts(layers[i], 0, ARRAY[statuses[i]], ARRAY[deltas[i]]);
  END LOOP;
  PERFORM set_config('enterprise_lab_counts.folded', 'yes', false);
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.fold_count_parts() FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.fold_count_parts() IS
  'Count triggers: fold this backend''s extra parts (left by a transaction of many statements) into part 0 of its slot.';

-- One trigger function per counted table, made from one template: the
-- status column differs, and static SQL lets each keep its plans.
DO $do$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES
      ('intake',        'intake.submissions',               'submissions',       'status'),
      ('source_system', 'source_system.service_requests',   'service_requests',  'lifecycle_status'),
      ('integration',   'integration.events',               'events',            'status'),
      ('operational',   'operational.operation_cases',      'operation_cases',   'processing_status'),
      ('canonical',     'canonical.business_objects',       'business_objects',  'lifecycle_status')
    ) AS v(layer, tab, short, col)
  LOOP
    EXECUTE format($f$
      CREATE FUNCTION dashboard.%1$s() RETURNS trigger
      LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $body$
      DECLARE
        -- Count statements of this transaction (a transaction-local setting).
        statements integer := coalesce(nullif(current_setting('enterprise_lab_counts.statements', true), ''), '0')::integer;
        this_part integer := statements / 64;
        statuses text[];
        deltas bigint[];
      BEGIN
        PERFORM set_config('enterprise_lab_counts.statements', (statements + 1)::text, true);
        -- Once per backend (its slot may hold an earlier backend's parts)
        -- and after a transaction that made parts.
        IF statements = 0 AND current_setting('enterprise_lab_counts.folded', true) IS DISTINCT FROM 'yes' THEN
          PERFORM enterprise_lab.fold_count_parts();
        ELSIF statements = 64 THEN
          PERFORM set_config('enterprise_lab_counts.folded', 'no', false);
        END IF;
        IF TG_OP = 'TRUNCATE' THEN
          DELETE FROM dashboard.status_count_slots WHERE layer = %2$L;
          RETURN NULL;
        END IF;
        -- Each branch names only the transition tables its event has.
        IF TG_OP = 'INSERT' THEN
          SELECT array_agg(d.status), array_agg(d.delta) INTO statuses, deltas
            FROM (SELECT r.%3$I AS status, count(*) AS delta FROM new_rows r GROUP BY r.%3$I) d;
        ELSIF TG_OP = 'DELETE' THEN
          SELECT array_agg(d.status), array_agg(d.delta) INTO statuses, deltas
            FROM (SELECT o.%3$I AS status, -count(*) AS delta FROM old_rows o GROUP BY o.%3$I) d;
        ELSE
          SELECT array_agg(d.status), array_agg(d.delta) INTO statuses, deltas
            FROM (SELECT x.status, sum(x.delta)::bigint AS delta
                    FROM (SELECT r.%3$I AS status, 1 AS delta FROM new_rows r
                          UNION ALL
                          SELECT o.%3$I, -1 FROM old_rows o) x
                   GROUP BY x.status) d;
        END IF;
        IF statuses IS NOT NULL THEN
          PERFORM enterprise_lab.add_status_counts(%2$L, this_part, statuses, deltas);
        END IF;
        RETURN NULL;
      END $body$
    $f$, 'count_' || t.short, t.layer, t.col);
    EXECUTE format('COMMENT ON FUNCTION dashboard.%I() IS %L', 'count_' || t.short,
                   format('Trigger: adds the rows per %s of %s changed by a statement to dashboard.status_count_slots.', t.col, t.tab));
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.%I()', t.short || '_count_inserted', t.tab, 'count_' || t.short);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.%I()', t.short || '_count_updated', t.tab, 'count_' || t.short);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.%I()', t.short || '_count_deleted', t.tab, 'count_' || t.short);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.%I()', t.short || '_count_truncated', t.tab, 'count_' || t.short);
  END LOOP;
END $do$;

CREATE FUNCTION enterprise_lab.recount() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  written integer;
BEGIN
  -- Writers wait until this transaction ends, so the counts and the rows
  -- they count are taken at one moment.
  LOCK TABLE intake.submissions, source_system.service_requests, integration.events,
             operational.operation_cases, canonical.business_objects IN SHARE MODE;
  DELETE FROM dashboard.status_count_slots;
  INSERT INTO dashboard.status_count_slots (layer, status, slot, count)
  SELECT c.layer, c.status, enterprise_lab.count_slot(), c.n
    FROM (SELECT 'intake' AS layer, status, count(*) AS n FROM intake.submissions GROUP BY status
          UNION ALL
          SELECT 'source_system', lifecycle_status, count(*) FROM source_system.service_requests GROUP BY lifecycle_status
          UNION ALL
          SELECT 'integration', status, count(*) FROM integration.events GROUP BY status
          UNION ALL
          SELECT 'operational', processing_status, count(*) FROM operational.operation_cases GROUP BY processing_status
          UNION ALL
          SELECT 'canonical', lifecycle_status, count(*) FROM canonical.business_objects GROUP BY lifecycle_status) c;
  GET DIAGNOSTICS written = ROW_COUNT;
  RETURN written;
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.recount() FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.recount() IS
  'Rebuild dashboard.status_count_slots from the tables (after loading rows with triggers disabled, e.g. session_replication_role = replica); returns how many (layer, status) counts it wrote. Blocks writers while it counts.';

-- The dump carries the counts with the rows they count: a restore runs in
-- replica mode, where these triggers do not fire.
SELECT pg_catalog.pg_extension_config_dump('dashboard.status_count_slots', '');

CREATE OR REPLACE VIEW dashboard.status_counts AS
SELECT layer, status, sum(count)::bigint AS count
  FROM dashboard.status_count_slots
 WHERE layer IN ('source_system', 'integration', 'operational', 'canonical')
 GROUP BY layer, status
HAVING sum(count) <> 0;
COMMENT ON VIEW dashboard.status_counts IS 'Row counts per status in each layer (exact; maintained by triggers, see dashboard.status_count_slots).';

-- The dead letters are a small set; this index lists them without reading
-- the others.  Only a dead-lettered event has an entry, so completions do
-- not pay for it.
CREATE INDEX events_dead_letter_idx ON integration.events (processed_at)
  WHERE status = 'dead_letter';

CREATE FUNCTION integration.completed_last_minute() RETURNS bigint
  AS 'MODULE_PATHNAME', 'el_completed_last_minute' LANGUAGE C VOLATILE;
COMMENT ON FUNCTION integration.completed_last_minute() IS
  'Events completed by processing transactions that committed in the last 60 seconds, from a per-second ring in shared memory (counts since the server started; NULL when enterprise_lab is not in shared_preload_libraries).';

CREATE OR REPLACE VIEW dashboard.processing_metrics AS
SELECT (SELECT coalesce(sum(count), 0)::bigint FROM dashboard.status_count_slots
         WHERE layer = 'integration' AND status IN ('pending', 'failed')) AS pending_events,
       (SELECT coalesce(sum(count), 0)::bigint FROM dashboard.status_count_slots
         WHERE layer = 'integration' AND status = 'failed') AS retrying_events,
       (SELECT coalesce(sum(count), 0)::bigint FROM dashboard.status_count_slots
         WHERE layer = 'integration' AND status = 'dead_letter') AS dead_letters,
       -- The oldest by seq is the first entry of the claim's index.
       (SELECT extract(epoch FROM now() - e.created_at)
          FROM integration.events e WHERE e.status IN ('pending', 'failed')
         ORDER BY e.seq LIMIT 1) AS oldest_pending_age_seconds,
       integration.completed_last_minute() AS completed_last_minute,
       (SELECT count(*) FROM integration.events e WHERE e.status = 'dead_letter') AS held_submissions,
       (SELECT count(*) FROM integration.worker_status) AS workers_running;
COMMENT ON VIEW dashboard.processing_metrics IS
  'Queue health: pending and retrying events, dead letters, lag (oldest pending age), throughput (from shared memory), workers. Reads no more rows as the tables grow.';
GRANT SELECT ON dashboard.status_count_slots TO lab_operator, lab_auditor, lab_admin;

-- The unfiltered submission total and metrics read the counts; the held
-- submissions listed by metrics are bounded.
CREATE OR REPLACE FUNCTION api.submissions(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'submissions';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['status', 'team', 'q', 'limit', 'offset']);
  v_status text := enterprise_lab.api_text(fn, b, 'status', false, 40);
  v_team text := enterprise_lab.api_text(fn, b, 'team', false, 40);
  v_q text := lower(nullif(btrim(enterprise_lab.api_text(fn, b, 'q', false, 200)), ''));
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 50, 1, 200);
  v_offset integer := enterprise_lab.api_integer(fn, b, 'offset', 0, 0, 1000000000);
  emails boolean := enterprise_lab.api_may_see_emails();
  -- Only the filters given, so the planner drops the joins nobody needs
  -- and pages straight off the submitted_at index.  Values are bound
  -- parameters ($1..$4), never part of the SQL text.
  filter text := concat_ws(' AND ', 'true',
    CASE WHEN v_status IS NOT NULL THEN '$1 IN (l.intake_status, l.source_status, l.case_status, l.canonical_status)' END,
    CASE WHEN v_team IS NOT NULL THEN 'l.team_code = $2' END,
    -- A plain substring test: q is text to find, never a pattern.
    CASE WHEN v_q IS NOT NULL THEN
      'strpos(lower(concat_ws('' '', l.request_number, l.case_reference, l.requester_name, l.customer_name,
                               l.description, CASE WHEN $4 THEN l.requester_email END)), $3) > 0' END);
  total bigint;
  items jsonb;
BEGIN
  IF v_status IS NULL AND v_team IS NULL AND v_q IS NULL THEN
    -- The unfiltered total is the maintained count: the list's refresh
    -- does not count every submission.
    SELECT coalesce(sum(c.count), 0) INTO total
      FROM dashboard.status_count_slots c WHERE c.layer = 'intake';
  ELSE
    EXECUTE 'SELECT count(*) FROM dashboard.submission_lifecycle l WHERE ' || filter
       INTO total USING v_status, v_team, v_q, emails;
  END IF;
  EXECUTE $q$
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'submission_id', l.submission_id,
               'submitted_at', l.submitted_at,
               'intake_method', l.intake_method,
               'request_number', l.request_number,
               'requester_name', l.requester_name,
               'requester_email', CASE WHEN $4 THEN l.requester_email END,
               'customer_name', l.customer_name,
               'request_type', l.request_type_code,
               'priority', l.priority_code,
               'team', l.team_code,
               'intake_status', l.intake_status,
               'source_status', l.source_status,
               'case_id', l.case_id,
               'case_reference', l.case_reference,
               'case_status', l.case_status,
               'canonical_status', l.canonical_status,
               'unfinished_events', l.unfinished_events,
               'dead_letters', l.dead_letters)
             ORDER BY p.submitted_at DESC, p.submission_id), '[]')
      FROM (SELECT l.submission_id, l.submitted_at
              FROM dashboard.submission_lifecycle l
             WHERE $q$ || filter || $q$
             ORDER BY l.submitted_at DESC, l.submission_id
             LIMIT $5 OFFSET $6) p
      JOIN dashboard.submission_lifecycle l ON l.submission_id = p.submission_id $q$
     INTO items USING v_status, v_team, v_q, emails, v_limit, v_offset;
  RETURN jsonb_build_object('total', total, 'limit', v_limit, 'offset', v_offset, 'items', items);
END $$;
COMMENT ON FUNCTION api.submissions(jsonb) IS
  'The submission list, newest first: {"status"?, "team"?, "q"?, "limit"? (1..200, default 50), "offset"?}. status matches any layer''s status; q is a substring of number, names, customer or description. Requester e-mails are null for the anonymous role.';

CREATE OR REPLACE FUNCTION api.metrics(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('metrics', body, '{}');
  RETURN jsonb_build_object(
    'status_counts', coalesce((SELECT jsonb_agg(to_jsonb(c) ORDER BY c.layer, c.status)
                                 FROM dashboard.status_counts c), '[]'),
    'processing', (SELECT to_jsonb(m) FROM dashboard.processing_metrics m),
    -- The longest held first, at most 100 (processing.held_submissions
    -- says how many there are).
    'held_submissions', coalesce((SELECT jsonb_agg(to_jsonb(h) ORDER BY h.held_since)
                                    FROM (SELECT * FROM integration.held_submissions
                                           ORDER BY held_since LIMIT 100) h), '[]'),
    'workers', coalesce((SELECT jsonb_agg(to_jsonb(w) ORDER BY w.worker)
                           FROM integration.worker_status w), '[]'));
END $$;
COMMENT ON FUNCTION api.metrics(jsonb) IS
  'Counts per status per layer, queue health (pending, retrying, dead letters, lag, throughput), the 100 longest-held submissions and worker status. Body: {}.';

-- The submission list's order exactly (src/sql/02_intake.sql).
DROP INDEX intake.submissions_submitted_at_idx;
CREATE INDEX submissions_submitted_at_idx ON intake.submissions (submitted_at DESC, id);

SELECT enterprise_lab.recount();

-- The claim's partial indexes stay small: vacuum integration.events by the
-- number of dead rows and always clean its indexes (src/sql/04_integration.sql).
ALTER TABLE integration.events SET (
  autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 20000,
  vacuum_index_cleanup = on);
