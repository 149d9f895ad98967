-- metrics: the numbers of GET /metrics that live in tables.  The gateway
-- (src/http_metrics.c) adds what shared memory holds and writes Prometheus'
-- text format.  Every number here costs the same with ten events or ten
-- million: the counts are the maintained ones (src/sql/21_counts.sql), the
-- oldest waiting event is the first entry of the claim's partial index.

CREATE FUNCTION api.queue_metrics(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('queue_metrics', body, '{}');
  RETURN jsonb_build_object(
    -- Every status, 0 included, so a series does not vanish when it empties.
    'events', (SELECT jsonb_object_agg(s.status, coalesce(c.n, 0) ORDER BY s.status)
                 FROM (SELECT unnest(ARRAY['pending', 'completed', 'failed', 'dead_letter', 'skipped']) AS status
                       UNION
                       SELECT status FROM dashboard.status_count_slots WHERE layer = 'integration') s
                 LEFT JOIN (SELECT status, sum(count)::bigint AS n FROM dashboard.status_count_slots
                             WHERE layer = 'integration' GROUP BY status) c USING (status)),
    'pending', (SELECT coalesce(sum(count), 0)::bigint FROM dashboard.status_count_slots
                 WHERE layer = 'integration' AND status IN ('pending', 'failed')),
    'oldest_pending_age_seconds',
      coalesce((SELECT extract(epoch FROM now() - e.created_at)
                  FROM integration.events e WHERE e.event_status IN ('pending', 'failed')
                 ORDER BY e.seq LIMIT 1), 0));
END $$;
COMMENT ON FUNCTION api.queue_metrics(jsonb) IS
  'Queue numbers for monitoring, each read at a fixed cost: {"events": {status: count, ...} (maintained counts), "pending": events pending or awaiting a retry, "oldest_pending_age_seconds": age of the oldest of them (0 when none)}. GET /metrics serves them in Prometheus'' format. Body: {}.';
REVOKE ALL ON FUNCTION api.queue_metrics(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.queue_metrics(jsonb) TO lab_anon, lab_operator, lab_auditor, lab_admin;
