-- enterprise_lab 0.2.0 -> 0.3.0.
--
-- Every change to src/sql/ after 0.2.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.3.0'" to load this file. \quit

-- Webhook delivery (src/sql/08_delivery.sql).
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
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
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
  CONSTRAINT deliveries_once_per_event UNIQUE (subscription_id, event_id),
  CONSTRAINT deliveries_in_flight_leased CHECK ((status = 'in_flight') = (lease_until IS NOT NULL))
);
-- The claim walks the unfinished deliveries oldest first.
CREATE INDEX deliveries_due_idx ON integration.deliveries (event_seq)
  WHERE status IN ('pending', 'in_flight', 'failed');
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
-- worker every time still reaches the dead letter.
CREATE FUNCTION integration.claim_deliveries(max_deliveries integer, lease interval)
RETURNS TABLE (id uuid, attempt integer, url text, secret text, header_lines text[],
               timeout_ms integer, body text)
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
  WITH due AS (
    SELECT d.id
      FROM integration.deliveries d
      JOIN integration.subscriptions s ON s.id = d.subscription_id
     WHERE d.status IN ('pending', 'in_flight', 'failed')
       AND CASE WHEN d.status = 'in_flight' THEN d.lease_until <= clock_timestamp()
                ELSE d.next_attempt_at <= clock_timestamp() END
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
    RETURNING d.id, d.attempts, d.subscription_id, d.payload, d.event_seq)
  SELECT l.id, l.attempts, s.url, k.secret,
         ARRAY(SELECT h.key || ': ' || h.value FROM jsonb_each_text(s.headers) h ORDER BY h.key),
         s.timeout_ms, l.payload::text
    FROM leased l
    JOIN integration.subscriptions s ON s.id = l.subscription_id
    JOIN integration.subscription_secrets k ON k.subscription_id = l.subscription_id
   ORDER BY l.event_seq
$$;
COMMENT ON FUNCTION integration.claim_deliveries(integer, interval) IS
  'Delivery worker: lease up to max_deliveries due deliveries (in flight until now() + lease) and return what to send.';

-- Record what the receivers answered, for a set of deliveries at once.
-- Only a delivery still leased for that attempt is updated: a lease that
-- ran out and was claimed again belongs to the newer attempt.
CREATE FUNCTION integration.record_delivery_outcomes(
  ids uuid[], attempts integer[], http_statuses integer[], errors text[], excerpts text[],
  retry_after_seconds integer[], durations_ms double precision[],
  max_attempts integer, backoff_base_ms integer, backoff_max_ms integer, failure_threshold integer)
RETURNS integer
LANGUAGE sql SET search_path = pg_catalog, pg_temp AS $$
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
      FROM o JOIN integration.deliveries d
        ON d.id = o.id AND d.attempts = o.attempt AND d.status = 'in_flight'),
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
  SELECT count(*)::integer FROM upd
$$;
COMMENT ON FUNCTION integration.record_delivery_outcomes(uuid[], integer[], integer[], text[], text[], integer[], double precision[], integer, integer, integer, integer) IS
  'Delivery worker: record attempts (2xx delivered; 410 pauses the subscription; others retry with backoff and jitter, Retry-After on 429/503, then dead letter) and apply the circuit breaker.';

CREATE FUNCTION integration.replay_delivery(delivery_id uuid) RETURNS integration.deliveries
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d integration.deliveries;
BEGIN
  SELECT * INTO d FROM integration.deliveries x WHERE x.id = delivery_id FOR UPDATE;
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
   WHERE x.id = delivery_id RETURNING * INTO d;
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
BEGIN
  IF reason IS NULL OR reason !~ '\S' THEN
    RAISE EXCEPTION 'a reason is required to skip a delivery'
      USING ERRCODE = 'not_null_violation', HINT = 'Say why the receiver may miss this event; it is kept as last_error.';
  END IF;
  UPDATE integration.deliveries x
     SET status = 'skipped', lease_until = NULL,
         last_error = left(format('skipped by %s: %s', enterprise_lab.request_subject(), reason), 1000)
   WHERE x.id = delivery_id AND x.status IN ('dead_letter', 'failed', 'pending')
  RETURNING * INTO d;
  IF NOT FOUND THEN
    IF EXISTS (SELECT 1 FROM integration.deliveries x WHERE x.id = delivery_id) THEN
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

-- Its api functions (src/sql/31_api_delivery.sql).
-- api (delivery): webhook subscriptions and their deliveries over HTTP.
-- Admins manage subscriptions; operators and admins replay or skip
-- deliveries; operators, auditors and admins read them.  Signing secrets
-- are returned once, to the admin who creates a subscription.

CREATE FUNCTION enterprise_lab.api_subscription_fields(fn text, b jsonb, OUT event_types text[], OUT headers jsonb,
                                                       OUT enabled boolean, OUT timeout_ms integer)
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF b ? 'event_types' AND jsonb_typeof(b -> 'event_types') <> 'null' THEN
    IF jsonb_typeof(b -> 'event_types') <> 'array' OR EXISTS (
         SELECT 1 FROM jsonb_array_elements(b -> 'event_types') v WHERE jsonb_typeof(v) <> 'string') THEN
      RAISE EXCEPTION '%: event_types must be an array of strings', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'event_types',
              HINT = 'Send ["RequestCreated", "OperationalCaseStatusChanged"], or leave it out for every type.';
    END IF;
    event_types := ARRAY(SELECT jsonb_array_elements_text(b -> 'event_types'));
    IF cardinality(event_types) NOT BETWEEN 1 AND 50 THEN
      RAISE EXCEPTION '%: event_types must name 1 to 50 event types', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'event_types',
              HINT = 'Leave event_types out to receive every type.';
    END IF;
  END IF;
  IF b ? 'headers' AND jsonb_typeof(b -> 'headers') <> 'null' THEN
    IF jsonb_typeof(b -> 'headers') <> 'object' THEN
      RAISE EXCEPTION '%: headers must be an object', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'headers', HINT = 'Send {"Header-Name": "value"}.';
    END IF;
    headers := b -> 'headers';
  END IF;
  IF b ? 'enabled' AND jsonb_typeof(b -> 'enabled') <> 'null' THEN
    IF jsonb_typeof(b -> 'enabled') <> 'boolean' THEN
      RAISE EXCEPTION '%: enabled must be true or false', fn
        USING ERRCODE = 'invalid_parameter_value', COLUMN = 'enabled';
    END IF;
    enabled := (b -> 'enabled')::boolean;
  END IF;
  timeout_ms := enterprise_lab.api_integer(fn, b, 'timeout_ms', NULL, 100, 60000);
END $$;
COMMENT ON FUNCTION enterprise_lab.api_subscription_fields(text, jsonb) IS
  'api helper: the optional fields of a subscription body (event_types, headers, enabled, timeout_ms), checked (22023).';

CREATE FUNCTION api.subscriptions(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
BEGIN
  PERFORM enterprise_lab.api_body('subscriptions', body, '{}');
  RETURN jsonb_build_object('items', coalesce((
    SELECT jsonb_agg(to_jsonb(s) || jsonb_build_object('id', s.subscription_id) ORDER BY s.name)
      FROM integration.subscription_status s), '[]'));
END $$;
COMMENT ON FUNCTION api.subscriptions(jsonb) IS
  'Webhook subscriptions with their state (active, paused with the reason, disabled), failures, last success and waiting, in-flight and dead-lettered deliveries. Body: {}.';

CREATE FUNCTION api.create_subscription(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'create_subscription';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['name', 'url', 'event_types', 'secret', 'timeout_ms', 'headers', 'enabled']);
  v_name text := enterprise_lab.api_text(fn, b, 'name', true, 63);
  v_url text := enterprise_lab.api_text(fn, b, 'url', true, 2000);
  v_secret text := enterprise_lab.api_text(fn, b, 'secret', false, 300);
  f record := enterprise_lab.api_subscription_fields(fn, b);
  s integration.subscriptions;
BEGIN
  IF v_name !~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' THEN
    RAISE EXCEPTION '%: name "%" is not a valid subscription name', fn, v_name
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'name',
            HINT = 'Use letters, digits, _, . and -, starting with a letter or digit.';
  END IF;
  s := integration.create_subscription(v_name, v_url, f.event_types, v_secret,
                                       coalesce(f.timeout_ms, 10000), coalesce(f.headers, '{}'), coalesce(f.enabled, true));
  RETURN to_jsonb(s) || jsonb_build_object(
    'secret', (SELECT k.secret FROM integration.subscription_secrets k WHERE k.subscription_id = s.id));
END $$;
COMMENT ON FUNCTION api.create_subscription(jsonb) IS
  'Admins: subscribe a URL to events: {"name", "url", "event_types"?, "secret"?, "timeout_ms"?, "headers"?, "enabled"?}. Returns the subscription and its signing secret. 23505 (HTTP 409) when the name is taken.';

CREATE FUNCTION api.update_subscription(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'update_subscription';
  b jsonb := enterprise_lab.api_body(fn, body,
               ARRAY['subscription_id', 'url', 'event_types', 'timeout_ms', 'headers', 'enabled', 'paused', 'reason']);
  v_id uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', true);
  v_url text := enterprise_lab.api_text(fn, b, 'url', false, 2000);
  v_reason text := enterprise_lab.api_text(fn, b, 'reason', false, 500);
  f record := enterprise_lab.api_subscription_fields(fn, b);
  s integration.subscriptions;
BEGIN
  IF b ? 'paused' AND jsonb_typeof(b -> 'paused') <> 'boolean' THEN
    RAISE EXCEPTION '%: paused must be true or false', fn USING ERRCODE = 'invalid_parameter_value', COLUMN = 'paused';
  END IF;
  UPDATE integration.subscriptions x
     SET url = coalesce(v_url, x.url),
         event_types = CASE WHEN b ? 'event_types' THEN f.event_types ELSE x.event_types END,
         timeout_ms = coalesce(f.timeout_ms, x.timeout_ms),
         headers = coalesce(f.headers, x.headers),
         enabled = coalesce(f.enabled, x.enabled)
   WHERE x.id = v_id RETURNING * INTO s;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('subscription', v_id);
  END IF;
  IF (b -> 'paused') = 'true' THEN
    s := integration.pause_subscription(v_id, coalesce(v_reason, 'paused by ' || enterprise_lab.request_subject()));
  ELSIF (b -> 'paused') = 'false' THEN
    s := integration.resume_subscription(v_id);
  END IF;
  RETURN to_jsonb(s);
END $$;
COMMENT ON FUNCTION api.update_subscription(jsonb) IS
  'Admins: change a subscription: {"subscription_id", "url"?, "event_types"?, "timeout_ms"?, "headers"?, "enabled"?, "paused"?, "reason"?}. paused=false resumes it. PT404 when unknown.';

CREATE FUNCTION api.delete_subscription(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'delete_subscription';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['subscription_id']);
  v_id uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', true);
  s integration.subscriptions;
BEGIN
  DELETE FROM integration.subscriptions x WHERE x.id = v_id RETURNING * INTO s;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('subscription', v_id);
  END IF;
  RETURN to_jsonb(s);
END $$;
COMMENT ON FUNCTION api.delete_subscription(jsonb) IS
  'Admins: remove a subscription with its secret and deliveries: {"subscription_id"}. PT404 when unknown.';

CREATE FUNCTION api.deliveries(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'deliveries';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id', 'subscription_id', 'status', 'limit']);
  v_submission uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', false);
  v_subscription uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', false);
  v_status text := enterprise_lab.api_text(fn, b, 'status', false, 40);
  v_limit integer := enterprise_lab.api_integer(fn, b, 'limit', 100, 1, 1000);
BEGIN
  IF v_status NOT IN ('pending', 'in_flight', 'failed', 'delivered', 'dead_letter', 'skipped') THEN
    RAISE EXCEPTION '%: status "%" is not a delivery status', fn, v_status
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'status',
            HINT = 'Use pending, in_flight, failed, delivered, dead_letter or skipped.';
  END IF;
  RETURN jsonb_build_object('items', coalesce((
    SELECT jsonb_agg(to_jsonb(x) - 'payload' ORDER BY x.event_seq DESC, x.subscription_name)
      FROM (SELECT d.*, s.name AS subscription_name
              FROM integration.deliveries d
              JOIN integration.subscriptions s ON s.id = d.subscription_id
             WHERE (v_submission IS NULL OR d.submission_id = v_submission)
               AND (v_subscription IS NULL OR d.subscription_id = v_subscription)
               AND (v_status IS NULL OR d.status = v_status)
             ORDER BY d.event_seq DESC
             LIMIT v_limit) x), '[]'));
END $$;
COMMENT ON FUNCTION api.deliveries(jsonb) IS
  'Webhook deliveries, newest event first: {"submission_id"?, "subscription_id"?, "status"?, "limit"? (1..1000, default 100)}.';

CREATE FUNCTION api.replay_delivery(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'replay_delivery';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['delivery_id', 'subscription_id']);
  v_delivery uuid := enterprise_lab.api_uuid(fn, b, 'delivery_id', false);
  v_subscription uuid := enterprise_lab.api_uuid(fn, b, 'subscription_id', false);
  msg text;
  det text;
BEGIN
  IF (v_delivery IS NULL) = (v_subscription IS NULL) THEN
    RAISE EXCEPTION '%: give either delivery_id or subscription_id', fn
      USING ERRCODE = 'invalid_parameter_value',
            HINT = '{"delivery_id": ...} replays one delivery; {"subscription_id": ...} every dead letter of a subscription.';
  END IF;
  IF v_delivery IS NOT NULL THEN
    RETURN to_jsonb(integration.replay_delivery(v_delivery)) - 'payload';
  END IF;
  RETURN jsonb_build_object('replayed', integration.replay_dead_deliveries(v_subscription));
EXCEPTION
  WHEN no_data_found THEN
    PERFORM enterprise_lab.api_not_found(CASE WHEN v_delivery IS NULL THEN 'subscription' ELSE 'delivery' END,
                                         coalesce(v_delivery, v_subscription));
  WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL;
    RAISE EXCEPTION '%', msg USING ERRCODE = 'PT409', DETAIL = det;
END $$;
COMMENT ON FUNCTION api.replay_delivery(jsonb) IS
  'Operators and admins: send a dead-lettered, failed or skipped delivery again ({"delivery_id"}), or every dead letter of a subscription ({"subscription_id"}). PT404, PT409.';

CREATE FUNCTION api.skip_delivery(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'skip_delivery';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['delivery_id', 'reason']);
  v_delivery uuid := enterprise_lab.api_uuid(fn, b, 'delivery_id', true);
  v_reason text := enterprise_lab.api_text(fn, b, 'reason', true, 500);
  msg text;
BEGIN
  RETURN to_jsonb(integration.skip_delivery(v_delivery, v_reason)) - 'payload';
EXCEPTION
  WHEN no_data_found THEN
    PERFORM enterprise_lab.api_not_found('delivery', v_delivery);
  WHEN object_not_in_prerequisite_state THEN
    GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
    RAISE EXCEPTION '%', msg USING ERRCODE = 'PT409';
END $$;
COMMENT ON FUNCTION api.skip_delivery(jsonb) IS
  'Operators and admins: give up on a delivery, releasing the later ones of its subscription and submission: {"delivery_id", "reason"}. PT404, PT409.';

REVOKE ALL ON FUNCTION api.subscriptions(jsonb), api.create_subscription(jsonb), api.update_subscription(jsonb),
  api.delete_subscription(jsonb), api.deliveries(jsonb), api.replay_delivery(jsonb), api.skip_delivery(jsonb)
  FROM PUBLIC;
GRANT EXECUTE ON FUNCTION api.subscriptions(jsonb), api.deliveries(jsonb) TO lab_operator, lab_auditor, lab_admin;
GRANT EXECUTE ON FUNCTION api.replay_delivery(jsonb), api.skip_delivery(jsonb) TO lab_operator, lab_admin;
GRANT EXECUTE ON FUNCTION api.create_subscription(jsonb), api.update_subscription(jsonb), api.delete_subscription(jsonb)
  TO lab_admin;

-- The read grants 95_access.sql gives every table of the schema.
GRANT SELECT ON integration.subscriptions, integration.subscription_secrets, integration.deliveries,
  integration.held_deliveries, integration.subscription_status, integration.delivery_worker_status
  TO lab_operator, lab_auditor, lab_admin;
-- Access (delivery): webhook signing secrets are for superusers and
-- lab_admin only.  Runs after 95_access.sql, whose read grant covers every
-- table of the integration schema.

REVOKE SELECT ON integration.subscription_secrets FROM lab_operator, lab_auditor;

-- api.submission_detail lists the submission's deliveries (src/sql/30_api.sql).
CREATE OR REPLACE FUNCTION api.submission_detail(jsonb DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  body ALIAS FOR $1;
  fn constant text := 'submission_detail';
  b jsonb := enterprise_lab.api_body(fn, body, ARRAY['submission_id']);
  v_id uuid := enterprise_lab.api_uuid(fn, b, 'submission_id', true);
  emails boolean := enterprise_lab.api_may_see_emails();
  submission jsonb;
  request jsonb;
  operational_case jsonb;
  documents jsonb := '[]';
  d record;
  url text;
BEGIN
  SELECT to_jsonb(s) || jsonb_build_object(
           'requester_email', CASE WHEN emails THEN s.requester_email END,
           'customer_code', c.code, 'customer_name', c.name,
           'agreement_number', a.agreement_number, 'agreement_name', a.name)
    INTO submission
    FROM intake.submissions s
    JOIN reference.customers c ON c.id = s.customer_id
    LEFT JOIN reference.agreements a ON a.id = s.agreement_id
   WHERE s.id = v_id;
  IF NOT FOUND THEN
    PERFORM enterprise_lab.api_not_found('submission', v_id);
  END IF;

  FOR d IN SELECT to_jsonb(x) AS doc, x.id, x.status FROM document_repo.documents x
            WHERE x.submission_id = v_id ORDER BY x.uploaded_at, x.id LOOP
    url := CASE WHEN d.status = 'stored' THEN document_repo.presigned_url(d.id, interval '15 minutes') END;
    documents := documents || jsonb_build_array(d.doc || jsonb_build_object('download_url', url));
  END LOOP;

  SELECT to_jsonb(r), to_jsonb(c) INTO request, operational_case
    FROM source_system.service_requests r
    LEFT JOIN operational.operation_cases c ON c.service_request_id = r.id
   WHERE r.submission_id = v_id;

  RETURN jsonb_build_object(
    'submission', submission,
    'service_request', request,
    'case', operational_case,
    'status_history', coalesce((SELECT jsonb_agg(to_jsonb(h) ORDER BY h.id)
                                  FROM operational.case_status_history h
                                 WHERE h.case_id = (operational_case ->> 'id')::uuid), '[]'),
    'canonical', (SELECT to_jsonb(o) FROM canonical.business_objects o
                   WHERE o.submission_id = v_id AND o.object_type = 'service_request'),
    'documents', documents,
    'events', coalesce((SELECT jsonb_agg(to_jsonb(e) ORDER BY e.seq)
                          FROM integration.events e WHERE e.submission_id = v_id), '[]'),
    'sync_logs', coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.id)
                             FROM integration.sync_logs l WHERE l.submission_id = v_id), '[]'),
    'lineage', coalesce((SELECT jsonb_agg(to_jsonb(l) ORDER BY l.created_at, enterprise_lab.api_lineage_rank(l.from_type),
                                          l.from_type, l.to_type, l.relationship)
                           FROM canonical.lineage_records l WHERE l.submission_id = v_id), '[]'),
    'deliveries', coalesce((SELECT jsonb_agg(to_jsonb(dl) - 'payload' || jsonb_build_object('subscription_name', sub.name)
                                             ORDER BY dl.event_seq, sub.name)
                              FROM integration.deliveries dl
                              JOIN integration.subscriptions sub ON sub.id = dl.subscription_id
                             WHERE dl.submission_id = v_id), '[]'));
END $$;
COMMENT ON FUNCTION api.submission_detail(jsonb) IS
  'One submission across every layer: {"submission_id"} -> submission, service_request, case, status_history, canonical, documents (with a 15-minute presigned download_url), events, sync_logs, lineage, webhook deliveries. PT404 (HTTP 404) when unknown.';

-- enterprise_lab.status() counts deliveries (src/sql/45_status.sql).
CREATE OR REPLACE FUNCTION enterprise_lab.status() RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  retention interval := enterprise_lab.event_retention();   -- also loads the library and its GUCs
  result jsonb;
  s3 jsonb;
  jobs jsonb;
BEGIN
  SELECT jsonb_build_object(
           'version', (SELECT extversion FROM pg_extension WHERE extname = 'enterprise_lab'),
           'database', current_database(),
           'workers', jsonb_build_object(
             'preloaded', 'enterprise_lab' = ANY (string_to_array(replace(current_setting('shared_preload_libraries'), ' ', ''), ',')),
             'serving_this_database', current_setting('enterprise_lab.database', true) = current_database(),
             'configured', current_setting('enterprise_lab.worker_count', true)::integer,
             'running', (SELECT count(*) FROM integration.worker_status),
             'detail', coalesce((SELECT jsonb_agg(to_jsonb(w) ORDER BY w.worker) FROM integration.worker_status w), '[]')),
           'events', (SELECT jsonb_build_object(
                        'pending', count(*) FILTER (WHERE status = 'pending'),
                        'failed', count(*) FILTER (WHERE status = 'failed'),
                        'dead_lettered', count(*) FILTER (WHERE status = 'dead_letter'),
                        'oldest_pending_age_seconds',
                          round(extract(epoch FROM now() - min(created_at) FILTER (WHERE status IN ('pending', 'failed'))), 3),
                        'held_submissions', (SELECT count(*) FROM integration.held_submissions))
                        FROM integration.events
                       WHERE status IN ('pending', 'failed', 'dead_letter')),
           'deliveries', jsonb_build_object(
             'worker', (SELECT to_jsonb(w) FROM integration.delivery_worker_status w),
             'subscriptions', (SELECT count(*) FROM integration.subscriptions),
             'paused_subscriptions', (SELECT count(*) FROM integration.subscriptions WHERE paused_at IS NOT NULL),
             'waiting', (SELECT count(*) FROM integration.deliveries WHERE status IN ('pending', 'failed')),
             'in_flight', (SELECT count(*) FROM integration.deliveries WHERE status = 'in_flight'),
             'dead_lettered', (SELECT count(*) FROM integration.deliveries WHERE status = 'dead_letter'),
             'oldest_waiting_age_seconds',
               (SELECT round(extract(epoch FROM now() - min(created_at)), 3) FROM integration.deliveries
                 WHERE status IN ('pending', 'failed', 'in_flight'))),
           'sla', jsonb_build_object(
             'open_breaches', (SELECT coalesce(sum(open_breaches), 0) FROM dashboard.sla_metrics),
             'overdue_cases', (SELECT coalesce(sum(overdue_cases), 0) FROM dashboard.sla_metrics)),
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
