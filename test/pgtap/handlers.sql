-- Custom event handlers run as their owner, never with the workers'
-- superuser rights, and only the owner may register one.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(15);

-- An unprivileged role that owns a handler (USAGE on integration to name
-- the event type), and a table it has no right to write.
CREATE ROLE tap_handler_owner NOLOGIN;
GRANT USAGE ON SCHEMA integration, enterprise_lab TO tap_handler_owner;
GRANT INSERT, SELECT ON integration.event_handlers TO tap_handler_owner;
CREATE TABLE public.tap_handled (event_id uuid PRIMARY KEY, handled_as name);
CREATE FUNCTION public.tap_write_handler(e integration.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO public.tap_handled VALUES (e.id, current_user);
END $$;
ALTER FUNCTION public.tap_write_handler(integration.events) OWNER TO tap_handler_owner;
-- A handler that tries to take the worker's identity back.
CREATE FUNCTION public.tap_escalating_handler(e integration.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM set_config(e.payload ->> 'setting', e.payload ->> 'value', true);
END $$;
ALTER FUNCTION public.tap_escalating_handler(integration.events) OWNER TO tap_handler_owner;
-- A function of the bootstrap superuser, with a superuser's reach.
CREATE FUNCTION public.tap_superuser_function(e integration.events) RETURNS void LANGUAGE sql AS 'SELECT';

-- ------------------------------------------------------------ registering
CREATE ROLE tap_registrar NOLOGIN;
GRANT USAGE ON SCHEMA integration, enterprise_lab TO tap_registrar;
GRANT INSERT, UPDATE, SELECT ON integration.event_handlers TO tap_registrar;
SET LOCAL SESSION AUTHORIZATION tap_registrar;
SELECT throws_ok($$INSERT INTO integration.event_handlers (event_type, handler)
                   VALUES ('TapWrite', 'public.tap_write_handler(integration.events)')$$,
                 '42501', 'must be the owner of function public.tap_write_handler(integration.events) to register it as a handler',
                 'a role that does not own the function cannot register it');
SELECT throws_ok($$INSERT INTO integration.event_handlers (event_type, handler)
                   VALUES ('TapWrite', 'public.tap_superuser_function(integration.events)')$$,
                 '42501', NULL, 'nor register a superuser''s function, to run it with a superuser''s rights');
RESET SESSION AUTHORIZATION;

SET LOCAL SESSION AUTHORIZATION tap_handler_owner;
SELECT lives_ok($$INSERT INTO integration.event_handlers (event_type, handler)
                  VALUES ('TapWrite', 'public.tap_write_handler(integration.events)'),
                         ('TapEscalate', 'public.tap_escalating_handler(integration.events)')$$,
                'the owner registers its functions');
RESET SESSION AUTHORIZATION;

SET LOCAL SESSION AUTHORIZATION tap_registrar;
SELECT throws_ok($$UPDATE integration.event_handlers SET handler = 'public.tap_superuser_function(integration.events)'
                    WHERE event_type = 'TapWrite'$$,
                 '42501', NULL, 'a non-owner cannot swap another function into a registration');
SELECT lives_ok($$UPDATE integration.event_handlers SET enabled = true WHERE event_type = 'TapWrite'$$,
                'changing other columns needs no ownership');
RESET SESSION AUTHORIZATION;

CREATE PROCEDURE public.tap_procedure(e integration.events) LANGUAGE sql AS 'SELECT';
SELECT throws_ok($$INSERT INTO integration.event_handlers (event_type, handler)
                   VALUES ('TapProc', 'public.tap_procedure(integration.events)')$$,
                 '42P13', NULL, 'a procedure cannot be a handler');

-- ------------------------------------------------------------ running
SELECT submission_id AS sub FROM intake.submit_request('Hal Example', 'hal@example.test', 'Handler test',
  'incident', 'low', 'operations', '10000000-0000-4000-8000-000000000002') \gset
SELECT integration.process_events() AS processed \gset
SELECT integration.enqueue_event('TapWrite', :'sub', 'tap', gen_random_uuid()) AS write_event \gset
SELECT integration.process_events() AS processed \gset

SELECT results_eq(format($$SELECT event_status, attempts FROM integration.events WHERE id = '%s'$$, :'write_event'),
                  $$VALUES ('failed'::text, 1)$$,
                  'a handler writing a table its owner may not write fails the event (one attempt charged)');
SELECT matches((SELECT last_error FROM integration.events WHERE id = :'write_event'),
               'permission denied for table tap_handled', 'the error is the owner''s missing privilege');
SELECT is((SELECT count(*)::int FROM public.tap_handled), 0, 'nothing was written');
SELECT ok((SELECT next_attempt_at > now() FROM integration.events WHERE id = :'write_event'),
          'the event waits for its retry as usual');

-- Once the owner may write the table, the retry succeeds, as the owner.
GRANT INSERT ON public.tap_handled TO tap_handler_owner;
UPDATE integration.events SET next_attempt_at = now() WHERE id = :'write_event';
SELECT integration.process_events() AS processed \gset
SELECT results_eq(format($$SELECT event_status, attempts FROM integration.events WHERE id = '%s'$$, :'write_event'),
                  $$VALUES ('completed'::text, 2)$$, 'after the grant the retry completes the event');
SELECT is((SELECT handled_as FROM public.tap_handled WHERE event_id = :'write_event'), 'tap_handler_owner'::name,
          'the handler ran as its owner');
SELECT is(current_user, 'postgres'::name, 'the caller''s identity is restored after the handler');

-- A handler cannot become the worker's superuser again.
SELECT integration.enqueue_event('TapEscalate', :'sub', 'tap', gen_random_uuid(),
                                 '{"setting": "session_authorization", "value": "postgres"}') AS escalate_session \gset
SELECT integration.enqueue_event('TapEscalate', gen_random_uuid(), 'tap', gen_random_uuid(),
                                 '{"setting": "role", "value": "postgres"}') AS escalate_role \gset
SELECT integration.process_events() AS processed \gset
SELECT matches((SELECT last_error FROM integration.events WHERE id = :'escalate_session'),
               'cannot set parameter "session_authorization" within security-',
               'a handler cannot SET SESSION AUTHORIZATION to the worker''s superuser');
SELECT matches((SELECT last_error FROM integration.events WHERE id = :'escalate_role'),
               'cannot set parameter "role" within security-',
               'nor SET ROLE to it');

SELECT * FROM finish();
ROLLBACK;
