-- metrics: the numbers of GET /metrics that live in tables.  The gateway
-- (src/http_metrics.c) adds what shared memory holds and writes Prometheus'
-- text format.  Every number here costs the same with ten events or ten
-- million: the counts are the maintained ones (src/sql/21_counts.sql), the
-- oldest waiting event is the first entry of the claim's partial index.

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
