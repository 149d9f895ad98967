-- Input that only looks harmless: names and descriptions made of invisible
-- characters, file names with bidirectional controls, over-long changed_by
-- and reasons on every path (function, api, direct SQL).  Each is refused
-- with its SQLSTATE and message, and nothing is written.  Also: an upload
-- records the same caller as its submission.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(43);

CREATE FUNCTION pg_temp.submit(name text = 'Tess Tap', descr text = 'Something to do.',
                               file_name text = NULL, content bytea = NULL)
RETURNS void LANGUAGE sql AS
$$ SELECT FROM intake.submit_request(name, 'tess@example.test', descr, 'incident', 'medium', 'operations',
                                     '10000000-0000-4000-8000-000000000002', NULL, 'portal',
                                     file_name, CASE WHEN file_name IS NOT NULL THEN 'text/plain' END, content) $$;

-- Names and descriptions that show as nothing.
SELECT throws_ok($$ SELECT pg_temp.submit(name => E'\u00a0\u00a0') $$,
  '23502', 'requester_name must not be blank', 'requester name of no-break spaces');
SELECT throws_ok($$ SELECT pg_temp.submit(name => E'\u200b\u200c\u200d') $$,
  '23502', 'requester_name must not be blank', 'requester name of zero-width characters');
SELECT throws_ok($$ SELECT pg_temp.submit(name => E'\u2060\ufeff \u3000') $$,
  '23502', 'requester_name must not be blank', 'requester name of word joiner, BOM and ideographic space');
SELECT throws_ok($$ SELECT pg_temp.submit(descr => E'\u00a0\u200b\t') $$,
  '23502', 'request_description must not be blank', 'description of no-break space and zero-width space');
SELECT throws_ok($$ SELECT pg_temp.submit(descr => E'\u3164\u115f\u180e') $$,
  '23502', 'request_description must not be blank', 'description of blank and filler characters');
SELECT lives_ok($$ SELECT pg_temp.submit(name => E'Zo\u00eb\u00a0M\u00fcller') $$,
  'a name with a no-break space between visible letters is fine');
SELECT throws_ok($$ UPDATE intake.submissions SET requester_name = E'\u200b' $$,
  '23514', NULL, 'a direct UPDATE to an invisible name violates the table constraint');
SELECT throws_ok($$ UPDATE intake.submissions SET request_description = E'\ufeff\u00a0' $$,
  '23514', NULL, 'a direct UPDATE to an invisible description violates the table constraint');

SET LOCAL ROLE lab_anon;
SELECT throws_ok($$ SELECT api.submit_request(jsonb_build_object(
    'requester_name', E'\u200b', 'requester_email', 'a@example.test', 'description', 'x',
    'request_type', 'incident', 'priority', 'low', 'team', 'operations',
    'customer_id', '10000000-0000-4000-8000-000000000002')) $$,
  '23502', 'requester_name must not be blank', 'the api refuses an invisible requester name');
RESET ROLE;

SELECT is((SELECT count(*) FROM intake.submissions), 1::bigint, 'only the valid submission was written');
SELECT is((SELECT requester_name FROM intake.submissions), E'Zo\u00eb\u00a0M\u00fcller', 'and stored as given');

-- File names.
SELECT throws_ok($$ SELECT document_repo.validate_document(E'invoice\u202egnp.txt', 'text/plain', 'x') $$,
  '22023', 'file_name must not contain bidirectional control characters', 'right-to-left override (U+202E)');
SELECT throws_ok($$ SELECT document_repo.validate_document(E'a\u202ab.txt', 'text/plain', 'x') $$,
  '22023', 'file_name must not contain bidirectional control characters', 'left-to-right embedding (U+202A)');
SELECT throws_ok($$ SELECT document_repo.validate_document(E'a\u2066b\u2069.txt', 'text/plain', 'x') $$,
  '22023', 'file_name must not contain bidirectional control characters', 'isolates (U+2066, U+2069)');
SELECT throws_ok($$ SELECT document_repo.validate_document(E'a\u200fb.txt', 'text/plain', 'x') $$,
  '22023', 'file_name must not contain bidirectional control characters', 'right-to-left mark (U+200F)');
SELECT throws_ok($$ SELECT document_repo.validate_document(E'a\u200eb.txt', 'text/plain', 'x') $$,
  '22023', 'file_name must not contain bidirectional control characters', 'left-to-right mark (U+200E)');
SELECT throws_ok($$ SELECT document_repo.validate_document(E'a\u061cb.txt', 'text/plain', 'x') $$,
  '22023', 'file_name must not contain bidirectional control characters', 'Arabic letter mark (U+061C)');
SELECT throws_ok($$ SELECT document_repo.validate_document(E'\u00a0\u200b', 'text/plain', 'x') $$,
  '23502', 'file_name must not be blank', 'file name of invisible characters only');
SELECT throws_ok($$ SELECT document_repo.validate_document(E'\u200b\u00a0.txt', 'text/plain', 'x') $$,
  '22023', 'file_name has no visible name before its extension', 'invisible characters before the extension');
SELECT lives_ok($$ SELECT document_repo.validate_document(E'\u0645\u0644\u0641.txt', 'text/plain', 'x') $$,
  'a right-to-left script without control characters is fine');

SELECT throws_ok($$ SELECT pg_temp.submit(file_name => E'photo\u202etxt.exe', content => convert_to('x', 'UTF8')) $$,
  '22023', 'file_name must not contain bidirectional control characters', 'intake.submit_request with such a file name');
SET LOCAL ROLE lab_anon;
SELECT throws_ok($$ SELECT api.submit_request(jsonb_build_object(
    'requester_name', 'Ann', 'requester_email', 'a@example.test', 'description', 'x',
    'request_type', 'incident', 'priority', 'low', 'team', 'operations',
    'customer_id', '10000000-0000-4000-8000-000000000002',
    'document', jsonb_build_object('file_name', E'scan\u202efdp.txt', 'content_type', 'text/plain',
                                   'content_base64', encode('x', 'base64')))) $$,
  '22023', 'file_name must not contain bidirectional control characters', 'the api refuses it too');
RESET ROLE;
SELECT is((SELECT count(*) FROM intake.submissions), 1::bigint, 'no submission left behind by a refused file name');
SELECT is((SELECT count(*) FROM document_repo.documents), 0::bigint, 'and no document row');

-- changed_by and reason.
SELECT integration.process_events();
CREATE TEMP TABLE the_case AS SELECT id FROM operational.operation_cases;
SELECT throws_ok(format($$ SELECT operational.set_case_status(%L, 'in_progress', %L, NULL) $$,
                        (SELECT id FROM the_case), repeat('x', 201)),
  '22001', 'changed_by is too long', 'changed_by over 200 characters');
SELECT throws_ok(format($$ SELECT operational.set_case_status(%L, 'in_progress', %L, NULL) $$,
                        (SELECT id FROM the_case), E'\u200b\u00a0'),
  '23502', 'changed_by must not be blank', 'changed_by of invisible characters');
SELECT throws_ok(format($$ SELECT operational.set_case_status(%L, 'in_progress', 'op', %L) $$,
                        (SELECT id FROM the_case), repeat('r', 1001)),
  '22001', 'change_reason is too long', 'reason over 1000 characters');
SELECT lives_ok(format($$ SELECT operational.set_case_status(%L, 'in_progress', %L, %L) $$,
                       (SELECT id FROM the_case), repeat('x', 200), repeat('r', 1000)),
  'exactly at both limits is allowed');

-- Direct SQL: the settings a direct UPDATE reads, and the tables themselves.
SELECT set_config('operational.changed_by', repeat('x', 201), true) IS NOT NULL AS set;
SELECT throws_ok($$ UPDATE operational.operation_cases SET processing_status = 'completed' $$,
  '22001', 'changed_by is too long', 'direct UPDATE with an over-long operational.changed_by');
SELECT set_config('operational.changed_by', '', true) IS NOT NULL AS reset,
       set_config('operational.change_reason', repeat('r', 1001), true) IS NOT NULL AS set;
SELECT throws_ok($$ UPDATE operational.operation_cases SET processing_status = 'completed' $$,
  '22001', 'change_reason is too long', 'direct UPDATE with an over-long operational.change_reason');
SELECT set_config('operational.change_reason', '', true) IS NOT NULL AS reset;
SELECT throws_ok($$ UPDATE operational.operation_cases SET status_changed_by = repeat('x', 201) $$,
  '23514', NULL, 'operation_cases.status_changed_by over 200 characters violates its constraint');
SELECT throws_ok($$ UPDATE operational.operation_cases SET status_change_reason = repeat('r', 1001) $$,
  '23514', NULL, 'operation_cases.status_change_reason over 1000 characters violates its constraint');
SELECT throws_ok(format($$ INSERT INTO operational.case_status_history (submission_id, case_id, new_status, changed_by)
                           SELECT submission_id, id, 'open', %L FROM operational.operation_cases $$, repeat('x', 201)),
  '23514', NULL, 'case_status_history.changed_by over 200 characters violates its constraint');
SELECT throws_ok($$ INSERT INTO operational.case_status_history (submission_id, case_id, new_status, changed_by)
                    SELECT submission_id, id, 'open', E'\u200b' FROM operational.operation_cases $$,
  '23514', NULL, 'case_status_history.changed_by of invisible characters violates its constraint');
SELECT throws_ok(format($$ INSERT INTO operational.case_status_history (submission_id, case_id, new_status, changed_by, change_reason)
                           SELECT submission_id, id, 'open', 'op', %L FROM operational.operation_cases $$, repeat('r', 1001)),
  '23514', NULL, 'case_status_history.change_reason over 1000 characters violates its constraint');
SELECT is((SELECT count(*) FROM operational.case_status_history WHERE previous_status IS NOT NULL), 1::bigint,
  'only the accepted change wrote history');
SELECT is((SELECT processing_status FROM operational.operation_cases), 'in_progress', 'and the case is where it moved');
SELECT is((SELECT length(status_changed_by) || '/' || length(status_change_reason) FROM operational.operation_cases),
  '200/1000', 'with the accepted changed_by and reason');

-- The api's reason has the same limit.
SELECT id AS case_id FROM the_case \gset
SET LOCAL ROLE lab_admin;
SELECT throws_ok(format($$ SELECT api.set_case_status(jsonb_build_object('case_id', %L, 'new_status', 'completed', 'reason', %L)) $$,
                        :'case_id', repeat('r', 1001)),
  '22001', 'set_case_status: reason is too long', 'api.set_case_status: reason over 1000 characters');
RESET ROLE;
SELECT is((SELECT processing_status FROM operational.operation_cases), 'in_progress', 'the case did not move');

-- uploaded_by is the caller, exactly as submitted_by.
SET LOCAL ROLE lab_anon;
CREATE TEMP TABLE uploaded AS SELECT api.submit_request(jsonb_build_object(
    'requester_name', 'Uma Upload', 'requester_email', 'uma@example.test', 'description', 'With a file.',
    'request_type', 'incident', 'priority', 'low', 'team', 'operations',
    'customer_id', '10000000-0000-4000-8000-000000000002',
    'document', jsonb_build_object('file_name', 'note.txt', 'content_type', 'text/plain',
                                   'content_base64', encode('hello', 'base64')))) AS r;
RESET ROLE;
SELECT is((SELECT d.uploaded_by FROM document_repo.documents d JOIN uploaded u ON d.id = (u.r ->> 'document_id')::uuid),
          (SELECT s.submitted_by FROM intake.submissions s JOIN uploaded u ON s.submission_id = (u.r ->> 'submission_id')::uuid),
  'an upload through the api records the same caller as its submission');
SELECT is((SELECT d.uploaded_by FROM document_repo.documents d JOIN uploaded u ON d.id = (u.r ->> 'document_id')::uuid),
  'lab_anon', 'the request role, not the session user');
SELECT is((SELECT count(*) FROM document_repo.documents), 1::bigint, 'the one document');

SELECT * FROM finish();
ROLLBACK;
