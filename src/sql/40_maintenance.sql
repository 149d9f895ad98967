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

-- What retention reads: the completed events, oldest first.  Without it
-- every batch of the purge scanned and sorted the whole events table (9.5 s
-- of a core each minute for 74,000 events at 1,000 submissions/s, and
-- growing with the retention period).
CREATE INDEX events_retention_idx ON integration.events (processed_at)
  WHERE event_status = 'completed';

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
