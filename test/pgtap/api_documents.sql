-- api.submit_request with a document and api.submission_detail's
-- presigned download URL, against the S3 service the harness starts.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(8);

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
SELECT is(jsonb_array_length(:'d'::jsonb -> 'documents'), 1, 'detail: lists the document');
SELECT is(:'d'::jsonb #>> '{documents,0,id}', :'submitted'::jsonb ->> 'document_id', 'detail: the document''s metadata');
SELECT matches(:'d'::jsonb #>> '{documents,0,download_url}', '^https?://.*X-Amz-Signature=[0-9a-f]{64}',
               'detail: a presigned download URL');
SELECT ok(strpos(:'d'::jsonb #>> '{documents,0}', encode(sha256(decode(:'png', 'base64')), 'hex')) > 0,
          'detail: the metadata carries the SHA-256 of the bytes sent');
SELECT throws_ok(format($$SELECT api.submit_request(%L::jsonb || jsonb_build_object('document', jsonb_build_object(
                   'file_name', 'report.pdf', 'content_type', 'application/pdf', 'content_base64', %L)))$$, :'body', :'png'),
                 '22023', NULL, 'a PNG named .pdf is refused (22023)');
RESET ROLE;
SELECT is(document_repo.download_document((:'submitted'::jsonb ->> 'document_id')::uuid), decode(:'png', 'base64'),
          'the stored object has the bytes sent');
SELECT is((SELECT count(*)::int FROM intake.submissions), 1, 'the refused document left no submission behind');

SELECT * FROM finish();
ROLLBACK;
