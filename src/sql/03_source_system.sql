-- source_system: the first internal system of record.  One service request
-- per submission, created by a trigger in the submission's transaction.

CREATE SCHEMA source_system;
COMMENT ON SCHEMA source_system IS 'The system of record for service requests.';

CREATE SEQUENCE source_system.request_number_seq;

CREATE TABLE source_system.service_requests (
  id                uuid NOT NULL DEFAULT enterprise_lab.uuid_v7(),
  submission_id     uuid NOT NULL UNIQUE REFERENCES intake.submissions (submission_id),
  request_number    text NOT NULL,
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
  updated_at        timestamptz NOT NULL DEFAULT now(),
  -- Every key carries the root key, second so that look-ups by the first
  -- column keep their index (docs/architecture.md, Scale-out).
  CONSTRAINT service_requests_pkey PRIMARY KEY (id, submission_id),
  CONSTRAINT service_requests_request_number_key UNIQUE (request_number, submission_id)
) WITH (fillfactor = 85);  -- room for HOT updates when the request is integrated
COMMENT ON TABLE source_system.service_requests IS
  'Service requests; lifecycle_status is received until the worker integrates the request (integrated), or failed when its event is dead-lettered.';
COMMENT ON COLUMN source_system.service_requests.request_number IS 'Deterministic, human-readable number: SR-000001, SR-000002, ... (at least six digits).';

CREATE FUNCTION source_system.create_service_request() RETURNS trigger
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
