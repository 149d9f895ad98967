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
           document_repo.documents CASCADE;
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
