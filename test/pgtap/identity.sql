-- Who is asking: request.jwt.claims counts only in a session of the
-- authenticator (which verified the token).  A role that logs in directly
-- is its session user, whatever claims it sets, and its teams are the rows
-- of operational.role_teams.  SET LOCAL SESSION AUTHORIZATION makes the
-- session user what a login as that role would.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(24);

SELECT submission_id AS sub_a FROM intake.submit_request('Ann Example', 'ann@example.test', 'Team A request',
  'incident', 'high', 'service_desk', '10000000-0000-4000-8000-000000000001') \gset
SELECT submission_id AS sub_b FROM intake.submit_request('Ben Example', 'ben@example.test', 'Team B request',
  'incident', 'high', 'finance_ops', '10000000-0000-4000-8000-000000000002') \gset
SELECT integration.process_events() AS processed \gset
SELECT id AS case_a FROM operational.operation_cases WHERE submission_id = :'sub_a' \gset
SELECT id AS case_b, external_reference AS ref_b FROM operational.operation_cases WHERE submission_id = :'sub_b' \gset

-- Two people who log in with psql as operators: one of service_desk (by a
-- row for her own role), one with no team at all.
CREATE ROLE tap_alice LOGIN IN ROLE lab_operator;
CREATE ROLE tap_mallory LOGIN IN ROLE lab_operator;
INSERT INTO operational.role_teams (role_name, team_code) VALUES ('tap_alice', 'service_desk');
SELECT throws_ok($$INSERT INTO operational.role_teams (role_name, team_code) VALUES ('tap_alice', 'no_such_team')$$,
                 '23503', NULL, 'role_teams: an unknown team is refused');

-- ------------------------------------------------------------ a forger
SET LOCAL SESSION AUTHORIZATION tap_mallory;
SELECT set_config('request.jwt.claims', '{"role": "lab_admin", "sub": "the.ceo", "teams": ["finance_ops", "service_desk"]}', true) AS claims \gset
SELECT is(enterprise_lab.request_claims(), '{}'::jsonb, 'direct login: forged claims are not read');
SELECT is(enterprise_lab.request_subject(), 'tap_mallory', 'direct login: the subject is the login role, not the forged sub');
SELECT is(enterprise_lab.request_teams(), '{}'::text[], 'direct login without a role_teams row: no team');
SELECT is((SELECT count(*)::int FROM operational.operation_cases), 0, 'the forger sees no case in the table');
SELECT is((SELECT count(*)::int FROM operational.case_status_history), 0, 'nor any history');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "in_progress"}')$$, :'case_b'),
                 '42501', format('set_case_status: not allowed to change case %s of team finance_ops', :'ref_b'),
                 'the forger cannot change another team''s case (42501)');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "in_progress"}')$$, :'case_a'),
                 '42501', NULL, 'nor any case: an operator without a team changes none');
-- The same with SET ROLE to the request role, as PostgREST would run it.
SET LOCAL ROLE lab_operator;
SELECT is(enterprise_lab.request_subject(), 'tap_mallory', 'after SET ROLE lab_operator: still the login role');
SELECT is((SELECT count(*)::int FROM operational.operation_cases), 0, 'after SET ROLE: still no case');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "in_progress"}')$$, :'case_b'),
                 '42501', NULL, 'after SET ROLE: still refused');
RESET ROLE;
RESET SESSION AUTHORIZATION;
SELECT results_eq(format($$SELECT processing_status, status_changed_by FROM operational.operation_cases WHERE id = '%s'$$, :'case_b'),
                  $$VALUES ('open'::text, NULL::text)$$, 'the forged requests changed nothing');
SELECT is((SELECT count(*)::int FROM operational.case_status_history WHERE changed_by = 'the.ceo'), 0,
          'and no history row carries the forged name');

-- ------------------------------------------------------------ a member of a team
SET LOCAL SESSION AUTHORIZATION tap_alice;
SELECT set_config('request.jwt.claims', '{"sub": "the.ceo", "teams": ["finance_ops"]}', true) AS claims \gset
SELECT is(enterprise_lab.request_teams(), ARRAY['service_desk'], 'direct login: the teams come from role_teams, not the claims');
SELECT results_eq($$SELECT team_code FROM operational.operation_cases$$, ARRAY['service_desk'],
                  'she sees the cases of her team only');
SELECT is(api.set_case_status(jsonb_build_object('case_id', :'case_a', 'new_status', 'in_progress', 'reason', 'on it')) ->> 'changed_by',
          'tap_alice', 'she changes a case of her team, as herself');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "in_progress"}')$$, :'case_b'),
                 '42501', NULL, 'but not the case of the team her forged claims name');
SELECT api.submit_request('{"requester_name": "Cleo", "requester_email": "cleo@example.test", "description": "By psql.",
  "request_type": "incident", "priority": "low", "team": "service_desk", "customer_id": "10000000-0000-4000-8000-000000000001"}') AS submitted \gset
RESET SESSION AUTHORIZATION;
SELECT results_eq(format($$SELECT changed_by, change_reason FROM operational.case_status_history
                            WHERE case_id = '%s' ORDER BY id DESC LIMIT 1$$, :'case_a'),
                  $$VALUES ('tap_alice'::text, 'on it'::text)$$, 'the history shows her own role name');
SELECT is((SELECT submitted_by FROM intake.submissions WHERE submission_id = (:'submitted'::jsonb ->> 'submission_id')::uuid),
          'tap_alice', 'a submission by a direct login records the login role');

-- A team given to a group role reaches its members.
CREATE ROLE tap_finance_group NOLOGIN;
CREATE ROLE tap_bob LOGIN IN ROLE lab_operator, tap_finance_group;
INSERT INTO operational.role_teams (role_name, team_code) VALUES ('tap_finance_group', 'finance_ops');
SET LOCAL SESSION AUTHORIZATION tap_bob;
SELECT is(enterprise_lab.request_teams(), ARRAY['finance_ops'], 'a member of a group role has the group''s teams');
SELECT is(api.set_case_status(jsonb_build_object('case_id', :'case_b', 'new_status', 'in_progress')) ->> 'changed_by',
          'tap_bob', 'and changes that team''s cases as himself');
RESET SESSION AUTHORIZATION;

-- ------------------------------------------------------------ the authenticator
-- Its claims are the token's, verified by PostgREST or the gateway.
SET LOCAL SESSION AUTHORIZATION lab_authenticator;
SET LOCAL ROLE lab_operator;
SELECT set_config('request.jwt.claims', '{"role": "lab_operator", "sub": "operator.one", "teams": ["finance_ops"]}', true) AS claims \gset
SELECT is(enterprise_lab.request_subject(), 'operator.one', 'authenticator: the subject is the token''s sub');
SELECT is(api.set_case_status(jsonb_build_object('case_id', :'case_b', 'new_status', 'completed')) ->> 'changed_by',
          'operator.one', 'authenticator: the token''s teams decide');
RESET ROLE;
RESET SESSION AUTHORIZATION;

-- A login role granted lab_authenticator (how a pooler or the gateway may log in) counts as the authenticator.
CREATE ROLE tap_pgrst LOGIN NOINHERIT IN ROLE lab_authenticator;
SET LOCAL SESSION AUTHORIZATION tap_pgrst;
SET LOCAL ROLE lab_operator;
SELECT set_config('request.jwt.claims', '{"role": "lab_operator", "sub": "operator.two", "teams": ["service_desk"]}', true) AS claims \gset
SELECT is(enterprise_lab.request_teams(), ARRAY['service_desk'], 'a login role granted lab_authenticator: its claims count');
RESET ROLE;
RESET SESSION AUTHORIZATION;

SELECT * FROM finish();
ROLLBACK;
