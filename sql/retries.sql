-- Failures: a failing event rolls back alone, is retried with exponential
-- backoff, dead-lettered after the maximum attempts, holds its submission's
-- later events in plain sight, and can be replayed or skipped.
CREATE EXTENSION enterprise_lab;

SELECT name, setting, unit FROM pg_settings
 WHERE name IN ('enterprise_lab.max_attempts', 'enterprise_lab.backoff_base', 'enterprise_lab.backoff_max',
                'enterprise_lab.batch_size', 'enterprise_lab.chunk_size')
 ORDER BY name;

-- A custom event type with a SQL handler that fails until told otherwise.
CREATE TABLE public.handler_switch (fail boolean NOT NULL);
INSERT INTO public.handler_switch VALUES (true);
CREATE TABLE public.handled (event_id uuid PRIMARY KEY, note text);
CREATE FUNCTION public.flaky_handler(e integration.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.handled VALUES (e.id, e.payload ->> 'note');
  IF (SELECT fail FROM public.handler_switch) THEN
    RAISE EXCEPTION 'downstream system unavailable' USING ERRCODE = 'connection_failure',
          HINT = 'It comes back later.';
  END IF;
END $$;
INSERT INTO integration.event_handlers (event_type, handler, description)
VALUES ('CustomerNotified', 'public.flaky_handler(integration.events)', 'sends a notification');

-- A handler with the wrong signature is refused.
CREATE FUNCTION public.bad_handler(x int) RETURNS void LANGUAGE sql AS 'SELECT';
INSERT INTO integration.event_handlers (event_type, handler) VALUES ('Other', 'public.bad_handler(int)');

SET enterprise_lab.max_attempts = 3;
SET enterprise_lab.backoff_base = '1h';
SET enterprise_lab.backoff_max = '1d';

-- Two submissions; the first also gets a custom event that will fail.
SELECT count(*) FROM intake.submit_request('Flo Sample', 'flo@example.test', 'Order more toner.',
       'service_change', 'low', 'operations', '10000000-0000-4000-8000-000000000002');
SELECT count(*) FROM intake.submit_request('Gus Sample', 'gus@example.test', 'VPN drops hourly.',
       'incident', 'high', 'operations', '10000000-0000-4000-8000-000000000002');
SELECT integration.process_events();
SELECT count(*) > 0 AS enqueued FROM (
  SELECT integration.enqueue_event('CustomerNotified', r.submission_id, 'service_request', r.id,
                                   '{"note": "first"}')
    FROM source_system.service_requests r WHERE r.request_number = 'SR-000001') x;

-- The failure is isolated: its handler's insert is rolled back, the event
-- records the error and waits an hour (backoff), the rest completes.
SELECT integration.process_events();
SELECT event_type, event_status, attempts, last_error,
       next_attempt_at > now() + interval '25 minutes' AS backed_off
  FROM integration.events WHERE event_type = 'CustomerNotified';
SELECT count(*) AS handler_rows_kept FROM public.handled;
SELECT action, outcome, message, details ->> 'sqlstate' AS sqlstate, details ->> 'hint' AS hint
  FROM integration.sync_logs WHERE event_type = 'CustomerNotified' ORDER BY id;

-- Not due yet: nothing happens.
SELECT integration.process_events();

-- The backoff grows with each attempt (base 1 h, doubled, with jitter of at most half).
UPDATE integration.events SET next_attempt_at = now() WHERE event_type = 'CustomerNotified';
SELECT integration.process_events();
SELECT event_status, attempts,
       next_attempt_at BETWEEN now() + interval '59 minutes' AND now() + interval '2 hours 1 minute' AS second_backoff
  FROM integration.events WHERE event_type = 'CustomerNotified';

-- A later event of the same submission waits behind the failing one.
SELECT processing_status FROM operational.set_case_status(
  (SELECT c.id FROM operational.operation_cases c JOIN source_system.service_requests r ON r.id = c.service_request_id
    WHERE r.request_number = 'SR-000001'), 'in_progress', 'op', 'start');
UPDATE integration.events SET next_attempt_at = now() WHERE event_type = 'CustomerNotified';
SELECT integration.process_events();

-- Third attempt: dead letter.
SELECT event_type, event_status, attempts, processed_at IS NOT NULL AS finished
  FROM integration.events WHERE submission_id =
       (SELECT submission_id FROM source_system.service_requests WHERE request_number = 'SR-000001')
 ORDER BY seq;
SELECT action FROM integration.sync_logs WHERE event_type = 'CustomerNotified' ORDER BY id;

-- The dead letter holds its submission, visibly.
SELECT holding_event_type, holding_status, last_error, waiting_events, held_since IS NOT NULL AS since
  FROM integration.held_submissions;
SELECT pending_events, retrying_events, dead_letters, held_submissions FROM dashboard.processing_metrics;
SELECT integration.process_events();
SELECT lifecycle_status FROM canonical.business_objects WHERE source_reference = 'SR-000001';

-- Fix the downstream system and replay: the event and the held one go through.
UPDATE public.handler_switch SET fail = false;
SELECT integration.replay_dead_letters();
SELECT event_status, attempts FROM integration.events WHERE event_type = 'CustomerNotified';
SELECT integration.process_events();
SELECT integration.process_events();
SELECT event_type, event_status FROM integration.events WHERE submission_id =
       (SELECT submission_id FROM source_system.service_requests WHERE request_number = 'SR-000001')
 ORDER BY seq;
SELECT lifecycle_status FROM canonical.business_objects WHERE source_reference = 'SR-000001';
SELECT note FROM public.handled;
SELECT count(*) AS held FROM integration.held_submissions;

-- An event type nobody handles fails with a clear error; skipping it on
-- purpose releases the submission.
SELECT count(*) > 0 AS enqueued FROM (
  SELECT integration.enqueue_event('Unheard', r.submission_id, 'service_request', r.id)
    FROM source_system.service_requests r WHERE r.request_number = 'SR-000002') x;
SET enterprise_lab.max_attempts = 1;
SELECT integration.process_events();
SELECT event_status, last_error FROM integration.events WHERE event_type = 'Unheard';
SELECT event_status FROM integration.skip_event((SELECT id FROM integration.events WHERE event_type = 'Unheard'), 'no consumer for this type yet');
SELECT count(*) AS held FROM integration.held_submissions;
SELECT action, message FROM integration.sync_logs WHERE event_type = 'Unheard' ORDER BY id;

-- A dead-lettered RequestCreated marks its service request failed; replay recovers it.
DELETE FROM canonical.status_map WHERE operational_status = 'open';
SELECT count(*) FROM intake.submit_request('Hal Sample', 'hal@example.test', 'New laptop.',
       'service_change', 'medium', 'service_desk', '10000000-0000-4000-8000-000000000001');
SELECT integration.process_events();
SELECT r.lifecycle_status, e.event_status, e.last_error
  FROM source_system.service_requests r JOIN integration.events e ON e.aggregate_id = r.id
 WHERE r.request_number = 'SR-000003';
SELECT count(*) AS cases_left_behind FROM operational.operation_cases c
  JOIN source_system.service_requests r ON r.id = c.service_request_id WHERE r.request_number = 'SR-000003';
INSERT INTO canonical.status_map VALUES ('open', 'active');
SELECT integration.replay_dead_letters();
SELECT integration.process_events();
SELECT r.lifecycle_status, c.processing_status, b.lifecycle_status AS canonical_status
  FROM source_system.service_requests r
  JOIN operational.operation_cases c ON c.service_request_id = r.id
  JOIN canonical.business_objects b ON b.submission_id = r.submission_id
 WHERE r.request_number = 'SR-000003';

-- One poison event among many: the rest of the chunk still completes, and
-- the batch stays within its subtransaction budget.
SET enterprise_lab.max_attempts = 5;
UPDATE public.handler_switch SET fail = true;
SELECT count(*) FROM (
  SELECT intake.submit_request('Bulk ' || i, 'bulk' || i || '@example.test', 'bulk request ' || i,
                               'incident', 'low', 'operations', '10000000-0000-4000-8000-000000000002')
    FROM generate_series(1, 120) i) x;
-- (the poison event goes to a submission that is already integrated, so it
-- is claimed in the same batch as the 120 new requests)
SELECT count(*) > 0 AS enqueued FROM (
  SELECT integration.enqueue_event('CustomerNotified', r.submission_id, 'service_request', r.id, '{"note": "poison"}')
    FROM source_system.service_requests r WHERE r.request_number = 'SR-000002') x;
SELECT integration.process_events(1000);
SELECT event_type, event_status, count(*) FROM integration.events WHERE event_status <> 'skipped'
 GROUP BY event_type, event_status ORDER BY event_type, event_status;
SELECT count(*) AS bulk_cases FROM operational.operation_cases WHERE team_code = 'operations' AND external_reference > 'OC-000003';

DROP TABLE public.handled, public.handler_switch;
DROP FUNCTION public.flaky_handler(integration.events), public.bad_handler(int);
DROP EXTENSION enterprise_lab;
