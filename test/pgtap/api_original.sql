-- api.original_*: the original lab's routes as functions, called the way
-- PostgREST and the gateway call them (SET LOCAL ROLE, request.jwt.claims):
-- who may call which, changed_by for operators and admins, the claims
-- left as they were, the original's field names, paging bounds.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(17);

SELECT submission_id AS sub_a FROM intake.submit_request('Ann Example', 'ann@example.test', 'Original route request',
  'incident', 'high', 'operations', '10000000-0000-4000-8000-000000000001') \gset
SELECT integration.process_events() AS processed \gset
SELECT id AS case_a FROM operational.operation_cases WHERE submission_id = :'sub_a' \gset

-- Anonymous: submits and reads, changes no case.
SET LOCAL ROLE lab_anon;
SELECT set_config('request.jwt.claims', '{"role": "lab_anon"}', true);
SELECT ok((api.original_submit_request('{"requester_name": "Ori Ginal", "requester_email": "ori@example.test",
             "request_description": "Sent with the original names.", "request_type": "incident",
             "priority": "low", "assigned_team": "operations"}') ->> 'submission_id') IS NOT NULL,
          'anon: original_submit_request takes the original''s field names');
SELECT throws_ok($$SELECT api.original_set_case_status(jsonb_build_object('operation_case_id', '$$ || :'case_a' || $$',
                                                                            'new_status', 'in_progress'))$$,
                 '42501', NULL, 'anon: original_set_case_status is not executable');
SELECT ok(jsonb_typeof(api.original_submissions('{}')) = 'array', 'anon: original_submissions is a JSON array');
SELECT ok((SELECT bool_and(i ? 'submission_id' AND i ? 'assigned_team' AND i ? 'submission_status' AND i ? 'created_at'
                           AND i ->> 'requester_email' IS NULL)
             FROM jsonb_array_elements(api.original_submissions('{}')) i),
          'anon: submissions carry the original''s names and no e-mail address');
SELECT is(jsonb_array_length(api.original_submissions('{"limit": 1, "offset": 1}')), 1, 'limit and offset page the list');
SELECT throws_ok($$SELECT api.original_submissions('{"limit": 201}')$$, '22023', NULL, 'limit over 200 is refused');
SELECT throws_ok($$SELECT api.original_events('{"offset": -1}')$$, '22023', NULL, 'a negative offset is refused');
SELECT throws_ok($$SELECT api.original_sync_logs('{"sort": "x"}')$$, '22023', NULL, 'an unknown key is refused');
SELECT throws_ok($$SELECT api.original_reference('{"list": "secrets"}')$$, '22023', NULL, 'an unknown reference list is refused');
SELECT is((SELECT count(*)::int FROM jsonb_array_elements(api.original_reference('{"list": "agreements"}')) a
            WHERE NOT a ? 'customer_id' OR NOT a ? 'agreement_id'), 0, 'agreements carry agreement_id and customer_id');
SELECT is(api.original_submission(jsonb_build_object('submission_id', :'sub_a')) #>> '{submission,request_description}',
          'Original route request', 'original_submission: the submission with request_description');
RESET ROLE;

-- An operator: changed_by from the body is not taken.
SET LOCAL ROLE lab_operator;
SELECT set_config('request.jwt.claims', '{"role": "lab_operator", "sub": "op.one", "teams": ["operations"]}', true);
SELECT is(api.original_set_case_status(jsonb_build_object('operation_case_id', :'case_a', 'new_status', 'in_progress',
                                                          'changed_by', 'someone.else', 'change_reason', 'r1')) ->> 'changed_by',
          'op.one', 'operator: changed_by is the token''s subject, not the body''s');
RESET ROLE;

-- An admin: changed_by is recorded as given, and the claims are left as they were.
SET LOCAL ROLE lab_admin;
SELECT set_config('request.jwt.claims', '{"role": "lab_admin", "sub": "admin.one"}', true);
SELECT is(api.original_set_case_status(jsonb_build_object('operation_case_id', :'case_a', 'new_status', 'completed',
                                                          'changed_by', 'dashboard-user', 'change_reason', 'r2')) ->> 'changed_by',
          'dashboard-user', 'admin: changed_by is recorded as given');
SELECT is(current_setting('request.jwt.claims')::jsonb, '{"role": "lab_admin", "sub": "admin.one"}'::jsonb,
          'admin: the request''s claims are unchanged afterwards');
SELECT throws_ok($$SELECT api.original_set_case_status(jsonb_build_object('operation_case_id', '$$ || :'case_a' || $$',
                                                                            'new_status', 'open', 'changed_by', 5))$$,
                 '22023', NULL, 'changed_by must be a string');
RESET ROLE;

SELECT is((SELECT string_agg(changed_by || ':' || new_status, ', ' ORDER BY id)
             FROM operational.case_status_history WHERE case_id = :'case_a' AND previous_status IS NOT NULL),
          'op.one:in_progress, dashboard-user:completed', 'the history has both changes in their recorded names');
SELECT is((SELECT count(*)::int FROM pg_proc p
            WHERE p.pronamespace = 'api'::regnamespace AND p.proname LIKE 'original\_%'
              AND NOT coalesce(p.proconfig, '{}') @> ARRAY['search_path=pg_catalog, pg_temp']), 0,
          'every api.original_* function pins its search_path');

SELECT * FROM finish();
ROLLBACK;
