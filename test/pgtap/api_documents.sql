-- api.submit_request with a document and api.submission_detail's
-- presigned download URL, against the S3 service the harness starts.
-- Each role reads the detail as PostgREST runs it (the authenticator's
-- session, SET LOCAL ROLE, the claims): operators, auditors and admins see
-- a document's details and its link, the anonymous role only that it exists.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(20);

SELECT document_repo.ensure_bucket() AS bucket \gset
-- A 1x1 PNG.
\set png 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=='
\set body '{"requester_name": "Dana Example", "requester_email": "dana@example.test", "description": "Screenshot attached.", "request_type": "incident", "priority": "low", "team": "service_desk", "customer_id": "10000000-0000-4000-8000-000000000001"}'

SET LOCAL ROLE lab_anon;
SELECT set_config('request.jwt.claims', '{"role": "lab_anon"}', true) AS claims \gset
SELECT api.submit_request(:'body'::jsonb || jsonb_build_object('document', jsonb_build_object(
         'file_name', 'screen shot.png', 'content_type', 'image/png', 'content_base64', :'png'))) AS submitted \gset
SELECT isnt(:'submitted'::jsonb ->> 'document_id', NULL, 'submit_request: a document gets an id');
SELECT api.submission_detail(jsonb_build_object('submission_id', :'submitted'::jsonb ->> 'submission_id')) AS d \gset
SELECT is(jsonb_array_length(:'d'::jsonb -> 'documents'), 1, 'anon detail: lists the document');
SELECT is(:'d'::jsonb #>> '{documents,0,id}', :'submitted'::jsonb ->> 'document_id', 'anon detail: the document''s id');
SELECT is(:'d'::jsonb #> '{documents,0,download_url}', 'null'::jsonb, 'anon detail: no download URL');
SELECT is((SELECT array_agg(k ORDER BY k) FROM jsonb_object_keys(:'d'::jsonb #> '{documents,0}') AS k),
          ARRAY['download_url', 'id'], 'anon detail: nothing but the id (no name, type, size, checksum or key)');
SELECT ok(strpos(:'d', 'X-Amz-Signature') = 0 AND strpos(:'d', 'screen') = 0
          AND strpos(:'d', encode(sha256(decode(:'png', 'base64')), 'hex')) = 0,
          'anon detail: no link, file name or checksum anywhere in the answer');
SELECT throws_ok(format($$SELECT api.submit_request(%L::jsonb || jsonb_build_object('document', jsonb_build_object(
                   'file_name', 'report.pdf', 'content_type', 'application/pdf', 'content_base64', %L)))$$, :'body', :'png'),
                 '22023', NULL, 'a PNG named .pdf is refused (22023)');

-- Operators (of any team), auditors and admins get the details and a link.
RESET ROLE;
SET LOCAL SESSION AUTHORIZATION lab_authenticator;
SET LOCAL ROLE lab_operator;
SELECT set_config('request.jwt.claims', '{"role": "lab_operator", "sub": "operator.one", "teams": ["operations"]}', true) AS claims \gset
SELECT api.submission_detail(jsonb_build_object('submission_id', :'submitted'::jsonb ->> 'submission_id')) AS d \gset
SELECT is(:'d'::jsonb #>> '{documents,0,id}', :'submitted'::jsonb ->> 'document_id', 'operator detail: the document''s metadata');
SELECT is(:'d'::jsonb #>> '{documents,0,original_file_name}', 'screen shot.png', 'operator detail: the file name');
SELECT matches(:'d'::jsonb #>> '{documents,0,download_url}', '^https?://.*X-Amz-Signature=[0-9a-f]{64}',
               'operator detail: a presigned download URL');
SELECT ok(strpos(:'d'::jsonb #>> '{documents,0}', encode(sha256(decode(:'png', 'base64')), 'hex')) > 0,
          'operator detail: the metadata carries the SHA-256 of the bytes sent');
SET LOCAL ROLE lab_auditor;
SELECT set_config('request.jwt.claims', '{"role": "lab_auditor", "sub": "auditor.one"}', true) AS claims \gset
SELECT api.submission_detail(jsonb_build_object('submission_id', :'submitted'::jsonb ->> 'submission_id')) AS d \gset
SELECT is(:'d'::jsonb #>> '{documents,0,original_file_name}', 'screen shot.png', 'auditor detail: the file name');
SELECT matches(:'d'::jsonb #>> '{documents,0,download_url}', '^https?://.*X-Amz-Signature=[0-9a-f]{64}',
               'auditor detail: a presigned download URL');
SET LOCAL ROLE lab_admin;
SELECT set_config('request.jwt.claims', '{"role": "lab_admin", "sub": "admin.one"}', true) AS claims \gset
SELECT api.submission_detail(jsonb_build_object('submission_id', :'submitted'::jsonb ->> 'submission_id')) AS d \gset
SELECT is(:'d'::jsonb #>> '{documents,0,original_file_name}', 'screen shot.png', 'admin detail: the file name');
SELECT matches(:'d'::jsonb #>> '{documents,0,download_url}', '^https?://.*X-Amz-Signature=[0-9a-f]{64}',
               'admin detail: a presigned download URL');
-- A role outside the four (a direct login granted nothing) cannot call it at all.
RESET ROLE;
RESET SESSION AUTHORIZATION;
CREATE ROLE tap_documents_nobody LOGIN;
SET LOCAL SESSION AUTHORIZATION tap_documents_nobody;
SELECT throws_ok(format($$SELECT api.submission_detail('{"submission_id": "%s"}')$$, :'submitted'::jsonb ->> 'submission_id'),
                 '42501', NULL, 'a role without a request role may not call submission_detail');
RESET SESSION AUTHORIZATION;
-- A direct login as an operator sees what an operator sees; claims it sets change nothing.
CREATE ROLE tap_documents_operator LOGIN IN ROLE lab_operator;
SET LOCAL SESSION AUTHORIZATION tap_documents_operator;
SELECT set_config('request.jwt.claims', '{"role": "lab_anon"}', true) AS claims \gset
SELECT api.submission_detail(jsonb_build_object('submission_id', :'submitted'::jsonb ->> 'submission_id')) AS d \gset
SELECT matches(:'d'::jsonb #>> '{documents,0,download_url}', '^https?://.*X-Amz-Signature=[0-9a-f]{64}',
               'a direct-login operator gets the download URL');
RESET SESSION AUTHORIZATION;
-- The anonymous role cannot presign a link itself either.
SET LOCAL ROLE lab_anon;
SELECT throws_ok(format($$SELECT document_repo.presigned_url('%s')$$, :'submitted'::jsonb ->> 'document_id'),
                 '42501', NULL, 'anon: document_repo.presigned_url is not executable');
RESET ROLE;
SELECT is(document_repo.download_document((:'submitted'::jsonb ->> 'document_id')::uuid), decode(:'png', 'base64'),
          'the stored object has the bytes sent');
SELECT is((SELECT count(*)::int FROM intake.submissions), 1, 'the refused document left no submission behind');

SELECT * FROM finish();
ROLLBACK;
