-- Roles, grants and row-level security of the api, exercised the way
-- PostgREST runs a request: inside one transaction, SET LOCAL ROLE <the
-- JWT's role>, set_config('request.jwt.claims', <claims>, true), then the
-- function.  RESET ROLE returns to the superuser that sets up and checks.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(66);

-- Two requests of two teams, processed into open cases, and one failed
-- event (no handler for its type) that can be replayed.
SELECT submission_id AS sub_a FROM intake.submit_request('Ann Example', 'ann@example.test', 'Team A request',
  'incident', 'high', 'service_desk', '10000000-0000-4000-8000-000000000001') \gset
SELECT submission_id AS sub_b FROM intake.submit_request('Ben Example', 'ben@example.test', 'Team B request',
  'incident', 'high', 'operations', '10000000-0000-4000-8000-000000000002') \gset
SELECT integration.enqueue_event('TapUnknown', gen_random_uuid(), 'tap', gen_random_uuid()) AS failed_event \gset
SELECT integration.process_events() AS processed \gset
SELECT id AS case_a FROM operational.operation_cases WHERE submission_id = :'sub_a' \gset
SELECT id AS case_b FROM operational.operation_cases WHERE submission_id = :'sub_b' \gset

-- The roles: NOLOGIN, and the authenticator may become exactly the four request roles.
SELECT is((SELECT string_agg(rolname || ' ' || CASE WHEN rolcanlogin THEN 'login' ELSE 'nologin' END
                              || CASE WHEN rolsuper THEN ' superuser' ELSE '' END, ', ' ORDER BY rolname)
              FROM pg_roles
             WHERE rolname IN ('lab_anon', 'lab_operator', 'lab_auditor', 'lab_admin', 'lab_authenticator')),
          'lab_admin nologin, lab_anon nologin, lab_auditor nologin, lab_authenticator login, lab_operator nologin',
          'the five roles exist; only the authenticator logs in (the gateway connects as it); none is a superuser');
SELECT set_eq($$SELECT r.rolname::text FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
                 WHERE m.member = 'lab_authenticator'::regrole$$,
              ARRAY['lab_anon', 'lab_operator', 'lab_auditor', 'lab_admin'],
              'lab_authenticator is granted the four request roles and nothing else');
SELECT ok(NOT (SELECT rolinherit FROM pg_roles WHERE rolname = 'lab_authenticator'),
          'lab_authenticator is NOINHERIT: it has no rights before SET ROLE');

-- No request role holds a write privilege on any table of any boundary.
SELECT is((SELECT count(*)::int
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace,
                  unnest(ARRAY['lab_anon', 'lab_operator', 'lab_auditor', 'lab_admin']) AS r
            WHERE n.nspname IN ('enterprise_lab', 'reference', 'intake', 'source_system', 'document_repo',
                                'integration', 'operational', 'canonical', 'dashboard', 'api')
              AND c.relkind IN ('r', 'v', 'p')
              AND has_table_privilege(r, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE')), 0,
          'no request role may write a boundary table directly');
SELECT is((SELECT count(*)::int
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
            WHERE n.nspname IN ('reference', 'intake', 'source_system', 'document_repo',
                                'integration', 'operational', 'canonical', 'dashboard')
              AND c.relkind IN ('r', 'v', 'p')
              AND has_table_privilege('lab_anon', c.oid, 'SELECT')), 0,
          'the anonymous role has no read privilege on any boundary table');

-- ---------------------------------------------------------------- anonymous
SET LOCAL ROLE lab_anon;
SELECT set_config('request.jwt.claims', '{"role": "lab_anon"}', true) AS claims \gset

SELECT is(jsonb_array_length(api.reference_data('{}') -> 'customers'), 5, 'anon: reads the customers');
SELECT is(jsonb_array_length(api.reference_data() -> 'teams'), 5, 'anon: reads the teams (missing body = {})');
SELECT api.submit_request('{"requester_name": "Cleo Anon", "requester_email": "cleo@example.test",
  "description": "Printer on floor 2 is jammed.", "request_type": "incident", "priority": "low",
  "team": "service_desk", "customer_id": "10000000-0000-4000-8000-000000000003",
  "agreement_id": "20000000-0000-4000-8000-000000000004", "intake_method": "api"}') AS anon_submit \gset
SELECT matches(:'anon_submit'::jsonb ->> 'request_number', '^SR-[0-9]{6}$', 'anon: submits a request');
SELECT ok((SELECT bool_and(i -> 'requester_email' = 'null') FROM jsonb_array_elements(api.submissions() -> 'items') i),
          'anon: the list shows no requester e-mail address');
SELECT is(api.submission_detail(jsonb_build_object('submission_id', :'sub_a')) #>> '{submission,requester_email}', NULL,
          'anon: the detail shows no requester e-mail address');
SELECT is((api.submissions('{"q": "ann@example"}') ->> 'total')::int, 0,
          'anon: cannot find a submission by searching for its e-mail address');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "in_progress"}')$$, :'case_a'),
                 '42501', NULL, 'anon: cannot change a case');
SELECT throws_ok(format($$SELECT api.replay_event('{"event_id": "%s"}')$$, :'failed_event'),
                 '42501', NULL, 'anon: cannot replay an event');
SELECT throws_ok('SELECT count(*) FROM intake.submissions', '42501', NULL, 'anon: cannot read intake.submissions');
SELECT throws_ok('SELECT count(*) FROM operational.operation_cases', '42501', NULL, 'anon: cannot read operational.operation_cases');
SELECT throws_ok('SELECT count(*) FROM integration.events', '42501', NULL, 'anon: cannot read integration.events');
SELECT throws_ok('SELECT count(*) FROM reference.customers', '42501', NULL, 'anon: reads reference data only through the api');
SELECT throws_ok('SELECT count(*) FROM dashboard.submission_lifecycle', '42501', NULL, 'anon: cannot read the dashboard views');
SELECT throws_ok($$INSERT INTO intake.submissions (requester_name, requester_email, request_description, request_type,
                   priority, assigned_team, customer_id) VALUES ('x', 'x@example.test', 'x', 'incident', 'low',
                   'service_desk', '10000000-0000-4000-8000-000000000001')$$,
                 '42501', NULL, 'anon: cannot write intake.submissions directly');
RESET ROLE;
SELECT is((SELECT submitted_by FROM intake.submissions WHERE submission_id = (:'anon_submit'::jsonb ->> 'submission_id')::uuid),
          'lab_anon', 'an anonymous submission is recorded as submitted by lab_anon');

-- ---------------------------------------------------------------- operator of team A
SET LOCAL ROLE lab_operator;
SELECT set_config('request.jwt.claims',
  '{"role": "lab_operator", "sub": "operator.one", "teams": ["service_desk", "security"]}', true) AS claims \gset

SELECT api.set_case_status(jsonb_build_object('case_id', :'case_a', 'new_status', 'in_progress', 'reason', 'picked up')) AS moved \gset
SELECT is(:'moved'::jsonb ->> 'processing_status', 'in_progress', 'operator A: moves a case of team A');
SELECT is(:'moved'::jsonb ->> 'previous_status', 'open', 'operator A: the answer names the previous status');
SELECT is(:'moved'::jsonb ->> 'changed_by', 'operator.one', 'operator A: changed_by is the JWT subject');
SELECT is(api.set_case_status(jsonb_build_object('case_id', :'case_a', 'new_status', 'in_progress')) ->> 'processing_status',
          'in_progress', 'operator A: repeating a move answers with the case as it is');
SELECT is((SELECT count(*)::int FROM operational.case_status_history WHERE case_id = :'case_a'), 2,
          'operator A: a repeated move writes no history');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "in_progress"}')$$, :'case_b'),
                 '42501', 'set_case_status: not allowed to change case OC-000002 of team operations',
                 'operator A: changing a case of team B is refused with 42501');
SELECT throws_ok(format($$UPDATE operational.operation_cases SET processing_status = 'rejected' WHERE id = '%s'$$, :'case_a'),
                 '42501', NULL, 'operator A: cannot update the cases table directly');
SELECT results_eq($$SELECT team_code FROM operational.operation_cases ORDER BY team_code$$,
                  ARRAY['service_desk'],
                  'operator A: reading the cases table shows only team A''s cases (row-level security)');
SELECT is((SELECT count(*)::int FROM operational.case_status_history WHERE case_id = :'case_b'), 0,
          'operator A: reading the history shows nothing of team B''s cases');
SELECT is((SELECT count(*)::int FROM intake.submissions), 3, 'operator A: reads every submission');
SELECT is(api.submission_detail(jsonb_build_object('submission_id', :'sub_b')) #>> '{submission,requester_email}',
          'ben@example.test', 'operator A: the api shows every submission with its e-mail address');
SELECT api.replay_event(jsonb_build_object('event_id', :'failed_event')) AS replayed \gset
SELECT is(:'replayed'::jsonb ->> 'event_status', 'pending', 'operator: replays a failed event');
RESET ROLE;
SELECT results_eq(format($$SELECT processing_status, status_changed_by FROM operational.operation_cases WHERE id = '%s'$$, :'case_b'),
                  $$VALUES ('open'::text, NULL::text)$$, 'team B''s case is unchanged after the refusal');
SELECT is((SELECT count(*)::int FROM operational.case_status_history WHERE case_id = :'case_b'), 1,
          'the refusal wrote no history (only the opening row exists)');
SELECT is((SELECT message FROM integration.sync_logs WHERE event_id = :'failed_event' AND action = 'replay_requested'),
          'event put back to pending by operator.one', 'the sync log names the JWT subject who replayed the event');
SELECT results_eq(format($$SELECT previous_status, new_status, changed_by, change_reason
                             FROM operational.case_status_history WHERE case_id = '%s' ORDER BY id DESC LIMIT 1$$, :'case_a'),
                  $$VALUES ('open'::text, 'in_progress'::text, 'operator.one'::text, 'picked up'::text)$$,
                  'the history records who (the JWT subject), what and why');

-- A single "team" claim is accepted too; no team claim means no case.
SET LOCAL ROLE lab_operator;
SELECT set_config('request.jwt.claims', '{"role": "lab_operator", "sub": "operator.two", "team": "operations"}', true) AS claims \gset
SELECT is(api.set_case_status(jsonb_build_object('case_id', :'case_b', 'new_status', 'in_progress')) ->> 'changed_by',
          'operator.two', 'operator B ("team" claim): moves a case of team B');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "completed"}')$$, :'case_a'),
                 '42501', NULL, 'operator B: changing a case of team A is refused');
SELECT set_config('request.jwt.claims', '{"role": "lab_operator", "sub": "operator.none"}', true) AS claims \gset
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "completed"}')$$, :'case_a'),
                 '42501', NULL, 'an operator without a team claim changes no case');
SELECT is((SELECT count(*)::int FROM operational.operation_cases), 0, 'an operator without a team claim sees no case in the table');
-- Claims are not rights: the role is what SET ROLE chose, not the "role" claim.
SELECT set_config('request.jwt.claims', '{"role": "lab_admin", "sub": "operator.forged"}', true) AS claims \gset
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "completed"}')$$, :'case_a'),
                 '42501', NULL, 'an operator with a forged "role": "lab_admin" claim is still an operator');

-- ---------------------------------------------------------------- admin
SET LOCAL ROLE lab_admin;
SELECT set_config('request.jwt.claims', '{"role": "lab_admin", "sub": "admin.one"}', true) AS claims \gset
SELECT is(api.set_case_status(jsonb_build_object('case_id', :'case_a', 'new_status', 'completed')) ->> 'changed_by',
          'admin.one', 'admin: changes a case of any team without a team claim');
SELECT is((SELECT count(*)::int FROM operational.operation_cases), 2, 'admin: sees every case');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "rejected"}')$$, :'case_a'),
                 'PT409', NULL, 'admin: a completed case cannot change (PT409, HTTP 409)');
SELECT throws_ok('SELECT api.set_case_status(''{"case_id": "00000000-0000-4000-8000-000000000000", "new_status": "rejected"}'')',
                 'PT404', 'case 00000000-0000-4000-8000-000000000000 does not exist', 'admin: an unknown case is PT404 (HTTP 404)');
SELECT throws_ok(format($$SELECT api.replay_event('{"event_id": "%s"}')$$, :'failed_event'),
                 'PT409', NULL, 'admin: replaying a pending event is PT409');
SELECT throws_ok('SELECT api.replay_event(''{"event_id": "00000000-0000-4000-8000-000000000000"}'')',
                 'PT404', NULL, 'admin: replaying an unknown event is PT404');
SELECT lives_ok('SELECT count(*) FROM integration.subscription_secrets', 'admin: reads webhook signing secrets');

-- ---------------------------------------------------------------- auditor
SET LOCAL ROLE lab_auditor;
SELECT set_config('request.jwt.claims', '{"role": "lab_auditor", "sub": "auditor.one", "teams": ["service_desk"]}', true) AS claims \gset
SELECT lives_ok($t$DO $do$
  DECLARE t regclass;
  BEGIN
    FOR t IN SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname IN ('enterprise_lab', 'reference', 'intake', 'source_system', 'document_repo',
                                  'integration', 'operational', 'canonical', 'dashboard')
                AND c.relkind IN ('r', 'v', 'p') AND c.oid <> 'integration.subscription_secrets'::regclass LOOP
      EXECUTE format('SELECT count(*) FROM %s', t);
    END LOOP;
  END $do$ $t$, 'auditor: reads every table and view of every boundary but the webhook secrets');
SELECT throws_ok('SELECT count(*) FROM integration.subscription_secrets', '42501', NULL,
                 'auditor: cannot read webhook signing secrets');
SELECT is((SELECT count(*)::int FROM operational.operation_cases), 2, 'auditor: sees every case');
SELECT is((SELECT count(*)::int FROM operational.case_status_history WHERE case_id = :'case_b'), 2, 'auditor: sees all history');
SELECT is(api.submission_detail(jsonb_build_object('submission_id', :'sub_a')) #>> '{submission,requester_email}',
          'ann@example.test', 'auditor: the api shows e-mail addresses');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "rejected"}')$$, :'case_b'),
                 '42501', NULL, 'auditor: cannot change a case, whatever its claims');
SELECT throws_ok(format($$SELECT api.replay_event('{"event_id": "%s"}')$$, :'failed_event'),
                 '42501', NULL, 'auditor: cannot replay an event');
SELECT throws_ok('DELETE FROM integration.sync_logs', '42501', NULL, 'auditor: cannot delete sync logs');
SELECT throws_ok('UPDATE reference.teams SET name = name', '42501', NULL, 'auditor: cannot update reference data');
SELECT throws_ok($$INSERT INTO operational.case_status_history (submission_id, case_id, new_status, team_code, changed_by)
                   SELECT submission_id, id, 'completed', team_code, 'x' FROM operational.operation_cases LIMIT 1$$,
                 '42501', NULL, 'auditor: cannot forge history');
RESET ROLE;

-- ---------------------------------------------------------------- authenticator
-- PostgREST connects as lab_authenticator; it may switch to the request
-- roles and to nothing else.
CREATE ROLE tap_stranger NOLOGIN;
SET SESSION AUTHORIZATION lab_authenticator;
SELECT throws_ok('SET ROLE tap_stranger', '42501', NULL, 'authenticator: cannot assume a role not granted to it');
SELECT throws_ok('SET ROLE postgres', '42501', NULL, 'authenticator: cannot assume a superuser');
SELECT throws_ok('SELECT api.health(''{}'')', '42501', NULL, 'authenticator: has no rights of its own before SET ROLE');
SELECT lives_ok('SET LOCAL ROLE lab_operator', 'authenticator: assumes lab_operator');
SELECT is(current_user::text, 'lab_operator', 'authenticator: now runs as lab_operator');
SELECT is(api.health() ->> 'status', 'ok', 'authenticator as lab_operator: calls the api');
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- ---------------------------------------------------------------- installation
-- Roles are cluster-wide: installing again finds them and reuses them.
SELECT lives_ok('DROP EXTENSION enterprise_lab', 'DROP EXTENSION works while the roles have grants');
SELECT lives_ok('CREATE EXTENSION enterprise_lab', 'CREATE EXTENSION works when the roles already exist');

SELECT * FROM finish();
ROLLBACK;
