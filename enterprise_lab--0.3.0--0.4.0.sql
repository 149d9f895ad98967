-- enterprise_lab 0.3.0 -> 0.4.0.
--
-- Every change to src/sql/ after 0.3.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.4.0'" to load this file. \quit

-- original lab's data contract: codes are data
--
-- Reference codes are rows checked by a bounded format that allows upper
-- case (the original lab's GENERAL_INQUIRY, OPERATIONS_TEAM); intake methods
-- become a reference table; lookups stay exact.
ALTER TABLE reference.request_types DROP CONSTRAINT request_types_code_format,
  ADD CONSTRAINT request_types_code_format CHECK (code ~ '^[A-Za-z][A-Za-z0-9_-]{1,39}$');
ALTER TABLE reference.teams DROP CONSTRAINT teams_code_format,
  ADD CONSTRAINT teams_code_format CHECK (code ~ '^[A-Za-z][A-Za-z0-9_-]{1,39}$');
ALTER TABLE reference.priorities
  ADD CONSTRAINT priorities_code_format CHECK (code ~ '^[A-Za-z][A-Za-z0-9_-]{1,39}$');

CREATE TABLE reference.intake_methods (
  code       text PRIMARY KEY CONSTRAINT intake_methods_code_format CHECK (code ~ '^[A-Za-z][A-Za-z0-9_-]{1,39}$'),
  name       text NOT NULL,
  active     boolean NOT NULL DEFAULT true,
  seeded     boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.intake_methods IS 'How a request reached the intake (portal, manual form, API, ...).';
CREATE TRIGGER intake_methods_10_user_modified BEFORE UPDATE ON reference.intake_methods
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();
CREATE TRIGGER intake_methods_20_touch BEFORE UPDATE ON reference.intake_methods
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.touch_updated_at();

INSERT INTO reference.intake_methods (code, name, seeded) VALUES
  ('portal', 'Portal', true),
  ('manual_form', 'Manual form', true),
  ('api', 'API', true),
  ('email', 'E-mail', true),
  ('phone', 'Phone', true),
  ('batch', 'Batch', true);
SELECT pg_catalog.pg_extension_config_dump('reference.intake_methods', '');
-- The seed-row triggers of 94_backup.sql, as every seeded table has them.
CREATE TRIGGER intake_methods_05_restore_seeded BEFORE INSERT ON reference.intake_methods
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.restore_seeded_row('code');
ALTER TABLE reference.intake_methods ENABLE ALWAYS TRIGGER intake_methods_05_restore_seeded;
CREATE TRIGGER intake_methods_90_remember_deleted AFTER DELETE ON reference.intake_methods
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.remember_deleted_row('code');
GRANT SELECT ON reference.intake_methods TO lab_operator, lab_auditor, lab_admin;

-- The original lab's codes, beside the existing ones.
INSERT INTO reference.customers (id, code, name, contact_email, status, seeded) VALUES
  ('10000000-0000-4000-8000-000000000000', 'UNASSIGNED', 'Unassigned', NULL, 'active', true)
ON CONFLICT DO NOTHING;
INSERT INTO reference.request_types (code, name, canonical_category, description, seeded) VALUES
  ('GENERAL_INQUIRY', 'General inquiry', 'information', 'A generic service request.', true)
ON CONFLICT DO NOTHING;
INSERT INTO reference.teams (code, name, email, seeded) VALUES
  ('OPERATIONS_TEAM', 'Operations Team', 'operations-team@example.test', true)
ON CONFLICT DO NOTHING;

-- original lab's data contract: column names
--
-- The original lab's column names, renamed in place so the rows carry
-- across; the constraints and indexes named after a column follow it.
ALTER TABLE intake.submissions RENAME COLUMN id TO submission_id;
ALTER TABLE intake.submissions RENAME COLUMN description TO request_description;
ALTER TABLE intake.submissions RENAME COLUMN request_type_code TO request_type;
ALTER TABLE intake.submissions RENAME COLUMN priority_code TO priority;
ALTER TABLE intake.submissions RENAME COLUMN team_code TO assigned_team;
ALTER TABLE intake.submissions RENAME COLUMN status TO submission_status;
ALTER TABLE intake.submissions RENAME COLUMN submitted_at TO created_at;
ALTER TABLE intake.submissions RENAME CONSTRAINT submissions_description_valid TO submissions_request_description_valid;
ALTER TABLE intake.submissions RENAME CONSTRAINT submissions_status_valid TO submissions_submission_status_valid;
ALTER TABLE intake.submissions RENAME CONSTRAINT submissions_request_type_code_fkey TO submissions_request_type_fkey;
ALTER TABLE intake.submissions RENAME CONSTRAINT submissions_priority_code_fkey TO submissions_priority_fkey;
ALTER TABLE intake.submissions RENAME CONSTRAINT submissions_team_code_fkey TO submissions_assigned_team_fkey;
ALTER INDEX intake.submissions_submitted_at_idx RENAME TO submissions_created_at_idx;
ALTER TABLE intake.submissions DROP CONSTRAINT submissions_intake_method_valid,
  ADD CONSTRAINT submissions_intake_method_fkey FOREIGN KEY (intake_method) REFERENCES reference.intake_methods (code);
COMMENT ON COLUMN intake.submissions.submission_id IS 'Root key of the request''s whole lifecycle.';

ALTER TABLE integration.events RENAME COLUMN status TO event_status;
ALTER TABLE integration.events RENAME CONSTRAINT events_status_valid TO events_event_status_valid;

-- From PostgreSQL 18 on, NOT NULL constraints are named after their column
-- when made and keep that name through a column rename; name them as a
-- fresh install does.
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN
    SELECT c.conrelid::regclass AS tbl, c.conname AS old_name,
           rel.relname || '_' || a.attname || '_not_null' AS new_name
      FROM pg_catalog.pg_constraint c
      JOIN pg_catalog.pg_class rel ON rel.oid = c.conrelid
      JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
     WHERE c.contype = 'n'
       AND c.conrelid IN ('intake.submissions'::regclass, 'integration.events'::regclass)
       AND c.conname <> rel.relname || '_' || a.attname || '_not_null'
  LOOP
    EXECUTE format('ALTER TABLE %s RENAME CONSTRAINT %I TO %I', r.tbl, r.old_name, r.new_name);
  END LOOP;
END $$;

-- The functions that read or write the renamed columns.
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

  IF NEW.request_description IS NULL OR NEW.request_description !~ '\S' THEN
    RAISE EXCEPTION 'request_description must not be blank'
      USING ERRCODE = 'not_null_violation', COLUMN = 'request_description',
            HINT = 'Describe what is requested.';
  ELSIF NOT enterprise_lab.has_visible_text(NEW.request_description) THEN
    RAISE EXCEPTION 'request_description must not be blank'
      USING ERRCODE = 'not_null_violation', COLUMN = 'request_description',
            DETAIL = 'It has no visible character: no-break, zero-width and other invisible characters do not count.',
            HINT = 'Describe what is requested.';
  ELSIF length(NEW.request_description) > 4000 THEN
    RAISE EXCEPTION 'request_description is too long'
      USING ERRCODE = 'string_data_right_truncation', COLUMN = 'request_description',
            DETAIL = format('It has %s characters; the limit is 4000.', length(NEW.request_description));
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.request_types WHERE code = NEW.request_type AND active) THEN
    RAISE EXCEPTION 'request_type "%" does not exist', NEW.request_type
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'request_type',
            DETAIL = format('Known request types: %s.', (SELECT string_agg(code, ', ' ORDER BY code COLLATE "C") FROM reference.request_types WHERE active)),
            HINT = 'Choose one of reference.request_types.';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.priorities WHERE code = NEW.priority) THEN
    RAISE EXCEPTION 'priority "%" does not exist', NEW.priority
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'priority',
            DETAIL = format('Known priorities: %s.', (SELECT string_agg(code, ', ' ORDER BY rank) FROM reference.priorities)),
            HINT = 'Choose one of reference.priorities.';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.teams WHERE code = NEW.assigned_team AND active) THEN
    RAISE EXCEPTION 'assigned_team "%" does not exist', NEW.assigned_team
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'assigned_team',
            DETAIL = format('Known teams: %s.', (SELECT string_agg(code, ', ' ORDER BY code COLLATE "C") FROM reference.teams WHERE active)),
            HINT = 'Choose one of reference.teams.';
  END IF;

  IF NOT EXISTS (SELECT 1 FROM reference.intake_methods WHERE code = NEW.intake_method AND active) THEN
    RAISE EXCEPTION 'intake_method "%" does not exist', NEW.intake_method
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'intake_method',
            DETAIL = format('Known intake methods: %s.', (SELECT string_agg(code, ', ' ORDER BY code COLLATE "C") FROM reference.intake_methods WHERE active)),
            HINT = 'Choose one of reference.intake_methods.';
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

CREATE OR REPLACE FUNCTION intake.submit_request(
  requester_name  text,
  requester_email text,
  description     text,
  request_type    text,
  priority        text,
  team            text,
  customer_id     uuid,
  agreement_id    uuid DEFAULT NULL,
  intake_method   text DEFAULT 'portal',
  file_name       text DEFAULT NULL,
  content_type    text DEFAULT NULL,
  content         bytea DEFAULT NULL,
  OUT submission_id uuid,
  OUT service_request_id uuid,
  OUT request_number text,
  OUT event_id uuid,
  OUT document_id uuid)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO intake.submissions AS s
         (intake_method, requester_name, requester_email, request_description,
          request_type, priority, assigned_team, customer_id, agreement_id)
  VALUES (submit_request.intake_method, submit_request.requester_name, submit_request.requester_email,
          submit_request.description, submit_request.request_type, submit_request.priority,
          submit_request.team, submit_request.customer_id, submit_request.agreement_id)
  RETURNING s.submission_id INTO submission_id;

  SELECT r.id, r.request_number INTO service_request_id, request_number
    FROM source_system.service_requests r WHERE r.submission_id = submit_request.submission_id;
  SELECT e.id INTO event_id
    FROM integration.events e
   WHERE e.submission_id = submit_request.submission_id AND e.event_type = 'RequestCreated';

  -- One optional supporting document, in the same transaction.
  IF submit_request.file_name IS NOT NULL OR submit_request.content_type IS NOT NULL
     OR submit_request.content IS NOT NULL THEN
    document_id := document_repo.upload_document(submit_request.submission_id, submit_request.file_name,
                                                 submit_request.content_type, submit_request.content);
  END IF;
END $$;

CREATE OR REPLACE FUNCTION source_system.create_service_request() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n text := nextval('source_system.request_number_seq')::text;
BEGIN
  INSERT INTO source_system.service_requests
         (submission_id, request_number, request_type_code, priority_code, team_code,
          customer_id, agreement_id, summary)
  VALUES (NEW.submission_id,
          -- At least six digits, all of them (lpad alone would cut the 7th
          -- off, and a Citus worker node numbers from (group id << 48) + 1).
          'SR-' || lpad(n, greatest(6, length(n)), '0'),
          NEW.request_type, NEW.priority, NEW.assigned_team,
          NEW.customer_id, NEW.agreement_id,
          left(regexp_replace(btrim(NEW.request_description), '\s+', ' ', 'g'), 120));
  RETURN NULL;
END $$;

CREATE OR REPLACE FUNCTION integration.replay_event(event_id uuid) RETURNS integration.events
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e integration.events;
  sub uuid;
BEGIN
  -- The lock names the submission as well: Citus routes a FOR UPDATE to
  -- one shard only, and on one node the primary key finds the row either way.
  SELECT x.submission_id INTO sub FROM integration.events x WHERE x.id = event_id;
  SELECT * INTO e FROM integration.events x WHERE x.id = event_id AND x.submission_id = sub FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'event % does not exist', event_id
      USING ERRCODE = 'no_data_found';
  END IF;
  IF e.event_status NOT IN ('dead_letter', 'failed', 'skipped') THEN
    RAISE EXCEPTION 'event % is % and cannot be replayed', event_id, e.event_status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'Only dead_letter, failed and skipped events can be replayed.';
  END IF;

  UPDATE integration.events x
     SET event_status = 'pending', attempts = 0, next_attempt_at = now(), processed_at = NULL
   WHERE x.id = event_id AND x.submission_id = sub
  RETURNING * INTO e;
  UPDATE source_system.service_requests
     SET lifecycle_status = 'received', updated_at = now()
   WHERE submission_id = sub AND id = e.aggregate_id AND e.aggregate_type = 'service_request'
     AND lifecycle_status = 'failed';
  INSERT INTO integration.sync_logs (submission_id, event_id, event_type, action, outcome, message, details)
  VALUES (e.submission_id, e.id, e.event_type, 'replay_requested', 'success',
          'event put back to pending by ' || enterprise_lab.request_subject(), jsonb_build_object('last_error', e.last_error));
  RETURN e;
END $$;

CREATE OR REPLACE FUNCTION integration.replay_dead_letters() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer := 0;
  ev uuid;
BEGIN
  FOR ev IN SELECT id FROM integration.events WHERE event_status = 'dead_letter' ORDER BY seq LOOP
    PERFORM integration.replay_event(ev);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;

CREATE OR REPLACE FUNCTION integration.skip_event(event_id uuid, reason text) RETURNS integration.events
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e integration.events;
  sub uuid;
BEGIN
  IF reason IS NULL OR reason !~ '\S' THEN
    RAISE EXCEPTION 'a reason is required to skip an event'
      USING ERRCODE = 'not_null_violation',
            HINT = 'Say why the event may be skipped; it is written to the sync log.';
  END IF;
  -- The update names the submission as well, which routes it to the
  -- event's shard on Citus.
  SELECT x.submission_id INTO sub FROM integration.events x WHERE x.id = event_id;
  UPDATE integration.events x SET event_status = 'skipped', processed_at = now()
   WHERE x.id = event_id AND x.submission_id = sub AND x.event_status IN ('dead_letter', 'failed', 'pending')
  RETURNING * INTO e;
  IF NOT FOUND THEN
    IF sub IS NOT NULL THEN
      RAISE EXCEPTION 'event % is already finished and cannot be skipped', event_id
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RAISE EXCEPTION 'event % does not exist', event_id USING ERRCODE = 'no_data_found';
  END IF;
  INSERT INTO integration.sync_logs (submission_id, event_id, event_type, action, outcome, message, details)
  VALUES (e.submission_id, e.id, e.event_type, 'skipped', 'success',
          format('skipped by %s: %s', current_user, reason), jsonb_build_object('last_error', e.last_error));
  RETURN e;
END $$;

CREATE OR REPLACE FUNCTION enterprise_lab.recount() RETURNS integer
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
    FROM (SELECT 'intake' AS layer, submission_status AS status, count(*) AS n FROM intake.submissions GROUP BY submission_status
          UNION ALL
          SELECT 'source_system', lifecycle_status, count(*) FROM source_system.service_requests GROUP BY lifecycle_status
          UNION ALL
          SELECT 'integration', event_status, count(*) FROM integration.events GROUP BY event_status
          UNION ALL
          SELECT 'operational', processing_status, count(*) FROM operational.operation_cases GROUP BY processing_status
          UNION ALL
          SELECT 'canonical', lifecycle_status, count(*) FROM canonical.business_objects GROUP BY lifecycle_status) c;
  GET DIAGNOSTICS written = ROW_COUNT;
  RETURN written;
END $$;

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
   WHERE s.submission_id = v_id;
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
    LEFT JOIN operational.operation_cases c ON c.submission_id = r.submission_id AND c.service_request_id = r.id
   WHERE r.submission_id = v_id;

  RETURN jsonb_build_object(
    'submission', submission,
    'service_request', request,
    'case', operational_case,
    'status_history', coalesce((SELECT jsonb_agg(to_jsonb(h) ORDER BY h.id)
                                  FROM operational.case_status_history h
                                 WHERE h.submission_id = v_id AND h.case_id = (operational_case ->> 'id')::uuid), '[]'),
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

CREATE OR REPLACE FUNCTION api.health(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  workers bigint;
  pending bigint;
  dead bigint;
BEGIN
  PERFORM enterprise_lab.api_body('health', body, '{}');
  -- Anyone may ask, as often as they like: the counts walk partial indexes
  -- and stop at 10000, so an answer costs the same however many events
  -- there are.
  -- One statement per number: Citus plans a statement that reads a
  -- distributed table as a whole, and refuses one that also calls a
  -- function returning records.
  SELECT count(*) INTO workers FROM enterprise_lab.node_worker_status() w WHERE w.worker IS NOT NULL;
  -- A column in the subquery's list: Citus cannot run an empty one.
  SELECT count(*) INTO pending FROM (SELECT 1 FROM integration.events
                                      WHERE event_status IN ('pending', 'failed') LIMIT 10000) AS e;
  SELECT count(*) INTO dead FROM (SELECT 1 FROM integration.events WHERE event_status = 'dead_letter' LIMIT 10000) AS e;
  RETURN jsonb_build_object(
    'status', 'ok',
    'database', true,
    'workers_running', workers,
    'pending_events', pending,
    'dead_letters', dead,
    'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'));
END $$;
COMMENT ON FUNCTION api.health(jsonb) IS
  'Liveness: {"status": "ok", "database": true, workers running (on every node), pending events and dead letters (each counted up to 10000), extension version}. Body: {}.';

CREATE OR REPLACE FUNCTION enterprise_lab.purge_completed_events(batch_size integer DEFAULT 1000)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  retention interval := enterprise_lab.event_retention();
  removed integer;
BEGIN
  IF batch_size IS NULL OR batch_size < 1 THEN
    RAISE EXCEPTION 'batch_size must be at least 1'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The value given was %s.', coalesce(batch_size::text, 'NULL'));
  END IF;
  IF retention IS NULL THEN
    RETURN 0;
  END IF;

  -- Only completed events: failed, dead-lettered and skipped events, the
  -- failure sync logs, lineage and status history are kept.  SKIP LOCKED:
  -- never wait for (or on) a worker.
  WITH expired AS (
    SELECT e.id
      FROM integration.events e
     WHERE e.event_status = 'completed' AND e.processed_at < now() - retention
     ORDER BY e.processed_at
     LIMIT batch_size
       FOR UPDATE SKIP LOCKED
  ), logs AS (
    DELETE FROM integration.sync_logs l
     USING expired
     WHERE l.event_id = expired.id AND l.outcome = 'success'
  )
  DELETE FROM integration.events e
   USING expired
   WHERE e.id = expired.id;
  GET DIAGNOSTICS removed = ROW_COUNT;
  RETURN removed;
END $$;

CREATE OR REPLACE FUNCTION enterprise_lab.status() RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  retention interval := enterprise_lab.event_retention();   -- also loads the library and its GUCs
  result jsonb;
  workers jsonb;
  events jsonb;
  held bigint;
  deliveries jsonb;
  sla jsonb;
  s3 jsonb;
  jobs jsonb;
BEGIN
  -- One statement per distributed read: Citus plans a statement that reads
  -- a distributed table as a whole and refuses subqueries in its select
  -- list.  The workers are those of every node.
  SELECT jsonb_build_object(
           'preloaded', 'enterprise_lab' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')),
           'serving_this_database', current_setting('enterprise_lab.database', true) = current_database(),
           'configured', current_setting('enterprise_lab.worker_count', true)::integer,
           'running', count(*) FILTER (WHERE w.worker IS NOT NULL),
           'detail', coalesce(jsonb_agg(to_jsonb(w) - 'error' ORDER BY w.node, w.worker) FILTER (WHERE w.worker IS NOT NULL), '[]'),
           'unreachable_nodes', coalesce(jsonb_agg(jsonb_build_object('node', w.node, 'error', w.error))
                                           FILTER (WHERE w.error IS NOT NULL), '[]'))
    INTO workers
    FROM enterprise_lab.node_worker_status() w;
  SELECT count(*) INTO held FROM integration.held_submissions;
  SELECT jsonb_build_object(
           'pending', count(*) FILTER (WHERE event_status = 'pending'),
           'failed', count(*) FILTER (WHERE event_status = 'failed'),
           'dead_lettered', count(*) FILTER (WHERE event_status = 'dead_letter'),
           'oldest_pending_age_seconds',
             round(extract(epoch FROM now() - min(created_at) FILTER (WHERE event_status IN ('pending', 'failed'))), 3),
           'held_submissions', held)
    INTO events
    FROM integration.events
   WHERE event_status IN ('pending', 'failed', 'dead_letter');
  SELECT jsonb_build_object(
           'waiting', count(*) FILTER (WHERE status IN ('pending', 'failed')),
           'in_flight', count(*) FILTER (WHERE status = 'in_flight'),
           'dead_lettered', count(*) FILTER (WHERE status = 'dead_letter'),
           'oldest_waiting_age_seconds',
             round(extract(epoch FROM now() - min(created_at) FILTER (WHERE status IN ('pending', 'failed', 'in_flight'))), 3))
    INTO deliveries
    FROM integration.deliveries
   WHERE status IN ('pending', 'failed', 'in_flight', 'dead_letter');
  SELECT jsonb_build_object('open_breaches', coalesce(sum(open_breaches), 0), 'overdue_cases', coalesce(sum(overdue_cases), 0))
    INTO sla
    FROM dashboard.sla_metrics;
  SELECT jsonb_build_object(
           'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'),
           'database', current_database(),
           'workers', workers,
           'events', events,
           'deliveries', deliveries || jsonb_build_object(
             'worker', (SELECT to_jsonb(w) FROM integration.delivery_worker_status w),
             'subscriptions', (SELECT count(*) FROM integration.subscriptions),
             'paused_subscriptions', (SELECT count(*) FROM integration.subscriptions WHERE paused_at IS NOT NULL)),
           'sla', sla,
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

CREATE OR REPLACE FUNCTION enterprise_lab.load_demo_data() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  r record;
  n integer := 0;
  case_id uuid;
BEGIN
  FOR r IN SELECT * FROM (VALUES
    ('Dana Example', 'dana@northwind.example.test', 'Grant VPN access to the new contractor starting Monday.', 'access_request', 'high', 'security', '10000000-0000-4000-8000-000000000001'::uuid, '20000000-0000-4000-8000-000000000001'::uuid, 'portal', 'in_progress'),
    ('Lee Sample', 'lee@blueharbor.example.test', 'Shipment tracking page returns an error for every order.', 'incident', 'critical', 'operations', '10000000-0000-4000-8000-000000000002', '20000000-0000-4000-8000-000000000003', 'email', 'completed'),
    ('Robin Test', 'robin@acmelabs.example.test', 'Increase the nightly export window to two hours.', 'service_change', 'medium', 'operations', '10000000-0000-4000-8000-000000000003', '20000000-0000-4000-8000-000000000004', 'portal', 'rejected'),
    ('Sam Placeholder', 'sam@northwind.example.test', 'Monthly invoice summary for the managed services agreement.', 'information_request', 'low', 'finance_ops', '10000000-0000-4000-8000-000000000001', '20000000-0000-4000-8000-000000000001', 'api', 'open'),
    ('Alex Demo', 'alex@blueharbor.example.test', 'Review the attached data processing addendum.', 'document_review', 'medium', 'service_desk', '10000000-0000-4000-8000-000000000002', NULL, 'portal', 'open')
  ) AS v(name, email, description, rtype, prio, team, customer, agreement, method, target)
  LOOP
    PERFORM intake.submit_request(r.name, r.email, r.description, r.rtype, r.prio, r.team,
                                  r.customer, r.agreement, r.method);
    n := n + 1;
  END LOOP;

  -- Open the cases now, so the demo can show the workflow moving them.
  PERFORM integration.process_events(100);
  FOR r IN SELECT c.id, v.target
             FROM operational.operation_cases c
             JOIN source_system.service_requests s ON s.id = c.service_request_id
             JOIN intake.submissions i ON i.submission_id = s.submission_id
             JOIN (VALUES ('dana@northwind.example.test', 'in_progress'), ('lee@blueharbor.example.test', 'completed'),
                          ('robin@acmelabs.example.test', 'rejected')) AS v(email, target)
               ON v.email = i.requester_email
            WHERE c.processing_status = 'open'
  LOOP
    IF r.target IN ('in_progress', 'completed') THEN
      PERFORM operational.set_case_status(r.id, 'in_progress', 'demo.operator', 'picked up');
    END IF;
    IF r.target = 'completed' THEN
      PERFORM operational.set_case_status(r.id, 'completed', 'demo.operator', 'fixed and verified');
    ELSIF r.target = 'rejected' THEN
      PERFORM operational.set_case_status(r.id, 'rejected', 'demo.operator', 'outside the agreement');
    END IF;
  END LOOP;
  RETURN n;
END $$;

-- The count triggers, two of which count renamed status columns: one C
-- trigger function (src/status_counts.c) replaces the five PL/pgSQL ones;
-- the triggers keep their names and give it the layer and the column.
DROP FUNCTION dashboard.count_submissions() CASCADE;
DROP FUNCTION dashboard.count_service_requests() CASCADE;
DROP FUNCTION dashboard.count_events() CASCADE;
DROP FUNCTION dashboard.count_operation_cases() CASCADE;
DROP FUNCTION dashboard.count_business_objects() CASCADE;

CREATE FUNCTION dashboard.count_statuses() RETURNS trigger
  AS 'MODULE_PATHNAME', 'el_count_statuses' LANGUAGE C SECURITY DEFINER;
COMMENT ON FUNCTION dashboard.count_statuses() IS
  'Trigger (layer, status column): adds the rows per status changed by a statement to dashboard.status_count_slots.';

DO $do$
DECLARE
  t record;
BEGIN
  FOR t IN SELECT * FROM (VALUES
      ('intake',        'intake.submissions',               'submissions',       'submission_status'),
      ('source_system', 'source_system.service_requests',   'service_requests',  'lifecycle_status'),
      ('integration',   'integration.events',               'events',            'event_status'),
      ('operational',   'operational.operation_cases',      'operation_cases',   'processing_status'),
      ('canonical',     'canonical.business_objects',       'business_objects',  'lifecycle_status')
    ) AS v(layer, tab, short, col)
  LOOP
    EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON %s REFERENCING NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.count_statuses(%L, %L)', t.short || '_count_inserted', t.tab, t.layer, t.col);
    EXECUTE format('CREATE TRIGGER %I AFTER UPDATE ON %s REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.count_statuses(%L, %L)', t.short || '_count_updated', t.tab, t.layer, t.col);
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s REFERENCING OLD TABLE AS old_rows
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.count_statuses(%L, %L)', t.short || '_count_deleted', t.tab, t.layer, t.col);
    EXECUTE format('CREATE TRIGGER %I AFTER TRUNCATE ON %s
                      FOR EACH STATEMENT EXECUTE FUNCTION dashboard.count_statuses(%L, %L)', t.short || '_count_truncated', t.tab, t.layer, t.col);
  END LOOP;
END $do$;

-- dashboard records
-- api.events, api.sync_logs and api.lineage page through every
-- submission's records (keyset: before_seq, before_id, before); document
-- types are data (reference.document_types) and api.submit_request takes
-- document.document_type; api.reference_data marks the agreements valid
-- today and lists the document types.

-- How a document is classified; the intake form's selector lists the active ones.
CREATE TABLE reference.document_types (
  code        text PRIMARY KEY CONSTRAINT document_types_code_format CHECK (code ~ '^[a-z][a-z0-9_]{0,62}$'),
  name        text NOT NULL CONSTRAINT document_types_name_not_blank CHECK (name ~ '\S'),
  description text,
  active      boolean NOT NULL DEFAULT true,
  seeded      boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.document_types IS
  'Classifications of supporting documents (document_repo.documents.document_type); api.submit_request accepts the active ones.';
CREATE TRIGGER document_types_10_user_modified BEFORE UPDATE ON reference.document_types
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();
CREATE TRIGGER document_types_20_touch BEFORE UPDATE ON reference.document_types
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.touch_updated_at();
INSERT INTO reference.document_types (code, name, description, seeded) VALUES
  ('supporting_document', 'Supporting document', 'Any document that explains the request.', true),
  ('contract', 'Contract or agreement', 'A signed agreement, addendum or order form.', true),
  ('invoice', 'Invoice', 'An invoice or billing statement.', true),
  ('screenshot', 'Screenshot', 'A picture of what the requester sees.', true),
  ('report', 'Report or export', 'A report, log or data export.', true);
SELECT pg_catalog.pg_extension_config_dump('reference.document_types', '');
GRANT SELECT ON reference.document_types TO lab_operator, lab_auditor, lab_admin;
-- What 94_backup.sql attaches to every table with seed rows.
CREATE TRIGGER document_types_05_restore_seeded BEFORE INSERT ON reference.document_types
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.restore_seeded_row('code');
ALTER TABLE reference.document_types ENABLE ALWAYS TRIGGER document_types_05_restore_seeded;
CREATE TRIGGER document_types_90_remember_deleted AFTER DELETE ON reference.document_types
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.remember_deleted_row('code');

-- The global lineage table pages newest first off this index; the primary
-- key's columns make the position of a row unique.
CREATE INDEX lineage_records_created_idx
  ON canonical.lineage_records (created_at, from_id, to_id, relationship);

-- A page position: a positive whole JSON number, or absent.
CREATE FUNCTION enterprise_lab.api_position(fn text, body jsonb, key text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb := body -> key;
  n numeric;
BEGIN
  IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
    RETURN NULL;
  END IF;
  IF jsonb_typeof(v) <> 'number' THEN
    RAISE EXCEPTION '%: % must be a number', fn, key
      USING ERRCODE = 'invalid_parameter_value', COLUMN = key,
            DETAIL = format('It is a JSON %s.', jsonb_typeof(v)),
            HINT = 'Send the "next" object of the previous page back as it came.';
  END IF;
  n := v::numeric;
  IF n <> trunc(n) OR n < 1 OR n > 9223372036854775807 THEN
    RAISE EXCEPTION '%: % must be a whole number from 1 to 9223372036854775807', fn, key
      USING ERRCODE = 'invalid_parameter_value', COLUMN = key,
            DETAIL = format('The value given was %s.', left(n::text, 40)),
            HINT = 'Send the "next" object of the previous page back as it came.';
  END IF;
  RETURN n::bigint;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_position(text, jsonb, text) IS
  'api helper: an optional keyset position (a positive whole number; 22023 otherwise).';


-- One event as the api shows it: every column, its request number and the
-- commit-to-processed latency.
-- It takes the row as jsonb: Citus runs the query on the shards, where a
-- row of integration.events has the type of its shard.
CREATE FUNCTION enterprise_lab.api_event_row(e jsonb, request_number text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT e || jsonb_build_object(
           'event_id', e -> 'id',
           'request_number', request_number,
           'latency_ms', round((extract(epoch FROM ((e ->> 'processed_at')::timestamptz - (e ->> 'created_at')::timestamptz))
                                * 1000)::numeric, 1))
$$;
COMMENT ON FUNCTION enterprise_lab.api_event_row(jsonb, text) IS
  'api helper: an event (to_jsonb of its row) as api.events returns it (its columns, event_id, request_number, latency_ms).';


CREATE OR REPLACE FUNCTION api.events(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'events';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'status', 'limit', 'before_seq']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_status text := enterprise_lab.api_text(fn, b, 'status', false, 40);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
  -- No position: from the newest.  A constant, never "IS NULL OR", so
  -- the condition is always an index condition on seq.
  v_before bigint := coalesce(enterprise_lab.api_position(fn, b, 'before_seq'), 9223372036854775807);
  page jsonb[];
BEGIN
  IF v_status NOT IN ('pending', 'completed', 'failed', 'dead_letter', 'skipped') THEN
    RAISE EXCEPTION '%: status "%" is not an event status', fn, v_status
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'status',
            HINT = 'Use pending, completed, failed, dead_letter or skipped.';
  END IF;
  -- One row more than asked for says whether there is a next page.
  IF v_submission IS NOT NULL THEN
    SELECT array_agg(x ORDER BY (x ->> 'seq')::bigint DESC) INTO page
      FROM (SELECT enterprise_lab.api_event_row(to_jsonb(e), r.request_number) AS x
              FROM integration.events e
              LEFT JOIN source_system.service_requests r ON r.submission_id = e.submission_id
             WHERE e.submission_id = v_submission AND e.seq < v_before
               AND (v_status IS NULL OR e.event_status = v_status)
             ORDER BY e.seq DESC LIMIT v_limit + 1) p;
  ELSE
    SELECT array_agg(x ORDER BY (x ->> 'seq')::bigint DESC) INTO page
      FROM (SELECT enterprise_lab.api_event_row(to_jsonb(e), r.request_number) AS x
              FROM integration.events e
              LEFT JOIN source_system.service_requests r ON r.submission_id = e.submission_id
             WHERE e.seq < v_before
               AND (v_status IS NULL OR e.event_status = v_status)
             ORDER BY e.seq DESC LIMIT v_limit + 1) p;
  END IF;
  RETURN jsonb_build_object(
    'limit', v_limit,
    'items', coalesce(to_jsonb(page[1:v_limit]), '[]'),
    'next', CASE WHEN cardinality(page) > v_limit
                 THEN jsonb_build_object('before_seq', (page[v_limit] ->> 'seq')::bigint) END);
END $$;
COMMENT ON FUNCTION api.events(jsonb) IS
  'Integration events, newest first, with request number, attempts, last error and latency: {"submission_id"?, "status"?, "limit"? (1..1000, default 100), "before_seq"?}. Returns {items, limit, next}: next is null on the last page, else the keys to add to the body for the next page.';


CREATE OR REPLACE FUNCTION api.sync_logs(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'sync_logs';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'limit', 'before_id']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
  v_before bigint := coalesce(enterprise_lab.api_position(fn, b, 'before_id'), 9223372036854775807);
  page jsonb[];
BEGIN
  IF v_submission IS NOT NULL THEN
    SELECT array_agg(x ORDER BY (x ->> 'id')::bigint DESC) INTO page
      FROM (SELECT to_jsonb(l) || jsonb_build_object('request_number', r.request_number) AS x
              FROM integration.sync_logs l
              LEFT JOIN source_system.service_requests r ON r.submission_id = l.submission_id
             WHERE l.submission_id = v_submission AND l.id < v_before
             ORDER BY l.id DESC LIMIT v_limit + 1) p;
  ELSE
    SELECT array_agg(x ORDER BY (x ->> 'id')::bigint DESC) INTO page
      FROM (SELECT to_jsonb(l) || jsonb_build_object('request_number', r.request_number) AS x
              FROM integration.sync_logs l
              LEFT JOIN source_system.service_requests r ON r.submission_id = l.submission_id
             WHERE l.id < v_before
             ORDER BY l.id DESC LIMIT v_limit + 1) p;
  END IF;
  RETURN jsonb_build_object(
    'limit', v_limit,
    'items', coalesce(to_jsonb(page[1:v_limit]), '[]'),
    'next', CASE WHEN cardinality(page) > v_limit
                 THEN jsonb_build_object('before_id', (page[v_limit] ->> 'id')::bigint) END);
END $$;
COMMENT ON FUNCTION api.sync_logs(jsonb) IS
  'Processing outcomes (sync logs), newest first, with request number: {"submission_id"?, "limit"? (1..1000, default 100), "before_id"?}. Returns {items, limit, next}: next is null on the last page, else the keys to add to the body for the next page.';


-- One lineage edge as the api shows it.
CREATE FUNCTION enterprise_lab.api_lineage_row(l canonical.lineage_records, request_number text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT jsonb_build_object('submission_id', l.submission_id, 'from_type', l.from_type, 'from_id', l.from_id,
                            'to_type', l.to_type, 'to_id', l.to_id, 'relationship', l.relationship,
                            'event_id', l.event_id, 'created_at', l.created_at)
         || CASE WHEN request_number IS NOT NULL THEN jsonb_build_object('request_number', request_number) ELSE '{}' END
$$;
COMMENT ON FUNCTION enterprise_lab.api_lineage_row(canonical.lineage_records, text) IS
  'api helper: a lineage edge as api.lineage returns it.';


CREATE OR REPLACE FUNCTION api.lineage(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'lineage';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'limit', 'before']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
  before jsonb := b -> 'before';
  c_at timestamptz;
  c_from uuid;
  c_to uuid;
  c_rel text;
  page jsonb[];
BEGIN
  IF v_submission IS NOT NULL THEN
    IF b ? 'before' OR b ? 'limit' THEN
      RAISE EXCEPTION '%: one submission''s lineage is not paged', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = CASE WHEN b ? 'before' THEN 'before' ELSE 'limit' END,
              HINT = 'Send {"submission_id"} alone, or leave it out to page through every submission''s lineage.';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM intake.submissions WHERE submission_id = v_submission) THEN
      PERFORM enterprise_lab.api_not_found('submission', v_submission);
    END IF;
    RETURN jsonb_build_object('items', coalesce((
      SELECT jsonb_agg(enterprise_lab.api_lineage_row(l, NULL)
                       ORDER BY l.created_at, enterprise_lab.api_lineage_rank(l.from_type),
                                l.from_type, l.to_type, l.relationship)
        FROM canonical.lineage_records l WHERE l.submission_id = v_submission), '[]'),
      'next', NULL);
  END IF;

  IF before IS NOT NULL AND jsonb_typeof(before) <> 'null' THEN
    IF jsonb_typeof(before) <> 'object' THEN
      RAISE EXCEPTION '%: before must be an object', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'before',
              DETAIL = format('It is a JSON %s.', jsonb_typeof(before)),
              HINT = 'Send the "next" object of the previous page back as it came.';
    END IF;
    PERFORM enterprise_lab.api_body(fn || ' before', before, ARRAY['created_at', 'from_id', 'to_id', 'relationship']);
    BEGIN
      c_at := enterprise_lab.api_text(fn, before, 'created_at', true, 64)::timestamptz;
    EXCEPTION WHEN invalid_datetime_format OR datetime_field_overflow THEN
      RAISE EXCEPTION '%: before.created_at is not a timestamp', fn
        USING ERRCODE = 'invalid_datetime_format', COLUMN = 'created_at', DETAIL = SQLERRM,
              HINT = 'Send the "next" object of the previous page back as it came.';
    END;
    c_from := enterprise_lab.api_uuid(fn, before, 'from_id', true);
    c_to := enterprise_lab.api_uuid(fn, before, 'to_id', true);
    c_rel := enterprise_lab.api_text(fn, before, 'relationship', true, 200);
    SELECT array_agg(x ORDER BY n) INTO page
      FROM (SELECT enterprise_lab.api_lineage_row(l, r.request_number) AS x,
                   row_number() OVER (ORDER BY l.created_at DESC, l.from_id DESC, l.to_id DESC, l.relationship DESC) AS n
              FROM (SELECT * FROM canonical.lineage_records l
                     WHERE (l.created_at, l.from_id, l.to_id, l.relationship) < (c_at, c_from, c_to, c_rel)
                     ORDER BY l.created_at DESC, l.from_id DESC, l.to_id DESC, l.relationship DESC
                     LIMIT v_limit + 1) l
              LEFT JOIN source_system.service_requests r ON r.submission_id = l.submission_id) p;
  ELSE
    SELECT array_agg(x ORDER BY n) INTO page
      FROM (SELECT enterprise_lab.api_lineage_row(l, r.request_number) AS x,
                   row_number() OVER (ORDER BY l.created_at DESC, l.from_id DESC, l.to_id DESC, l.relationship DESC) AS n
              FROM (SELECT * FROM canonical.lineage_records l
                     ORDER BY l.created_at DESC, l.from_id DESC, l.to_id DESC, l.relationship DESC
                     LIMIT v_limit + 1) l
              LEFT JOIN source_system.service_requests r ON r.submission_id = l.submission_id) p;
  END IF;
  RETURN jsonb_build_object(
    'limit', v_limit,
    'items', coalesce(to_jsonb(page[1:v_limit]), '[]'),
    'next', CASE WHEN cardinality(page) > v_limit
                 THEN jsonb_build_object('before', page[v_limit] - 'submission_id' - 'request_number' - 'from_type'
                                                   - 'to_type' - 'event_id') END);
END $$;
COMMENT ON FUNCTION api.lineage(jsonb) IS
  'Lineage edges (service_request -> operation_case -> business_object, documents): {"submission_id"} -> every edge of one submission in lifecycle order (404 when unknown); without it every submission''s, newest first, with request number: {"limit"? (1..1000, default 100), "before"?}. Returns {items, limit, next}: next is null on the last page, else the keys to add to the body for the next page.';


REVOKE ALL ON FUNCTION api.events(jsonb), api.sync_logs(jsonb), api.lineage(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.events(jsonb), api.sync_logs(jsonb), api.lineage(jsonb)
  TO lab_anon, lab_operator, lab_auditor, lab_admin;

CREATE OR REPLACE FUNCTION api.reference_data(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('reference_data', body, '{}');
  RETURN jsonb_build_object(
    'customers', coalesce((
      SELECT jsonb_agg(jsonb_build_object(
               'id', c.id, 'code', c.code, 'name', c.name, 'status', c.status,
               'agreements', coalesce((
                 SELECT jsonb_agg(jsonb_build_object(
                          'id', a.id, 'agreement_number', a.agreement_number, 'name', a.name,
                          'valid_from', a.valid_from, 'valid_to', a.valid_to, 'status', a.status,
                          -- What intake.validate_submission accepts today.
                          'current', a.status = 'active' AND current_date >= a.valid_from
                                     AND (a.valid_to IS NULL OR current_date <= a.valid_to))
                        ORDER BY a.agreement_number)
                   FROM reference.agreements a WHERE a.customer_id = c.id), '[]'))
             ORDER BY c.name)
        FROM reference.customers c), '[]'),
    'request_types', coalesce((
      SELECT jsonb_agg(jsonb_build_object('code', t.code, 'name', t.name, 'canonical_category', t.canonical_category,
                                          'description', t.description) ORDER BY t.name)
        FROM reference.request_types t WHERE t.active), '[]'),
    'priorities', coalesce((
      SELECT jsonb_agg(jsonb_build_object('code', p.code, 'name', p.name, 'rank', p.rank) ORDER BY p.rank)
        FROM reference.priorities p), '[]'),
    'teams', coalesce((
      SELECT jsonb_agg(jsonb_build_object('code', t.code, 'name', t.name) ORDER BY t.name)
        FROM reference.teams t WHERE t.active), '[]'),
    'case_statuses', coalesce((
      SELECT jsonb_agg(jsonb_build_object('status', s.status, 'is_terminal', s.is_terminal,
                                          'description', s.description, 'canonical_status', m.canonical_status)
                       ORDER BY s.is_terminal, s.status)
        FROM operational.case_statuses s LEFT JOIN canonical.status_map m ON m.operational_status = s.status), '[]'),
    'transitions', coalesce((
      SELECT jsonb_agg(jsonb_build_object('from_status', t.from_status, 'to_status', t.to_status)
                       ORDER BY t.from_status, t.to_status)
        FROM operational.status_transitions t), '[]'),
    'intake_methods', coalesce((
      SELECT jsonb_agg(m.code ORDER BY m.code COLLATE "C") FROM reference.intake_methods m WHERE m.active), '[]'),
    'document_types', jsonb_build_object(
      'extensions', '["pdf", "txt", "csv", "png", "jpg", "jpeg"]'::jsonb,
      'content_types', '["application/pdf", "text/plain", "text/csv", "image/png", "image/jpeg"]'::jsonb,
      'max_size', pg_size_bytes(coalesce(current_setting('enterprise_lab.max_document_size', true), '10MB')),
      'types', coalesce((
        SELECT jsonb_agg(jsonb_build_object('code', t.code, 'name', t.name, 'description', t.description)
                         ORDER BY t.code <> 'supporting_document', t.name)
          FROM reference.document_types t WHERE t.active), '[]')));
END $$;
COMMENT ON FUNCTION api.reference_data(jsonb) IS
  'Everything the intake form and the workflow panel choose from: customers (status) with their agreements (current: active and valid today), request types, priorities, teams, case statuses, allowed transitions, document types (the accepted files, and the classifications in types). Body: {}.';


CREATE OR REPLACE FUNCTION api.submit_request(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'submit_request';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['requester_name', 'requester_email', 'request_description', 'description', 'request_type',
                     'priority', 'assigned_team', 'team', 'customer_id', 'agreement_id', 'intake_method', 'document']);
  v_name text := enterprise_lab.api_text(fn, b, 'requester_name', true, 200);
  v_email text := enterprise_lab.api_text(fn, b, 'requester_email', true, 254);
  -- The original lab's keys (request_description, assigned_team), or the
  -- shorter ones (description, team); a missing one is named by the first.
  v_description text := coalesce(enterprise_lab.api_text(fn, b, 'request_description', false, 4000),
                                 enterprise_lab.api_text(fn, b, CASE WHEN b ? 'description' THEN 'description' ELSE 'request_description' END, true, 4000));
  v_type text := enterprise_lab.api_text(fn, b, 'request_type', true, 40);
  v_priority text := enterprise_lab.api_text(fn, b, 'priority', true, 40);
  v_team text := coalesce(enterprise_lab.api_text(fn, b, 'assigned_team', false, 40),
                          enterprise_lab.api_text(fn, b, CASE WHEN b ? 'team' THEN 'team' ELSE 'assigned_team' END, true, 40));
  -- The original lab's body names no customer: the seeded UNASSIGNED one.
  v_customer uuid := coalesce(enterprise_lab.api_uuid(fn, b, 'customer_id', false), '10000000-0000-4000-8000-000000000000');
  v_agreement uuid := enterprise_lab.api_uuid(fn, b, 'agreement_id', false);
  v_method text := coalesce(enterprise_lab.api_text(fn, b, 'intake_method', false, 40), 'portal');
  doc jsonb := b -> 'document';
  doc_name text;
  doc_type text;
  doc_class text;
  doc_base64 text;
  doc_content bytea;
  max_size bigint := pg_size_bytes(coalesce(current_setting('enterprise_lab.max_document_size', true), '10MB'));
  v_submission uuid;
  result jsonb;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM reference.intake_methods m WHERE m.code = v_method AND m.active) THEN
    RAISE EXCEPTION '%: intake_method "%" is not known', fn, v_method
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'intake_method',
            DETAIL = format('Known intake methods: %s.', (SELECT string_agg(m.code, ', ' ORDER BY m.code COLLATE "C")
                                                            FROM reference.intake_methods m WHERE m.active)),
            HINT = 'Choose one of reference.intake_methods.';
  END IF;

  IF doc IS NOT NULL AND jsonb_typeof(doc) <> 'null' THEN
    IF jsonb_typeof(doc) <> 'object' THEN
      RAISE EXCEPTION '%: document must be an object', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'document',
              DETAIL = format('It is a JSON %s.', jsonb_typeof(doc)),
              HINT = 'Send {"file_name": ..., "content_type": ..., "content_base64": ...}.';
    END IF;
    PERFORM enterprise_lab.api_body(fn || ' document', doc, ARRAY['file_name', 'content_type', 'content_base64', 'document_type']);
    doc_name := enterprise_lab.api_text(fn, doc, 'file_name', true, 255);
    doc_type := enterprise_lab.api_text(fn, doc, 'content_type', true, 100);
    doc_class := coalesce(enterprise_lab.api_text(fn, doc, 'document_type', false, 63), 'supporting_document');
    IF NOT EXISTS (SELECT 1 FROM reference.document_types t WHERE t.code = doc_class AND t.active) THEN
      RAISE EXCEPTION '%: document_type "%" is not known', fn, doc_class
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'document_type',
              DETAIL = format('Known document types: %s.', (SELECT string_agg(t.code, ', ' ORDER BY t.code COLLATE "C")
                                                              FROM reference.document_types t WHERE t.active)),
              HINT = 'Choose one of reference.document_types, or leave it out for supporting_document.';
    END IF;
    -- base64 is 4 characters per 3 bytes, plus line breaks some encoders add.
    doc_base64 := enterprise_lab.api_text(fn, doc, 'content_base64', true,
                                          ((max_size + 2) / 3 * 4 + (max_size / 57 + 1) * 2)::integer);
    BEGIN
      doc_content := decode(doc_base64, 'base64');
    EXCEPTION WHEN invalid_parameter_value THEN
      RAISE EXCEPTION '%: document.content_base64 is not valid base64', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'content_base64',
              DETAIL = SQLERRM, HINT = 'Encode the file''s bytes with standard base64 (RFC 4648).';
    END;
  END IF;

  INSERT INTO intake.submissions AS s
         (intake_method, requester_name, requester_email, request_description,
          request_type, priority, assigned_team, customer_id, agreement_id, submitted_by)
  VALUES (v_method, v_name, v_email, v_description, v_type, v_priority, v_team,
          v_customer, v_agreement, enterprise_lab.request_subject())
  RETURNING s.submission_id INTO v_submission;

  SELECT jsonb_build_object('submission_id', v_submission,
                            'service_request_id', r.id,
                            'request_number', r.request_number,
                            'event_id', e.id,
                            'document_id', NULL)
    INTO result
    FROM source_system.service_requests r
    JOIN integration.events e ON e.submission_id = r.submission_id AND e.event_type = 'RequestCreated'
   WHERE r.submission_id = v_submission;

  IF doc_content IS NOT NULL THEN
    result := result || jsonb_build_object('document_id',
      document_repo.upload_document(v_submission, doc_name, doc_type, doc_content, doc_class));
  END IF;
  RETURN result;
END $$;
COMMENT ON FUNCTION api.submit_request(jsonb) IS
  'Submit an intake request: {"requester_name", "requester_email", "request_description" (or "description"), "request_type", "priority", "assigned_team" (or "team"), "customer_id"? (default: the UNASSIGNED customer), "agreement_id"?, "intake_method"? (default portal), "document"?}, the document being {file_name, content_type, content_base64, document_type? (from reference.document_types, default supporting_document)}. Creates the submission, its service request, the RequestCreated event and the document in one transaction. Returns their ids and the request number.';

-- original routes
--
-- api.original_*: the original lab's HTTP routes as api functions (src/sql/32_api_original.sql).

-- Rename keys of a JSON object, old name -> original name, where the old
-- name is present and the original one is not.
CREATE FUNCTION enterprise_lab.api_original_keys(obj jsonb, pairs text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  i integer;
BEGIN
  IF jsonb_typeof(obj) IS DISTINCT FROM 'object' THEN
    RETURN obj;
  END IF;
  FOR i IN 1 .. coalesce(array_length(pairs, 1), 0) LOOP
    IF obj ? pairs[i][1] AND NOT obj ? pairs[i][2] THEN
      obj := obj - pairs[i][1] || jsonb_build_object(pairs[i][2], obj -> pairs[i][1]);
    END IF;
  END LOOP;
  RETURN obj;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_original_keys(jsonb, text[]) IS
  'api helper: renames keys of a JSON object (pairs {{old, original}, ...}) where the old key is present and the original one is not.';

-- A row of api.submissions' list with the original's names (the table
-- has them; the list keeps the shorter ones /rpc/submissions answers with).
CREATE FUNCTION enterprise_lab.api_original_submission(obj jsonb) RETURNS jsonb
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT enterprise_lab.api_original_keys(obj,
    '{{team,assigned_team},{intake_status,submission_status},{submitted_at,created_at}}')
$$;
COMMENT ON FUNCTION enterprise_lab.api_original_submission(jsonb) IS
  'api helper: a submission of api.submissions with the original lab''s names (assigned_team, submission_status, created_at).';

-- Paging of the list routes: limit 1..200 (default 50), offset >= 0.
CREATE FUNCTION enterprise_lab.api_original_page(fn text, body jsonb, OUT page_limit integer, OUT page_offset integer)
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT enterprise_lab.api_integer(fn, body, 'limit', 50, 1, 200),
         enterprise_lab.api_integer(fn, body, 'offset', 0, 0, 1000000000)
$$;
COMMENT ON FUNCTION enterprise_lab.api_original_page(text, jsonb) IS
  'api helper: limit (1..200, default 50) and offset (>= 0, default 0) of a list route; 22023 out of range.';


CREATE FUNCTION api.original_submit_request(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_submit_request';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['intake_method', 'requester_name', 'requester_email', 'request_description', 'request_type',
                     'priority', 'assigned_team', 'customer_id', 'agreement_id', 'document']);
  result jsonb;
BEGIN
  -- api.submit_request takes the original's keys (and files a request
  -- without customer_id under the UNASSIGNED customer).
  result := api.submit_request(b);
  RETURN result || (SELECT jsonb_build_object('submission_status', s.submission_status)
                      FROM intake.submissions s WHERE s.submission_id = (result ->> 'submission_id')::uuid);
END $$;
COMMENT ON FUNCTION api.original_submit_request(jsonb) IS
  'POST /intake/submissions of the original: {"intake_method"?, "requester_name", "requester_email", "request_description", "request_type", "priority", "assigned_team", "customer_id"?, "agreement_id"?, "document"?}; runs api.submit_request (without customer_id: the UNASSIGNED customer) and adds the submission_status.';


CREATE FUNCTION api.original_set_case_status(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_set_case_status';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['operation_case_id', 'new_status', 'changed_by', 'change_reason']);
  v_changed_by text := enterprise_lab.api_text(fn, b, 'changed_by', false, 200);
  claims text := current_setting('request.jwt.claims', true);
  result jsonb;
BEGIN
  -- changed_by is taken as given only from a caller who may act for
  -- others (an admin whose token the gateway or PostgREST checked);
  -- everyone else is recorded as the token's subject.
  IF v_changed_by IS NOT NULL AND enterprise_lab.request_access() = 'admin'
     AND enterprise_lab.request_trusts_claims() THEN
    PERFORM set_config('request.jwt.claims',
                       (enterprise_lab.request_claims() || jsonb_build_object('sub', v_changed_by))::text, true);
  END IF;
  result := api.set_case_status(jsonb_strip_nulls(jsonb_build_object(
              'case_id', b -> 'operation_case_id', 'new_status', b -> 'new_status',
              'reason', b -> 'change_reason')));
  PERFORM set_config('request.jwt.claims', coalesce(claims, ''), true);
  RETURN enterprise_lab.api_original_keys(result,
           '{{case_id,operation_case_id},{team,assigned_team},{processing_status,new_status}}');
END $$;
COMMENT ON FUNCTION api.original_set_case_status(jsonb) IS
  'PATCH /operational/cases/{operation_case_id}/status of the original: {"operation_case_id", "new_status", "changed_by"?, "change_reason"?}; runs api.set_case_status. changed_by is recorded as given for admins, otherwise the token''s subject is.';


CREATE FUNCTION api.original_submissions(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_submissions';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['limit', 'offset']);
  page record := enterprise_lab.api_original_page(fn, b);
BEGIN
  RETURN coalesce((
    SELECT jsonb_agg(enterprise_lab.api_original_submission(i) ORDER BY n)
      FROM jsonb_array_elements(api.submissions(jsonb_build_object('limit', page.page_limit,
                                                                   'offset', page.page_offset)) -> 'items')
           WITH ORDINALITY AS x(i, n)), '[]');
END $$;
COMMENT ON FUNCTION api.original_submissions(jsonb) IS
  'GET /dashboard/submissions of the original: the submissions with their lifecycle, newest first, {"limit"? (1..200, default 50), "offset"?}; runs api.submissions.';


CREATE FUNCTION api.original_submission(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_submission';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id']);
  d jsonb := api.submission_detail(b);
BEGIN
  RETURN d || jsonb_build_object(
    'case', enterprise_lab.api_original_keys(d -> 'case', '{{id,operation_case_id}}'),
    'events', coalesce((SELECT jsonb_agg(enterprise_lab.api_original_keys(e, '{{id,event_id}}') ORDER BY n)
                          FROM jsonb_array_elements(d -> 'events') WITH ORDINALITY AS x(e, n)), '[]'));
END $$;
COMMENT ON FUNCTION api.original_submission(jsonb) IS
  'GET /dashboard/submissions/{submission_id} of the original: one submission across every layer, {"submission_id"}; runs api.submission_detail.';


CREATE FUNCTION api.original_events(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_events';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['limit', 'offset']);
  page record := enterprise_lab.api_original_page(fn, b);
BEGIN
  RETURN coalesce((
    SELECT jsonb_agg(enterprise_lab.api_original_keys(to_jsonb(e), '{{id,event_id}}')
                     ORDER BY e.seq DESC)
      FROM (SELECT * FROM integration.events ORDER BY seq DESC
             LIMIT page.page_limit OFFSET page.page_offset) e), '[]');
END $$;
COMMENT ON FUNCTION api.original_events(jsonb) IS
  'GET /dashboard/events of the original: integration events of every submission, newest first, {"limit"? (1..200, default 50), "offset"?}.';


CREATE FUNCTION api.original_sync_logs(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_sync_logs';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['limit', 'offset']);
  page record := enterprise_lab.api_original_page(fn, b);
BEGIN
  RETURN coalesce((
    SELECT jsonb_agg(enterprise_lab.api_original_keys(to_jsonb(l), '{{id,sync_log_id}}') ORDER BY l.id DESC)
      FROM (SELECT * FROM integration.sync_logs ORDER BY id DESC
             LIMIT page.page_limit OFFSET page.page_offset) l), '[]');
END $$;
COMMENT ON FUNCTION api.original_sync_logs(jsonb) IS
  'GET /dashboard/sync-logs of the original: processing outcomes of every submission, newest first, {"limit"? (1..200, default 50), "offset"?}.';


CREATE FUNCTION api.original_lineage(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_lineage';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['limit', 'offset']);
  page record := enterprise_lab.api_original_page(fn, b);
BEGIN
  RETURN coalesce((
    SELECT jsonb_agg(to_jsonb(l) ORDER BY l.created_at DESC, l.from_id DESC, l.to_id DESC, l.relationship DESC)
      FROM (SELECT * FROM canonical.lineage_records r
             -- lineage_records_created_idx, read backwards
             ORDER BY r.created_at DESC, r.from_id DESC, r.to_id DESC, r.relationship DESC
             LIMIT page.page_limit OFFSET page.page_offset) l), '[]');
END $$;
COMMENT ON FUNCTION api.original_lineage(jsonb) IS
  'GET /dashboard/lineage of the original: lineage records of every submission, newest first, {"limit"? (1..200, default 50), "offset"?}.';


-- The reference reads: the lists of api.reference_data, one route each.
CREATE FUNCTION api.original_reference(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'original_reference';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['list']);
  v_list text := enterprise_lab.api_text(fn, b, 'list', true, 40);
  ref jsonb;
BEGIN
  IF v_list NOT IN ('customers', 'agreements', 'request_types', 'priorities', 'teams') THEN
    RAISE EXCEPTION '%: list "%" is not known', fn, v_list
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'list',
            HINT = 'Use customers, agreements, request_types, priorities or teams.';
  END IF;
  ref := api.reference_data('{}');
  IF v_list = 'customers' THEN
    RETURN coalesce((SELECT jsonb_agg(enterprise_lab.api_original_keys(c - 'agreements', '{{id,customer_id}}') ORDER BY n)
                       FROM jsonb_array_elements(ref -> 'customers') WITH ORDINALITY AS x(c, n)), '[]');
  ELSIF v_list = 'agreements' THEN
    RETURN coalesce((SELECT jsonb_agg(enterprise_lab.api_original_keys(a, '{{id,agreement_id}}')
                                      || jsonb_build_object('customer_id', c -> 'id') ORDER BY n, m)
                       FROM jsonb_array_elements(ref -> 'customers') WITH ORDINALITY AS x(c, n),
                            jsonb_array_elements(c -> 'agreements') WITH ORDINALITY AS y(a, m)), '[]');
  END IF;
  RETURN ref -> v_list;
END $$;
COMMENT ON FUNCTION api.original_reference(jsonb) IS
  'GET /reference/{customers,agreements,request-types,priorities,teams} of the original: {"list"}, one list of api.reference_data.';


REVOKE ALL ON FUNCTION api.original_submit_request(jsonb), api.original_set_case_status(jsonb),
  api.original_submissions(jsonb), api.original_submission(jsonb), api.original_events(jsonb),
  api.original_sync_logs(jsonb), api.original_lineage(jsonb), api.original_reference(jsonb)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.original_submit_request(jsonb), api.original_submissions(jsonb),
  api.original_submission(jsonb), api.original_events(jsonb), api.original_sync_logs(jsonb),
  api.original_lineage(jsonb), api.original_reference(jsonb)
  TO lab_anon, lab_operator, lab_auditor, lab_admin;
GRANT EXECUTE ON FUNCTION api.original_set_case_status(jsonb) TO lab_operator, lab_admin;

-- metrics

CREATE FUNCTION api.queue_metrics(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  counts jsonb;
  oldest numeric;
BEGIN
  PERFORM enterprise_lab.api_body('queue_metrics', body, '{}');
  -- Every status, 0 included, so a series does not vanish when it empties.
  SELECT jsonb_object_agg(s.status, coalesce(c.n, 0) ORDER BY s.status) INTO counts
    FROM (SELECT status, sum(count)::bigint AS n FROM enterprise_lab.node_status_counts()
           WHERE layer = 'integration' GROUP BY status) c
    FULL JOIN unnest(ARRAY['pending', 'completed', 'failed', 'dead_letter', 'skipped']) AS s(status) USING (status);
  -- A statement of its own: Citus plans one that reads a distributed table
  -- as a whole.
  SELECT extract(epoch FROM now() - e.created_at) INTO oldest
    FROM integration.events e WHERE e.event_status IN ('pending', 'failed')
   ORDER BY e.seq LIMIT 1;
  RETURN jsonb_build_object(
    'events', counts,
    'pending', coalesce((counts ->> 'pending')::bigint, 0) + coalesce((counts ->> 'failed')::bigint, 0),
    'oldest_pending_age_seconds', coalesce(oldest, 0));
END $$;
COMMENT ON FUNCTION api.queue_metrics(jsonb) IS
  'Queue numbers for monitoring, each read at a fixed cost: {"events": {status: count, ...} (maintained counts), "pending": events pending or awaiting a retry, "oldest_pending_age_seconds": age of the oldest of them (0 when none)}. GET /metrics serves them in Prometheus'' format. Body: {}.';
REVOKE ALL ON FUNCTION api.queue_metrics(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.queue_metrics(jsonb) TO lab_anon, lab_operator, lab_auditor, lab_admin;

-- openapi

CREATE FUNCTION enterprise_lab.http_routes(
  OUT method text, OUT path text, OUT api_function text, OUT summary text,
  OUT query_parameters text, OUT content_types text, OUT needs_token boolean, OUT ok_status integer)
RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'el_http_routes' LANGUAGE C STABLE;
COMMENT ON FUNCTION enterprise_lab.http_routes() IS
  'The built-in gateway''s routes besides POST /rpc/<name>, from its route table: method, path ({name} marks a path parameter), the api function it calls, a summary (NULL: the function''s COMMENT), query parameters and request content types (comma-separated; NULL content types: application/json), whether it needs a token, and the status of a success.';

-- The summary of an operation: the first sentence of a description.
CREATE FUNCTION enterprise_lab.openapi_summary(description text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT left(coalesce(substring(description FROM '^(.*?)[.:](\s|$)'), description), 120)
$$;
COMMENT ON FUNCTION enterprise_lab.openapi_summary(text) IS
  'api.openapi() helper: the first sentence of a COMMENT (up to its first period or colon, without it), at most 120 characters.';

CREATE FUNCTION enterprise_lab.openapi_document(routes jsonb) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  anon name := coalesce(nullif(current_setting('enterprise_lab.http_anon_role', true), ''), 'lab_anon');
  -- PostgREST's statuses for SQLSTATEs (src/http_response.c), each with its error body.
  errors constant jsonb := jsonb_build_object(
    '400', jsonb_build_object('$ref', '#/components/responses/BadRequest'),
    '401', jsonb_build_object('$ref', '#/components/responses/Unauthorized'),
    '403', jsonb_build_object('$ref', '#/components/responses/Forbidden'),
    '404', jsonb_build_object('$ref', '#/components/responses/NotFound'),
    '409', jsonb_build_object('$ref', '#/components/responses/Conflict'),
    '413', jsonb_build_object('$ref', '#/components/responses/ContentTooLarge'),
    '500', jsonb_build_object('$ref', '#/components/responses/ServerError'),
    '503', jsonb_build_object('$ref', '#/components/responses/Unavailable'));
  ok constant jsonb := jsonb_build_object('200', jsonb_build_object(
    'description', 'The function''s result.',
    'content', jsonb_build_object('application/json', jsonb_build_object('schema', '{}'::jsonb))));
  bad record;
  paths jsonb;
BEGIN
  IF routes IS NULL OR jsonb_typeof(routes) <> 'array' THEN
    RAISE EXCEPTION 'openapi_document: routes must be a JSON array'
      USING ERRCODE = 'invalid_parameter_value',
            HINT = 'Pass ''[]'' for none, or the rows of enterprise_lab.http_routes() as JSON.';
  END IF;
  SELECT r.method, r.path, r.api_function INTO bad
    FROM jsonb_to_recordset(routes) AS r(method text, path text, api_function text, ok_status integer)
   WHERE r.method IS NULL OR r.method <> ALL (ARRAY['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])
      OR r.path IS NULL OR r.path !~ '^(/([A-Za-z0-9_-][A-Za-z0-9_.-]*|\{[a-z_][a-z0-9_]*\}))+$'
      OR r.api_function IS NULL OR r.api_function !~ '^[a-z_][a-z0-9_]*$'
      OR r.ok_status NOT BETWEEN 200 AND 299
   LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'openapi_document: route % % (api.%) is not valid', bad.method, bad.path, bad.api_function
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = 'A route has a method GET, POST, PUT, PATCH or DELETE, a path of plain segments or {name} parameters (no empty, dot-first or percent-encoded segment) a function name of lower-case letters, digits and underscores, and a success status from 200 to 299 (or none: 200).';
  END IF;

  WITH fn AS (
    SELECT p.oid, p.proname::text AS name,
           coalesce(obj_description(p.oid, 'pg_proc'), format('api.%s(jsonb)', p.proname)) AS description,
           -- Callable without a token when the anonymous role may execute it.
           (SELECT count(*) > 0 FROM pg_roles r WHERE r.rolname = anon
               AND has_function_privilege(r.oid, p.oid, 'EXECUTE')) AS anonymous
      FROM pg_proc p
     WHERE p.pronamespace = 'api'::regnamespace AND p.prokind = 'f'
       AND p.pronargs = 1 AND p.proargtypes[0] = 'jsonb'::regtype
  ), operation AS (
    -- POST /rpc/<name>
    SELECT '/rpc/' || fn.name AS path, 'post' AS method, jsonb_build_object(
             'operationId', fn.name,
             'tags', jsonb_build_array('rpc'),
             'summary', enterprise_lab.openapi_summary(fn.description),
             'description', fn.description,
             'security', CASE WHEN fn.anonymous THEN '[{}, {"bearerAuth": []}]'::jsonb
                              ELSE '[{"bearerAuth": []}]'::jsonb END,
             'requestBody', jsonb_build_object(
               'required', false,
               'content', jsonb_build_object('application/json', jsonb_build_object(
                 'schema', jsonb_build_object('type', 'object')))),
             'responses', ok || errors) AS op
      FROM fn
    UNION ALL
    -- The gateway's other routes
    SELECT r.path, lower(r.method), jsonb_strip_nulls(jsonb_build_object(
             'operationId', lower(r.method) || regexp_replace(r.path, '[^A-Za-z0-9]+', '_', 'g'),
             'tags', jsonb_build_array(split_part(r.path, '/', 2)),
             'summary', coalesce(r.summary, enterprise_lab.openapi_summary(fn.description)),
             'description', coalesce(fn.description, format('Calls api.%s(jsonb).', r.api_function)),
             'security', CASE WHEN fn.anonymous AND NOT coalesce(r.needs_token, false)
                              THEN '[{}, {"bearerAuth": []}]'::jsonb
                              ELSE '[{"bearerAuth": []}]'::jsonb END,
             'parameters', nullif(
               coalesce((SELECT jsonb_agg(jsonb_build_object('name', m[1], 'in', 'path', 'required', true,
                                                              'schema', jsonb_build_object('type', 'string')))
                           FROM regexp_matches(r.path, '\{([a-z_][a-z0-9_]*)\}', 'g') AS m), '[]')
               || coalesce((SELECT jsonb_agg(jsonb_build_object('name', q, 'in', 'query', 'required', false,
                                                                 'schema', jsonb_build_object('type', 'string')))
                              FROM unnest(string_to_array(r.query_parameters, ',')) AS q), '[]'),
               '[]'),
             'requestBody', CASE WHEN r.method IN ('POST', 'PUT', 'PATCH') THEN jsonb_build_object(
               'required', true,
               'content', (SELECT jsonb_object_agg(ct, jsonb_build_object('schema', jsonb_build_object('type', 'object')))
                             FROM unnest(string_to_array(coalesce(r.content_types, 'application/json'), ',')) AS ct)) END,
             'responses', jsonb_build_object(coalesce(r.ok_status, 200)::text, ok -> '200') || errors))
      FROM jsonb_to_recordset(routes) AS r(method text, path text, api_function text, summary text,
                                           query_parameters text, content_types text,
                                           needs_token boolean, ok_status integer)
      LEFT JOIN fn ON fn.name = r.api_function
  )
  SELECT jsonb_object_agg(o.path, o.ops ORDER BY o.path) INTO paths
    FROM (SELECT path, jsonb_object_agg(method, op) AS ops FROM operation GROUP BY path) o;

  RETURN jsonb_build_object(
    'openapi', '3.1.0',
    'info', jsonb_build_object(
      'title', 'enterprise_lab',
      'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'),
      'description', 'The HTTP interface of the enterprise_lab extension: every function of schema api as POST /rpc/<name> (PostgREST''s contract, one transaction per call), and the built-in gateway''s other routes. Generated from the database''s catalog by api.openapi().'),
    'servers', '[{"url": "/"}]'::jsonb,
    'tags', '[{"name": "rpc", "description": "Functions of schema api, called with POST /rpc/<name> and a JSON object."}]'::jsonb,
    'paths', coalesce(paths, '{}'),
    'components', jsonb_build_object(
      'securitySchemes', '{"bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "HS256 token whose role claim names lab_operator, lab_auditor or lab_admin; without a token a request runs as the anonymous role."}}'::jsonb,
      'schemas', '{"Error": {"type": "object", "description": "PostgREST''s error body.", "required": ["code", "message"], "properties": {"code": {"type": "string", "description": "SQLSTATE, or PGRSTnnn for the gateway''s own refusals."}, "message": {"type": "string"}, "details": {"type": ["string", "null"]}, "hint": {"type": ["string", "null"]}}}}'::jsonb,
      'responses', (SELECT jsonb_object_agg(e.name, jsonb_build_object(
                             'description', e.description,
                             'content', '{"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}'::jsonb))
                      FROM (VALUES
                        ('BadRequest', 'Invalid input (SQLSTATE 22xxx, 23502, 23514, P0001, ...).'),
                        ('Unauthorized', 'No token, or a refused one, for a function the anonymous role may not call (42501).'),
                        ('Forbidden', 'The token''s role may not call the function or change the row (42501).'),
                        ('NotFound', 'No such function or row.'),
                        ('Conflict', 'Duplicate or dangling reference (23505, 23503).'),
                        ('ContentTooLarge', 'The body exceeds enterprise_lab.http_max_body.'),
                        ('ServerError', 'An error on the server''s side; the server log has the details.'),
                        ('Unavailable', 'The database or the extension is not available.')) AS e(name, description))));
END $$;
COMMENT ON FUNCTION enterprise_lab.openapi_document(jsonb) IS
  'api.openapi() helper: the OpenAPI 3.1 document of the api functions and the given routes (a JSON array of enterprise_lab.http_routes() rows; missing keys are NULL); rejects a malformed route (22023).';
REVOKE ALL ON FUNCTION enterprise_lab.openapi_document(jsonb) FROM PUBLIC;

CREATE FUNCTION api.openapi(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('openapi', body, '{}');
  RETURN enterprise_lab.openapi_document(
    coalesce((SELECT jsonb_agg(to_jsonb(r)) FROM enterprise_lab.http_routes() r), '[]'));
END $$;
COMMENT ON FUNCTION api.openapi(jsonb) IS
  'OpenAPI 3.1 description of the HTTP interface, generated from the catalog: every api function as POST /rpc/<name> (summary and description from its COMMENT) and the built-in gateway''s other routes (enterprise_lab.http_routes()). GET /openapi.json serves it. Body: {}.';
REVOKE ALL ON FUNCTION api.openapi(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.openapi(jsonb) TO lab_anon, lab_operator, lab_auditor, lab_admin;

-- webhook delivery throughput
-- Expired leases get an index of their own, so that the claim no longer
-- walks past every delivery in flight; the claim and the recording of
-- outcomes become PL/pgSQL for plans kept across calls.
DROP INDEX integration.deliveries_due_idx;
-- The claim walks the waiting deliveries oldest first, and finds leases
-- that ran out by their end: the deliveries in flight (up to
-- enterprise_lab.delivery_batch_size) are never walked past.
CREATE INDEX deliveries_due_idx ON integration.deliveries (event_seq)
  WHERE status IN ('pending', 'failed');
-- In flight, said as lease_until IS NOT NULL (the same, by a CHECK): no
-- other index's predicate is implied by it, nor is this one by a status.
CREATE INDEX deliveries_leased_idx ON integration.deliveries (lease_until)
  WHERE lease_until IS NOT NULL;

CREATE OR REPLACE FUNCTION integration.claim_deliveries(max_deliveries integer, lease interval)
RETURNS TABLE (id uuid, attempt integer, url text, secret text, header_lines text[],
               timeout_ms integer, body text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  -- Its cost counts the order check for every waiting delivery, as the
  -- event claim's does (src/process.c): no backlog may make it compile.
  SET jit = off AS $$
DECLARE
  -- A value, not clock_timestamp() itself, so that the index can use it.
  due_by timestamptz := clock_timestamp();
BEGIN
  RETURN QUERY
  WITH candidate AS (
    (SELECT d.id
       FROM integration.deliveries d
       JOIN integration.subscriptions s ON s.id = d.subscription_id
      WHERE d.status IN ('pending', 'failed') AND d.next_attempt_at <= due_by
        AND s.enabled AND s.paused_at IS NULL
        -- The first unfinished delivery of its pair, asked so that the
        -- planner probes deliveries_unfinished_idx by pair (a NOT EXISTS
        -- anti-join may read the whole partial index for every row).
        AND d.event_seq = (SELECT min(p.event_seq) FROM integration.deliveries p
                            WHERE p.subscription_id = d.subscription_id
                              AND p.submission_id = d.submission_id
                              AND p.status IN ('pending', 'in_flight', 'failed', 'dead_letter'))
      ORDER BY d.event_seq
      LIMIT max_deliveries)
    UNION ALL
    (SELECT d.id
       FROM integration.deliveries d
       JOIN integration.subscriptions s ON s.id = d.subscription_id
      WHERE d.lease_until <= due_by  -- in flight, lease run out
        AND s.enabled AND s.paused_at IS NULL
      ORDER BY d.lease_until
      LIMIT max_deliveries)),
  -- Locked, and checked again as locked.  The candidates are looked up by
  -- id: the status is tested in one expression, which matches no partial
  -- index's predicate, so the planner cannot read one of those whole
  -- instead (it did, for every candidate, once ANALYZE saw them nearly
  -- empty of live rows).
  due AS (
    SELECT d.id
      FROM candidate c
      JOIN integration.deliveries d ON d.id = c.id
      JOIN integration.subscriptions s ON s.id = d.subscription_id
     WHERE CASE WHEN d.status = 'in_flight' THEN d.lease_until <= due_by
                WHEN d.status IN ('pending', 'failed') THEN d.next_attempt_at <= due_by
                ELSE false END
       AND s.enabled AND s.paused_at IS NULL
       AND d.event_seq = (SELECT min(p.event_seq) FROM integration.deliveries p
                           WHERE p.subscription_id = d.subscription_id
                             AND p.submission_id = d.submission_id
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
    RETURNING d.id, d.attempts, d.subscription_id, d.payload, d.event_seq),
  -- Once per subscription, not per delivery.
  target AS MATERIALIZED (
    SELECT s.id, s.url, k.secret, s.timeout_ms,
           ARRAY(SELECT h.key || ': ' || h.value FROM jsonb_each_text(s.headers) h ORDER BY h.key) AS header_lines
      FROM integration.subscriptions s
      JOIN integration.subscription_secrets k ON k.subscription_id = s.id
     WHERE s.id IN (SELECT l.subscription_id FROM leased l))
  SELECT l.id, l.attempts, t.url, t.secret, t.header_lines, t.timeout_ms, l.payload::text
    FROM leased l
    JOIN target t ON t.id = l.subscription_id
   ORDER BY l.event_seq;
END $$;

CREATE OR REPLACE FUNCTION integration.record_delivery_outcomes(
  ids uuid[], attempts integer[], http_statuses integer[], errors text[], excerpts text[],
  retry_after_seconds integer[], durations_ms double precision[],
  max_attempts integer, backoff_base_ms integer, backoff_max_ms integer, failure_threshold integer)
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  recorded integer;
BEGIN
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
      -- "In flight" said in a form that no partial index's predicate
      -- matches: with status = 'in_flight' the plan walked an index of
      -- every delivery in flight instead of looking up the answered ones.
      FROM o JOIN integration.deliveries d
        ON d.id = o.id AND d.attempts = o.attempt
       AND CASE WHEN d.lease_until IS NULL THEN false ELSE true END),
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
  SELECT count(*)::integer INTO recorded FROM upd;
  RETURN recorded;
END $$;

-- distribution keys
-- Every primary, unique and foreign key of a lifecycle table includes the
-- root key submission_id (second, so look-ups by the first column keep
-- their index), which Citus requires of a distributed table.  The columns
-- before it are unique on their own (uuids, sequence numbers, keys that
-- contain the submission), so no key means anything else.
ALTER TABLE document_repo.documents DROP CONSTRAINT documents_service_request_id_fkey;
ALTER TABLE operational.sla_breaches DROP CONSTRAINT sla_breaches_case_id_fkey;

ALTER TABLE source_system.service_requests
  DROP CONSTRAINT service_requests_pkey,
  DROP CONSTRAINT service_requests_request_number_key,
  ADD CONSTRAINT service_requests_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT service_requests_request_number_key UNIQUE (request_number, submission_id);
ALTER TABLE integration.events
  DROP CONSTRAINT events_pkey,
  DROP CONSTRAINT events_seq_key,
  ADD CONSTRAINT events_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT events_seq_key UNIQUE (seq, submission_id);
ALTER TABLE integration.sync_logs
  DROP CONSTRAINT sync_logs_pkey,
  ADD CONSTRAINT sync_logs_pkey PRIMARY KEY (id, submission_id);
ALTER TABLE integration.deliveries
  DROP CONSTRAINT deliveries_pkey,
  DROP CONSTRAINT deliveries_once_per_event,
  ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT deliveries_once_per_event UNIQUE (subscription_id, event_id, submission_id);
ALTER TABLE operational.operation_cases
  DROP CONSTRAINT operation_cases_pkey,
  DROP CONSTRAINT operation_cases_service_request_id_key,
  DROP CONSTRAINT operation_cases_external_reference_key,
  ADD CONSTRAINT operation_cases_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT operation_cases_service_request_id_key UNIQUE (service_request_id, submission_id),
  ADD CONSTRAINT operation_cases_external_reference_key UNIQUE (external_reference, submission_id);
ALTER TABLE operational.case_status_history
  DROP CONSTRAINT case_status_history_pkey,
  ADD CONSTRAINT case_status_history_pkey PRIMARY KEY (id, submission_id);
ALTER TABLE canonical.business_objects
  DROP CONSTRAINT business_objects_pkey,
  DROP CONSTRAINT business_objects_source_unique,
  ADD CONSTRAINT business_objects_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT business_objects_source_unique UNIQUE (source_system, source_reference, submission_id);
ALTER TABLE canonical.lineage_records
  DROP CONSTRAINT lineage_records_pkey,
  ADD CONSTRAINT lineage_records_pkey PRIMARY KEY (from_id, to_id, relationship, submission_id);
ALTER TABLE document_repo.documents
  DROP CONSTRAINT documents_pkey,
  DROP CONSTRAINT documents_object_unique,
  ADD CONSTRAINT documents_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT documents_service_request_id_fkey FOREIGN KEY (service_request_id, submission_id)
    REFERENCES source_system.service_requests (id, submission_id),
  ADD CONSTRAINT documents_object_unique UNIQUE (bucket, object_key, submission_id);
ALTER TABLE operational.sla_breaches
  DROP CONSTRAINT sla_breaches_pkey,
  DROP CONSTRAINT sla_breaches_once_per_case,
  ADD CONSTRAINT sla_breaches_pkey PRIMARY KEY (id, submission_id),
  ADD CONSTRAINT sla_breaches_case_id_fkey FOREIGN KEY (case_id, submission_id)
    REFERENCES operational.operation_cases (id, submission_id),
  ADD CONSTRAINT sla_breaches_once_per_case UNIQUE (case_id, submission_id);

-- The history rows carry their case's team, and operators read them by it:
-- the same rows as before, with no subquery in the policy.
ALTER TABLE operational.case_status_history ADD COLUMN team_code text;
UPDATE operational.case_status_history h SET team_code = c.team_code
  FROM operational.operation_cases c WHERE c.id = h.case_id AND c.submission_id = h.submission_id;
ALTER TABLE operational.case_status_history ALTER COLUMN team_code SET NOT NULL;
DROP POLICY history_read_own_teams ON operational.case_status_history;
CREATE POLICY history_read_own_teams ON operational.case_status_history
  FOR SELECT TO lab_operator USING (enterprise_lab.request_may_change_team(team_code));
COMMENT ON POLICY history_read_own_teams ON operational.case_status_history IS
  'An operator reading the table sees the history of the cases it sees.';

CREATE OR REPLACE FUNCTION operational.record_status_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO operational.case_status_history
         (submission_id, case_id, previous_status, new_status, changed_by, change_reason, team_code)
  VALUES (NEW.submission_id, NEW.id, OLD.processing_status, NEW.processing_status,
          NEW.status_changed_by, NEW.status_change_reason, NEW.team_code);

  INSERT INTO integration.events
         (submission_id, event_type, source_system, aggregate_type, aggregate_id, payload)
  VALUES (NEW.submission_id, 'OperationalCaseStatusChanged', 'operational', 'operation_case', NEW.id,
          jsonb_build_object('case_id', NEW.id,
                             'external_reference', NEW.external_reference,
                             'previous_status', OLD.processing_status,
                             'new_status', NEW.processing_status,
                             'changed_by', NEW.status_changed_by,
                             'change_reason', NEW.status_change_reason));
  RETURN NULL;
END $$;

-- distribute
CREATE FUNCTION enterprise_lab.distribution_plan()
RETURNS TABLE (step integer, relation regclass, layout text, distribution_column name)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT (row_number() OVER ())::integer, p.relation::regclass, p.layout, p.distribution_column::name
    FROM (VALUES
      -- Referenced tables before the tables that reference them.
      ('reference.customers', 'reference', NULL),
      ('reference.agreements', 'reference', NULL),
      ('reference.request_types', 'reference', NULL),
      ('reference.priorities', 'reference', NULL),
      ('reference.teams', 'reference', NULL),
      ('reference.intake_methods', 'reference', NULL),
      ('reference.document_types', 'reference', NULL),
      ('operational.case_statuses', 'reference', NULL),
      ('operational.status_transitions', 'reference', NULL),
      ('operational.role_teams', 'reference', NULL),
      ('operational.sla_policies', 'reference', NULL),
      ('canonical.status_map', 'reference', NULL),
      ('integration.event_handlers', 'reference', NULL),
      ('integration.subscriptions', 'reference', NULL),
      ('integration.subscription_secrets', 'reference', NULL),
      ('intake.submissions', 'distributed', 'submission_id'),
      ('source_system.service_requests', 'distributed', 'submission_id'),
      ('integration.events', 'distributed', 'submission_id'),
      ('integration.sync_logs', 'distributed', 'submission_id'),
      ('integration.deliveries', 'distributed', 'submission_id'),
      ('operational.operation_cases', 'distributed', 'submission_id'),
      ('operational.case_status_history', 'distributed', 'submission_id'),
      ('operational.sla_breaches', 'distributed', 'submission_id'),
      ('canonical.business_objects', 'distributed', 'submission_id'),
      ('canonical.lineage_records', 'distributed', 'submission_id'),
      ('document_repo.documents', 'distributed', 'submission_id')
    ) AS p (relation, layout, distribution_column)
$$;
COMMENT ON FUNCTION enterprise_lab.distribution_plan() IS
  'What enterprise_lab.distribute() does, in order: each table becomes a Citus reference table, or is distributed by submission_id colocated with intake.submissions.';

CREATE FUNCTION enterprise_lab.distribute() RETURNS TABLE (relation regclass, layout text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  p record;
  fk record;
  todo regclass[];
  fks jsonb := '[]';
  trg record;
  quiet jsonb := '[]';
  failed text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
    RAISE EXCEPTION 'Citus is not installed in database "%"', current_database()
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'enterprise_lab.distribute() turns the tables of enterprise_lab into Citus reference and distributed tables.',
            HINT = 'Put citus first in shared_preload_libraries (''citus,enterprise_lab''), CREATE EXTENSION citus before enterprise_lab, '
                   'add the worker nodes with citus_add_node(), then call distribute() on the coordinator.';
  END IF;
  IF NOT pg_catalog.citus_is_coordinator() THEN
    RAISE EXCEPTION 'this node is not the Citus coordinator'
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Call enterprise_lab.distribute() on the coordinator (citus_set_coordinator_host() names it).';
  END IF;

  -- Also for a worker node added since the last call.
  PERFORM enterprise_lab.distribute_sequences();

  SELECT array_agg(d.relation ORDER BY d.step) INTO todo
    FROM enterprise_lab.distribution_plan() d
   WHERE NOT EXISTS (SELECT 1 FROM pg_dist_partition c WHERE c.logicalrelid = d.relation);
  IF todo IS NULL THEN
    RETURN;
  END IF;

  -- The lifecycle's triggers (the service request of a submission, the
  -- events of a request, the status history, the counts) run on the shard
  -- of their row, on the node that holds it, with their row's colocated
  -- shards local: Citus refuses to convert a table with triggers unless
  -- told that they are meant.
  PERFORM set_config('citus.enable_unsafe_triggers', 'on', true);
  -- One connection per node for the whole transaction: Citus requires it
  -- once a table in it has a foreign key to a reference table, and the
  -- foreign keys come back at the end of this one.
  PERFORM set_config('citus.multi_shard_modify_mode', 'sequential', true);

  -- A local table with a foreign key to a table that becomes a reference
  -- table would itself be converted, into a Citus local table, and later
  -- replaced by a copy to distribute it -- which the extension's views
  -- that depend on it forbid.  So the foreign keys go first and come back,
  -- the same, once every table has its layout.
  FOR fk IN
    SELECT c.conrelid::regclass AS rel, c.conname, pg_get_constraintdef(c.oid) AS def
      FROM pg_constraint c
     WHERE c.contype = 'f' AND (c.conrelid = ANY (todo) OR c.confrelid = ANY (todo))
     ORDER BY c.conrelid::regclass::text, c.conname
  LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.rel, fk.conname);
    -- The worker nodes' copies of the extension's tables, made by CREATE
    -- EXTENSION there, become the tables Citus routes through on those
    -- nodes: they lose the key too, or it could not come back.
    SELECT string_agg(format('%s:%s: %s', w.nodename, w.nodeport, w.result), '; ') INTO failed
      FROM pg_catalog.run_command_on_workers(
             format('ALTER TABLE %s DROP CONSTRAINT IF EXISTS %I', fk.rel, fk.conname)) w
     WHERE NOT w.success;
    IF failed IS NOT NULL THEN
      RAISE EXCEPTION 'a worker node could not drop foreign key % of % for the conversion', fk.conname, fk.rel
        USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = failed,
              HINT = 'Every worker node must be reachable and have enterprise_lab at the coordinator''s version.';
    END IF;
    fks := fks || jsonb_build_object('rel', fk.rel::text, 'name', fk.conname, 'def', fk.def);
  END LOOP;

  -- Citus copies the rows of a table into its shards, where the table's
  -- triggers fire: the lifecycle's own (a submission's service request, a
  -- request's event) would write again what is already there, into the
  -- worker nodes' copies of tables not yet converted.  They are off for the
  -- copy.  The count triggers stay on: each node counts the rows copied to
  -- it, and the coordinator, which keeps none of them, forgets its counts.
  FOR trg IN
    SELECT t.tgrelid::regclass AS rel, t.tgname
      FROM pg_trigger t
     WHERE t.tgrelid = ANY (todo) AND NOT t.tgisinternal AND t.tgenabled <> 'D'
       AND t.tgfoid <> ALL (ARRAY(SELECT f.oid FROM pg_proc f
                                   WHERE f.pronamespace = 'dashboard'::regnamespace AND f.proname LIKE 'count\_%'))
     ORDER BY 1, 2
  LOOP
    EXECUTE format('ALTER TABLE %s DISABLE TRIGGER %I', trg.rel, trg.tgname);
    quiet := quiet || jsonb_build_object('rel', trg.rel::text, 'name', trg.tgname);
  END LOOP;
  DELETE FROM dashboard.status_count_slots c
   USING (VALUES ('intake', 'intake.submissions'), ('source_system', 'source_system.service_requests'),
                 ('integration', 'integration.events'), ('operational', 'operational.operation_cases'),
                 ('canonical', 'canonical.business_objects')) AS l (layer, rel)
   WHERE c.layer = l.layer AND l.rel::regclass = ANY (todo);

  FOR p IN SELECT * FROM enterprise_lab.distribution_plan() d WHERE d.relation = ANY (todo) ORDER BY d.step LOOP
    IF p.layout = 'reference' THEN
      PERFORM pg_catalog.create_reference_table(p.relation);
    ELSE
      PERFORM pg_catalog.create_distributed_table(p.relation, p.distribution_column,
        colocate_with => CASE WHEN p.relation = 'intake.submissions'::regclass THEN 'default'
                              ELSE 'intake.submissions' END);
    END IF;
    relation := p.relation;
    layout := p.layout;
    RETURN NEXT;
  END LOOP;

  FOR trg IN SELECT * FROM jsonb_to_recordset(quiet) AS q (rel text, name text) LOOP
    EXECUTE format('ALTER TABLE %s ENABLE TRIGGER %I', trg.rel, trg.name);
  END LOOP;
  -- The coordinator's copy of the rows is no longer read: Citus reads the
  -- shards.  (No foreign key refers to them at this point.)
  FOR p IN SELECT * FROM enterprise_lab.distribution_plan() d
            WHERE d.relation = ANY (todo) AND d.layout = 'distributed' ORDER BY d.step DESC LOOP
    PERFORM pg_catalog.truncate_local_data_after_distributing_table(p.relation);
  END LOOP;

  FOR fk IN SELECT * FROM jsonb_to_recordset(fks) AS f (rel text, name text, def text) LOOP
    EXECUTE format('ALTER TABLE %s ADD CONSTRAINT %I %s', fk.rel, fk.name, fk.def);
  END LOOP;
END
$$;
COMMENT ON FUNCTION enterprise_lab.distribute() IS
  'On a Citus coordinator: make the reference data reference tables and distribute every lifecycle table by submission_id, colocated with intake.submissions. Returns the tables it converted; a table already converted is left as it is.';

-- status counts in C
-- The count triggers are C (see "The count triggers" above); they count a
-- transaction's count statements in the backend, not in a setting, so
-- fold_count_parts() no longer records that it ran.
CREATE OR REPLACE FUNCTION enterprise_lab.fold_count_parts() RETURNS void
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
END $$;

-- visible text in C
-- The same regular expression in C (src/visible_text.c): the CHECK
-- constraints of intake.submissions no longer parse a SQL function's body
-- for every statement.
CREATE OR REPLACE FUNCTION enterprise_lab.has_visible_text(value text) RETURNS boolean
  AS 'MODULE_PATHNAME', 'el_has_visible_text' LANGUAGE C IMMUTABLE STRICT PARALLEL SAFE;

-- interfaces through the Citus coordinator
-- Every join of two lifecycle tables is on submission_id too, a row lock
-- names its submission, one statement per distributed read; the counts and
-- workers are read from every node (src/sql/10_nodes.sql).

-- What tells a Citus coordinator from any other node.  The node_* functions
-- below read this node's own rows directly where it is false (a single
-- node costs what it did before), and every node's through
-- enterprise_lab.on_every_node() where it is true.
CREATE FUNCTION enterprise_lab.is_distributed() RETURNS boolean
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  distributed boolean := false;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'citus') THEN
    -- Citus's catalog exists only where Citus is installed: dynamic SQL.
    EXECUTE 'SELECT pg_catalog.citus_is_coordinator()
                AND EXISTS (SELECT 1 FROM pg_catalog.pg_dist_partition
                             WHERE logicalrelid = ''intake.submissions''::regclass)'
       INTO distributed;
  END IF;
  RETURN distributed;
END $$;
COMMENT ON FUNCTION enterprise_lab.is_distributed() IS
  'True on a Citus coordinator whose lifecycle tables are distributed (enterprise_lab.distribute() has run); false on a single node and on a Citus worker node.';

CREATE FUNCTION enterprise_lab.on_every_node(query text)
RETURNS TABLE (node text, rows jsonb, error text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- A node that does not answer is a row with its error, not a failure:
  -- the status of the others is what an operator needs then.  Citus's
  -- catalog exists only where Citus is installed: dynamic SQL.
  RETURN QUERY EXECUTE
    'SELECT coalesce(n.nodename || '':'' || n.nodeport, ''coordinator''),
            CASE WHEN r.success THEN r.result::jsonb END,
            CASE WHEN NOT r.success THEN r.result END
       FROM pg_catalog.run_command_on_all_nodes($1) r
       -- nodeid 0: a coordinator that is not in the metadata.
       LEFT JOIN pg_catalog.pg_dist_node n ON n.nodeid = r.nodeid
      ORDER BY n.groupid NULLS FIRST, n.nodeid'
    USING format('SELECT coalesce(jsonb_agg(to_jsonb(x)), ''[]'') FROM (%s) x', query);
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.on_every_node(text) FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.on_every_node(text) IS
  'On a Citus coordinator: run a query on every node (run_command_on_all_nodes, one connection per node) and return its rows as a jsonb array per node (host:port), or the node''s error.';

-- One read of every node per statement: api.metrics reads the counts, the
-- workers and the throughput of every node (through dashboard.status_counts,
-- dashboard.processing_metrics and its list of workers), and each read of
-- every node opens a connection to each.  Kept in a transaction-local
-- setting for the rest of the statement that made it.
CREATE FUNCTION enterprise_lab.node_snapshot()
RETURNS TABLE (node text, counts jsonb, workers jsonb, completed_last_minute bigint, error text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  cached jsonb := nullif(current_setting('enterprise_lab_nodes.snapshot', true), '')::jsonb;
  nodes jsonb;
BEGIN
  IF cached ->> 'statement' = statement_timestamp()::text THEN
    nodes := cached -> 'nodes';
  ELSE
    SELECT coalesce(jsonb_agg(jsonb_build_object('node', o.node, 'snapshot', o.rows -> 0, 'error', o.error)), '[]')
      INTO nodes
      FROM enterprise_lab.on_every_node(
             'SELECT (SELECT coalesce(jsonb_agg(c), ''[]'')
                        FROM (SELECT layer, status, sum(count)::bigint AS count FROM dashboard.status_count_slots
                               GROUP BY layer, status HAVING sum(count) <> 0) c) AS counts,
                     (SELECT coalesce(jsonb_agg(w), ''[]'') FROM integration.worker_status w) AS workers,
                     integration.completed_last_minute() AS completed_last_minute') o;
    PERFORM set_config('enterprise_lab_nodes.snapshot',
                       jsonb_build_object('statement', statement_timestamp()::text, 'nodes', nodes)::text, true);
  END IF;
  RETURN QUERY
    SELECT n ->> 'node', n -> 'snapshot' -> 'counts', n -> 'snapshot' -> 'workers',
           (n -> 'snapshot' ->> 'completed_last_minute')::bigint, n ->> 'error'
      FROM jsonb_array_elements(nodes) n;
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.node_snapshot() FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.node_snapshot() IS
  'On a Citus coordinator: the counts, workers and completed_last_minute of every node, per node, read once per statement.';

CREATE FUNCTION enterprise_lab.node_status_counts()
RETURNS TABLE (node text, layer text, status text, count bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT enterprise_lab.is_distributed() THEN
    RETURN QUERY
      SELECT 'local'::text, c.layer, c.status, sum(c.count)::bigint FROM dashboard.status_count_slots c
       GROUP BY c.layer, c.status HAVING sum(c.count) <> 0;
    RETURN;
  END IF;
  RETURN QUERY
    SELECT n.node, c.layer, c.status, c.count
      FROM enterprise_lab.node_snapshot() n
     CROSS JOIN LATERAL jsonb_to_recordset(n.counts) AS c (layer text, status text, count bigint);
END $$;
COMMENT ON FUNCTION enterprise_lab.node_status_counts() IS
  'The maintained counts (dashboard.status_count_slots) of every node, per node (host:port on a Citus coordinator, else local): rows per status in each layer of the rows that node holds.';

CREATE FUNCTION enterprise_lab.node_worker_status()
RETURNS TABLE (node text, worker integer, pid integer, state text, events_processed bigint,
               events_failed bigint, events_dead_lettered bigint, batches bigint,
               started_at timestamptz, last_batch_at timestamptz, last_batch_events integer,
               last_batch_ms double precision, error text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT enterprise_lab.is_distributed() THEN
    RETURN QUERY SELECT 'local'::text, w.*, NULL::text FROM integration.worker_status w;
    RETURN;
  END IF;
  RETURN QUERY
    SELECT n.node, w.worker, w.pid, w.state, w.events_processed, w.events_failed, w.events_dead_lettered,
           w.batches, w.started_at, w.last_batch_at, w.last_batch_events, w.last_batch_ms, n.error
      FROM enterprise_lab.node_snapshot() n
      LEFT JOIN LATERAL jsonb_to_recordset(n.workers) AS w (
             worker integer, pid integer, state text, events_processed bigint, events_failed bigint,
             events_dead_lettered bigint, batches bigint, started_at timestamptz, last_batch_at timestamptz,
             last_batch_events integer, last_batch_ms double precision) ON true
     WHERE w.worker IS NOT NULL OR n.error IS NOT NULL;
END $$;
COMMENT ON FUNCTION enterprise_lab.node_worker_status() IS
  'integration.worker_status of every node, per node (a node that did not answer: one row with its error).';

CREATE FUNCTION enterprise_lab.node_completed_last_minute() RETURNS TABLE (node text, completed bigint)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT enterprise_lab.is_distributed() THEN
    RETURN QUERY SELECT 'local'::text, integration.completed_last_minute();
    RETURN;
  END IF;
  RETURN QUERY SELECT n.node, n.completed_last_minute FROM enterprise_lab.node_snapshot() n;
END $$;
COMMENT ON FUNCTION enterprise_lab.node_completed_last_minute() IS
  'integration.completed_last_minute() of every node, per node.';

CREATE OR REPLACE VIEW dashboard.submission_lifecycle AS
SELECT s.submission_id,
       s.created_at          AS submitted_at,
       s.intake_method,
       s.requester_name,
       s.requester_email,
       s.request_description AS description,
       s.request_type        AS request_type_code,
       s.priority            AS priority_code,
       s.assigned_team       AS team_code,
       cu.code               AS customer_code,
       cu.name               AS customer_name,
       ag.agreement_number,
       s.submission_status   AS intake_status,
       r.id                  AS service_request_id,
       r.request_number,
       r.lifecycle_status    AS source_status,
       c.id                  AS case_id,
       c.external_reference  AS case_reference,
       c.processing_status   AS case_status,
       b.id                  AS business_object_id,
       b.lifecycle_status    AS canonical_status,
       (SELECT count(*) FROM integration.events e WHERE e.submission_id = s.submission_id) AS event_count,
       -- The statuses are filters, not conditions: with a condition on the
       -- status the planner may read a partial index (events_due_idx) whole,
       -- dead entries and all, for every row, instead of the submission's
       -- few events.
       (SELECT count(*) FILTER (WHERE e.event_status IN ('pending', 'failed')) FROM integration.events e
         WHERE e.submission_id = s.submission_id) AS unfinished_events,
       (SELECT count(*) FILTER (WHERE e.event_status = 'dead_letter') FROM integration.events e
         WHERE e.submission_id = s.submission_id) AS dead_letters,
       (SELECT max(l.created_at) FROM integration.sync_logs l WHERE l.submission_id = s.submission_id) AS last_synced_at
  FROM intake.submissions s
  JOIN reference.customers cu ON cu.id = s.customer_id
  LEFT JOIN reference.agreements ag ON ag.id = s.agreement_id
  LEFT JOIN source_system.service_requests r ON r.submission_id = s.submission_id
  -- Every join of two lifecycle tables is on submission_id as well, which
  -- keeps it on one node after enterprise_lab.distribute().
  LEFT JOIN operational.operation_cases c ON c.submission_id = s.submission_id AND c.service_request_id = r.id
  LEFT JOIN canonical.business_objects b ON b.submission_id = s.submission_id AND b.object_type = 'service_request';
COMMENT ON VIEW dashboard.submission_lifecycle IS 'One row per submission with its state in every layer.';

CREATE OR REPLACE VIEW dashboard.status_counts AS
SELECT layer, status, sum(count)::bigint AS count
  FROM enterprise_lab.node_status_counts()
 WHERE layer IN ('source_system', 'integration', 'operational', 'canonical')
 GROUP BY layer, status
HAVING sum(count) <> 0;
COMMENT ON VIEW dashboard.status_counts IS 'Row counts per status in each layer, summed over every node (exact; maintained by triggers, see dashboard.status_count_slots and enterprise_lab.node_status_counts()).';

CREATE OR REPLACE VIEW dashboard.processing_metrics AS
WITH events AS (
  SELECT status, sum(count)::bigint AS n FROM enterprise_lab.node_status_counts()
   WHERE layer = 'integration' GROUP BY status
)
SELECT (SELECT coalesce(sum(n), 0)::bigint FROM events WHERE status IN ('pending', 'failed')) AS pending_events,
       (SELECT coalesce(sum(n), 0)::bigint FROM events WHERE status = 'failed') AS retrying_events,
       (SELECT coalesce(sum(n), 0)::bigint FROM events WHERE status = 'dead_letter') AS dead_letters,
       -- The oldest by seq is the first entry of the claim's index.
       (SELECT extract(epoch FROM now() - e.created_at)
          FROM integration.events e WHERE e.event_status IN ('pending', 'failed')
         ORDER BY e.seq LIMIT 1) AS oldest_pending_age_seconds,
       (SELECT sum(completed)::bigint FROM enterprise_lab.node_completed_last_minute()) AS completed_last_minute,
       (SELECT count(*) FROM integration.events e WHERE e.event_status = 'dead_letter') AS held_submissions,
       (SELECT count(*) FROM enterprise_lab.node_worker_status() w WHERE w.worker IS NOT NULL) AS workers_running;
COMMENT ON VIEW dashboard.processing_metrics IS
  'Queue health: pending and retrying events, dead letters, lag (oldest pending age), throughput (from shared memory), workers. Reads no more rows as the tables grow.';

CREATE OR REPLACE VIEW dashboard.sla_metrics AS
SELECT p.priority_code,
       p.resolution_time,
       coalesce(o.open_cases, 0) AS open_cases,
       coalesce(o.overdue_cases, 0) AS overdue_cases,
       coalesce(b.open_breaches, 0) AS open_breaches,
       coalesce(b.total_breaches, 0) AS total_breaches
  FROM operational.sla_policies p
  JOIN reference.priorities pr ON pr.code = p.priority_code
  LEFT JOIN (SELECT c.priority_code, count(*) AS open_cases,
                    count(*) FILTER (WHERE c.opened_at + cp.resolution_time < now()) AS overdue_cases
               FROM operational.operation_cases c
               JOIN operational.sla_policies cp ON cp.priority_code = c.priority_code
              WHERE c.processing_status IN (SELECT status FROM operational.case_statuses WHERE NOT is_terminal)
              GROUP BY c.priority_code) o ON o.priority_code = p.priority_code
  LEFT JOIN (SELECT x.priority_code, count(*) AS total_breaches,
                    count(*) FILTER (WHERE c.processing_status IN (SELECT status FROM operational.case_statuses
                                                                   WHERE NOT is_terminal)) AS open_breaches
               FROM operational.sla_breaches x
               LEFT JOIN operational.operation_cases c ON c.submission_id = x.submission_id AND c.id = x.case_id
              GROUP BY x.priority_code) b ON b.priority_code = p.priority_code
 ORDER BY pr.rank;
COMMENT ON VIEW dashboard.sla_metrics IS
  'SLA per priority: open cases, overdue cases, breaches still open and breaches ever flagged.';

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
      FROM enterprise_lab.node_status_counts() c WHERE c.layer = 'intake';
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
    'workers', coalesce((SELECT jsonb_agg(to_jsonb(w) ORDER BY w.node, w.worker)
                           FROM enterprise_lab.node_worker_status() w), '[]'));
END $$;
COMMENT ON FUNCTION api.metrics(jsonb) IS
  'Counts per status per layer, queue health (pending, retrying, dead letters, lag, throughput), the 100 longest-held submissions and worker status. Body: {}.';

CREATE OR REPLACE FUNCTION operational.escalate_sla_breaches(max_cases integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  pair record;
  flagged_now integer;
  n integer := 0;
BEGIN
  IF max_cases IS NULL OR max_cases < 1 THEN
    RAISE EXCEPTION 'max_cases must be at least 1'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The value given was %s.', coalesce(max_cases::text, 'NULL'));
  END IF;

  -- The job runs every minute, so it must not read every open case: for
  -- each policy (most urgent priority first) and open status, it reads the
  -- cases opened before now() - resolution_time, oldest first, a range of
  -- operation_cases_sla_idx planned with the bound's value.  That bound and
  -- the deadline, opened_at + resolution_time, agree except around a
  -- daylight saving change, where a case may be flagged up to an hour late,
  -- never early.
  --
  -- The unique key on case_id flags a breach once, even when two
  -- escalations run at the same time; the event's idempotency key makes its
  -- publication once as well.
  FOR pair IN
    SELECT p.priority_code, p.resolution_time, s.status
      FROM operational.sla_policies p
      JOIN reference.priorities pr ON pr.code = p.priority_code
      JOIN operational.case_statuses s ON NOT s.is_terminal
     ORDER BY pr.rank, s.status
  LOOP
    EXIT WHEN n >= max_cases;
    WITH overdue AS (
      SELECT c.id, c.submission_id, c.external_reference, c.priority_code, c.processing_status,
             c.opened_at, c.opened_at + pair.resolution_time AS deadline,
             enterprise_lab.uuid_v7() AS breach_id, enterprise_lab.uuid_v7() AS event_id
        FROM operational.operation_cases c
       WHERE c.processing_status = pair.status
         AND c.priority_code = pair.priority_code
         AND c.opened_at < now() - pair.resolution_time
         AND c.opened_at + pair.resolution_time < now()
         AND NOT EXISTS (SELECT 1 FROM operational.sla_breaches b
                          WHERE b.submission_id = c.submission_id AND b.case_id = c.id)
       ORDER BY c.opened_at
       LIMIT max_cases - n
    ), flagged AS (
      INSERT INTO operational.sla_breaches AS b
             (id, submission_id, case_id, priority_code, case_status, opened_at, deadline, event_id)
      SELECT o.breach_id, o.submission_id, o.id, o.priority_code, o.processing_status, o.opened_at,
             o.deadline, o.event_id
        FROM overdue o
      ON CONFLICT ON CONSTRAINT sla_breaches_once_per_case DO NOTHING
      RETURNING b.*
    )
    INSERT INTO integration.events AS e
           (id, submission_id, event_type, source_system, aggregate_type, aggregate_id, payload, idempotency_key)
    SELECT f.event_id, f.submission_id, 'OperationalCaseSlaBreached', 'operational', 'operation_case', f.case_id,
           jsonb_build_object('breach_id', f.id,
                              'case_id', f.case_id,
                              'external_reference', o.external_reference,
                              'priority', f.priority_code,
                              'case_status', f.case_status,
                              'opened_at', f.opened_at,
                              'deadline', f.deadline,
                              'detected_at', f.detected_at),
           'sla_breached:' || f.case_id
      FROM flagged f JOIN overdue o ON o.submission_id = f.submission_id AND o.id = f.case_id
    ON CONFLICT ON CONSTRAINT events_idempotency_key_unique DO NOTHING;
    GET DIAGNOSTICS flagged_now = ROW_COUNT;
    n := n + flagged_now;
  END LOOP;
  IF n > 0 THEN
    RAISE LOG 'enterprise_lab: % case(s) breached their SLA', n;
  END IF;
  RETURN n;
END $$;
COMMENT ON FUNCTION operational.escalate_sla_breaches(integer) IS
  'The SLA escalation job: flag up to max_cases non-terminal cases past their deadline (once each; the most urgent priority first, oldest first) and enqueue OperationalCaseSlaBreached for each; returns how many were flagged.';

-- webhook delivery replay and skip through the Citus coordinator
-- The row is found by id, then locked or updated by (id, submission_id).

CREATE OR REPLACE FUNCTION integration.replay_delivery(delivery_id uuid) RETURNS integration.deliveries
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integration.deliveries;
  sub uuid;
BEGIN
  -- The lock names the submission as well: Citus routes a FOR UPDATE to
  -- one shard only.
  SELECT x.submission_id INTO sub FROM integration.deliveries x WHERE x.id = delivery_id;
  SELECT * INTO d FROM integration.deliveries x WHERE x.id = delivery_id AND x.submission_id = sub FOR UPDATE;
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
   WHERE x.id = delivery_id AND x.submission_id = sub RETURNING * INTO d;
  RETURN d;
END $$;

CREATE OR REPLACE FUNCTION integration.skip_delivery(delivery_id uuid, reason text) RETURNS integration.deliveries
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integration.deliveries;
  sub uuid;
BEGIN
  IF reason IS NULL OR reason !~ '\S' THEN
    RAISE EXCEPTION 'a reason is required to skip a delivery'
      USING ERRCODE = 'not_null_violation', HINT = 'Say why the receiver may miss this event; it is kept as last_error.';
  END IF;
  -- The update names the submission as well, which routes it to the
  -- delivery's shard on Citus.
  SELECT x.submission_id INTO sub FROM integration.deliveries x WHERE x.id = delivery_id;
  UPDATE integration.deliveries x
     SET status = 'skipped', lease_until = NULL,
         last_error = left(format('skipped by %s: %s', enterprise_lab.request_subject(), reason), 1000)
   WHERE x.id = delivery_id AND x.submission_id = sub AND x.status IN ('dead_letter', 'failed', 'pending')
  RETURNING * INTO d;
  IF NOT FOUND THEN
    IF sub IS NOT NULL THEN
      RAISE EXCEPTION 'delivery % is in flight or finished and cannot be skipped', delivery_id
        USING ERRCODE = 'object_not_in_prerequisite_state';
    END IF;
    RAISE EXCEPTION 'delivery % does not exist', delivery_id USING ERRCODE = 'no_data_found';
  END IF;
  RETURN d;
END $$;

-- case status changes through the Citus coordinator
-- api.set_case_status decides itself who may change a case and writes who
-- and why into the row: on Citus the UPDATE and its triggers run on a
-- worker node, which knows neither the request's role and claims nor this
-- session's settings, and which a NOLOGIN owner could not connect to.  The
-- function belongs to the extension's owner again; lab_case_writer, its
-- grants and its policies go (the role itself is cluster-wide: other
-- databases may still use it).

CREATE OR REPLACE FUNCTION operational.check_status_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  allowed text;
BEGIN
  IF NEW.processing_status IS NOT DISTINCT FROM OLD.processing_status THEN
    -- set_case_status() to the status the case has: who changed it last,
    -- why and when stay.
    IF NEW.status_changed_at IS DISTINCT FROM OLD.status_changed_at THEN
      NEW.status_changed_by := OLD.status_changed_by;
      NEW.status_change_reason := OLD.status_change_reason;
      NEW.status_changed_at := OLD.status_changed_at;
    END IF;
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

  -- set_case_status() writes who and why into the row, with a new
  -- status_changed_at: the row is all this trigger sees on the node that
  -- holds it.  A direct UPDATE is recorded as made by the user that
  -- operational.changed_by names (else the current user), for the reason
  -- operational.change_reason gives.
  IF NEW.status_changed_at IS NOT DISTINCT FROM OLD.status_changed_at THEN
    NEW.status_changed_by := coalesce(nullif(current_setting('operational.changed_by', true), ''), current_user);
    NEW.status_change_reason := nullif(current_setting('operational.change_reason', true), '');
  END IF;
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
  sub uuid;
  changed_at timestamptz;
  updated integer;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM operational.case_statuses WHERE status = new_status) THEN
    RAISE EXCEPTION 'case status "%" does not exist', new_status
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('Known statuses: %s.', (SELECT string_agg(status, ', ' ORDER BY status) FROM operational.case_statuses)),
            HINT = 'See operational.case_statuses.';
  END IF;
  PERFORM operational.check_change_note(changed_by, change_reason);

  -- Who and why go into the row, with a time of change the row does not
  -- have yet (check_status_change() then records them): on Citus the
  -- trigger runs on the node that holds the case, which sees no setting of
  -- this session.  The update names the submission as well, which routes
  -- it to the case's shard.
  SELECT oc.submission_id INTO sub FROM operational.operation_cases oc WHERE oc.id = set_case_status.case_id;
  changed_at := clock_timestamp();
  UPDATE operational.operation_cases oc
     SET processing_status = set_case_status.new_status,
         status_changed_by = set_case_status.changed_by,
         status_change_reason = nullif(set_case_status.change_reason, ''),
         status_changed_at = changed_at
   WHERE oc.id = set_case_status.case_id AND oc.submission_id = sub
  RETURNING oc.* INTO c;
  GET DIAGNOSTICS updated = ROW_COUNT;

  IF updated = 0 THEN
    RAISE EXCEPTION 'case % does not exist', case_id
      USING ERRCODE = 'no_data_found',
            HINT = 'Cases are opened by the worker once the request is integrated; see operational.operation_cases.';
  END IF;
  RETURN c;
END $$;

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
  -- Who may change the case is decided here, where the request's role and
  -- claims are, before anything is written: on Citus the UPDATE runs on a
  -- worker node, in a session that knows neither.
  IF NOT enterprise_lab.request_may_change_team(before.team_code) THEN
    RAISE EXCEPTION '%: not allowed to change case % of team %', fn, before.external_reference, before.team_code
      USING ERRCODE = 'insufficient_privilege',
            DETAIL = format('Your teams: %s.',
                            coalesce(nullif(array_to_string(enterprise_lab.request_teams(), ', '), ''), 'none')),
            HINT = 'An operator changes the cases of its teams: the "teams" (or "team") claim of its JWT, or for a direct login the rows of operational.role_teams.';
  END IF;

  BEGIN
    after := operational.set_case_status(v_case, v_status, enterprise_lab.request_subject(), v_reason);
  EXCEPTION
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
DO $$
BEGIN
  EXECUTE format('ALTER FUNCTION api.set_case_status(jsonb) OWNER TO %I',
                 (SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'enterprise_lab'));
END $$;
-- Granted again, so that the extension's record of its privileges names
-- the new owner as a fresh install's does.
REVOKE ALL ON FUNCTION api.set_case_status(jsonb) FROM PUBLIC, lab_operator, lab_admin;
GRANT EXECUTE ON FUNCTION api.set_case_status(jsonb) TO lab_operator, lab_admin;

DROP POLICY cases_change_own_teams ON operational.operation_cases;
DROP POLICY history_written_with_change ON operational.case_status_history;
ALTER POLICY cases_read_all ON operational.operation_cases TO lab_auditor, lab_admin;
COMMENT ON POLICY cases_read_all ON operational.operation_cases IS 'Auditors and admins see every case.';
REVOKE UPDATE (processing_status) ON operational.operation_cases FROM lab_case_writer;
REVOKE SELECT ON operational.operation_cases, operational.case_statuses, operational.status_transitions,
  operational.role_teams FROM lab_case_writer;
REVOKE INSERT ON operational.case_status_history, integration.events FROM lab_case_writer;
REVOKE USAGE ON SEQUENCE operational.case_status_history_seq, integration.event_seq FROM lab_case_writer;
REVOKE ALL ON SEQUENCE operational.case_status_history_seq, integration.event_seq FROM PUBLIC;
REVOKE EXECUTE ON FUNCTION enterprise_lab.request_role(), enterprise_lab.request_access(),
  enterprise_lab.request_trusts_claims(), enterprise_lab.request_claims(), enterprise_lab.request_teams(),
  enterprise_lab.request_subject(), enterprise_lab.request_may_change_team(text) FROM lab_case_writer;
REVOKE USAGE ON SCHEMA enterprise_lab, operational, integration FROM lab_case_writer;

-- sequences of the worker nodes
-- After the conversion the lifecycle's triggers and workers run on the
-- worker nodes, where a default such as nextval('integration.event_seq')
-- draws from that node's own copy of the sequence, which CREATE EXTENSION
-- made there starting at 1: request numbers would repeat across nodes, and
-- a submission's next event could get a seq below those of its events made
-- on one node before the conversion.  So each worker node draws from a
-- range of its own above the coordinator's, (group id << 48) + 1 on, as
-- Citus does for the sequences it distributes itself.
CREATE FUNCTION enterprise_lab.distribute_sequences() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  failed text;
BEGIN
  SELECT string_agg(format('%s:%s: %s', w.nodename, w.nodeport, w.result), '; ') INTO failed
    FROM pg_catalog.run_command_on_workers($cmd$
      DO $do$
      DECLARE
        floor bigint := (SELECT groupid FROM pg_catalog.pg_dist_local_group)::bigint << 48;
        s regclass;
      BEGIN
        FOR s IN SELECT d.objid::regclass FROM pg_catalog.pg_depend d
                  WHERE d.refclassid = 'pg_catalog.pg_extension'::regclass
                    AND d.refobjid = (SELECT oid FROM pg_catalog.pg_extension WHERE extname = 'enterprise_lab')
                    AND d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'e'
                    AND (SELECT relkind FROM pg_catalog.pg_class WHERE oid = d.objid) = 'S'
        LOOP
          IF coalesce((SELECT q.last_value FROM pg_catalog.pg_sequences q
                        WHERE format('%I.%I', q.schemaname, q.sequencename)::regclass = s), 0) < floor THEN
            PERFORM pg_catalog.setval(s, floor);
          END IF;
        END LOOP;
      END $do$
    $cmd$) w
   WHERE NOT w.success;
  IF failed IS NOT NULL THEN
    RAISE EXCEPTION 'a worker node could not move its sequences to its own range'
      USING ERRCODE = 'object_not_in_prerequisite_state', DETAIL = failed,
            HINT = 'Every worker node must be reachable and have enterprise_lab at the coordinator''s version.';
  END IF;
END $$;
REVOKE ALL ON FUNCTION enterprise_lab.distribute_sequences() FROM PUBLIC;
COMMENT ON FUNCTION enterprise_lab.distribute_sequences() IS
  'enterprise_lab.distribute(): on every worker node, move each sequence of the extension to that node''s own range, (group id << 48) + 1 on, unless it is there already.';

COMMENT ON COLUMN source_system.service_requests.request_number IS 'Deterministic, human-readable number: SR-000001, SR-000002, ... (at least six digits).';

-- ---------------------------------------------------------------------------
-- time-ordered keys
-- The rows written at the event rate take version 7 UUIDs: their indexes
-- grow at their ends instead of at random pages (src/uuid_v7.c). Existing
-- keys stay as they are.
CREATE FUNCTION enterprise_lab.uuid_v7() RETURNS uuid
  AS 'MODULE_PATHNAME', 'el_uuid_v7' LANGUAGE C VOLATILE PARALLEL SAFE;
COMMENT ON FUNCTION enterprise_lab.uuid_v7() IS
  'A version 7 UUID (RFC 9562): Unix time in milliseconds, sub-millisecond time, 62 random bits; the keys one session makes ascend.';

ALTER TABLE intake.submissions ALTER COLUMN submission_id SET DEFAULT enterprise_lab.uuid_v7();
ALTER TABLE source_system.service_requests ALTER COLUMN id SET DEFAULT enterprise_lab.uuid_v7();
ALTER TABLE integration.events ALTER COLUMN id SET DEFAULT enterprise_lab.uuid_v7();
ALTER TABLE operational.operation_cases ALTER COLUMN id SET DEFAULT enterprise_lab.uuid_v7();
ALTER TABLE canonical.business_objects ALTER COLUMN id SET DEFAULT enterprise_lab.uuid_v7();
ALTER TABLE integration.deliveries ALTER COLUMN id SET DEFAULT enterprise_lab.uuid_v7();
ALTER TABLE operational.sla_breaches ALTER COLUMN id SET DEFAULT enterprise_lab.uuid_v7();

-- ---------------------------------------------------------------------------
-- SLA escalation by index
-- escalate_sla_breaches() (above) reads, per policy and open status, only the
-- cases past the deadline's start, where it read every open case each run.
DROP INDEX operational.operation_cases_status_opened_idx;
CREATE INDEX operation_cases_sla_idx ON operational.operation_cases (processing_status, priority_code, opened_at);

-- ---------------------------------------------------------------------------
-- retention by index
-- purge_completed_events() scanned and sorted the whole events table for
-- every batch; it now reads the completed events oldest first by index.
CREATE INDEX events_retention_idx ON integration.events (processed_at)
  WHERE event_status = 'completed';
