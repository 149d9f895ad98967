-- Maintenance: retention of completed events, the pg_cron job registration
-- (this database has no pg_cron), and enterprise_lab.status().
CREATE EXTENSION enterprise_lab;
\set VERBOSITY default
\set SHOW_CONTEXT never

SHOW enterprise_lab.event_retention;
SELECT enterprise_lab.event_retention();

-- Four requests; two cases move on, so there are eight events.
SELECT count(*) FROM (
  SELECT intake.submit_request('Requester ' || i, 'r' || i || '@example.test', 'Request number ' || i,
                               'incident', 'medium', 'operations', '10000000-0000-4000-8000-000000000002')
    FROM generate_series(1, 4) AS i) s;
SELECT integration.process_events(100);
SELECT count(*) FROM (
  SELECT operational.set_case_status(id, 'in_progress', 'operator', 'picked up')
    FROM operational.operation_cases ORDER BY external_reference LIMIT 2) s;

-- A custom event that fails once and then succeeds (its failure is logged),
-- and one that never succeeds (dead-lettered).
CREATE FUNCTION flaky(e integration.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF e.attempts = 0 THEN RAISE EXCEPTION 'first attempt fails'; END IF;
END $$;
CREATE FUNCTION poison(e integration.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN RAISE EXCEPTION 'poison'; END $$;
INSERT INTO integration.event_handlers (event_type, handler) VALUES
  ('Flaky', 'flaky(integration.events)'), ('Poison', 'poison(integration.events)');
SET enterprise_lab.backoff_base = 0;
SET enterprise_lab.max_attempts = 2;
SELECT count(*) FROM (
  SELECT integration.enqueue_event('Flaky', submission_id, 'service_request', id)
    FROM source_system.service_requests ORDER BY request_number LIMIT 1) s;
SELECT count(*) FROM (
  SELECT integration.enqueue_event('Poison', submission_id, 'service_request', id)
    FROM source_system.service_requests ORDER BY request_number DESC LIMIT 1) s;
SELECT integration.process_events(100);
SELECT integration.process_events(100);
SELECT integration.process_events(100);
SELECT event_type, event_status, count(*) FROM integration.events GROUP BY 1, 2 ORDER BY 1, 2;
SELECT outcome, count(*) FROM integration.sync_logs GROUP BY 1 ORDER BY 1;

-- Everything is recent: retention removes nothing.
SELECT enterprise_lab.purge_completed_events();

-- Age everything by 40 days, then keep one completed event young.
UPDATE integration.events SET processed_at = processed_at - interval '40 days', created_at = created_at - interval '40 days';
UPDATE integration.events SET processed_at = now()
 WHERE seq = (SELECT max(seq) FROM integration.events WHERE event_status = 'completed' AND event_type = 'RequestCreated');
CREATE TEMP TABLE before_purge AS
SELECT (SELECT count(*) FROM canonical.lineage_records) AS lineage,
       (SELECT count(*) FROM operational.case_status_history) AS history,
       (SELECT count(*) FROM integration.sync_logs WHERE outcome = 'failure') AS failure_logs;

-- Bounded batches: at most batch_size events per call.
SELECT enterprise_lab.purge_completed_events(batch_size => 3);
CALL enterprise_lab.run_retention(batch_size => 2);
SELECT enterprise_lab.purge_completed_events();

-- Left: the young completed event, the dead letter; every failure log,
-- all lineage and history; success logs only of events still there.
SELECT event_type, event_status, count(*) FROM integration.events GROUP BY 1, 2 ORDER BY 1, 2;
SELECT l.outcome, l.action, count(*), bool_and(e.id IS NOT NULL) AS event_still_there
  FROM integration.sync_logs l LEFT JOIN integration.events e ON e.id = l.event_id
 GROUP BY 1, 2 ORDER BY 1, 2;
SELECT b.lineage = (SELECT count(*) FROM canonical.lineage_records) AS lineage_kept,
       b.history = (SELECT count(*) FROM operational.case_status_history) AS history_kept,
       b.failure_logs = (SELECT count(*) FROM integration.sync_logs WHERE outcome = 'failure') AS failure_logs_kept
  FROM before_purge b;

-- Retention 0 keeps everything.
SET enterprise_lab.event_retention = 0;
SELECT enterprise_lab.event_retention() IS NULL AS kept_forever;
UPDATE integration.events SET processed_at = now() - interval '400 days' WHERE event_status = 'completed';
SELECT enterprise_lab.purge_completed_events();
RESET enterprise_lab.event_retention;

-- Rejections.
SELECT enterprise_lab.purge_completed_events(0);
\echo :LAST_ERROR_SQLSTATE
-- (PostgreSQL's own range message prints units from 17 on: show the SQLSTATE.)
\set VERBOSITY sqlstate
SET enterprise_lab.event_retention = -1;
\set VERBOSITY default

-- Without pg_cron the jobs cannot be registered: a clear error and a hint.
SELECT * FROM enterprise_lab.schedule_maintenance();
\echo :LAST_ERROR_SQLSTATE
SELECT enterprise_lab.unschedule_maintenance();
\echo :LAST_ERROR_SQLSTATE

-- The jobs it would register (processing only when asked).
SELECT jobname, schedule, command
  FROM enterprise_lab.maintenance_jobs('17 3 * * *', '47 3 * * *', '* * * * *', true, '* * * * *', 500)
 ORDER BY 1;

-- status(): one jsonb document.  This database has no workers and no pg_cron.
SELECT jsonb_object_keys(enterprise_lab.status()) AS key ORDER BY 1;
SELECT s ->> 'version' = (SELECT default_version FROM pg_available_extensions WHERE name = 'enterprise_lab') AS current_version, (s -> 'events') - 'oldest_pending_age_seconds' AS events,
       s #> '{workers,serving_this_database}' AS workers_here, s -> 'scheduled_jobs' AS jobs, s -> 'event_retention_seconds' AS retention
  FROM enterprise_lab.status() AS s;

DROP FUNCTION flaky(integration.events), poison(integration.events);
DROP EXTENSION enterprise_lab;
