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
CREATE INDEX deliveries_leased_idx ON integration.deliveries (lease_until)
  WHERE status = 'in_flight';

CREATE OR REPLACE FUNCTION integration.claim_deliveries(max_deliveries integer, lease interval)
RETURNS TABLE (id uuid, attempt integer, url text, secret text, header_lines text[],
               timeout_ms integer, body text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
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
        AND NOT EXISTS (SELECT 1 FROM integration.deliveries p
                         WHERE p.subscription_id = d.subscription_id
                           AND p.submission_id = d.submission_id
                           AND p.event_seq < d.event_seq
                           AND p.status IN ('pending', 'in_flight', 'failed', 'dead_letter'))
      ORDER BY d.event_seq
      LIMIT max_deliveries)
    UNION ALL
    (SELECT d.id
       FROM integration.deliveries d
       JOIN integration.subscriptions s ON s.id = d.subscription_id
      WHERE d.status = 'in_flight' AND d.lease_until <= due_by
        AND s.enabled AND s.paused_at IS NULL
      ORDER BY d.lease_until
      LIMIT max_deliveries)),
  -- Locked, and checked again as locked.
  due AS (
    SELECT d.id
      FROM integration.deliveries d
      JOIN integration.subscriptions s ON s.id = d.subscription_id
     WHERE d.id IN (SELECT c.id FROM candidate c)
       AND d.status IN ('pending', 'in_flight', 'failed')
       AND CASE WHEN d.status = 'in_flight' THEN d.lease_until <= due_by
                ELSE d.next_attempt_at <= due_by END
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
      -- "In flight" said as lease_until IS NOT NULL (the same, by a CHECK):
      -- status = 'in_flight' would let the plan walk deliveries_leased_idx,
      -- every delivery in flight, instead of looking up the answered ones.
      FROM o JOIN integration.deliveries d
        ON d.id = o.id AND d.attempts = o.attempt AND d.lease_until IS NOT NULL),
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
