-- enterprise_lab (status): one call that tells an operator what is going on.

CREATE FUNCTION enterprise_lab.status() RETURNS jsonb
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
COMMENT ON FUNCTION enterprise_lab.status() IS
  'Operator summary as jsonb: version, workers, pending/failed/dead-lettered events and the oldest pending age, webhook deliveries (worker, waiting, in flight, dead letters, paused subscriptions), SLA breaches, retention, S3 reachability and the scheduled maintenance jobs.';
