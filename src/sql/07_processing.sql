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
COMMENT ON FUNCTION integration.replay_event(uuid) IS
  'Put a dead-lettered, failed or skipped event back to pending with a fresh attempt count.';

CREATE FUNCTION integration.replay_dead_letters() RETURNS integer
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
COMMENT ON FUNCTION integration.replay_dead_letters() IS 'Replay every dead letter; returns how many.';

CREATE FUNCTION integration.skip_event(event_id uuid, reason text) RETURNS integration.events
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
COMMENT ON FUNCTION integration.skip_event(uuid, text) IS
  'Give up on an event on purpose (it will never be applied), releasing the later events of its submission.';

CREATE VIEW integration.held_submissions AS
SELECT d.submission_id,
       d.id            AS holding_event_id,
       d.event_type    AS holding_event_type,
       d.event_status  AS holding_status,
       d.last_error,
       d.processed_at   AS held_since,
       (SELECT count(*) FROM integration.events w
         WHERE w.submission_id = d.submission_id AND w.seq > d.seq
           AND w.event_status IN ('pending', 'failed')) AS waiting_events
  FROM integration.events d
 WHERE d.event_status = 'dead_letter';
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
