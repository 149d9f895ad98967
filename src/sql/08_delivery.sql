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
  id               uuid NOT NULL DEFAULT enterprise_lab.uuid_v7(),
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
  CONSTRAINT deliveries_pkey PRIMARY KEY (id, submission_id),
  CONSTRAINT deliveries_once_per_event UNIQUE (subscription_id, event_id, submission_id),
  CONSTRAINT deliveries_in_flight_leased CHECK ((status = 'in_flight') = (lease_until IS NOT NULL))
);
-- The claim walks the waiting deliveries oldest first, and finds leases
-- that ran out by their end: the deliveries in flight (up to
-- enterprise_lab.delivery_batch_size) are never walked past.
CREATE INDEX deliveries_due_idx ON integration.deliveries (event_seq)
  WHERE status IN ('pending', 'failed');
-- In flight, said as lease_until IS NOT NULL (the same, by a CHECK): no
-- other index's predicate is implied by it, nor is this one by a status.
CREATE INDEX deliveries_leased_idx ON integration.deliveries (lease_until)
  WHERE lease_until IS NOT NULL;
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
-- worker every time still reaches the dead letter.  Waiting deliveries and
-- expired leases are looked up apart, each through its own index, and the
-- oldest of both are locked.  PL/pgSQL keeps the plan for the session (a
-- SQL function's body is parsed and planned on every call).
CREATE FUNCTION integration.claim_deliveries(max_deliveries integer, lease interval)
RETURNS TABLE (id uuid, attempt integer, url text, secret text, header_lines text[],
               timeout_ms integer, body text)
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
  -- Its cost counts the order check for every waiting delivery, as the
  -- event claim's does (src/process.c): no backlog may make it compile.
  SET jit = off AS $$
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
        -- The first unfinished delivery of its pair, asked so that the
        -- planner probes deliveries_unfinished_idx by pair (a NOT EXISTS
        -- anti-join may read the whole partial index for every row).
        AND d.event_seq = (SELECT min(p.event_seq) FROM integration.deliveries p
                            WHERE p.subscription_id = d.subscription_id
                              AND p.submission_id = d.submission_id
                              AND p.status IN ('pending', 'in_flight', 'failed', 'dead_letter'))
      ORDER BY d.event_seq
      LIMIT max_deliveries)
    UNION ALL
    (SELECT d.id
       FROM integration.deliveries d
       JOIN integration.subscriptions s ON s.id = d.subscription_id
      WHERE d.lease_until <= due_by  -- in flight, lease run out
        AND s.enabled AND s.paused_at IS NULL
      ORDER BY d.lease_until
      LIMIT max_deliveries)),
  -- Locked, and checked again as locked.  The candidates are looked up by
  -- id: the status is tested in one expression, which matches no partial
  -- index's predicate, so the planner cannot read one of those whole
  -- instead (it did, for every candidate, once ANALYZE saw them nearly
  -- empty of live rows).
  due AS (
    SELECT d.id
      FROM candidate c
      JOIN integration.deliveries d ON d.id = c.id
      JOIN integration.subscriptions s ON s.id = d.subscription_id
     WHERE CASE WHEN d.status = 'in_flight' THEN d.lease_until <= due_by
                WHEN d.status IN ('pending', 'failed') THEN d.next_attempt_at <= due_by
                ELSE false END
       AND s.enabled AND s.paused_at IS NULL
       AND d.event_seq = (SELECT min(p.event_seq) FROM integration.deliveries p
                           WHERE p.subscription_id = d.subscription_id
                             AND p.submission_id = d.submission_id
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
COMMENT ON FUNCTION integration.claim_deliveries(integer, interval) IS
  'Delivery worker: lease up to max_deliveries due deliveries (in flight until now() + lease) and return what to send.';

-- Record what the receivers answered, for a set of deliveries at once.
-- Only a delivery still leased for that attempt is updated: a lease that
-- ran out and was claimed again belongs to the newer attempt.  PL/pgSQL,
-- like the claim, for a plan kept across calls.
CREATE FUNCTION integration.record_delivery_outcomes(
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
      -- "In flight" said in a form that no partial index's predicate
      -- matches: with status = 'in_flight' the plan walked an index of
      -- every delivery in flight instead of looking up the answered ones.
      FROM o JOIN integration.deliveries d
        ON d.id = o.id AND d.attempts = o.attempt
       AND CASE WHEN d.lease_until IS NULL THEN false ELSE true END),
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
COMMENT ON FUNCTION integration.record_delivery_outcomes(uuid[], integer[], integer[], text[], text[], integer[], double precision[], integer, integer, integer, integer) IS
  'Delivery worker: record attempts (2xx delivered; 410 pauses the subscription; others retry with backoff and jitter, Retry-After on 429/503, then dead letter) and apply the circuit breaker.';

CREATE FUNCTION integration.replay_delivery(delivery_id uuid) RETURNS integration.deliveries
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integration.deliveries;
  sub uuid;
BEGIN
  -- The lock names the submission as well: Citus routes a FOR UPDATE to
  -- one shard only.
  SELECT x.submission_id INTO sub FROM integration.deliveries x WHERE x.id = delivery_id;
  SELECT * INTO d FROM integration.deliveries x WHERE x.id = delivery_id AND x.submission_id = sub FOR UPDATE;
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
   WHERE x.id = delivery_id AND x.submission_id = sub RETURNING * INTO d;
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
  sub uuid;
BEGIN
  IF reason IS NULL OR reason !~ '\S' THEN
    RAISE EXCEPTION 'a reason is required to skip a delivery'
      USING ERRCODE = 'not_null_violation', HINT = 'Say why the receiver may miss this event; it is kept as last_error.';
  END IF;
  -- The update names the submission as well, which routes it to the
  -- delivery's shard on Citus.
  SELECT x.submission_id INTO sub FROM integration.deliveries x WHERE x.id = delivery_id;
  UPDATE integration.deliveries x
     SET status = 'skipped', lease_until = NULL,
         last_error = left(format('skipped by %s: %s', enterprise_lab.request_subject(), reason), 1000)
   WHERE x.id = delivery_id AND x.submission_id = sub AND x.status IN ('dead_letter', 'failed', 'pending')
  RETURNING * INTO d;
  IF NOT FOUND THEN
    IF sub IS NOT NULL THEN
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
