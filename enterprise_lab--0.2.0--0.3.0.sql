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
