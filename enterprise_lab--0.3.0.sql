-- enterprise_lab: the extension's own schema (administration, shared helpers).
-- The install script is assembled from the files of src/sql/ in name order,
-- one file per system boundary, in lifecycle order.

\echo Use "CREATE EXTENSION enterprise_lab" to load this file. \quit

CREATE SCHEMA enterprise_lab;
COMMENT ON SCHEMA enterprise_lab IS
  'Administration of the enterprise_lab extension: status, maintenance, demo data.';

CREATE FUNCTION enterprise_lab.touch_updated_at() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  NEW.updated_at := now();
  RETURN NEW;
END $$;
COMMENT ON FUNCTION enterprise_lab.touch_updated_at() IS
  'Trigger: keeps updated_at current on every UPDATE.';

-- Rows the install script adds are "seeded"; a seeded row a user changes
-- becomes user data, which upgrade scripts leave alone (they change seed
-- rows only WHERE seeded).  Backups keep both kinds: see 94_backup.sql.
CREATE FUNCTION enterprise_lab.mark_user_modified() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NEW IS DISTINCT FROM OLD THEN
    NEW.seeded := false;
  END IF;
  RETURN NEW;
END $$;
COMMENT ON FUNCTION enterprise_lab.mark_user_modified() IS
  'Trigger: a changed seeded row becomes user data (seeded = false), which upgrades leave alone.';

-- Text a person would see.  Blank includes what looks blank: Unicode spaces
-- (no-break, ideographic, ...), zero-width characters, word joiner,
-- byte-order mark, soft hyphen, fillers and directional marks.
CREATE FUNCTION enterprise_lab.has_visible_text(value text) RETURNS boolean
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT value OPERATOR(pg_catalog.~)
    '[^[:space:]\u0085\u00A0\u00AD\u034F\u061C\u115F\u1160\u1680\u180E\u2000-\u200F\u2028-\u202F\u205F-\u206F\u3000\u3164\uFEFF\uFFA0]'
$$;
COMMENT ON FUNCTION enterprise_lab.has_visible_text(text) IS
  'Does the text contain a visible character? Spaces of every kind, zero-width and other invisible characters do not count.';
-- reference: master data the intake form chooses from (customers, their
-- agreements, request types, priorities, teams).  Small, rarely written
-- tables: with Citus they become reference tables, copied to every node.

CREATE SCHEMA reference;
COMMENT ON SCHEMA reference IS 'Master and reference data used to validate and enrich intake requests.';

CREATE TABLE reference.customers (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  code        text NOT NULL UNIQUE CONSTRAINT customers_code_format CHECK (code ~ '^[A-Z0-9][A-Z0-9-]{1,31}$'),
  name        text NOT NULL CONSTRAINT customers_name_not_blank CHECK (name ~ '\S' AND length(name) <= 200),
  contact_email text CONSTRAINT customers_contact_email_format CHECK (contact_email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  status      text NOT NULL DEFAULT 'active' CONSTRAINT customers_status_valid CHECK (status IN ('active', 'inactive')),
  seeded      boolean NOT NULL DEFAULT false,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.customers IS 'Customers that may submit requests.';

CREATE TABLE reference.agreements (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  customer_id      uuid NOT NULL REFERENCES reference.customers (id),
  agreement_number text NOT NULL UNIQUE,
  name             text NOT NULL CONSTRAINT agreements_name_not_blank CHECK (name ~ '\S'),
  valid_from       date NOT NULL,
  valid_to         date,
  status           text NOT NULL DEFAULT 'active' CONSTRAINT agreements_status_valid CHECK (status IN ('active', 'suspended', 'terminated')),
  seeded           boolean NOT NULL DEFAULT false,
  created_at       timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT agreements_validity CHECK (valid_to IS NULL OR valid_to >= valid_from),
  UNIQUE (id, customer_id)
);
CREATE INDEX agreements_customer_idx ON reference.agreements (customer_id);
COMMENT ON TABLE reference.agreements IS 'Service agreements; each belongs to one customer and is valid for a period.';

CREATE TABLE reference.request_types (
  code               text PRIMARY KEY CONSTRAINT request_types_code_format CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
  name               text NOT NULL,
  canonical_category text NOT NULL,
  description        text,
  active             boolean NOT NULL DEFAULT true,
  seeded             boolean NOT NULL DEFAULT false,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.request_types IS 'Kinds of request, each mapped to an enterprise (canonical) category.';

CREATE TABLE reference.priorities (
  code       text PRIMARY KEY,
  name       text NOT NULL,
  rank       integer NOT NULL UNIQUE,
  seeded     boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.priorities IS 'Request priorities, most urgent first by rank.';

CREATE TABLE reference.teams (
  code       text PRIMARY KEY CONSTRAINT teams_code_format CHECK (code ~ '^[a-z][a-z0-9_]{1,39}$'),
  name       text NOT NULL,
  email      text,
  active     boolean NOT NULL DEFAULT true,
  seeded     boolean NOT NULL DEFAULT false,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE reference.teams IS 'Teams that work operational cases.';

DO $$
DECLARE t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['customers', 'agreements', 'request_types', 'priorities', 'teams'] LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON reference.%I
                    FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified()', t || '_10_user_modified', t);
    EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE ON reference.%I
                    FOR EACH ROW EXECUTE FUNCTION enterprise_lab.touch_updated_at()', t || '_20_touch', t);
  END LOOP;
END $$;

-- Generic example data (example.test addresses only).
INSERT INTO reference.customers (id, code, name, contact_email, status, seeded) VALUES
  ('10000000-0000-4000-8000-000000000001', 'NORTHWIND', 'Northwind Components', 'service@northwind.example.test', 'active', true),
  ('10000000-0000-4000-8000-000000000002', 'BLUEHARBOR', 'Blue Harbor Logistics', 'desk@blueharbor.example.test', 'active', true),
  ('10000000-0000-4000-8000-000000000003', 'ACME-LABS', 'Acme Labs', 'it@acmelabs.example.test', 'active', true),
  ('10000000-0000-4000-8000-000000000004', 'OLDCO', 'Oldco Holdings', 'contact@oldco.example.test', 'inactive', true);

INSERT INTO reference.agreements (id, customer_id, agreement_number, name, valid_from, valid_to, status, seeded) VALUES
  ('20000000-0000-4000-8000-000000000001', '10000000-0000-4000-8000-000000000001', 'AGR-NW-001', 'Northwind managed services', '2024-01-01', NULL, 'active', true),
  ('20000000-0000-4000-8000-000000000002', '10000000-0000-4000-8000-000000000001', 'AGR-NW-002', 'Northwind project support', '2024-01-01', '2024-12-31', 'active', true),
  ('20000000-0000-4000-8000-000000000003', '10000000-0000-4000-8000-000000000002', 'AGR-BH-001', 'Blue Harbor operations', '2024-06-01', NULL, 'active', true),
  ('20000000-0000-4000-8000-000000000004', '10000000-0000-4000-8000-000000000003', 'AGR-AL-001', 'Acme Labs service desk', '2025-01-01', NULL, 'active', true),
  ('20000000-0000-4000-8000-000000000005', '10000000-0000-4000-8000-000000000003', 'AGR-AL-002', 'Acme Labs suspended pilot', '2025-01-01', NULL, 'suspended', true);

INSERT INTO reference.request_types (code, name, canonical_category, description, seeded) VALUES
  ('access_request', 'Access request', 'access', 'Grant or revoke access to a system.', true),
  ('incident', 'Incident', 'incident', 'Something is broken or degraded.', true),
  ('service_change', 'Service change', 'change', 'Change a configuration or a service.', true),
  ('information_request', 'Information request', 'information', 'A question or a report request.', true),
  ('document_review', 'Document review', 'review', 'Review a supplied document.', true);

INSERT INTO reference.priorities (code, name, rank, seeded) VALUES
  ('critical', 'Critical', 1, true),
  ('high', 'High', 2, true),
  ('medium', 'Medium', 3, true),
  ('low', 'Low', 4, true);

INSERT INTO reference.teams (code, name, email, seeded) VALUES
  ('service_desk', 'Service Desk', 'service-desk@example.test', true),
  ('operations', 'Operations', 'operations@example.test', true),
  ('finance_ops', 'Finance Operations', 'finance-ops@example.test', true),
  ('security', 'Security', 'security@example.test', true);

SELECT pg_catalog.pg_extension_config_dump('reference.customers', '');
SELECT pg_catalog.pg_extension_config_dump('reference.agreements', '');
SELECT pg_catalog.pg_extension_config_dump('reference.request_types', '');
SELECT pg_catalog.pg_extension_config_dump('reference.priorities', '');
SELECT pg_catalog.pg_extension_config_dump('reference.teams', '');
-- intake: raw requests as they were received (portal, API, e-mail, ...).
-- A submission's id is the root key of its whole lifecycle: every later
-- table carries it as submission_id (see docs/architecture.md, Scale-out).

CREATE SCHEMA intake;
COMMENT ON SCHEMA intake IS 'Raw intake requests, validated against the reference data.';

CREATE TABLE intake.submissions (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  intake_method     text NOT NULL DEFAULT 'portal'
                    CONSTRAINT submissions_intake_method_valid CHECK (intake_method IN ('portal', 'api', 'email', 'phone', 'batch')),
  requester_name    text NOT NULL
                    CONSTRAINT submissions_requester_name_valid CHECK (enterprise_lab.has_visible_text(requester_name) AND length(requester_name) <= 200),
  requester_email   text NOT NULL
                    CONSTRAINT submissions_requester_email_valid CHECK (length(requester_email) <= 254 AND requester_email ~ '^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$'),
  description       text NOT NULL
                    CONSTRAINT submissions_description_valid CHECK (enterprise_lab.has_visible_text(description) AND length(description) <= 4000),
  request_type_code text NOT NULL REFERENCES reference.request_types (code),
  priority_code     text NOT NULL REFERENCES reference.priorities (code),
  team_code         text NOT NULL REFERENCES reference.teams (code),
  customer_id       uuid NOT NULL REFERENCES reference.customers (id),
  agreement_id      uuid,
  status            text NOT NULL DEFAULT 'received'
                    CONSTRAINT submissions_status_valid CHECK (status IN ('received', 'withdrawn')),
  submitted_by      text NOT NULL DEFAULT current_user,
  submitted_at      timestamptz NOT NULL DEFAULT now(),
  updated_at        timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT submissions_agreement_of_customer
    FOREIGN KEY (agreement_id, customer_id) REFERENCES reference.agreements (id, customer_id)
);
-- The submission list's order exactly, so its first page reads one page
-- of entries even when a bulk load gave many rows the same submitted_at.
CREATE INDEX submissions_submitted_at_idx ON intake.submissions (submitted_at DESC, id);
CREATE INDEX submissions_customer_idx ON intake.submissions (customer_id);
COMMENT ON TABLE intake.submissions IS
  'Raw intake requests. Inserting one creates its source_system.service_requests row in the same transaction.';
COMMENT ON COLUMN intake.submissions.id IS 'Root key of the request''s whole lifecycle (submission_id everywhere else).';

-- Friendly validation: the same rules as the constraints above, but each
-- failure names the field, says what was given and what would be accepted.
CREATE FUNCTION intake.validate_submission() RETURNS trigger
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

CREATE TRIGGER submissions_10_validate BEFORE INSERT ON intake.submissions
  FOR EACH ROW EXECUTE FUNCTION intake.validate_submission();
CREATE TRIGGER submissions_20_touch BEFORE UPDATE ON intake.submissions
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.touch_updated_at();

SELECT pg_catalog.pg_extension_config_dump('intake.submissions', '');

CREATE FUNCTION intake.submit_request(
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
         (intake_method, requester_name, requester_email, description,
          request_type_code, priority_code, team_code, customer_id, agreement_id)
  VALUES (submit_request.intake_method, submit_request.requester_name, submit_request.requester_email,
          submit_request.description, submit_request.request_type, submit_request.priority,
          submit_request.team, submit_request.customer_id, submit_request.agreement_id)
  RETURNING s.id INTO submission_id;

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
COMMENT ON FUNCTION intake.submit_request(text, text, text, text, text, text, uuid, uuid, text, text, text, bytea) IS
  'Submit an intake request: creates the submission, its service request and the RequestCreated event in one transaction, and uploads the optional supporting document (file_name, content_type, content) with it.';
-- source_system: the first internal system of record.  One service request
-- per submission, created by a trigger in the submission's transaction.

CREATE SCHEMA source_system;
COMMENT ON SCHEMA source_system IS 'The system of record for service requests.';

CREATE SEQUENCE source_system.request_number_seq;

CREATE TABLE source_system.service_requests (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  submission_id     uuid NOT NULL UNIQUE REFERENCES intake.submissions (id),
  request_number    text NOT NULL UNIQUE,
  source_system     text NOT NULL DEFAULT 'intake_portal',
  request_type_code text NOT NULL REFERENCES reference.request_types (code),
  priority_code     text NOT NULL REFERENCES reference.priorities (code),
  team_code         text NOT NULL REFERENCES reference.teams (code),
  customer_id       uuid NOT NULL REFERENCES reference.customers (id),
  agreement_id      uuid REFERENCES reference.agreements (id),
  summary           text NOT NULL,
  lifecycle_status  text NOT NULL DEFAULT 'received'
                    CONSTRAINT service_requests_lifecycle_status_valid CHECK (lifecycle_status IN ('received', 'integrated', 'failed')),
  created_at        timestamptz NOT NULL DEFAULT now(),
  integrated_at     timestamptz,
  updated_at        timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 85);  -- room for HOT updates when the request is integrated
COMMENT ON TABLE source_system.service_requests IS
  'Service requests; lifecycle_status is received until the worker integrates the request (integrated), or failed when its event is dead-lettered.';
COMMENT ON COLUMN source_system.service_requests.request_number IS 'Deterministic, human-readable number: SR-000001, SR-000002, ...';

CREATE FUNCTION source_system.create_service_request() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO source_system.service_requests
         (submission_id, request_number, request_type_code, priority_code, team_code,
          customer_id, agreement_id, summary)
  VALUES (NEW.id,
          'SR-' || lpad(nextval('source_system.request_number_seq')::text, 6, '0'),
          NEW.request_type_code, NEW.priority_code, NEW.team_code,
          NEW.customer_id, NEW.agreement_id,
          left(regexp_replace(btrim(NEW.description), '\s+', ' ', 'g'), 120));
  RETURN NULL;
END $$;

CREATE TRIGGER submissions_30_create_service_request AFTER INSERT ON intake.submissions
  FOR EACH ROW EXECUTE FUNCTION source_system.create_service_request();

-- The outbox: the event commits with the request or not at all.
CREATE FUNCTION source_system.enqueue_request_created() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO integration.events
         (submission_id, event_type, source_system, aggregate_type, aggregate_id, payload)
  VALUES (NEW.submission_id, 'RequestCreated', NEW.source_system, 'service_request', NEW.id,
          jsonb_build_object('service_request_id', NEW.id,
                             'request_number', NEW.request_number,
                             'request_type', NEW.request_type_code,
                             'priority', NEW.priority_code,
                             'team', NEW.team_code,
                             'customer_id', NEW.customer_id,
                             'agreement_id', NEW.agreement_id));
  RETURN NULL;
END $$;

CREATE TRIGGER service_requests_10_enqueue AFTER INSERT ON source_system.service_requests
  FOR EACH ROW EXECUTE FUNCTION source_system.enqueue_request_created();

SELECT pg_catalog.pg_extension_config_dump('source_system.service_requests', '');
SELECT pg_catalog.pg_extension_config_dump('source_system.request_number_seq', '');
-- integration: the transactional outbox (events), what processing did
-- (sync logs), and the handlers registered for custom event types.

CREATE SCHEMA integration;
COMMENT ON SCHEMA integration IS 'Integration events (the outbox), their processing outcomes, handlers and workers.';

CREATE SEQUENCE integration.event_seq;

CREATE TABLE integration.events (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  seq             bigint NOT NULL UNIQUE DEFAULT nextval('integration.event_seq'),
  submission_id   uuid NOT NULL,
  event_type      text NOT NULL CONSTRAINT events_event_type_format CHECK (event_type ~ '^[A-Za-z][A-Za-z0-9_.]{0,99}$'),
  source_system   text NOT NULL,
  aggregate_type  text NOT NULL,
  aggregate_id    uuid NOT NULL,
  payload         jsonb NOT NULL DEFAULT '{}',
  status          text NOT NULL DEFAULT 'pending'
                  CONSTRAINT events_status_valid CHECK (status IN ('pending', 'completed', 'failed', 'dead_letter', 'skipped')),
  attempts        integer NOT NULL DEFAULT 0 CONSTRAINT events_attempts_not_negative CHECK (attempts >= 0),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text,
  idempotency_key text,
  created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  processed_at    timestamptz,
  CONSTRAINT events_idempotency_key_unique UNIQUE (submission_id, idempotency_key)
);
-- The claim walks this index oldest first.
CREATE INDEX events_due_idx ON integration.events (seq)
  WHERE status IN ('pending', 'failed');
-- Per-submission order: "is there an earlier unfinished event?"
CREATE INDEX events_unfinished_idx ON integration.events (submission_id, seq)
  WHERE status IN ('pending', 'failed', 'dead_letter');
-- Look-ups by submission use the (submission_id, idempotency_key) key.
-- Every index here is paid for by every event's completion (a status
-- change touches the partial indexes), so there are no more of them.

-- Completing an event is never a HOT update (status is in the partial
-- indexes' predicates), so the claim's indexes keep an entry for every
-- event completed since the last vacuum, and the claim walks over them.
-- Vacuum by the number of dead rows, not by a fraction of a table that
-- only grows, and always clean the indexes (by default a vacuum that finds
-- few dead rows skips them, which is exactly where the dead entries are).
ALTER TABLE integration.events SET (
  autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 20000,
  autovacuum_vacuum_insert_scale_factor = 0, autovacuum_vacuum_insert_threshold = 20000,
  vacuum_index_cleanup = on);

COMMENT ON TABLE integration.events IS
  'Integration events (transactional outbox). Processed in seq order per submission by integration.process_events() and the workers.';
COMMENT ON COLUMN integration.events.submission_id IS
  'Root key and ordering key: events of one submission are applied one at a time, in seq order.';
COMMENT ON COLUMN integration.events.status IS
  'pending, completed, failed (awaiting retry at next_attempt_at), dead_letter (holds later events of its submission), skipped.';

CREATE FUNCTION integration.wake_workers_at_commit() RETURNS trigger
  AS 'MODULE_PATHNAME', 'el_wake_workers_at_commit' LANGUAGE C;
COMMENT ON FUNCTION integration.wake_workers_at_commit() IS
  'Trigger: sets the workers'' latches when the enqueuing transaction commits.';

CREATE TRIGGER events_wake_workers AFTER INSERT ON integration.events
  FOR EACH STATEMENT EXECUTE FUNCTION integration.wake_workers_at_commit();

CREATE SEQUENCE integration.sync_log_seq;

CREATE TABLE integration.sync_logs (
  id            bigint PRIMARY KEY DEFAULT nextval('integration.sync_log_seq'),
  submission_id uuid NOT NULL,
  event_id      uuid,
  event_type    text NOT NULL,
  action        text NOT NULL,
  outcome       text NOT NULL CONSTRAINT sync_logs_outcome_valid CHECK (outcome IN ('success', 'failure')),
  message       text NOT NULL,
  details       jsonb NOT NULL DEFAULT '{}',
  attempt       integer,
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX sync_logs_submission_idx ON integration.sync_logs (submission_id, id);
CREATE INDEX sync_logs_event_idx ON integration.sync_logs (event_id);
COMMENT ON TABLE integration.sync_logs IS
  'One row per processing outcome: success (what was synchronized) or failure (the error, and whether it will be retried).';

CREATE TABLE integration.event_handlers (
  event_type  text PRIMARY KEY
              CONSTRAINT event_handlers_not_builtin CHECK (event_type NOT IN ('RequestCreated', 'OperationalCaseStatusChanged')),
  handler     regprocedure NOT NULL,
  description text,
  enabled     boolean NOT NULL DEFAULT true,
  created_at  timestamptz NOT NULL DEFAULT now(),
  seeded      boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE integration.event_handlers IS
  'SQL handlers for custom event types: a function taking one integration.events row. It runs in the worker''s transaction as the function''s owner, who must be the role that registers it; raise an error to fail the event.';

-- A handler runs with its owner's rights (see src/handlers.c), so only the
-- owner (or a role with its privileges, e.g. a superuser) may register it:
-- nobody can make the workers run someone else's function.
CREATE FUNCTION integration.check_event_handler() RETURNS trigger
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

CREATE TRIGGER event_handlers_check BEFORE INSERT OR UPDATE ON integration.event_handlers
  FOR EACH ROW EXECUTE FUNCTION integration.check_event_handler();
CREATE TRIGGER event_handlers_10_user_modified BEFORE UPDATE ON integration.event_handlers
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();

SELECT pg_catalog.pg_extension_config_dump('integration.events', '');
SELECT pg_catalog.pg_extension_config_dump('integration.event_seq', '');
SELECT pg_catalog.pg_extension_config_dump('integration.sync_logs', '');
SELECT pg_catalog.pg_extension_config_dump('integration.sync_log_seq', '');
SELECT pg_catalog.pg_extension_config_dump('integration.event_handlers', '');
-- operational: the downstream system where teams work cases.  The allowed
-- status moves are data; every move is validated, recorded in the history
-- and published as an OperationalCaseStatusChanged event.

CREATE SCHEMA operational;
COMMENT ON SCHEMA operational IS 'Operational cases, their workflow and status history.';

CREATE TABLE operational.case_statuses (
  status      text PRIMARY KEY,
  is_terminal boolean NOT NULL,
  description text NOT NULL,
  seeded      boolean NOT NULL DEFAULT false
);
INSERT INTO operational.case_statuses VALUES
  ('open', false, 'Received by the operational team, not started.', true),
  ('in_progress', false, 'Being worked on.', true),
  ('completed', true, 'Done. Terminal.', true),
  ('rejected', true, 'Will not be done. Terminal.', true);
COMMENT ON TABLE operational.case_statuses IS 'Case statuses; terminal ones allow no further change.';

CREATE TABLE operational.status_transitions (
  from_status text NOT NULL REFERENCES operational.case_statuses (status),
  to_status   text NOT NULL REFERENCES operational.case_statuses (status),
  PRIMARY KEY (from_status, to_status),
  CONSTRAINT status_transitions_not_to_self CHECK (from_status <> to_status),
  seeded      boolean NOT NULL DEFAULT false
);
INSERT INTO operational.status_transitions VALUES
  ('open', 'in_progress', true),
  ('open', 'rejected', true),
  ('in_progress', 'completed', true),
  ('in_progress', 'rejected', true);
COMMENT ON TABLE operational.status_transitions IS 'The allowed case status moves.';
CREATE TRIGGER case_statuses_10_user_modified BEFORE UPDATE ON operational.case_statuses
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();
CREATE TRIGGER status_transitions_10_user_modified BEFORE UPDATE ON operational.status_transitions
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();

CREATE TABLE operational.operation_cases (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  submission_id      uuid NOT NULL,
  -- Written only by the RequestCreated handler, from the joined request
  -- row.  No foreign key: its check is a query per row whose plan a
  -- long-lived worker caches while the table is small (a sequential scan),
  -- and it would then scan the whole table for every new case.
  service_request_id uuid NOT NULL UNIQUE,
  external_reference text NOT NULL UNIQUE,
  request_type_code  text NOT NULL,
  priority_code      text NOT NULL,
  team_code          text NOT NULL,
  -- No foreign key to case_statuses: cases start open and move only along
  -- status_transitions (which references case_statuses), and a key-share
  -- lock on the shared 'open' row by every worker would create MultiXacts.
  processing_status  text NOT NULL DEFAULT 'open',
  status_changed_by  text
                     CONSTRAINT operation_cases_status_changed_by_length CHECK (length(status_changed_by) <= 200),
  status_change_reason text
                     CONSTRAINT operation_cases_status_change_reason_length CHECK (length(status_change_reason) <= 1000),
  opened_at          timestamptz NOT NULL DEFAULT now(),
  status_changed_at  timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX operation_cases_team_status_idx ON operational.operation_cases (team_code, processing_status);
COMMENT ON TABLE operational.operation_cases IS
  'One case per service request, opened by the worker. Change its status with operational.set_case_status().';

CREATE SEQUENCE operational.case_status_history_seq;

CREATE TABLE operational.case_status_history (
  id              bigint PRIMARY KEY DEFAULT nextval('operational.case_status_history_seq'),
  submission_id   uuid NOT NULL,
  case_id         uuid NOT NULL,  -- written with its case (no foreign key: see service_request_id above)
  previous_status text,
  new_status      text NOT NULL,
  changed_by      text NOT NULL
                  CONSTRAINT case_status_history_changed_by_valid
                  CHECK (enterprise_lab.has_visible_text(changed_by) AND length(changed_by) <= 200),
  change_reason   text
                  CONSTRAINT case_status_history_change_reason_length CHECK (length(change_reason) <= 1000),
  changed_at      timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX case_status_history_case_idx ON operational.case_status_history (case_id, id);
COMMENT ON TABLE operational.case_status_history IS 'Every status a case has had: previous, new, by whom, why, when.';

-- Who changes a case and why, as every path records them (set_case_status,
-- the api, a direct UPDATE): a visible name of at most 200 characters and
-- a reason of at most 1000.  The table constraints say the same; this says
-- it with the field's name and the limit.
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

CREATE FUNCTION operational.check_status_change() RETURNS trigger
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

CREATE FUNCTION operational.record_status_change() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO operational.case_status_history
         (submission_id, case_id, previous_status, new_status, changed_by, change_reason)
  VALUES (NEW.submission_id, NEW.id, OLD.processing_status, NEW.processing_status,
          NEW.status_changed_by, NEW.status_change_reason);

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

CREATE TRIGGER operation_cases_10_check_status BEFORE UPDATE ON operational.operation_cases
  FOR EACH ROW EXECUTE FUNCTION operational.check_status_change();
CREATE TRIGGER operation_cases_20_record_status AFTER UPDATE OF processing_status ON operational.operation_cases
  FOR EACH ROW WHEN (OLD.processing_status IS DISTINCT FROM NEW.processing_status)
  EXECUTE FUNCTION operational.record_status_change();

CREATE FUNCTION operational.set_case_status(case_id uuid, new_status text, changed_by text, change_reason text DEFAULT NULL)
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
COMMENT ON FUNCTION operational.set_case_status(uuid, text, text, text) IS
  'Move a case to a new status (validated against operational.status_transitions); records history and enqueues OperationalCaseStatusChanged.';

SELECT pg_catalog.pg_extension_config_dump('operational.case_statuses', '');
SELECT pg_catalog.pg_extension_config_dump('operational.status_transitions', '');
SELECT pg_catalog.pg_extension_config_dump('operational.operation_cases', '');
SELECT pg_catalog.pg_extension_config_dump('operational.case_status_history', '');
SELECT pg_catalog.pg_extension_config_dump('operational.case_status_history_seq', '');
-- canonical: the enterprise-normalized view of each business object, the
-- operational-to-canonical status map, and lineage across the boundaries.

CREATE SCHEMA canonical;
COMMENT ON SCHEMA canonical IS 'Canonical business objects, status mapping and lineage.';

CREATE TABLE canonical.status_map (
  operational_status text PRIMARY KEY REFERENCES operational.case_statuses (status),
  canonical_status   text NOT NULL,
  seeded             boolean NOT NULL DEFAULT false
);
INSERT INTO canonical.status_map VALUES
  ('open', 'active', true),
  ('in_progress', 'in_progress', true),
  ('completed', 'completed', true),
  ('rejected', 'rejected', true);
COMMENT ON TABLE canonical.status_map IS 'How an operational case status maps to the canonical lifecycle status.';
CREATE TRIGGER status_map_10_user_modified BEFORE UPDATE ON canonical.status_map
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();

CREATE TABLE canonical.business_objects (
  id                 uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  submission_id      uuid NOT NULL,
  object_type        text NOT NULL,
  source_system      text NOT NULL,
  source_reference   text NOT NULL,
  canonical_category text NOT NULL,
  lifecycle_status   text NOT NULL,
  attributes         jsonb NOT NULL DEFAULT '{}',
  last_event_seq     bigint NOT NULL,
  created_at         timestamptz NOT NULL DEFAULT now(),
  updated_at         timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT business_objects_source_unique UNIQUE (source_system, source_reference),
  CONSTRAINT business_objects_submission_unique UNIQUE (submission_id, object_type)
);
COMMENT ON TABLE canonical.business_objects IS
  'One canonical object per source record; lifecycle_status follows the operational case through canonical.status_map.';
COMMENT ON COLUMN canonical.business_objects.last_event_seq IS
  'Sequence number of the last event applied: an older event never overwrites a newer state.';

CREATE TABLE canonical.lineage_records (
  submission_id uuid NOT NULL,
  from_type     text NOT NULL,
  from_id       uuid NOT NULL,
  to_type       text NOT NULL,
  to_id         uuid NOT NULL,
  relationship  text NOT NULL,
  event_id      uuid,
  created_at    timestamptz NOT NULL DEFAULT now(),
  -- Record ids are uuids, unique across types, so the edge is (from, to, relationship).
  CONSTRAINT lineage_records_pkey PRIMARY KEY (from_id, to_id, relationship)
);
CREATE INDEX lineage_records_submission_idx ON canonical.lineage_records (submission_id);
COMMENT ON TABLE canonical.lineage_records IS
  'Directed edges between records of different boundaries (service_request -> operation_case -> business_object), one row per edge.';

SELECT pg_catalog.pg_extension_config_dump('canonical.status_map', '');
SELECT pg_catalog.pg_extension_config_dump('canonical.business_objects', '');
SELECT pg_catalog.pg_extension_config_dump('canonical.lineage_records', '');
-- integration (processing): the C core that turns events into operational
-- and canonical state, and the operator's tools around it (replay, skip,
-- held submissions, worker status).

CREATE FUNCTION integration.process_events(max_events integer DEFAULT 100) RETURNS integer
  AS 'MODULE_PATHNAME', 'el_process_events' LANGUAGE C VOLATILE STRICT;
COMMENT ON FUNCTION integration.process_events(integer) IS
  'Process up to max_events due events in this transaction; returns how many were attempted. The workers call the same core.';

CREATE FUNCTION integration.enqueue_event(
  event_type text, submission_id uuid, aggregate_type text, aggregate_id uuid,
  payload jsonb DEFAULT '{}', source_system text DEFAULT 'custom', idempotency_key text DEFAULT NULL)
RETURNS uuid
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  new_id uuid;
BEGIN
  INSERT INTO integration.events AS e
         (event_type, submission_id, aggregate_type, aggregate_id, payload, source_system, idempotency_key)
  VALUES (enqueue_event.event_type, enqueue_event.submission_id, enqueue_event.aggregate_type,
          enqueue_event.aggregate_id, enqueue_event.payload, enqueue_event.source_system,
          enqueue_event.idempotency_key)
  ON CONFLICT ON CONSTRAINT events_idempotency_key_unique DO NOTHING
  RETURNING e.id INTO new_id;
  IF new_id IS NULL THEN
    SELECT e.id INTO new_id FROM integration.events e
     WHERE e.submission_id = enqueue_event.submission_id AND e.idempotency_key = enqueue_event.idempotency_key;
  END IF;
  RETURN new_id;
END $$;
COMMENT ON FUNCTION integration.enqueue_event(text, uuid, text, uuid, jsonb, text, text) IS
  'Enqueue an event. submission_id is its ordering key; with an idempotency_key a repeated call returns the first event instead of adding one.';

CREATE FUNCTION integration.replay_event(event_id uuid) RETURNS integration.events
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e integration.events;
BEGIN
  SELECT * INTO e FROM integration.events WHERE id = event_id FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'event % does not exist', event_id
      USING ERRCODE = 'no_data_found';
  END IF;
  IF e.status NOT IN ('dead_letter', 'failed', 'skipped') THEN
    RAISE EXCEPTION 'event % is % and cannot be replayed', event_id, e.status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'Only dead_letter, failed and skipped events can be replayed.';
  END IF;

  UPDATE integration.events
     SET status = 'pending', attempts = 0, next_attempt_at = now(), processed_at = NULL
   WHERE id = event_id
  RETURNING * INTO e;
  UPDATE source_system.service_requests
     SET lifecycle_status = 'received', updated_at = now()
   WHERE id = e.aggregate_id AND e.aggregate_type = 'service_request' AND lifecycle_status = 'failed';
  INSERT INTO integration.sync_logs (submission_id, event_id, event_type, action, outcome, message, details)
  VALUES (e.submission_id, e.id, e.event_type, 'replay_requested', 'success',
          'event put back to pending by ' || enterprise_lab.request_subject(), jsonb_build_object('last_error', e.last_error));
  RETURN e;
END $$;
COMMENT ON FUNCTION integration.replay_event(uuid) IS
  'Put a dead-lettered, failed or skipped event back to pending with a fresh attempt count.';

CREATE FUNCTION integration.replay_dead_letters() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer := 0;
  ev uuid;
BEGIN
  FOR ev IN SELECT id FROM integration.events WHERE status = 'dead_letter' ORDER BY seq LOOP
    PERFORM integration.replay_event(ev);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
COMMENT ON FUNCTION integration.replay_dead_letters() IS 'Replay every dead letter; returns how many.';

CREATE FUNCTION integration.skip_event(event_id uuid, reason text) RETURNS integration.events
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  e integration.events;
BEGIN
  IF reason IS NULL OR reason !~ '\S' THEN
    RAISE EXCEPTION 'a reason is required to skip an event'
      USING ERRCODE = 'not_null_violation',
            HINT = 'Say why the event may be skipped; it is written to the sync log.';
  END IF;
  UPDATE integration.events SET status = 'skipped', processed_at = now()
   WHERE id = event_id AND status IN ('dead_letter', 'failed', 'pending')
  RETURNING * INTO e;
  IF NOT FOUND THEN
    IF EXISTS (SELECT 1 FROM integration.events WHERE id = event_id) THEN
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
COMMENT ON FUNCTION integration.skip_event(uuid, text) IS
  'Give up on an event on purpose (it will never be applied), releasing the later events of its submission.';

CREATE VIEW integration.held_submissions AS
SELECT d.submission_id,
       d.id            AS holding_event_id,
       d.event_type    AS holding_event_type,
       d.status        AS holding_status,
       d.last_error,
       d.processed_at   AS held_since,
       (SELECT count(*) FROM integration.events w
         WHERE w.submission_id = d.submission_id AND w.seq > d.seq
           AND w.status IN ('pending', 'failed')) AS waiting_events
  FROM integration.events d
 WHERE d.status = 'dead_letter';
COMMENT ON VIEW integration.held_submissions IS
  'Submissions whose processing is held by a dead letter: later events wait until it is replayed or skipped.';

CREATE FUNCTION integration.worker_status_rows(
  OUT worker integer, OUT pid integer, OUT state text, OUT events_processed bigint,
  OUT events_failed bigint, OUT events_dead_lettered bigint, OUT batches bigint,
  OUT started_at timestamptz, OUT last_batch_at timestamptz, OUT last_batch_events integer,
  OUT last_batch_ms double precision)
RETURNS SETOF record
  AS 'MODULE_PATHNAME', 'el_worker_status' LANGUAGE C VOLATILE;

CREATE VIEW integration.worker_status AS
  SELECT * FROM integration.worker_status_rows();
COMMENT ON VIEW integration.worker_status IS
  'One row per running worker, from shared memory (empty when enterprise_lab is not in shared_preload_libraries). batches counts every processing transaction, including those that found nothing to do.';
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
-- document_repo: supporting documents.  The bytes live in an S3 bucket
-- (MinIO, AWS S3, ...), reached through the extension's own libcurl client;
-- the metadata lives here, linked to the submission (the root key) and its
-- service request.  See docs/documents.md.

CREATE SCHEMA document_repo;
COMMENT ON SCHEMA document_repo IS
  'Supporting documents: validated uploads to an S3 bucket, metadata, checksummed downloads, presigned URLs, reconciliation.';

CREATE TABLE document_repo.documents (
  id                    uuid PRIMARY KEY,
  submission_id         uuid NOT NULL REFERENCES intake.submissions (id),
  service_request_id    uuid NOT NULL REFERENCES source_system.service_requests (id),
  document_type         text NOT NULL DEFAULT 'supporting_document'
                        CONSTRAINT documents_document_type_valid CHECK (document_type ~ '^[a-z][a-z0-9_]{0,62}$'),
  original_file_name    text NOT NULL
                        CONSTRAINT documents_original_file_name_valid CHECK (octet_length(original_file_name) BETWEEN 1 AND 255),
  stored_file_name      text NOT NULL
                        CONSTRAINT documents_stored_file_name_safe CHECK (stored_file_name ~ '^[A-Za-z0-9][A-Za-z0-9._-]*\.[a-z]+$'),
  file_extension        text NOT NULL
                        CONSTRAINT documents_file_extension_valid CHECK (file_extension IN ('pdf', 'txt', 'csv', 'png', 'jpg', 'jpeg')),
  declared_content_type text NOT NULL,
  content_type          text NOT NULL,
  detected_content_type text NOT NULL,
  size_bytes            bigint NOT NULL CONSTRAINT documents_size_positive CHECK (size_bytes > 0),
  sha256                text NOT NULL CONSTRAINT documents_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  bucket                text NOT NULL,
  object_key            text NOT NULL,
  etag                  text,
  status                text NOT NULL DEFAULT 'stored'
                        CONSTRAINT documents_status_valid CHECK (status IN ('stored', 'deleted', 'missing')),
  uploaded_by           text NOT NULL,
  uploaded_at           timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  -- The key contains the submission id, so adding it (Citus) changes nothing.
  CONSTRAINT documents_object_unique UNIQUE (bucket, object_key)
);
CREATE INDEX documents_submission_idx ON document_repo.documents (submission_id);
COMMENT ON TABLE document_repo.documents IS
  'One row per uploaded document: validated names and types, size, SHA-256 and where the bytes are (bucket, object_key). status: stored, deleted (by delete_document), missing (found gone by reconcile_storage).';
COMMENT ON COLUMN document_repo.documents.stored_file_name IS 'Sanitized file name used in the object key.';
COMMENT ON COLUMN document_repo.documents.content_type IS 'Canonical content type for the extension; sent to S3.';
COMMENT ON COLUMN document_repo.documents.detected_content_type IS 'What the magic bytes say the content is.';
CREATE TRIGGER documents_10_touch BEFORE UPDATE ON document_repo.documents
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.touch_updated_at();
SELECT pg_catalog.pg_extension_config_dump('document_repo.documents', '');

-- The S3 client (src/s3.c).  These act with the configured keys on any
-- object, so only superusers may call them; the document functions below
-- are the checked entry points.
CREATE FUNCTION document_repo.s3_presign(method text, object_key text, expires_seconds integer, signed_at timestamptz)
RETURNS text LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'el_s3_presign';
COMMENT ON FUNCTION document_repo.s3_presign(text, text, integer, timestamptz) IS
  'Signature V4 presigned URL for an object of the configured bucket, signed at the given time (so that it can be checked against published examples).';

CREATE FUNCTION document_repo.s3_signature(
  method text, object_key text, query_names text[], query_values text[],
  header_names text[], header_values text[], payload bytea, signed_at timestamptz,
  OUT url text, OUT canonical_request text, OUT string_to_sign text,
  OUT signature text, OUT authorization_header text, OUT signed_headers text)
RETURNS record LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'el_s3_signature';
COMMENT ON FUNCTION document_repo.s3_signature(text, text, text[], text[], text[], text[], bytea, timestamptz) IS
  'The Signature V4 Authorization header the client sends for a request (object_key NULL: the bucket), with its canonical request and string to sign. Same code path as real requests; for verification.';

CREATE FUNCTION document_repo.s3_bucket()
RETURNS text LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'el_s3_configured_bucket';
COMMENT ON FUNCTION document_repo.s3_bucket() IS 'The configured bucket (enterprise_lab.s3_bucket).';

CREATE FUNCTION document_repo.s3_put_object(object_key text, content bytea, content_type text)
RETURNS text LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_put_object';
COMMENT ON FUNCTION document_repo.s3_put_object(text, bytea, text) IS
  'PUT an object; if the calling (sub)transaction aborts, the object is handed to the cleanup queue (document_repo.abandoned_objects) and deleted soon after. Returns the ETag.';

CREATE FUNCTION document_repo.s3_get_object(object_key text)
RETURNS bytea LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_get_object';
COMMENT ON FUNCTION document_repo.s3_get_object(text) IS 'GET an object''s bytes.';

CREATE FUNCTION document_repo.s3_get_verified(object_key text, sha256 text, size_bytes bigint)
RETURNS bytea LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_get_verified';
COMMENT ON FUNCTION document_repo.s3_get_verified(text, text, bigint) IS
  'GET an object and return it only if its size and SHA-256 are the recorded ones.';

CREATE FUNCTION document_repo.s3_object_exists(object_key text)
RETURNS boolean LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_object_exists';
COMMENT ON FUNCTION document_repo.s3_object_exists(text) IS 'HEAD of an object: does it exist?';

CREATE FUNCTION document_repo.s3_delete_object(object_key text)
RETURNS void LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_delete_object';
COMMENT ON FUNCTION document_repo.s3_delete_object(text) IS 'DELETE an object now (an absent object is not an error).';

CREATE FUNCTION document_repo.s3_delete_object_at_commit(object_key text)
RETURNS void LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_delete_object_at_commit';
COMMENT ON FUNCTION document_repo.s3_delete_object_at_commit(text) IS
  'Hand an object to the cleanup queue once the calling transaction commits; it is deleted soon after (nothing happens if the transaction aborts).';

CREATE FUNCTION document_repo.s3_bucket_exists()
RETURNS boolean LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'el_s3_bucket_exists';
COMMENT ON FUNCTION document_repo.s3_bucket_exists() IS 'HEAD of the configured bucket.';

CREATE FUNCTION document_repo.s3_create_bucket()
RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'el_s3_create_bucket';
COMMENT ON FUNCTION document_repo.s3_create_bucket() IS 'CreateBucket for the configured bucket and region.';

CREATE FUNCTION document_repo.s3_list_objects_page(prefix text, continuation_token text)
RETURNS text LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'el_s3_list_objects_page';
COMMENT ON FUNCTION document_repo.s3_list_objects_page(text, text) IS
  'One ListObjectsV2 page of the configured bucket, as the XML that S3 returned.';

-- Objects left to delete (src/object_cleanup.c): uploads of aborted
-- transactions and objects of deleted documents.  Transaction callbacks
-- only record them; the first worker deletes them outside any transaction.
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

CREATE FUNCTION document_repo.validate_document(
  file_name text, content_type text, content bytea,
  OUT stored_file_name text, OUT file_extension text, OUT content_type text,
  OUT detected_content_type text, OUT size_bytes bigint, OUT sha256 text)
RETURNS record LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'el_validate_document';
COMMENT ON FUNCTION document_repo.validate_document(text, text, bytea) IS
  'Every check of an upload (file name, extension, content type, size, magic bytes, UTF-8 text) and the derived stored name, canonical content type and SHA-256. Raises on the first failure.';

CREATE FUNCTION document_repo.s3_list_objects(prefix text DEFAULT '')
RETURNS TABLE (object_key text, size_bytes bigint, last_modified timestamptz, etag text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  page xml;
  token text;
  truncated text;
BEGIN
  LOOP
    page := document_repo.s3_list_objects_page(prefix, token)::xml;
    RETURN QUERY
      SELECT x.key, x.size, x.last_modified, x.etag
        FROM XMLTABLE('/*[local-name()="ListBucketResult"]/*[local-name()="Contents"]' PASSING page
               COLUMNS key text PATH '*[local-name()="Key"]',
                       size bigint PATH '*[local-name()="Size"]',
                       last_modified timestamptz PATH '*[local-name()="LastModified"]',
                       etag text PATH '*[local-name()="ETag"]') AS x;
    SELECT x.truncated, x.next INTO STRICT truncated, token
      FROM XMLTABLE('/*[local-name()="ListBucketResult"]' PASSING page
             COLUMNS truncated text PATH '*[local-name()="IsTruncated"]',
                     next text PATH '*[local-name()="NextContinuationToken"]') AS x;
    EXIT WHEN truncated IS DISTINCT FROM 'true' OR token IS NULL;
  END LOOP;
END $$;
COMMENT ON FUNCTION document_repo.s3_list_objects(text) IS
  'Every object of the configured bucket under a prefix (ListObjectsV2, all pages).';

REVOKE ALL ON FUNCTION
  document_repo.s3_presign(text, text, integer, timestamptz),
  document_repo.s3_signature(text, text, text[], text[], text[], text[], bytea, timestamptz),
  document_repo.s3_put_object(text, bytea, text),
  document_repo.s3_get_object(text),
  document_repo.s3_get_verified(text, text, bigint),
  document_repo.s3_object_exists(text),
  document_repo.s3_delete_object(text),
  document_repo.s3_delete_object_at_commit(text),
  document_repo.s3_bucket_exists(),
  document_repo.s3_create_bucket(),
  document_repo.s3_list_objects_page(text, text),
  document_repo.s3_list_objects(text)
FROM PUBLIC;

-- The checked entry points.  SECURITY DEFINER: callers need EXECUTE on
-- these (granted by the api schema to its roles), not on the S3 client.

CREATE FUNCTION document_repo.upload_document(
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
COMMENT ON FUNCTION document_repo.upload_document(uuid, text, text, bytea, text) IS
  'Validate a document (name, extension, content type, magic bytes, size), PUT it to the bucket under submissions/<submission>/<document>/<safe name> and record it. If the transaction aborts, the object is deleted soon after, by a worker.';

-- The document row a caller may read or change, with the checks every
-- entry point shares.
CREATE FUNCTION document_repo.stored_document(document_id uuid)
RETURNS document_repo.documents
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d document_repo.documents;
BEGIN
  SELECT * INTO d FROM document_repo.documents WHERE id = document_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'document % does not exist', coalesce(document_id::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'document_id';
  ELSIF d.status <> 'stored' THEN
    RAISE EXCEPTION 'document % is %', document_id, d.status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = CASE d.status WHEN 'missing' THEN 'Its object was found missing from the bucket by reconcile_storage().'
                                   ELSE 'It was deleted.' END;
  ELSIF d.bucket <> document_repo.s3_bucket() THEN
    RAISE EXCEPTION 'document % is stored in bucket "%", not in the configured bucket "%"',
                    document_id, d.bucket, document_repo.s3_bucket()
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set enterprise_lab.s3_bucket to the bucket that holds the document.';
  END IF;
  RETURN d;
END $$;
COMMENT ON FUNCTION document_repo.stored_document(uuid) IS
  'The row of a stored document of the configured bucket, or an error saying why not.';
REVOKE ALL ON FUNCTION document_repo.stored_document(uuid) FROM PUBLIC;

CREATE FUNCTION document_repo.download_document(document_id uuid)
RETURNS bytea
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d document_repo.documents := document_repo.stored_document(document_id);
BEGIN
  RETURN document_repo.s3_get_verified(d.object_key, d.sha256, d.size_bytes);
END $$;
COMMENT ON FUNCTION document_repo.download_document(uuid) IS
  'The document''s bytes, fetched from the bucket and verified against the recorded size and SHA-256.';

CREATE FUNCTION document_repo.presigned_url(document_id uuid, expires_in interval DEFAULT '15 minutes')
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d document_repo.documents := document_repo.stored_document(document_id);
  seconds numeric := extract(epoch FROM expires_in);
BEGIN
  IF seconds IS NULL OR seconds < 1 OR seconds > 604800 THEN
    RAISE EXCEPTION 'expires_in must be between 1 second and 7 days, not %', coalesce(expires_in::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'expires_in',
            DETAIL = 'Signature Version 4 limits presigned URLs to seven days.';
  END IF;
  RETURN document_repo.s3_presign('GET', d.object_key, floor(seconds)::integer, clock_timestamp());
END $$;
COMMENT ON FUNCTION document_repo.presigned_url(uuid, interval) IS
  'A presigned GET URL for the document, valid for expires_in (at most 7 days). Anyone holding it can download the document until then.';

CREATE FUNCTION document_repo.delete_document(document_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d document_repo.documents := document_repo.stored_document(document_id);
BEGIN
  UPDATE document_repo.documents SET status = 'deleted' WHERE id = d.id;
  PERFORM document_repo.s3_delete_object_at_commit(d.object_key);
END $$;
COMMENT ON FUNCTION document_repo.delete_document(uuid) IS
  'Mark a document deleted; once the transaction commits, a worker deletes its object from the bucket.';

CREATE FUNCTION document_repo.ensure_bucket()
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF document_repo.s3_bucket_exists() THEN
    RETURN 'exists';
  END IF;
  PERFORM document_repo.s3_create_bucket();
  RETURN 'created';
END $$;
COMMENT ON FUNCTION document_repo.ensure_bucket() IS
  'Create the configured bucket if it does not exist; returns created or exists.';

CREATE FUNCTION document_repo.reconcile_storage(grace interval DEFAULT '1 hour')
RETURNS TABLE (action text, object_key text, document_id uuid, detail text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  b text := document_repo.s3_bucket();
  r record;
BEGIN
  IF grace IS NULL OR grace < interval '0' THEN
    RAISE EXCEPTION 'grace must be a non-negative interval'
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'grace';
  END IF;
  FOR r IN
    WITH listing AS MATERIALIZED (
      SELECT l.object_key, l.last_modified, l.size_bytes FROM document_repo.s3_list_objects('submissions/') l)
    SELECT 'orphan' AS kind, l.object_key, NULL::uuid AS id, l.last_modified, l.size_bytes
      FROM listing l
     WHERE l.last_modified < now() - grace
       AND NOT EXISTS (SELECT 1 FROM document_repo.documents d
                        WHERE d.bucket = b AND d.object_key = l.object_key AND d.status IN ('stored', 'missing'))
    UNION ALL
    SELECT 'unlisted', d.object_key, d.id, NULL, NULL
      FROM document_repo.documents d
     WHERE d.bucket = b AND d.status = 'stored'
       AND NOT EXISTS (SELECT 1 FROM listing l WHERE l.object_key = d.object_key)
    UNION ALL
    SELECT 'returned', d.object_key, d.id, NULL, NULL
      FROM document_repo.documents d JOIN listing l ON l.object_key = d.object_key
     WHERE d.bucket = b AND d.status = 'missing'
  LOOP
    IF r.kind = 'orphan' THEN
      PERFORM document_repo.s3_delete_object(r.object_key);
      action := 'deleted_orphan'; object_key := r.object_key; document_id := NULL;
      detail := format('%s bytes, last modified %s, referenced by no stored document', r.size_bytes, r.last_modified);
      RETURN NEXT;
    -- Uploaded after the listing started?  Ask for the object itself.
    ELSIF r.kind = 'unlisted' AND NOT document_repo.s3_object_exists(r.object_key) THEN
      UPDATE document_repo.documents SET status = 'missing' WHERE id = r.id;
      action := 'marked_missing'; object_key := r.object_key; document_id := r.id;
      detail := 'object not found in the bucket';
      RETURN NEXT;
    ELSIF r.kind = 'returned' THEN
      UPDATE document_repo.documents SET status = 'stored' WHERE id = r.id;
      action := 'marked_stored'; object_key := r.object_key; document_id := r.id;
      detail := 'object present again';
      RETURN NEXT;
    END IF;
  END LOOP;
END $$;
COMMENT ON FUNCTION document_repo.reconcile_storage(interval) IS
  'Bring bucket and metadata together: delete objects under submissions/ older than grace that no stored document references (orphans of crashed or failed transactions, deleted documents), mark stored documents whose object is gone as missing (and missing ones whose object is back as stored). Returns one row per action.';

CREATE FUNCTION document_repo.s3_health()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  started timestamptz := clock_timestamp();
  bucket_exists boolean;
  reachable boolean := true;
  err text;
  code text;
BEGIN
  BEGIN
    bucket_exists := document_repo.s3_bucket_exists();
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, code = RETURNED_SQLSTATE;
    -- Transport failures mean unreachable; a refusal (38000) is an answer.
    reachable := code NOT LIKE '08%' AND code <> '55000';
  END;
  RETURN jsonb_build_object(
    'endpoint', current_setting('enterprise_lab.s3_endpoint'),
    'bucket', document_repo.s3_bucket(),
    'reachable', reachable,
    'bucket_exists', bucket_exists,
    'latency_ms', round((extract(epoch FROM clock_timestamp() - started) * 1000)::numeric, 1),
    'error', err);
END $$;
COMMENT ON FUNCTION document_repo.s3_health() IS
  'Is the S3 endpoint reachable, does the bucket exist, how long did asking take (HEAD of the bucket)? Never raises for S3 failures.';

REVOKE ALL ON FUNCTION
  document_repo.upload_document(uuid, text, text, bytea, text),
  document_repo.download_document(uuid),
  document_repo.presigned_url(uuid, interval),
  document_repo.delete_document(uuid),
  document_repo.ensure_bucket(),
  document_repo.reconcile_storage(interval),
  document_repo.s3_health()
FROM PUBLIC;
-- dashboard: read models over every boundary, for psql, the api schema and
-- the web dashboard.

CREATE SCHEMA dashboard;
COMMENT ON SCHEMA dashboard IS 'Read models: one row per submission across every layer, event flow, counts, metrics.';

CREATE VIEW dashboard.submission_lifecycle AS
SELECT s.id                  AS submission_id,
       s.submitted_at,
       s.intake_method,
       s.requester_name,
       s.requester_email,
       s.description,
       s.request_type_code,
       s.priority_code,
       s.team_code,
       cu.code               AS customer_code,
       cu.name               AS customer_name,
       ag.agreement_number,
       s.status              AS intake_status,
       r.id                  AS service_request_id,
       r.request_number,
       r.lifecycle_status    AS source_status,
       c.id                  AS case_id,
       c.external_reference  AS case_reference,
       c.processing_status   AS case_status,
       b.id                  AS business_object_id,
       b.lifecycle_status    AS canonical_status,
       (SELECT count(*) FROM integration.events e WHERE e.submission_id = s.id) AS event_count,
       (SELECT count(*) FROM integration.events e
         WHERE e.submission_id = s.id AND e.status IN ('pending', 'failed')) AS unfinished_events,
       (SELECT count(*) FROM integration.events e
         WHERE e.submission_id = s.id AND e.status = 'dead_letter') AS dead_letters,
       (SELECT max(l.created_at) FROM integration.sync_logs l WHERE l.submission_id = s.id) AS last_synced_at
  FROM intake.submissions s
  JOIN reference.customers cu ON cu.id = s.customer_id
  LEFT JOIN reference.agreements ag ON ag.id = s.agreement_id
  LEFT JOIN source_system.service_requests r ON r.submission_id = s.id
  LEFT JOIN operational.operation_cases c ON c.service_request_id = r.id
  LEFT JOIN canonical.business_objects b ON b.submission_id = s.id AND b.object_type = 'service_request';
COMMENT ON VIEW dashboard.submission_lifecycle IS 'One row per submission with its state in every layer.';

CREATE VIEW dashboard.event_flow AS
SELECT e.seq,
       e.id AS event_id,
       e.submission_id,
       r.request_number,
       e.event_type,
       e.source_system,
       e.aggregate_type,
       e.aggregate_id,
       e.status,
       e.attempts,
       e.last_error,
       e.created_at,
       e.next_attempt_at,
       e.processed_at,
       round((extract(epoch FROM (e.processed_at - e.created_at)) * 1000)::numeric, 1) AS latency_ms
  FROM integration.events e
  LEFT JOIN source_system.service_requests r ON r.submission_id = e.submission_id;
COMMENT ON VIEW dashboard.event_flow IS 'Events with their request number, status and commit-to-processed latency.';

-- dashboard.status_counts and dashboard.processing_metrics read the
-- maintained counts: src/sql/21_counts.sql.
-- counts: rows per status of every layer, maintained where they change, so
-- the dashboard's refresh (status_counts, processing_metrics, the total of
-- the submission list) costs the same with ten rows or ten million.
--
-- Statement-level AFTER triggers with transition tables add one delta per
-- status per statement (a worker's batch is a handful of statements, a
-- submission three).  Each backend adds to its own slot (its process
-- number), so no row is updated by two transactions at once: no hot row, no
-- lock waits, no deadlocks between submissions and workers.  A read sums
-- the slots.  The deltas are part of the writing transaction: a rollback,
-- or a chunk's subtransaction rolled back, takes its deltas with it.
--
-- A row updated again and again by one transaction keeps every version
-- until the transaction ends, and each update walks them all: a bulk
-- INSERT whose row triggers write one service request and one event per
-- row would cost time quadratic in its rows.  So a transaction moves on to
-- a new part of its slot after every 64 count statements, and the first
-- count statement of its next transaction folds the parts back into part 0
-- (only this backend writes its slot, so that takes no one's locks).

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

CREATE VIEW dashboard.status_counts AS
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

CREATE VIEW dashboard.processing_metrics AS
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
-- Roles and request identity: the PostgREST model.  A client presents a
-- JWT; PostgREST (or the built-in gateway) logs in as lab_authenticator,
-- runs `SET LOCAL ROLE <the token's role claim>` and puts the claims in
-- request.jwt.claims for one transaction.  The helpers below read both
-- back, so the api functions and the row-level security policies agree on
-- who is asking and for which teams.
--
-- Any role may set request.jwt.claims, so the claims count only in a
-- session of the authenticator, which verified the token.  A person who
-- logs in directly is who session_user says, and its teams are data an
-- administrator keeps in operational.role_teams.

-- Roles are cluster-wide and outlive the extension: create them only when
-- absent, so a second database (or CREATE after DROP EXTENSION) reuses them.
DO $$
DECLARE
  r record;
BEGIN
  FOR r IN SELECT * FROM (VALUES
      ('lab_anon',          'INHERIT',   'enterprise_lab: anonymous requester (reference data, submit, list without e-mail addresses).'),
      ('lab_operator',      'INHERIT',   'enterprise_lab: operator; reads everything, changes the cases of the teams in its JWT claims.'),
      ('lab_auditor',       'INHERIT',   'enterprise_lab: auditor; read-only on every table, history and log.'),
      ('lab_admin',         'INHERIT',   'enterprise_lab: administrator; every team, replays events.'),
      ('lab_authenticator', 'NOINHERIT', 'enterprise_lab: the role PostgREST logs in as; it may only SET ROLE to the four request roles.'),
      ('lab_case_writer',   'INHERIT',   'enterprise_lab: owns api.set_case_status, so row-level security applies to case changes.')
    ) AS v(name, inherit, description)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = r.name) THEN
      EXECUTE format('CREATE ROLE %I NOLOGIN %s', r.name, r.inherit);
      EXECUTE format('COMMENT ON ROLE %I IS %L', r.name, r.description);
    END IF;
  END LOOP;

  -- The authenticator logs in (PostgREST and the built-in gateway connect
  -- as it) but holds no rights of its own; a password, if PostgREST needs
  -- one, is the administrator's to set.
  IF NOT (SELECT rolcanlogin FROM pg_catalog.pg_roles WHERE rolname = 'lab_authenticator') THEN
    ALTER ROLE lab_authenticator LOGIN;
  END IF;

  -- PostgREST's authenticator may become any request role and nothing else.
  FOR r IN SELECT unnest(ARRAY['lab_anon', 'lab_operator', 'lab_auditor', 'lab_admin']) AS name LOOP
    IF NOT pg_catalog.pg_has_role('lab_authenticator', r.name, 'MEMBER') THEN
      EXECUTE format('GRANT %I TO lab_authenticator', r.name);
    END IF;
  END LOOP;
END $$;

-- The role the request runs as.  Inside a SECURITY DEFINER function
-- current_user is the function's owner, but the "role" setting still holds
-- what SET [LOCAL] ROLE chose (PostgreSQL lets only members set it); a
-- session that never ran SET ROLE is its own session user.
CREATE FUNCTION enterprise_lab.request_role() RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN current_setting('role') = 'none' THEN session_user
              ELSE current_setting('role')::name END
$$;
COMMENT ON FUNCTION enterprise_lab.request_role() IS
  'The role the request runs as (what SET ROLE chose, else the session user), also inside SECURITY DEFINER functions.';

-- admin > operator > auditor > anon.  USAGE (not MEMBER) so a NOINHERIT
-- role such as lab_authenticator has no rights until it runs SET ROLE.
CREATE FUNCTION enterprise_lab.request_access() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE
           WHEN (SELECT rolsuper FROM pg_roles WHERE rolname = r) THEN 'admin'
           WHEN pg_has_role(r, 'lab_admin', 'USAGE') THEN 'admin'
           WHEN pg_has_role(r, 'lab_operator', 'USAGE') THEN 'operator'
           WHEN pg_has_role(r, 'lab_auditor', 'USAGE') THEN 'auditor'
           WHEN pg_has_role(r, 'lab_anon', 'USAGE') THEN 'anon'
         END
    FROM enterprise_lab.request_role() AS r
$$;
COMMENT ON FUNCTION enterprise_lab.request_access() IS
  'Access level of the request: admin (superusers too), operator, auditor, anon, or NULL for any other role.';

-- The teams of roles that log in directly (psql, reports, scripts).  A row
-- names a login role or a group role; a session belongs to the teams of
-- every role it is a member of.  Requests through PostgREST or the gateway
-- take their teams from the token instead.
CREATE TABLE operational.role_teams (
  role_name  name NOT NULL,
  team_code  text NOT NULL REFERENCES reference.teams (code),
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (role_name, team_code)
);
COMMENT ON TABLE operational.role_teams IS
  'Teams of roles that log in directly (not through PostgREST or the gateway): a session is in the teams of every role it is a member of. Kept by administrators.';
SELECT pg_catalog.pg_extension_config_dump('operational.role_teams', '');

-- The authenticator, a role granted to it (a login role PostgREST or the
-- gateway uses), or a superuser: each may SET ROLE to any request role,
-- lab_admin included, so its claims grant nothing it could not take.
CREATE FUNCTION enterprise_lab.request_trusts_claims() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT pg_has_role(session_user, 'lab_authenticator', 'MEMBER')
$$;
COMMENT ON FUNCTION enterprise_lab.request_trusts_claims() IS
  'Whether request.jwt.claims counts: only in a session of lab_authenticator (or of a role granted it, or a superuser), which verified the token.';

-- PostgREST 10+ sets request.jwt.claims to the token's claims as JSON; an
-- unset or empty setting means no token (psql, the workers).
CREATE FUNCTION enterprise_lab.request_claims() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN enterprise_lab.request_trusts_claims()
              THEN coalesce(nullif(current_setting('request.jwt.claims', true), '')::jsonb, '{}'::jsonb)
              ELSE '{}'::jsonb
         END
$$;
COMMENT ON FUNCTION enterprise_lab.request_claims() IS
  'The JWT claims of the request (request.jwt.claims) in a session of the authenticator, else {} (no token, or a direct login, whose claims are ignored).';

CREATE FUNCTION enterprise_lab.request_subject() RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE WHEN enterprise_lab.request_trusts_claims()
              THEN coalesce(nullif(btrim(c -> 'sub' #>> '{}'), ''), enterprise_lab.request_role()::text)
              ELSE session_user::text
         END
    FROM enterprise_lab.request_claims() AS c
$$;
COMMENT ON FUNCTION enterprise_lab.request_subject() IS
  'Who acts: the JWT "sub" claim (else the request role''s name) through the authenticator; the login role''s name for a direct login. Recorded as changed_by and submitted_by.';

-- Teams from a "teams" array or a single "team" string (other shapes give
-- none) through the authenticator; from operational.role_teams otherwise.
CREATE FUNCTION enterprise_lab.request_teams() RETURNS text[]
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

CREATE FUNCTION enterprise_lab.request_may_change_team(team_code text) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT CASE enterprise_lab.request_access()
           WHEN 'admin' THEN true
           WHEN 'operator' THEN team_code = ANY (enterprise_lab.request_teams())
           ELSE false
         END
$$;
COMMENT ON FUNCTION enterprise_lab.request_may_change_team(text) IS
  'Row-level security predicate: admins may change every team''s cases, operators those of their teams (request_teams()).';
-- api: the HTTP interface.  PostgREST exposes this schema alone; every
-- function takes one unnamed jsonb argument, so `POST /rpc/<name>` passes
-- the request body through unchanged (the built-in gateway does the same).
-- Bodies are checked strictly before anything is written: unknown keys and
-- wrong JSON types are 22023, missing fields 23502, over-long strings
-- 22001, malformed ids 22P02; strings are stored as given, never executed.
-- Not found is PT404 and a conflict with the current state PT409, which
-- PostgREST answers with HTTP 404 and 409.  See docs/api.md.

CREATE SCHEMA api;
COMMENT ON SCHEMA api IS
  'The HTTP interface (PostgREST, the built-in gateway): functions api.<name>(jsonb) RETURNS jsonb.';

-- Body helpers.  They live outside api so PostgREST does not publish them.

CREATE FUNCTION enterprise_lab.api_body(fn text, body jsonb, allowed text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  unknown text;
BEGIN
  IF body IS NULL THEN
    RETURN '{}';
  END IF;
  IF jsonb_typeof(body) <> 'object' THEN
    RAISE EXCEPTION '%: the request body must be a JSON object', fn
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The body is a JSON %s.', jsonb_typeof(body)),
            HINT = format('Send {} or an object with the keys %s.', coalesce(array_to_string(allowed, ', '), 'none'));
  END IF;
  SELECT k INTO unknown FROM jsonb_object_keys(body) AS k WHERE k <> ALL (allowed) ORDER BY k LIMIT 1;
  IF unknown IS NOT NULL THEN
    RAISE EXCEPTION '%: unknown key "%"', fn, left(unknown, 100)
      USING ERRCODE = 'invalid_parameter_value',
            HINT = CASE WHEN cardinality(allowed) = 0 THEN 'This function takes no keys; send {}.'
                        ELSE format('Allowed keys: %s.', array_to_string(allowed, ', ')) END;
  END IF;
  RETURN body;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_body(text, jsonb, text[]) IS
  'api helper: the body as an object ({} when missing); rejects other JSON types and unknown keys (22023).';

-- A key that is absent or JSON null is "not given".
CREATE FUNCTION enterprise_lab.api_text(fn text, body jsonb, key text, required boolean, max_length integer)
RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb := body -> key;
  s text;
BEGIN
  IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
    IF required THEN
      RAISE EXCEPTION '%: % is required', fn, key
        USING ERRCODE = 'not_null_violation', COLUMN = key;
    END IF;
    RETURN NULL;
  END IF;
  IF jsonb_typeof(v) <> 'string' THEN
    RAISE EXCEPTION '%: % must be a string', fn, key
      USING ERRCODE = 'invalid_parameter_value', COLUMN = key,
            DETAIL = format('It is a JSON %s.', jsonb_typeof(v));
  END IF;
  s := v #>> '{}';
  IF length(s) > max_length THEN
    RAISE EXCEPTION '%: % is too long', fn, key
      USING ERRCODE = 'string_data_right_truncation', COLUMN = key,
            DETAIL = format('It has %s characters; the limit is %s.', length(s), max_length);
  END IF;
  RETURN s;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_text(text, jsonb, text, boolean, integer) IS
  'api helper: a string field (23502 when required and missing, 22023 when not a string, 22001 when too long).';

CREATE FUNCTION enterprise_lab.api_uuid(fn text, body jsonb, key text, required boolean) RETURNS uuid
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s text := enterprise_lab.api_text(fn, body, key, required, 100);
BEGIN
  IF s !~* '^\s*\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?\s*$' THEN
    RAISE EXCEPTION '%: % is not a valid id', fn, key
      USING ERRCODE = 'invalid_text_representation', COLUMN = key,
            DETAIL = format('The value given was %s.', quote_literal(s)),
            HINT = 'Ids are UUIDs such as 10000000-0000-4000-8000-000000000001.';
  END IF;
  RETURN s::uuid;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_uuid(text, jsonb, text, boolean) IS
  'api helper: an id field given as a UUID string (22P02 when malformed).';

CREATE FUNCTION enterprise_lab.api_integer(fn text, body jsonb, key text, fallback integer, min_value integer, max_value integer)
RETURNS integer
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  v jsonb := body -> key;
  n numeric;
BEGIN
  IF v IS NULL OR jsonb_typeof(v) = 'null' THEN
    RETURN fallback;
  END IF;
  IF jsonb_typeof(v) <> 'number' THEN
    RAISE EXCEPTION '%: % must be a number', fn, key
      USING ERRCODE = 'invalid_parameter_value', COLUMN = key,
            DETAIL = format('It is a JSON %s.', jsonb_typeof(v));
  END IF;
  n := v::numeric;
  IF n <> trunc(n) OR n < min_value OR n > max_value THEN
    RAISE EXCEPTION '%: % must be a whole number from % to %', fn, key, min_value, max_value
      USING ERRCODE = 'invalid_parameter_value', COLUMN = key,
            DETAIL = format('The value given was %s.', left(n::text, 40));
  END IF;
  RETURN n::integer;
END $$;
COMMENT ON FUNCTION enterprise_lab.api_integer(text, jsonb, text, integer, integer, integer) IS
  'api helper: an optional whole-number field within bounds (22023 otherwise).';

CREATE FUNCTION enterprise_lab.api_not_found(what text, id uuid) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  RAISE EXCEPTION '% % does not exist', what, id
    USING ERRCODE = 'PT404', HINT = 'PostgREST answers this error with HTTP 404.';
END $$;
COMMENT ON FUNCTION enterprise_lab.api_not_found(text, uuid) IS 'api helper: raise PT404 (HTTP 404) for a missing object.';

-- Lineage edges of one transaction share created_at: list them in
-- lifecycle order, request -> case -> canonical object.
CREATE FUNCTION enterprise_lab.api_lineage_rank(record_type text) RETURNS integer
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(array_position(ARRAY['submission', 'service_request', 'operation_case', 'business_object'], record_type), 5)
$$;
COMMENT ON FUNCTION enterprise_lab.api_lineage_rank(text) IS
  'api helper: the position of a record type in the lifecycle, for ordering lineage edges.';

-- Which requester e-mail addresses a request may see: anonymous callers
-- cannot prove who they are, so they see none.
CREATE FUNCTION enterprise_lab.api_may_see_emails() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(enterprise_lab.request_access() <> 'anon', false)
$$;
COMMENT ON FUNCTION enterprise_lab.api_may_see_emails() IS
  'api helper: false for the anonymous role, which sees no requester e-mail addresses.';

-- Which documents a request may read: their files carry the requester's
-- data as much as the e-mail address does, so an anonymous caller learns
-- that a document exists (its id) and nothing else, least of all a link.
CREATE FUNCTION enterprise_lab.api_may_see_documents() RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT coalesce(enterprise_lab.request_access() IN ('operator', 'auditor', 'admin'), false)
$$;
COMMENT ON FUNCTION enterprise_lab.api_may_see_documents() IS
  'api helper: true for operators, auditors and admins, who see documents'' details and download links; the anonymous role sees only that a document exists.';


CREATE FUNCTION api.reference_data(jsonb DEFAULT '{}') RETURNS jsonb
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
                          'valid_from', a.valid_from, 'valid_to', a.valid_to, 'status', a.status)
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
    'intake_methods', '["portal", "api", "email", "phone", "batch"]'::jsonb,
    'document_types', jsonb_build_object(
      'extensions', '["pdf", "txt", "csv", "png", "jpg", "jpeg"]'::jsonb,
      'content_types', '["application/pdf", "text/plain", "text/csv", "image/png", "image/jpeg"]'::jsonb,
      'max_size', pg_size_bytes(coalesce(current_setting('enterprise_lab.max_document_size', true), '10MB'))));
END $$;
COMMENT ON FUNCTION api.reference_data(jsonb) IS
  'Everything the intake form and the workflow panel choose from: customers with their agreements, request types, priorities, teams, case statuses, allowed transitions, document types. Body: {}.';


CREATE FUNCTION api.submit_request(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'submit_request';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['requester_name', 'requester_email', 'description', 'request_type', 'priority',
                     'team', 'customer_id', 'agreement_id', 'intake_method', 'document']);
  v_name text := enterprise_lab.api_text(fn, b, 'requester_name', true, 200);
  v_email text := enterprise_lab.api_text(fn, b, 'requester_email', true, 254);
  v_description text := enterprise_lab.api_text(fn, b, 'description', true, 4000);
  v_type text := enterprise_lab.api_text(fn, b, 'request_type', true, 40);
  v_priority text := enterprise_lab.api_text(fn, b, 'priority', true, 40);
  v_team text := enterprise_lab.api_text(fn, b, 'team', true, 40);
  v_customer uuid := enterprise_lab.api_uuid(fn, b, 'customer_id', true);
  v_agreement uuid := enterprise_lab.api_uuid(fn, b, 'agreement_id', false);
  v_method text := coalesce(enterprise_lab.api_text(fn, b, 'intake_method', false, 40), 'portal');
  doc jsonb := b -> 'document';
  doc_name text;
  doc_type text;
  doc_base64 text;
  doc_content bytea;
  max_size bigint := pg_size_bytes(coalesce(current_setting('enterprise_lab.max_document_size', true), '10MB'));
  v_submission uuid;
  result jsonb;
BEGIN
  IF v_method NOT IN ('portal', 'api', 'email', 'phone', 'batch') THEN
    RAISE EXCEPTION '%: intake_method "%" is not known', fn, v_method
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'intake_method',
            HINT = 'Use portal, api, email, phone or batch.';
  END IF;

  IF doc IS NOT NULL AND jsonb_typeof(doc) <> 'null' THEN
    IF jsonb_typeof(doc) <> 'object' THEN
      RAISE EXCEPTION '%: document must be an object', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'document',
              DETAIL = format('It is a JSON %s.', jsonb_typeof(doc)),
              HINT = 'Send {"file_name": ..., "content_type": ..., "content_base64": ...}.';
    END IF;
    PERFORM enterprise_lab.api_body(fn || ' document', doc, ARRAY['file_name', 'content_type', 'content_base64']);
    doc_name := enterprise_lab.api_text(fn, doc, 'file_name', true, 255);
    doc_type := enterprise_lab.api_text(fn, doc, 'content_type', true, 100);
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
         (intake_method, requester_name, requester_email, description,
          request_type_code, priority_code, team_code, customer_id, agreement_id, submitted_by)
  VALUES (v_method, v_name, v_email, v_description, v_type, v_priority, v_team,
          v_customer, v_agreement, enterprise_lab.request_subject())
  RETURNING s.id INTO v_submission;

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
      document_repo.upload_document(v_submission, doc_name, doc_type, doc_content, 'supporting_document'));
  END IF;
  RETURN result;
END $$;
COMMENT ON FUNCTION api.submit_request(jsonb) IS
  'Submit an intake request, optionally with one document (file_name, content_type, content_base64): creates the submission, its service request, the RequestCreated event and the document in one transaction. Returns their ids and the request number.';


CREATE FUNCTION api.set_case_status(jsonb DEFAULT '{}') RETURNS jsonb
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
COMMENT ON FUNCTION api.set_case_status(jsonb) IS
  'Move an operational case: {"case_id", "new_status", "reason"?}. Operators may change the cases of the teams in their JWT claims, admins all; changed_by is the JWT subject. Records history and enqueues OperationalCaseStatusChanged.';
-- Owned by a role that is subject to row-level security (a superuser
-- owner would bypass it): the policies on operational.operation_cases
-- decide which cases this function may update.
ALTER FUNCTION api.set_case_status(jsonb) OWNER TO lab_case_writer;


CREATE FUNCTION api.submissions(jsonb DEFAULT '{}') RETURNS jsonb
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


CREATE FUNCTION api.submission_detail(jsonb DEFAULT '{}') RETURNS jsonb
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


CREATE FUNCTION api.events(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'events';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'status', 'limit']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_status text := enterprise_lab.api_text(fn, b, 'status', false, 40);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
BEGIN
  IF v_status NOT IN ('pending', 'completed', 'failed', 'dead_letter', 'skipped') THEN
    RAISE EXCEPTION '%: status "%" is not an event status', fn, v_status
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'status',
            HINT = 'Use pending, completed, failed, dead_letter or skipped.';
  END IF;
  RETURN jsonb_build_object('items', coalesce((
    SELECT jsonb_agg(to_jsonb(f) || jsonb_build_object('id', f.event_id) ORDER BY f.seq DESC)
      FROM (SELECT ef.*, e.payload
              FROM dashboard.event_flow ef
              JOIN integration.events e ON e.id = ef.event_id
             WHERE (v_submission IS NULL OR ef.submission_id = v_submission)
               AND (v_status IS NULL OR ef.status = v_status)
             ORDER BY ef.seq DESC
             LIMIT v_limit) f), '[]'));
END $$;
COMMENT ON FUNCTION api.events(jsonb) IS
  'Integration events, newest first, with request number, attempts, last error and latency: {"submission_id"?, "status"?, "limit"? (1..1000, default 100)}.';


CREATE FUNCTION api.sync_logs(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'sync_logs';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'limit']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
BEGIN
  RETURN jsonb_build_object('items', coalesce((
    SELECT jsonb_agg(to_jsonb(l) ORDER BY l.id DESC)
      FROM (SELECT * FROM integration.sync_logs
             WHERE v_submission IS NULL OR submission_id = v_submission
             ORDER BY id DESC LIMIT v_limit) l), '[]'));
END $$;
COMMENT ON FUNCTION api.sync_logs(jsonb) IS
  'Processing outcomes (sync logs), newest first: {"submission_id"?, "limit"? (1..1000, default 100)}.';


CREATE FUNCTION api.lineage(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'lineage';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', true);
BEGIN
  IF NOT EXISTS (SELECT 1 FROM intake.submissions WHERE id = v_submission) THEN
    PERFORM enterprise_lab.api_not_found('submission', v_submission);
  END IF;
  RETURN jsonb_build_object('items', coalesce((
    SELECT jsonb_agg(jsonb_build_object('from_type', l.from_type, 'from_id', l.from_id,
                                        'to_type', l.to_type, 'to_id', l.to_id,
                                        'relationship', l.relationship, 'event_id', l.event_id,
                                        'created_at', l.created_at)
                     ORDER BY l.created_at, enterprise_lab.api_lineage_rank(l.from_type),
                              l.from_type, l.to_type, l.relationship)
      FROM canonical.lineage_records l WHERE l.submission_id = v_submission), '[]'));
END $$;
COMMENT ON FUNCTION api.lineage(jsonb) IS
  'Lineage edges of one submission (service_request -> operation_case -> business_object): {"submission_id"}.';


CREATE FUNCTION api.metrics(jsonb DEFAULT '{}') RETURNS jsonb
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


CREATE FUNCTION api.health(jsonb DEFAULT '{}') RETURNS jsonb
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


CREATE FUNCTION api.replay_event(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'replay_event';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['event_id']);
  v_event uuid := enterprise_lab.api_uuid(fn, b, 'event_id', true);
  msg text;
  det text;
BEGIN
  RETURN to_jsonb(integration.replay_event(v_event));
EXCEPTION
  WHEN no_data_found THEN
    PERFORM enterprise_lab.api_not_found('event', v_event);
  WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION '%', msg USING ERRCODE = 'PT409', DETAIL = det;
END $$;
COMMENT ON FUNCTION api.replay_event(jsonb) IS
  'Operators and admins: put a dead-lettered, failed or skipped event back to pending: {"event_id"}. Returns the event. PT409 (HTTP 409) when the event is not replayable.';


-- Who may call what.  PostgREST answers a missing EXECUTE privilege with
-- 401 for the anonymous role and 403 for the others.
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'api'::regnamespace LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $$;
GRANT USAGE ON SCHEMA api TO lab_anon, lab_operator, lab_auditor, lab_admin;
GRANT EXECUTE ON FUNCTION
  api.reference_data(jsonb), api.submit_request(jsonb), api.submissions(jsonb),
  api.submission_detail(jsonb), api.events(jsonb), api.sync_logs(jsonb), api.lineage(jsonb),
  api.metrics(jsonb), api.health(jsonb)
  TO lab_anon, lab_operator, lab_auditor, lab_admin;
GRANT EXECUTE ON FUNCTION api.set_case_status(jsonb), api.replay_event(jsonb) TO lab_operator, lab_admin;
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
-- enterprise_lab (maintenance): the jobs a running installation needs, and
-- their registration with pg_cron.
--
--   retention               completed events and their success sync logs
--                           older than enterprise_lab.event_retention
--   storage reconciliation  document_repo.reconcile_storage()
--   SLA escalation          operational.escalate_sla_breaches()
--   event processing        integration.process_events(), only for databases
--                           that run without the preloaded workers

CREATE FUNCTION enterprise_lab.event_retention() RETURNS interval
  AS 'MODULE_PATHNAME', 'el_event_retention' LANGUAGE C STABLE;
COMMENT ON FUNCTION enterprise_lab.event_retention() IS
  'The retention in force (enterprise_lab.event_retention); NULL when completed events are kept forever.';

CREATE FUNCTION enterprise_lab.purge_completed_events(batch_size integer DEFAULT 1000)
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
     WHERE e.status = 'completed' AND e.processed_at < now() - retention
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
COMMENT ON FUNCTION enterprise_lab.purge_completed_events(integer) IS
  'Remove up to batch_size completed events older than enterprise_lab.event_retention, with their success sync logs; returns how many events.';

CREATE PROCEDURE enterprise_lab.run_retention(batch_size integer DEFAULT 1000, max_batches integer DEFAULT 1000)
LANGUAGE plpgsql AS $$
DECLARE
  removed integer;
  total bigint := 0;
BEGIN
  -- One short transaction per batch: locks and snapshots stay small.
  FOR i IN 1 .. max_batches LOOP
    removed := enterprise_lab.purge_completed_events(batch_size);
    total := total + removed;
    COMMIT;
    EXIT WHEN removed < batch_size;
  END LOOP;
  RAISE LOG 'enterprise_lab: retention removed % completed events older than %',
    total, coalesce(enterprise_lab.event_retention()::text, 'forever (retention disabled)');
END $$;
COMMENT ON PROCEDURE enterprise_lab.run_retention(integer, integer) IS
  'The retention job: purge_completed_events() in batches, committing after each, until nothing is left (at most max_batches).';

-- The jobs schedule_maintenance() registers: name, default schedule, command.
CREATE FUNCTION enterprise_lab.maintenance_jobs(
  retention_schedule text, reconcile_schedule text, sla_schedule text,
  include_processing boolean, processing_schedule text, processing_batch integer)
RETURNS TABLE (jobname text, schedule text, command text)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
  SELECT * FROM (VALUES
    ('enterprise_lab.retention', retention_schedule, 'CALL enterprise_lab.run_retention()'),
    ('enterprise_lab.sla_escalation', sla_schedule, 'SELECT operational.escalate_sla_breaches()'),
    ('enterprise_lab.storage_reconciliation', reconcile_schedule, 'SELECT count(*) FROM document_repo.reconcile_storage()'))
    AS j(jobname, schedule, command)
  UNION ALL
  SELECT 'enterprise_lab.process_events', processing_schedule,
         format('SELECT integration.process_events(%s)', processing_batch)
   WHERE include_processing
$$;
COMMENT ON FUNCTION enterprise_lab.maintenance_jobs(text, text, text, boolean, text, integer) IS
  'Helper of schedule_maintenance(): the pg_cron jobs it registers.';

CREATE FUNCTION enterprise_lab.require_pg_cron() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
    RAISE EXCEPTION 'pg_cron is not installed in database "%"', current_database()
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = 'The maintenance jobs are run by pg_cron.',
            HINT = 'CREATE EXTENSION pg_cron; add it to shared_preload_libraries and set cron.database_name to this database. '
                   'Without pg_cron, run the job commands listed in docs/operations.md from another scheduler.';
  END IF;
END $$;
COMMENT ON FUNCTION enterprise_lab.require_pg_cron() IS
  'Raise a clear error (SQLSTATE 55000) when pg_cron is not installed in this database.';

CREATE FUNCTION enterprise_lab.schedule_maintenance(
  retention_schedule  text DEFAULT '17 3 * * *',
  reconcile_schedule  text DEFAULT '47 3 * * *',
  sla_schedule        text DEFAULT '* * * * *',
  include_processing  boolean DEFAULT false,
  processing_schedule text DEFAULT '* * * * *',
  processing_batch    integer DEFAULT 1000)
RETURNS TABLE (jobid bigint, jobname text, schedule text, command text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  j record;
BEGIN
  PERFORM enterprise_lab.require_pg_cron();
  IF include_processing AND (processing_batch IS NULL OR processing_batch < 1) THEN
    RAISE EXCEPTION 'processing_batch must be at least 1'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The value given was %s.', coalesce(processing_batch::text, 'NULL'));
  END IF;
  FOR j IN SELECT * FROM enterprise_lab.maintenance_jobs(retention_schedule, reconcile_schedule, sla_schedule,
                                                         include_processing, processing_schedule, processing_batch) LOOP
    IF j.schedule IS NULL THEN
      RAISE EXCEPTION 'the schedule of job % must not be NULL', j.jobname
        USING ERRCODE = 'null_value_not_allowed',
              HINT = 'Use cron syntax, e.g. ''17 3 * * *'' for 03:17 every day.';
    END IF;
    -- cron.schedule() with a name replaces an existing job of that name.
    jobid := cron.schedule(j.jobname, j.schedule, j.command);
    jobname := j.jobname;
    schedule := j.schedule;
    command := j.command;
    RETURN NEXT;
  END LOOP;
  -- A processing job from an earlier call goes when it is no longer asked for.
  IF NOT include_processing THEN
    PERFORM cron.unschedule(c.jobid) FROM cron.job c
      WHERE c.jobname = 'enterprise_lab.process_events' AND c.username = current_user;
  END IF;
END $$;
COMMENT ON FUNCTION enterprise_lab.schedule_maintenance(text, text, text, boolean, text, integer) IS
  'Register (or update) the maintenance jobs with pg_cron: retention, SLA escalation, storage reconciliation and, with include_processing, a fallback event-processing job. Returns the jobs.';

CREATE FUNCTION enterprise_lab.unschedule_maintenance() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer := 0;
  id bigint;
BEGIN
  PERFORM enterprise_lab.require_pg_cron();
  FOR id IN SELECT c.jobid FROM cron.job c
             WHERE c.jobname LIKE 'enterprise\_lab.%' AND c.username = current_user LOOP
    PERFORM cron.unschedule(id);
    n := n + 1;
  END LOOP;
  RETURN n;
END $$;
COMMENT ON FUNCTION enterprise_lab.unschedule_maintenance() IS
  'Remove every enterprise_lab.* pg_cron job of the current user; returns how many. Run it before DROP EXTENSION.';
-- operational (SLA): per-priority resolution deadlines, breach detection
-- and escalation.  A case still in a non-terminal status past its deadline
-- is flagged once (operational.sla_breaches) and an
-- OperationalCaseSlaBreached event carries the breach to the canonical
-- object, through the registered handler canonical.record_sla_breach().

CREATE TABLE operational.sla_policies (
  priority_code   text PRIMARY KEY REFERENCES reference.priorities (code),
  resolution_time interval NOT NULL
                  CONSTRAINT sla_policies_resolution_time_positive CHECK (resolution_time > interval '0'),
  description     text,
  seeded          boolean NOT NULL DEFAULT false
);
COMMENT ON TABLE operational.sla_policies IS
  'How long a case of each priority may stay open (not in a terminal status) before its SLA is breached. Priorities without a row have no SLA.';

INSERT INTO operational.sla_policies (priority_code, resolution_time, description, seeded) VALUES
  ('critical', interval '4 hours', 'Critical: resolve within 4 hours.', true),
  ('high', interval '1 day', 'High: resolve within 1 day.', true),
  ('medium', interval '3 days', 'Medium: resolve within 3 days.', true),
  ('low', interval '7 days', 'Low: resolve within 7 days.', true);

CREATE TRIGGER sla_policies_10_user_modified BEFORE UPDATE ON operational.sla_policies
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.mark_user_modified();

CREATE TABLE operational.sla_breaches (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  submission_id uuid NOT NULL,
  case_id       uuid NOT NULL REFERENCES operational.operation_cases (id),
  priority_code text NOT NULL,
  case_status   text NOT NULL,
  opened_at     timestamptz NOT NULL,
  deadline      timestamptz NOT NULL,
  detected_at   timestamptz NOT NULL DEFAULT now(),
  event_id      uuid,
  CONSTRAINT sla_breaches_once_per_case UNIQUE (case_id)
);
CREATE INDEX sla_breaches_submission_idx ON operational.sla_breaches (submission_id);
COMMENT ON TABLE operational.sla_breaches IS
  'One row per case that missed its SLA deadline (flagged once: the unique key on case_id), with the event that published it.';
COMMENT ON COLUMN operational.sla_breaches.case_status IS 'The case status when the breach was detected.';

-- The escalation looks at non-terminal cases by status and age.
CREATE INDEX operation_cases_status_opened_idx ON operational.operation_cases (processing_status, opened_at);

CREATE FUNCTION operational.escalate_sla_breaches(max_cases integer DEFAULT 1000) RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n integer;
BEGIN
  IF max_cases IS NULL OR max_cases < 1 THEN
    RAISE EXCEPTION 'max_cases must be at least 1'
      USING ERRCODE = 'invalid_parameter_value',
            DETAIL = format('The value given was %s.', coalesce(max_cases::text, 'NULL'));
  END IF;

  -- The unique key on case_id flags a breach once, even when two
  -- escalations run at the same time; the event's idempotency key makes its
  -- publication once as well.
  WITH overdue AS (
    SELECT c.id, c.submission_id, c.external_reference, c.priority_code, c.processing_status,
           c.opened_at, c.opened_at + p.resolution_time AS deadline,
           gen_random_uuid() AS breach_id, gen_random_uuid() AS event_id
      FROM operational.operation_cases c
      JOIN operational.sla_policies p ON p.priority_code = c.priority_code
     WHERE c.processing_status IN (SELECT status FROM operational.case_statuses WHERE NOT is_terminal)
       AND c.opened_at + p.resolution_time < now()
       AND NOT EXISTS (SELECT 1 FROM operational.sla_breaches b WHERE b.case_id = c.id)
     ORDER BY c.opened_at + p.resolution_time
     LIMIT max_cases
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
    FROM flagged f JOIN overdue o ON o.id = f.case_id
  ON CONFLICT ON CONSTRAINT events_idempotency_key_unique DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  IF n > 0 THEN
    RAISE LOG 'enterprise_lab: % case(s) breached their SLA', n;
  END IF;
  RETURN n;
END $$;
COMMENT ON FUNCTION operational.escalate_sla_breaches(integer) IS
  'The SLA escalation job: flag up to max_cases non-terminal cases past their deadline (once each) and enqueue OperationalCaseSlaBreached for each; returns how many were flagged.';

CREATE FUNCTION canonical.record_sla_breach(e integration.events) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  UPDATE canonical.business_objects b
     SET attributes = b.attributes || jsonb_build_object('sla', jsonb_build_object(
           'status', 'breached',
           'priority', e.payload -> 'priority',
           'deadline', e.payload -> 'deadline',
           'breached_at', e.payload -> 'detected_at',
           'case_status', e.payload -> 'case_status')),
         updated_at = now()
   WHERE b.submission_id = e.submission_id AND b.object_type = 'service_request';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'submission % has no canonical object yet', e.submission_id
      USING ERRCODE = 'no_data_found',
            DETAIL = format('Event %s reports an SLA breach of case %s.', e.id, e.payload ->> 'case_id'),
            HINT = 'Process or replay the submission''s RequestCreated event first.';
  END IF;
END $$;
COMMENT ON FUNCTION canonical.record_sla_breach(integration.events) IS
  'Handler of OperationalCaseSlaBreached: writes the breach into the canonical object''s attributes (key "sla").';

INSERT INTO integration.event_handlers (event_type, handler, description, seeded) VALUES
  ('OperationalCaseSlaBreached', 'canonical.record_sla_breach(integration.events)',
   'Records an SLA breach in the canonical object''s attributes.', true);

CREATE VIEW dashboard.sla_metrics AS
SELECT p.priority_code,
       p.resolution_time,
       (SELECT count(*) FROM operational.operation_cases c
         WHERE c.priority_code = p.priority_code
           AND c.processing_status IN (SELECT status FROM operational.case_statuses WHERE NOT is_terminal)) AS open_cases,
       (SELECT count(*) FROM operational.operation_cases c
         WHERE c.priority_code = p.priority_code
           AND c.processing_status IN (SELECT status FROM operational.case_statuses WHERE NOT is_terminal)
           AND c.opened_at + p.resolution_time < now()) AS overdue_cases,
       (SELECT count(*) FROM operational.sla_breaches b
          JOIN operational.operation_cases c ON c.id = b.case_id
         WHERE b.priority_code = p.priority_code
           AND c.processing_status IN (SELECT status FROM operational.case_statuses WHERE NOT is_terminal)) AS open_breaches,
       (SELECT count(*) FROM operational.sla_breaches b WHERE b.priority_code = p.priority_code) AS total_breaches
  FROM operational.sla_policies p
  JOIN reference.priorities pr ON pr.code = p.priority_code
 ORDER BY pr.rank;
COMMENT ON VIEW dashboard.sla_metrics IS
  'SLA per priority: open cases, overdue cases, breaches still open and breaches ever flagged.';

SELECT pg_catalog.pg_extension_config_dump('operational.sla_policies', '');
SELECT pg_catalog.pg_extension_config_dump('operational.sla_breaches', '');
-- enterprise_lab (status): one call that tells an operator what is going on.

CREATE FUNCTION enterprise_lab.status() RETURNS jsonb
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
-- enterprise_lab (demo): generic demo data for the dashboard and the tour.

CREATE FUNCTION enterprise_lab.load_demo_data() RETURNS integer
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
             JOIN intake.submissions i ON i.id = s.submission_id
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
COMMENT ON FUNCTION enterprise_lab.load_demo_data() IS
  'Add a handful of generic demo requests in different lifecycle states; returns how many.';

CREATE FUNCTION enterprise_lab.reset_demo() RETURNS integer
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
-- enterprise_lab (backup): what makes pg_dump / pg_restore keep every row.
--
-- Every table with user data is registered with pg_extension_config_dump,
-- whole (no filter), including the tables CREATE EXTENSION fills with seed
-- rows (they have a "seeded" column).  A restore runs CREATE EXTENSION
-- first, which inserts the seed rows again, and then loads the dumped rows:
--   * a dumped row with the key of a seed row that is already there
--     replaces it, so a seed row comes back exactly as it was dumped, user
--     changes and timestamps included (restore_seeded_row);
--   * a row deleted from such a table is remembered by key in
--     deleted_config_rows, which is dumped too; restoring that record deletes
--     the seed row CREATE EXTENSION put back, so a deleted seed row stays
--     deleted.
-- The load runs with session_replication_role = replica, so the lifecycle
-- triggers (which already ran when the rows were first written) do not
-- fire again; the triggers here are ENABLE ALWAYS because they are the
-- ones that must.  See docs/operations.md for the commands.

CREATE TABLE enterprise_lab.deleted_config_rows (
  table_schema text NOT NULL,
  table_name   text NOT NULL,
  row_key      jsonb NOT NULL,
  deleted_by   text NOT NULL DEFAULT current_user,
  deleted_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (table_schema, table_name, row_key)
);
COMMENT ON TABLE enterprise_lab.deleted_config_rows IS
  'Keys of rows deleted from tables that have seed rows, so that restoring a dump does not bring deleted seed rows back.';

-- "key1 = ($1).key1 AND key2 = ($1).key2" for the trigger's key columns.
CREATE FUNCTION enterprise_lab.seed_key_condition(key_columns text[]) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp AS $$
  SELECT string_agg(format('%I = ($1).%I', k, k), ' AND ')
    FROM unnest(key_columns) AS k
$$;
COMMENT ON FUNCTION enterprise_lab.seed_key_condition(text[]) IS
  'Helper of the seed-row triggers: the WHERE condition matching a row on the given key columns.';

CREATE FUNCTION enterprise_lab.restore_seeded_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  target text := format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME);
  condition text := enterprise_lab.seed_key_condition(TG_ARGV);
  columns text;
  existing_is_seeded boolean;
BEGIN
  EXECUTE format('SELECT seeded FROM %s WHERE %s', target, condition)
     INTO existing_is_seeded USING NEW;
  IF existing_is_seeded IS NOT TRUE THEN
    RETURN NEW;     -- no such key, or a user row: the insert decides
  END IF;

  IF current_setting('session_replication_role') <> 'replica' THEN
    RAISE EXCEPTION 'a row with this key is part of the extension''s seed data in %', target
      USING ERRCODE = 'unique_violation',
            DETAIL = format('Key: %s.', (SELECT jsonb_object_agg(k, to_jsonb(NEW) -> k) FROM unnest(TG_ARGV) AS k)),
            HINT = 'Change the seed row with UPDATE instead. When restoring a dump, run pg_restore with '
                   'PGOPTIONS=''-c session_replication_role=replica'' (see docs/operations.md).';
  END IF;

  -- Restoring: the dumped version replaces the seed row.
  SELECT string_agg(format('%I = ($1).%I', a.attname, a.attname), ', ' ORDER BY a.attnum)
    INTO columns
    FROM pg_attribute a
   WHERE a.attrelid = TG_RELID AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '';
  EXECUTE format('UPDATE %s SET %s WHERE %s', target, columns, condition) USING NEW;
  RETURN NULL;
END $$;
COMMENT ON FUNCTION enterprise_lab.restore_seeded_row() IS
  'Trigger (restore): a dumped row whose key matches a seed row replaces the seed row instead of conflicting with it.';

CREATE FUNCTION enterprise_lab.remember_deleted_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  INSERT INTO enterprise_lab.deleted_config_rows (table_schema, table_name, row_key)
  SELECT TG_TABLE_SCHEMA, TG_TABLE_NAME, jsonb_object_agg(k, to_jsonb(OLD) -> k)
    FROM unnest(TG_ARGV) AS k
  ON CONFLICT DO NOTHING;
  RETURN NULL;
END $$;
COMMENT ON FUNCTION enterprise_lab.remember_deleted_row() IS
  'Trigger: records the key of a deleted row in enterprise_lab.deleted_config_rows so that a restore keeps the deletion.';

CREATE FUNCTION enterprise_lab.restore_deleted_row() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  key_columns text[];
BEGIN
  IF current_setting('session_replication_role') = 'replica' THEN
    SELECT array_agg(k ORDER BY k) INTO key_columns FROM jsonb_object_keys(NEW.row_key) AS k;
    EXECUTE format('DELETE FROM %I.%I WHERE seeded AND %s', NEW.table_schema, NEW.table_name,
                   (SELECT string_agg(format('%I::text = ($1 ->> %L)', k, k), ' AND ')
                      FROM unnest(key_columns) AS k))
      USING NEW.row_key;
  END IF;
  RETURN NEW;
END $$;
COMMENT ON FUNCTION enterprise_lab.restore_deleted_row() IS
  'Trigger (restore): restoring the record of a deleted row deletes the seed row CREATE EXTENSION put back under that key.';

CREATE TRIGGER deleted_config_rows_restore BEFORE INSERT ON enterprise_lab.deleted_config_rows
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.restore_deleted_row();
ALTER TABLE enterprise_lab.deleted_config_rows ENABLE ALWAYS TRIGGER deleted_config_rows_restore;

-- Attach both triggers to every table of the extension that has seed rows.
DO $$
DECLARE
  t record;
BEGIN
  FOR t IN
    SELECT c.oid::regclass AS tab, c.relname,
           (SELECT string_agg(quote_literal(a.attname), ', ' ORDER BY array_position(i.indkey::int2[], a.attnum))
              FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
             WHERE i.indrelid = c.oid AND i.indisprimary) AS key_args
      FROM pg_class c
      JOIN pg_namespace n ON n.oid = c.relnamespace
      JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e'
      JOIN pg_extension x ON x.oid = d.refobjid AND x.extname = 'enterprise_lab'
     WHERE c.relkind = 'r'
       AND EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'seeded' AND NOT a.attisdropped)
     ORDER BY 1
  LOOP
    EXECUTE format('CREATE TRIGGER %I BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION enterprise_lab.restore_seeded_row(%s)',
                   t.relname || '_05_restore_seeded', t.tab, t.key_args);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', t.tab, t.relname || '_05_restore_seeded');
    EXECUTE format('CREATE TRIGGER %I AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION enterprise_lab.remember_deleted_row(%s)',
                   t.relname || '_90_remember_deleted', t.tab, t.key_args);
  END LOOP;
END $$;

SELECT pg_catalog.pg_extension_config_dump('enterprise_lab.deleted_config_rows', '');
-- Access: what each role may read, and row-level security on the cases.
-- Runs after every boundary file so the read grants cover all of them.
-- No request role may write a boundary table: writes go through the api
-- functions.  The workers and integration.process_events() run as the
-- extension's owner (a superuser), which row-level security never limits.

DO $$
DECLARE
  s text;
BEGIN
  FOREACH s IN ARRAY ARRAY['enterprise_lab', 'reference', 'intake', 'source_system', 'document_repo',
                           'integration', 'operational', 'canonical', 'dashboard'] LOOP
    CONTINUE WHEN to_regnamespace(s) IS NULL;
    -- Operators and admins read everything, auditors too (that is all they do).
    EXECUTE format('GRANT USAGE ON SCHEMA %I TO lab_operator, lab_auditor, lab_admin', s);
    EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA %I TO lab_operator, lab_auditor, lab_admin', s);
  END LOOP;
END $$;

-- The request helpers are evaluated by the policies below as the querying role.
GRANT USAGE ON SCHEMA enterprise_lab TO lab_case_writer;
GRANT EXECUTE ON FUNCTION enterprise_lab.request_role(), enterprise_lab.request_access(),
  enterprise_lab.request_trusts_claims(), enterprise_lab.request_claims(), enterprise_lab.request_teams(),
  enterprise_lab.request_subject(), enterprise_lab.request_may_change_team(text)
  TO lab_operator, lab_auditor, lab_admin, lab_case_writer;

-- api.set_case_status runs as lab_case_writer: just enough to update a
-- case's status and let the triggers record history and the event.
GRANT USAGE ON SCHEMA operational, integration TO lab_case_writer;
GRANT SELECT ON operational.operation_cases, operational.case_statuses, operational.status_transitions,
  operational.role_teams TO lab_case_writer;
GRANT UPDATE (processing_status) ON operational.operation_cases TO lab_case_writer;
GRANT INSERT ON operational.case_status_history, integration.events TO lab_case_writer;
GRANT USAGE ON SEQUENCE operational.case_status_history_seq, integration.event_seq TO lab_case_writer;

ALTER TABLE operational.operation_cases ENABLE ROW LEVEL SECURITY;

CREATE POLICY cases_read_all ON operational.operation_cases
  FOR SELECT TO lab_auditor, lab_admin, lab_case_writer USING (true);
COMMENT ON POLICY cases_read_all ON operational.operation_cases IS
  'Auditors and admins see every case; so does api.set_case_status, to tell "not yours" (42501) from "not there" (404).';

CREATE POLICY cases_read_own_teams ON operational.operation_cases
  FOR SELECT TO lab_operator USING (enterprise_lab.request_may_change_team(team_code));
COMMENT ON POLICY cases_read_own_teams ON operational.operation_cases IS
  'An operator reading the table sees the cases of its teams (enterprise_lab.request_teams()).';

CREATE POLICY cases_change_own_teams ON operational.operation_cases
  FOR UPDATE TO lab_case_writer
  USING (enterprise_lab.request_may_change_team(team_code))
  WITH CHECK (enterprise_lab.request_may_change_team(team_code));
COMMENT ON POLICY cases_change_own_teams ON operational.operation_cases IS
  'api.set_case_status changes a case only for an admin or an operator of the case''s team (enterprise_lab.request_teams()).';

ALTER TABLE operational.case_status_history ENABLE ROW LEVEL SECURITY;

CREATE POLICY history_read_all ON operational.case_status_history
  FOR SELECT TO lab_auditor, lab_admin USING (true);
COMMENT ON POLICY history_read_all ON operational.case_status_history IS 'Auditors and admins see all history.';

-- The subquery is itself filtered by the policies on operation_cases.
CREATE POLICY history_read_own_teams ON operational.case_status_history
  FOR SELECT TO lab_operator
  USING (EXISTS (SELECT 1 FROM operational.operation_cases c WHERE c.id = case_id));
COMMENT ON POLICY history_read_own_teams ON operational.case_status_history IS
  'An operator reading the table sees the history of the cases it sees.';

CREATE POLICY history_written_with_change ON operational.case_status_history
  FOR INSERT TO lab_case_writer
  WITH CHECK (changed_by IS NOT NULL AND changed_by = enterprise_lab.request_subject());
COMMENT ON POLICY history_written_with_change ON operational.case_status_history IS
  'api.set_case_status records history rows in the name of the request''s subject only (enterprise_lab.request_subject()).';
-- Access (delivery): webhook signing secrets and a subscription's extra
-- headers (which may carry credentials) are for superusers and lab_admin
-- only.  Runs after 95_access.sql, whose read grant covers every table of
-- the integration schema.

REVOKE SELECT ON integration.subscription_secrets FROM lab_operator, lab_auditor;
REVOKE SELECT ON integration.subscriptions FROM lab_operator, lab_auditor;
GRANT SELECT (id, name, url, event_types, enabled, paused_at, paused_reason, timeout_ms, consecutive_failures,
              delivered_count, failed_count, last_success_at, last_failure_at, created_at, updated_at)
  ON integration.subscriptions TO lab_operator, lab_auditor;
