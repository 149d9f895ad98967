-- integration: the transactional outbox (events), what processing did
-- (sync logs), and the handlers registered for custom event types.

CREATE SCHEMA integration;
COMMENT ON SCHEMA integration IS 'Integration events (the outbox), their processing outcomes, handlers and workers.';

CREATE SEQUENCE integration.event_seq;

CREATE TABLE integration.events (
  id              uuid NOT NULL DEFAULT enterprise_lab.uuid_v7(),
  seq             bigint NOT NULL DEFAULT nextval('integration.event_seq'),
  submission_id   uuid NOT NULL,
  event_type      text NOT NULL CONSTRAINT events_event_type_format CHECK (event_type ~ '^[A-Za-z][A-Za-z0-9_.]{0,99}$'),
  source_system   text NOT NULL,
  aggregate_type  text NOT NULL,
  aggregate_id    uuid NOT NULL,
  payload         jsonb NOT NULL DEFAULT '{}',
  event_status    text NOT NULL DEFAULT 'pending'
                  CONSTRAINT events_event_status_valid CHECK (event_status IN ('pending', 'completed', 'failed', 'dead_letter', 'skipped')),
  attempts        integer NOT NULL DEFAULT 0 CONSTRAINT events_attempts_not_negative CHECK (attempts >= 0),
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error      text,
  idempotency_key text,
  created_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
  processed_at    timestamptz,
  CONSTRAINT events_pkey PRIMARY KEY (id, submission_id),
  CONSTRAINT events_seq_key UNIQUE (seq, submission_id),
  CONSTRAINT events_idempotency_key_unique UNIQUE (submission_id, idempotency_key)
);
-- The claim walks this index oldest first.
CREATE INDEX events_due_idx ON integration.events (seq)
  WHERE event_status IN ('pending', 'failed');
-- Per-submission order: "is there an earlier unfinished event?"
CREATE INDEX events_unfinished_idx ON integration.events (submission_id, seq)
  WHERE event_status IN ('pending', 'failed', 'dead_letter');
-- Look-ups by submission use the (submission_id, idempotency_key) key.
-- Every index here is paid for by every event's completion (a status
-- change touches the partial indexes), so there are no more of them than
-- these, events_dead_letter_idx (21_counts.sql) and events_retention_idx
-- (40_maintenance.sql).

-- Completing an event is never a HOT update (event_status is in the partial
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
COMMENT ON COLUMN integration.events.event_status IS
  'pending, completed, failed (awaiting retry at next_attempt_at), dead_letter (holds later events of its submission), skipped.';

CREATE FUNCTION integration.wake_workers_at_commit() RETURNS trigger
  AS 'MODULE_PATHNAME', 'el_wake_workers_at_commit' LANGUAGE C;
COMMENT ON FUNCTION integration.wake_workers_at_commit() IS
  'Trigger: sets the workers'' latches when the enqueuing transaction commits.';

CREATE TRIGGER events_wake_workers AFTER INSERT ON integration.events
  FOR EACH STATEMENT EXECUTE FUNCTION integration.wake_workers_at_commit();

CREATE SEQUENCE integration.sync_log_seq;

CREATE TABLE integration.sync_logs (
  id            bigint NOT NULL DEFAULT nextval('integration.sync_log_seq'),
  submission_id uuid NOT NULL,
  event_id      uuid,
  event_type    text NOT NULL,
  action        text NOT NULL,
  outcome       text NOT NULL CONSTRAINT sync_logs_outcome_valid CHECK (outcome IN ('success', 'failure')),
  message       text NOT NULL,
  details       jsonb NOT NULL DEFAULT '{}',
  attempt       integer,
  created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
  CONSTRAINT sync_logs_pkey PRIMARY KEY (id, submission_id)
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
