-- Infrastructure errors are not the event's fault: a lock timeout (55P03),
-- a resource error (class 53), an administrator shutdown (57P01) or a
-- cancel (57014) while a handler runs aborts the whole batch, so nothing
-- is recorded: attempts stay unchanged, nothing is dead-lettered, and the
-- batch is retried once the cause is gone.  (The workers back off and
-- retry; integration.process_events() passes the error to its caller.)
CREATE EXTENSION enterprise_lab;
SET enterprise_lab.max_attempts = 1;

-- A handler that raises whatever SQLSTATE the switch holds.
CREATE TABLE public.infra_switch (sqlstate text);
INSERT INTO public.infra_switch VALUES (NULL);
CREATE TABLE public.infra_handled (event_id uuid PRIMARY KEY);
CREATE FUNCTION public.infra_handler(e integration.events) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
  code text := (SELECT sqlstate FROM public.infra_switch);
BEGIN
  INSERT INTO public.infra_handled VALUES (e.id);
  IF code IS NOT NULL THEN
    RAISE EXCEPTION 'simulated infrastructure error %', code USING ERRCODE = code;
  END IF;
END $$;
INSERT INTO integration.event_handlers (event_type, handler, description)
VALUES ('InfraProbe', 'public.infra_handler(integration.events)', 'raises the switch''s SQLSTATE');

SELECT count(*) FROM intake.submit_request('Ina Infra', 'ina@example.test', 'Infrastructure errors.',
       'incident', 'high', 'operations', '10000000-0000-4000-8000-000000000002');
SELECT integration.process_events();
SELECT count(*) > 0 AS enqueued FROM (
  SELECT integration.enqueue_event('InfraProbe', r.submission_id, 'service_request', r.id, '{}')
    FROM source_system.service_requests r) x;

-- Each infrastructure SQLSTATE: the call fails with it, and the event is
-- exactly as before (pending, no attempt charged, no error, no sync log).
\set VERBOSITY sqlstate
UPDATE public.infra_switch SET sqlstate = '55P03';
SELECT integration.process_events();
UPDATE public.infra_switch SET sqlstate = '53200';
SELECT integration.process_events();
UPDATE public.infra_switch SET sqlstate = '53100';
SELECT integration.process_events();
UPDATE public.infra_switch SET sqlstate = '57P01';
SELECT integration.process_events();
UPDATE public.infra_switch SET sqlstate = '57014';
SELECT integration.process_events();
\set VERBOSITY default
SELECT event_status, attempts, last_error FROM integration.events WHERE event_type = 'InfraProbe';
SELECT count(*) AS sync_logs FROM integration.sync_logs WHERE event_type = 'InfraProbe';
SELECT count(*) AS handler_rows FROM public.infra_handled;

-- An error of the event itself is charged as before: with max_attempts 1
-- it is dead-lettered at once.  Replayed, it starts afresh.
UPDATE public.infra_switch SET sqlstate = '22012';
SELECT integration.process_events();
SELECT event_status, attempts, last_error FROM integration.events WHERE event_type = 'InfraProbe';
SELECT (integration.replay_event(id)).event_status AS replayed FROM integration.events WHERE event_type = 'InfraProbe';

-- The cause gone, the same event completes on its first charged attempt.
UPDATE public.infra_switch SET sqlstate = NULL;
SELECT integration.process_events();
SELECT event_status, attempts FROM integration.events WHERE event_type = 'InfraProbe';

DROP TABLE public.infra_handled, public.infra_switch;
DROP FUNCTION public.infra_handler(integration.events);
DROP EXTENSION enterprise_lab;
