-- Webhooks: subscriptions, deliveries written with the events they announce,
-- the CloudEvents payload, Standard Webhooks signatures, and what the
-- delivery worker records for each answer (driven here by hand: no worker
-- serves this database, so nothing is sent).
CREATE EXTENSION IF NOT EXISTS enterprise_lab;

SELECT name, setting, unit FROM pg_settings
 WHERE name LIKE 'enterprise_lab.delivery%' ORDER BY name;

-- The Standard Webhooks specification's published example.
SELECT integration.webhook_signature('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
         'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, '{"test": 2432232314}') AS signature;
SELECT integration.webhook_signature('secret', 'id', 1, 'body');
SELECT integration.generate_webhook_secret() ~ '^whsec_[A-Za-z0-9+/]{43}=$' AS generated_secret_is_32_bytes;

-- Subscriptions (203.0.113.0/24 is a documentation network: public, never reached).
SELECT name, url, event_types, enabled, timeout_ms
  FROM integration.create_subscription('everything', 'https://203.0.113.10/hooks');
SELECT name, event_types
  FROM integration.create_subscription('status-only', 'https://203.0.113.11/hooks',
                                       ARRAY['OperationalCaseStatusChanged'], headers => '{"X-Team": "ops"}');
SELECT name, enabled FROM integration.create_subscription('switched-off', 'https://203.0.113.12/hooks', enabled => false);
SELECT integration.create_subscription('everything', 'https://203.0.113.13/hooks');
SELECT integration.create_subscription('private', 'http://192.168.1.10/hooks');
SET enterprise_lab.delivery_allowed_networks = '192.168.1.0/24';
SELECT name FROM integration.create_subscription('allowed-private', 'http://192.168.1.10/hooks');
RESET enterprise_lab.delivery_allowed_networks;
SET enterprise_lab.delivery_allowed_networks = 'not-a-network';
DELETE FROM integration.subscriptions WHERE name = 'allowed-private';

-- A submission and its processing write one delivery per matching, enabled subscription.
SELECT count(*) FROM intake.submit_request('Webhook Reader', 'wr@example.test', 'Send it on.', 'incident',
                                           'high', 'operations', '10000000-0000-4000-8000-000000000002');
SELECT integration.process_events();
SELECT s.name, d.event_type, d.status, d.attempts
  FROM integration.deliveries d JOIN integration.subscriptions s ON s.id = d.subscription_id ORDER BY s.name, d.event_seq;

-- A rolled-back event writes none.
BEGIN;
SELECT count(*) FROM intake.submit_request('Never', 'never@example.test', 'Rolled back.', 'incident',
                                           'low', 'operations', '10000000-0000-4000-8000-000000000002');
SELECT integration.process_events();
SELECT count(*) AS deliveries_inside FROM integration.deliveries;
ROLLBACK;
SELECT count(*) AS deliveries_after_rollback FROM integration.deliveries;

-- The payload: a CloudEvents 1.0 event with the event and the canonical object after it.
SELECT jsonb_pretty(payload - 'id' - 'time' - 'subject' - 'data' - 'source') AS envelope,
       payload ->> 'source' = '/enterprise_lab/' || current_database() AS source_names_the_database,
       payload -> 'data' -> 'event' ->> 'type' AS event_type,
       payload -> 'data' -> 'canonical_object' ->> 'lifecycle_status' AS canonical_status,
       payload ->> 'id' = event_id::text AS id_is_the_event,
       payload ->> 'subject' = submission_id::text AS subject_is_the_submission
  FROM integration.deliveries;

-- A status change reaches both subscriptions; order holds per subscription and submission.
SELECT count(operational.set_case_status(c.id, 'in_progress', 'operator.one', 'picked up'))
  FROM operational.operation_cases c;
SELECT integration.process_events();
SELECT s.name, d.event_type, d.status
  FROM integration.deliveries d JOIN integration.subscriptions s ON s.id = d.subscription_id ORDER BY s.name, d.event_seq;

-- The worker leases only the first unfinished delivery of each pair.
SELECT s.name, d.event_type, c.attempt, c.header_lines, c.timeout_ms
  FROM integration.claim_deliveries(10, '1 minute') c
  JOIN integration.deliveries d ON d.id = c.id JOIN integration.subscriptions s ON s.id = d.subscription_id
 ORDER BY s.name;
SELECT count(*) AS leased_again FROM integration.claim_deliveries(10, '1 minute');

-- Answers: 'everything' answers 500 (retry with backoff), 'status-only' 204.
CREATE FUNCTION pg_temp.answer(sub text, http integer, err text DEFAULT NULL, retry_after integer DEFAULT NULL)
RETURNS integer LANGUAGE sql AS $$
  SELECT integration.record_delivery_outcomes(array_agg(d.id), array_agg(d.attempts), array_agg(http),
           array_agg(err), array_agg('answer body'::text), array_agg(retry_after), array_agg(12.5::float8),
           3, 1000, 60000, 4)
    FROM integration.deliveries d JOIN integration.subscriptions s ON s.id = d.subscription_id
   WHERE s.name = sub AND d.status = 'in_flight'
$$;
SELECT pg_temp.answer('everything', 500, 'the receiver answered HTTP 500');
SELECT pg_temp.answer('status-only', 204);
SELECT s.name, d.event_type, d.status, d.attempts, d.last_http_status, d.last_error, d.response_excerpt,
       d.next_attempt_at - now() BETWEEN interval '0.4 s' AND interval '1.1 s' AS backoff_from_base,
       d.delivered_at IS NOT NULL AS delivered
  FROM integration.deliveries d JOIN integration.subscriptions s ON s.id = d.subscription_id ORDER BY s.name, d.event_seq;
SELECT name, consecutive_failures, delivered_count, failed_count FROM integration.subscriptions ORDER BY name;

-- Retry-After on 429 decides the next attempt; an outcome for an attempt no longer leased is ignored.
UPDATE integration.deliveries SET next_attempt_at = now() WHERE status = 'failed';
SELECT count(*) FROM integration.claim_deliveries(10, '1 minute');
SELECT integration.record_delivery_outcomes(ARRAY[id], ARRAY[attempts - 1], ARRAY[204], ARRAY[NULL::text], ARRAY[NULL::text],
                                            ARRAY[NULL::integer], ARRAY[1.0::float8], 3, 1000, 60000, 4) AS stale_outcome_recorded
  FROM integration.deliveries WHERE status = 'in_flight';
SELECT pg_temp.answer('everything', 429, 'the receiver answered HTTP 429', 30);
SELECT status, attempts, next_attempt_at - now() BETWEEN interval '29 s' AND interval '31 s' AS retry_after_honoured
  FROM integration.deliveries WHERE status = 'failed';

-- The third failure is the last (max_attempts 3): a dead letter that holds the pair's next delivery.
UPDATE integration.deliveries SET next_attempt_at = now() WHERE status = 'failed';
SELECT count(*) FROM integration.claim_deliveries(10, '1 minute');
SELECT pg_temp.answer('everything', NULL, 'Failed to connect to 203.0.113.10 port 443');
SELECT subscription_name, holding_event_type, last_error, waiting_deliveries FROM integration.held_deliveries;
SELECT count(*) AS leased_while_held FROM integration.claim_deliveries(10, '1 minute');
SELECT name, state, consecutive_failures, waiting, dead_letters FROM integration.subscription_status ORDER BY name;

-- Replay releases it; a 410 then pauses the subscription, and deliveries wait.
SELECT status, attempts FROM integration.replay_delivery((SELECT id FROM integration.deliveries WHERE status = 'dead_letter'));
SELECT count(*) FROM integration.claim_deliveries(10, '1 minute');
SELECT pg_temp.answer('everything', 410, 'the receiver answered HTTP 410');
SELECT name, state, paused_reason FROM integration.subscription_status ORDER BY name;
SELECT count(*) AS leased_while_paused FROM integration.claim_deliveries(10, '1 minute');
SELECT name, paused_reason FROM integration.resume_subscription((SELECT id FROM integration.subscriptions WHERE name = 'everything'));

-- The circuit breaker: failure_threshold (4) consecutive failures pause it.
SELECT count(*) FROM integration.claim_deliveries(10, '1 minute');
SELECT pg_temp.answer('everything', 503, 'the receiver answered HTTP 503');
UPDATE integration.subscriptions SET consecutive_failures = 3 WHERE name = 'everything';
UPDATE integration.deliveries SET next_attempt_at = now() WHERE status = 'failed';
SELECT count(*) FROM integration.claim_deliveries(10, '1 minute');
SELECT pg_temp.answer('everything', 503, 'the receiver answered HTTP 503');
SELECT name, state, paused_reason FROM integration.subscription_status ORDER BY name;

-- Skip: the operator gives up on a delivery, and the next one of the pair is due.
SELECT (integration.resume_subscription(id)).name FROM integration.subscriptions WHERE name = 'everything';
SELECT status FROM integration.deliveries WHERE status IN ('failed', 'dead_letter');
SELECT integration.skip_delivery((SELECT id FROM integration.deliveries WHERE status = 'dead_letter'), NULL);
SELECT status, last_error FROM integration.skip_delivery((SELECT id FROM integration.deliveries WHERE status = 'dead_letter'),
                                                         'the ticketing tool was rebuilt from the ERP');
SELECT s.name, d.event_type FROM integration.claim_deliveries(10, '1 minute') c
  JOIN integration.deliveries d ON d.id = c.id JOIN integration.subscriptions s ON s.id = d.subscription_id;

-- A lease that ran out makes its delivery due again, the attempt counted;
-- one still leased is not.
CREATE TEMP TABLE leased AS SELECT id, attempts FROM integration.deliveries WHERE status = 'in_flight';
SELECT count(*) AS in_flight FROM leased;
SELECT count(*) AS leased_before_the_lease_ends FROM integration.claim_deliveries(10, '1 minute');
UPDATE integration.deliveries SET lease_until = clock_timestamp() - interval '1 second'
 WHERE id = (SELECT id FROM leased ORDER BY id LIMIT 1);
SELECT count(*) AS leased_again, bool_and(c.attempt = l.attempts + 1) AS attempt_counted
  FROM integration.claim_deliveries(10, '1 minute') c JOIN leased l ON l.id = c.id;
SELECT count(*) AS in_flight, bool_and(lease_until > clock_timestamp()) AS all_leases_running
  FROM integration.deliveries WHERE status = 'in_flight';

-- Rejections (ids in messages shown as <id>).
CREATE FUNCTION pg_temp.try(q text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE q;
  RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
  RETURN SQLSTATE || ': ' || regexp_replace(SQLERRM, '[0-9a-f]{8}-[0-9a-f-]{27}', '<id>', 'g');
END $$;
SELECT pg_temp.try(format('SELECT integration.skip_delivery(%L, ''done'')',
                          (SELECT id FROM integration.deliveries WHERE status = 'delivered' LIMIT 1)));
SELECT pg_temp.try(format('SELECT integration.replay_delivery(%L)',
                          (SELECT id FROM integration.deliveries WHERE status = 'delivered' LIMIT 1)));
SELECT integration.replay_delivery('00000000-0000-4000-8000-000000000000');
SELECT integration.pause_subscription('00000000-0000-4000-8000-000000000000', 'why');
SELECT integration.webhook_signature('whsec_!!!!', 'id', 1, 'body');
UPDATE integration.subscriptions SET url = 'https://203.0.113.10/' || repeat('x', 2000) WHERE name = 'everything';
UPDATE integration.subscriptions SET headers = '["X-A"]' WHERE name = 'everything';
SELECT api.deliveries('{"status": "lost"}');
SELECT api.replay_delivery('{}');

-- What the api shows; secrets are not in it.
SELECT jsonb_array_length(api.subscriptions('{}') -> 'items') AS subscriptions,
       api.subscriptions('{}')::text LIKE '%whsec_%' AS shows_secrets;
SELECT jsonb_array_length(api.deliveries('{}') -> 'items') AS deliveries;
SELECT jsonb_array_length(api.submission_detail(jsonb_build_object('submission_id', submission_id)) -> 'deliveries')
  FROM intake.submissions;
SELECT (api.create_subscription('{"name": "via-api", "url": "https://203.0.113.20/hook", "event_types": ["RequestCreated"]}')
         ->> 'secret') LIKE 'whsec_%' AS secret_returned_once;
SELECT api.update_subscription(jsonb_build_object('subscription_id', id, 'paused', true, 'reason', 'maintenance')) ->> 'paused_reason'
  FROM integration.subscriptions WHERE name = 'via-api';

DROP EXTENSION enterprise_lab CASCADE;
