-- Request bodies: every rejection has its documented SQLSTATE (the HTTP
-- status PostgREST gives it is in docs/api.md), nothing is half-written,
-- and text that looks like SQL or HTML is stored and returned literally.
-- Each call runs as PostgREST would: SET LOCAL ROLE, claims, function.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(78);

SELECT submission_id AS sub FROM intake.submit_request('Ann Example', 'ann@example.test', 'Existing request',
  'incident', 'high', 'service_desk', '10000000-0000-4000-8000-000000000001') \gset
SELECT integration.process_events() AS processed \gset
SELECT id AS case_id FROM operational.operation_cases WHERE submission_id = :'sub' \gset

-- A valid body; each test below breaks one thing in it.
\set good '{"requester_name": "Cleo Example", "requester_email": "cleo@example.test", "description": "Laptop will not boot.", "request_type": "incident", "priority": "high", "team": "service_desk", "customer_id": "10000000-0000-4000-8000-000000000001"}'

CREATE FUNCTION pg_temp.submit_with(changes jsonb, base jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT api.submit_request(base || changes) $$;
CREATE FUNCTION pg_temp.submit_without(key text, base jsonb) RETURNS jsonb
LANGUAGE sql AS $$ SELECT api.submit_request(base - key) $$;
GRANT EXECUTE ON FUNCTION pg_temp.submit_with(jsonb, jsonb), pg_temp.submit_without(text, jsonb) TO lab_anon;

SET LOCAL ROLE lab_anon;
SELECT set_config('request.jwt.claims', '{"role": "lab_anon"}', true) AS claims \gset

-- ---------------------------------------------------------------- shape
SELECT throws_ok($$SELECT api.submit_request('[]')$$, '22023', 'submit_request: the request body must be a JSON object',
                 'a JSON array body is 22023');
SELECT throws_ok($$SELECT api.submit_request('"text"')$$, '22023', NULL, 'a JSON string body is 22023');
SELECT throws_ok($$SELECT api.submit_request('null')$$, '22023', NULL, 'a JSON null body is 22023');
SELECT throws_ok($$SELECT api.submit_request('{}')$$, '23502', 'submit_request: requester_name is required',
                 'an empty body misses the first required field (23502)');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"admin": true}', %L)$$, :'good'),
                 '22023', 'submit_request: unknown key "admin"', 'an unknown key is 22023 and named');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"submitted_by": "someone.else"}', %L)$$, :'good'),
                 '22023', 'submit_request: unknown key "submitted_by"', 'who submits cannot be chosen in the body');

-- ---------------------------------------------------------------- types
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"requester_name": 42}', %L)$$, :'good'),
                 '22023', 'submit_request: requester_name must be a string', 'a number for a string is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"description": ["a", "b"]}', %L)$$, :'good'),
                 '22023', 'submit_request: description must be a string', 'an array for a string is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"priority": {"code": "high"}}', %L)$$, :'good'),
                 '22023', 'submit_request: priority must be a string', 'an object for a string is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"customer_id": 10000000}', %L)$$, :'good'),
                 '22023', 'submit_request: customer_id must be a string', 'a number for an id is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"customer_id": "not-a-uuid"}', %L)$$, :'good'),
                 '22P02', 'submit_request: customer_id is not a valid id', 'a malformed id is 22P02');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"agreement_id": "1; DROP TABLE x"}', %L)$$, :'good'),
                 '22P02', NULL, 'SQL in an id is a malformed id (22P02)');

-- ---------------------------------------------------------------- missing
SELECT throws_ok(format($$SELECT pg_temp.submit_without('requester_email', %L)$$, :'good'),
                 '23502', 'submit_request: requester_email is required', 'a missing field is 23502 and named');
SELECT throws_ok(format($$SELECT pg_temp.submit_without('request_type', %L)$$, :'good'),
                 '23502', 'submit_request: request_type is required', 'a missing code is 23502');
SELECT throws_ok(format($$SELECT pg_temp.submit_without('description', %L)$$, :'good'),
                 '23502', 'submit_request: request_description is required', 'a missing description is 23502, named by the original''s key');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"description": null}', %L)$$, :'good'),
                 '23502', 'submit_request: description is required', 'a JSON null for a required field is 23502');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"description": "   "}', %L)$$, :'good'),
                 '23502', 'request_description must not be blank', 'a blank description is 23502');

-- ---------------------------------------------------------------- sizes
SELECT throws_ok(format($$SELECT pg_temp.submit_with(jsonb_build_object('requester_name', repeat('n', 201)), %L)$$, :'good'),
                 '22001', 'submit_request: requester_name is too long', 'a name over 200 characters is 22001');
SELECT throws_ok(format($$SELECT pg_temp.submit_with(jsonb_build_object('description', repeat('d', 4001)), %L)$$, :'good'),
                 '22001', 'submit_request: description is too long', 'a description over 4000 characters is 22001');
SELECT throws_ok(format($$SELECT pg_temp.submit_with(jsonb_build_object('description', repeat('x', 5000000)), %L)$$, :'good'),
                 '22001', NULL, 'a 5 MB description is 22001');
SELECT throws_ok(format($$SELECT pg_temp.submit_with(jsonb_build_object('requester_email', repeat('e', 300) || '@example.test'), %L)$$, :'good'),
                 '22001', NULL, 'an e-mail address over 254 characters is 22001');

-- ---------------------------------------------------------------- values
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"requester_email": "not an address"}', %L)$$, :'good'),
                 '22023', 'requester_email is not a valid e-mail address', 'a malformed e-mail address is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"team": "nobody"}', %L)$$, :'good'),
                 '22023', 'assigned_team "nobody" does not exist', 'an unknown team is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"assigned_team": "operations_team"}', %L)$$, :'good' :: jsonb - 'team'),
                 '22023', 'assigned_team "operations_team" does not exist', 'codes are exact: operations_team is not OPERATIONS_TEAM (22023)');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"request_type": "general_inquiry"}', %L)$$, :'good'),
                 '22023', 'request_type "general_inquiry" does not exist', 'codes are exact: general_inquiry is not GENERAL_INQUIRY (22023)');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"request_type": "x''; DROP TABLE intake.submissions; --"}', %L)$$, :'good'),
                 '22023', NULL, 'SQL as a request type is an unknown request type (22023)');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"intake_method": "fax"}', %L)$$, :'good'),
                 '22023', 'submit_request: intake_method "fax" is not known', 'an unknown intake method is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"customer_id": "10000000-0000-4000-8000-000000000004"}', %L)$$, :'good'),
                 '22023', NULL, 'an inactive customer is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"agreement_id": "20000000-0000-4000-8000-000000000003"}', %L)$$, :'good'),
                 '22023', NULL, 'another customer''s agreement is 22023');

-- ---------------------------------------------------------------- document
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"document": "file.pdf"}', %L)$$, :'good'),
                 '22023', 'submit_request: document must be an object', 'a document that is not an object is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"document": {"file_name": "a.txt", "content_type": "text/plain", "content_base64": "aGk=", "path": "/etc"}}', %L)$$, :'good'),
                 '22023', 'submit_request document: unknown key "path"', 'an unknown key in the document is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"document": {"file_name": "a.txt", "content_type": "text/plain"}}', %L)$$, :'good'),
                 '23502', 'submit_request: content_base64 is required', 'a document without content is 23502');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"document": {"file_name": "a.txt", "content_type": "text/plain", "content_base64": 7}}', %L)$$, :'good'),
                 '22023', 'submit_request: content_base64 must be a string', 'content that is not a string is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with('{"document": {"file_name": "a.txt", "content_type": "text/plain", "content_base64": "!!not base64!!"}}', %L)$$, :'good'),
                 '22023', 'submit_request: document.content_base64 is not valid base64', 'content that is not base64 is 22023');
SELECT throws_ok(format($$SELECT pg_temp.submit_with(jsonb_build_object('document', jsonb_build_object('file_name', 'a.txt',
                   'content_type', 'text/plain', 'content_base64', repeat('QUFB', 5000000))), %L)$$, :'good'),
                 '22001', 'submit_request: content_base64 is too long', 'content over the document size limit is 22001 before decoding');

RESET ROLE;
SELECT is((SELECT count(*)::int FROM intake.submissions), 1, 'no rejected body left a submission behind');
SELECT is((SELECT count(*)::int FROM integration.events WHERE event_type = 'RequestCreated'), 1, 'no rejected body left an event behind');
SET LOCAL ROLE lab_anon;
SELECT set_config('request.jwt.claims', '{"role": "lab_anon"}', true) AS claims \gset

-- ---------------------------------------------------------------- literal text
\set sql_name 'Robert''); DROP TABLE intake.submissions; --'
\set sql_text 'x''; DELETE FROM reference.customers; SELECT ''1'
\set html_text '<script>alert("x")</script><img src=x onerror="alert(1)"> & &amp; {{7*7}} ${7*7}'
\set unicode_name 'Zoë Ñandú 🚀 \\ "quoted"'
SELECT pg_temp.submit_with(jsonb_build_object('requester_name', :'sql_name', 'description', :'sql_text'), :'good') AS sql_submit \gset
SELECT pg_temp.submit_with(jsonb_build_object('requester_name', :'unicode_name', 'description', :'html_text'), :'good') AS html_submit \gset
SELECT api.submission_detail(jsonb_build_object('submission_id', :'sql_submit'::jsonb ->> 'submission_id')) AS sql_detail \gset
SELECT api.submission_detail(jsonb_build_object('submission_id', :'html_submit'::jsonb ->> 'submission_id')) AS html_detail \gset
SELECT is(:'sql_detail'::jsonb #>> '{submission,requester_name}', :'sql_name', 'a name that looks like SQL is stored literally');
SELECT is(:'sql_detail'::jsonb #>> '{submission,request_description}', :'sql_text', 'a description that looks like SQL is stored literally');
SELECT is(:'html_detail'::jsonb #>> '{submission,request_description}', :'html_text', 'HTML and script text is stored and returned literally');
SELECT is(:'html_detail'::jsonb #>> '{service_request,summary}', :'html_text', 'the service request keeps the same literal text');
SELECT is(:'html_detail'::jsonb #>> '{submission,requester_name}', :'unicode_name', 'unicode, backslashes and quotes survive');
SELECT is((SELECT i ->> 'requester_name' FROM jsonb_array_elements(api.submissions('{"q": "Robert'')"}') -> 'items') i),
          :'sql_name', 'the list finds and returns the literal text');
SELECT is((api.submissions('{"q": "%"}') ->> 'total')::int, 0, 'q is a substring, not a LIKE pattern: "%" matches nothing here');
SELECT is((api.submissions('{"q": "{{7*7}}"}') ->> 'total')::int, 1, 'q finds template-like text literally');
-- The original lab's body, as its README prints it (no customer: the UNASSIGNED one).
SELECT api.submit_request('{"intake_method": "manual_form", "requester_name": "Demo User",
  "requester_email": "demo.user@example.test", "request_description": "Create a generic service request.",
  "request_type": "GENERAL_INQUIRY", "priority": "medium", "assigned_team": "OPERATIONS_TEAM"}') ->> 'submission_id' AS original_sub \gset
SELECT is((SELECT concat_ws(' ', d ->> 'intake_method', d ->> 'request_type', d ->> 'priority', d ->> 'assigned_team', d ->> 'customer_code')
             FROM (SELECT api.submission_detail(jsonb_build_object('submission_id', :'original_sub')) -> 'submission' AS d) x),
          'manual_form GENERAL_INQUIRY medium OPERATIONS_TEAM UNASSIGNED', 'the original lab''s JSON body is accepted as it is');
RESET ROLE;
SELECT is((SELECT count(*)::int FROM reference.customers), 5, 'no customer was deleted');
SELECT has_table('intake', 'submissions', 'intake.submissions still exists');

-- ---------------------------------------------------------------- set_case_status
SET LOCAL ROLE lab_admin;
SELECT set_config('request.jwt.claims', '{"role": "lab_admin", "sub": "admin.one"}', true) AS claims \gset
SELECT throws_ok($$SELECT api.set_case_status('{"new_status": "in_progress"}')$$, '23502',
                 'set_case_status: case_id is required', 'set_case_status: a missing case_id is 23502');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s"}')$$, :'case_id'), '23502',
                 'set_case_status: new_status is required', 'set_case_status: a missing new_status is 23502');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": 1}')$$, :'case_id'), '22023',
                 'set_case_status: new_status must be a string', 'set_case_status: a number for the status is 22023');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "in_progress", "changed_by": "someone"}')$$, :'case_id'),
                 '22023', 'set_case_status: unknown key "changed_by"', 'set_case_status: who changes cannot be chosen in the body');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "done"}')$$, :'case_id'), '22023',
                 'case status "done" does not exist', 'set_case_status: an unknown status is 22023');
SELECT throws_ok(format($$SELECT api.set_case_status('{"case_id": "%s", "new_status": "completed"}')$$, :'case_id'), '23514',
                 'case status cannot change from open to completed', 'set_case_status: a move not allowed is 23514');
SELECT throws_ok(format($$SELECT api.set_case_status(jsonb_build_object('case_id', '%s', 'new_status', 'rejected', 'reason', repeat('r', 1001)))$$, :'case_id'),
                 '22001', 'set_case_status: reason is too long', 'set_case_status: a reason over 1000 characters is 22001');
SELECT throws_ok($$SELECT api.set_case_status('{"case_id": "0", "new_status": "rejected"}')$$, '22P02', NULL,
                 'set_case_status: a malformed case id is 22P02');
SELECT is(api.set_case_status(jsonb_build_object('case_id', :'case_id', 'new_status', 'rejected', 'reason', :'html_text')) ->> 'change_reason',
          :'html_text', 'set_case_status: a reason with markup is stored literally');

-- ---------------------------------------------------------------- read functions
SELECT throws_ok($$SELECT api.submissions('{"limit": 0}')$$, '22023', 'submissions: limit must be a whole number from 1 to 200',
                 'submissions: limit 0 is 22023');
SELECT throws_ok($$SELECT api.submissions('{"limit": 201}')$$, '22023', NULL, 'submissions: limit 201 is 22023');
SELECT throws_ok($$SELECT api.submissions('{"limit": 1.5}')$$, '22023', NULL, 'submissions: a fractional limit is 22023');
SELECT throws_ok($$SELECT api.submissions('{"limit": "10"}')$$, '22023', 'submissions: limit must be a number',
                 'submissions: a string limit is 22023');
SELECT throws_ok($$SELECT api.submissions('{"offset": -1}')$$, '22023', NULL, 'submissions: a negative offset is 22023');
SELECT throws_ok($$SELECT api.submissions('{"sort": "id; DROP TABLE x"}')$$, '22023', 'submissions: unknown key "sort"',
                 'submissions: an unknown key is 22023');
SELECT is(jsonb_array_length(api.submissions('{"limit": 1, "offset": 1}') -> 'items'), 1, 'submissions: pages with limit and offset');
SELECT is((api.submissions('{"limit": 1}') ->> 'total')::int, 4, 'submissions: total counts every match, not the page');
SELECT is((api.submissions('{"status": "rejected"}') ->> 'total')::int, 1, 'submissions: status filters on the case status');
SELECT is((api.submissions('{"team": "operations"}') ->> 'total')::int, 0, 'submissions: team filters');
SELECT is((api.submissions($j${"status": "x' OR '1'='1", "team": "') OR true --"}$j$) ->> 'total')::int, 0,
          'submissions: SQL in the filters is a value to compare, not SQL');
SELECT is((api.submissions('{"status": "rejected", "team": "service_desk", "q": "existing"}') ->> 'total')::int, 1,
          'submissions: status, team and q combine');
SELECT throws_ok($$SELECT api.submission_detail('{}')$$, '23502', 'submission_detail: submission_id is required',
                 'submission_detail: a missing id is 23502');
SELECT throws_ok($$SELECT api.submission_detail('{"submission_id": "00000000-0000-4000-8000-000000000000"}')$$, 'PT404',
                 'submission 00000000-0000-4000-8000-000000000000 does not exist', 'submission_detail: an unknown id is PT404');
SELECT throws_ok($$SELECT api.lineage('{"submission_id": "00000000-0000-4000-8000-000000000000"}')$$, 'PT404', NULL,
                 'lineage: an unknown id is PT404');
SELECT throws_ok($$SELECT api.events('{"status": "bogus"}')$$, '22023', 'events: status "bogus" is not an event status',
                 'events: an unknown status is 22023');
SELECT throws_ok($$SELECT api.events('{"limit": 1001}')$$, '22023', NULL, 'events: limit over 1000 is 22023');
SELECT throws_ok($$SELECT api.sync_logs('{"submission_id": 5}')$$, '22023', NULL, 'sync_logs: a number for an id is 22023');
SELECT throws_ok($$SELECT api.metrics('{"x": 1}')$$, '22023', 'metrics: unknown key "x"', 'metrics: takes no keys');
SELECT throws_ok($$SELECT api.reference_data('{"customer": "x"}')$$, '22023', NULL, 'reference_data: takes no keys');
SELECT throws_ok($$SELECT api.health('[1]')$$, '22023', NULL, 'health: a non-object body is 22023');

SELECT * FROM finish();
ROLLBACK;
