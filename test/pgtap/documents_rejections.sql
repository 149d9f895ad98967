-- Every rejection of the document repository: a specific SQLSTATE, a
-- message that names the problem, and nothing left behind (no row, no
-- object in the bucket).  Uploads go through the harness's S3.
BEGIN;
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
SELECT plan(51);

CREATE TEMP TABLE sub AS
SELECT submission_id AS id
  FROM intake.submit_request('Tess Tap', 'tess@example.test', 'Needs a document.', 'document_review',
                             'medium', 'service_desk', '10000000-0000-4000-8000-000000000001');

CREATE FUNCTION pg_temp.up(name text = 'file.txt', ctype text = 'text/plain',
                           content bytea = convert_to('hello', 'UTF8'), dtype text = 'supporting_document',
                           submission uuid = NULL)
RETURNS uuid LANGUAGE sql AS
$$ SELECT document_repo.upload_document(coalesce(submission, (SELECT id FROM sub)), name, ctype, content, dtype) $$;

-- The submission
SELECT throws_ok($$ SELECT pg_temp.up(submission => '00000000-0000-4000-8000-000000000000') $$,
  '22023', 'submission 00000000-0000-4000-8000-000000000000 does not exist', 'unknown submission');
SELECT throws_ok($$ SELECT document_repo.upload_document(NULL, 'a.txt', 'text/plain', 'x') $$,
  '23502', 'submission_id must not be null', 'no submission');
SELECT throws_ok($$ SELECT pg_temp.up(dtype => 'Bad Type') $$,
  '22023', 'document_type "Bad Type" is not valid', 'document type with spaces and capitals');

-- The content
SELECT throws_ok($$ SELECT pg_temp.up(content => '') $$, '22023', 'content is empty', 'empty content');
SELECT throws_ok($$ SELECT pg_temp.up(content => NULL) $$, '22023', 'content is empty', 'no content');
SELECT throws_ok($$ SELECT pg_temp.up('big.pdf', 'application/pdf', ('\x255044462d'::bytea || convert_to(repeat('x', 10485760), 'UTF8'))) $$,
  '22001', 'document "big.pdf" is too large', 'over the 10 MB default');
SET LOCAL enterprise_lab.max_document_size = '1kB';
SELECT throws_ok($$ SELECT pg_temp.up(content => convert_to(repeat('x', 1025), 'UTF8')) $$,
  '22001', 'document "file.txt" is too large', 'over a configured limit');
SELECT lives_ok($$ SELECT document_repo.validate_document('ok.txt', 'text/plain', convert_to(repeat('x', 1024), 'UTF8')) $$,
  'exactly at the limit is allowed');
RESET enterprise_lab.max_document_size;

-- The extension and the content type
SELECT throws_ok($$ SELECT pg_temp.up('tool.exe', 'application/octet-stream') $$,
  '22023', 'file type ".exe" is not allowed', 'extension not allowed');
SELECT throws_ok($$ SELECT pg_temp.up('picture.gif', 'image/gif') $$,
  '22023', 'file type ".gif" is not allowed', 'gif is not allowed');
SELECT throws_ok($$ SELECT pg_temp.up('README', 'text/plain') $$,
  '22023', 'file_name "README" has no file extension', 'no extension');
SELECT throws_ok($$ SELECT pg_temp.up('notes.txt', 'image/gif') $$,
  '22023', 'content_type "image/gif" is not allowed', 'content type not allowed');
SELECT throws_ok($$ SELECT pg_temp.up('notes.txt', 'application/pdf') $$,
  '22023', 'content_type "application/pdf" does not match the file extension ".txt"', 'content type of another extension');
SELECT throws_ok($$ SELECT pg_temp.up('photo.png', 'image/jpeg', '\x89504e470d0a1a0a00'::bytea) $$,
  '22023', 'content_type "image/jpeg" does not match the file extension ".png"', 'jpeg declared for a png');
SELECT throws_ok($$ SELECT pg_temp.up('notes.txt', '') $$, '23502', 'content_type must not be empty', 'empty content type');
SELECT throws_ok($$ SELECT pg_temp.up('notes.txt', NULL) $$, '23502', 'content_type must not be empty', 'no content type');
SELECT lives_ok($$ SELECT document_repo.validate_document('NOTES.TXT', ' Text/Plain; charset=UTF-8 ', 'x') $$,
  'extension and content type are case-insensitive, parameters ignored');

-- The magic bytes
SELECT throws_ok($$ SELECT pg_temp.up('image.pdf', 'application/pdf', '\x89504e470d0a1a0a0000000d'::bytea) $$,
  '22023', 'content of "image.pdf" is not a PDF document', 'a PNG named .pdf');
SELECT throws_ok($$ SELECT pg_temp.up('doc.png', 'image/png', convert_to('%PDF-1.7', 'UTF8')) $$,
  '22023', 'content of "doc.png" is not a PNG image', 'a PDF named .png');
SELECT throws_ok($$ SELECT pg_temp.up('photo.jpg', 'image/jpeg', convert_to('just text', 'UTF8')) $$,
  '22023', 'content of "photo.jpg" is not a JPEG image', 'text named .jpg');
SELECT throws_ok($$ SELECT pg_temp.up('report.pdf', 'application/pdf', '\x4d5a9000'::bytea) $$,
  '22023', 'content of "report.pdf" is not a PDF document', 'an executable named .pdf');
SELECT throws_ok($$ SELECT pg_temp.up('notes.txt', 'text/plain', '\x68c328'::bytea) $$,
  '22021', 'content of "notes.txt" is not valid UTF-8', 'invalid UTF-8 text');
SELECT throws_ok($$ SELECT pg_temp.up('pixels.txt', 'text/plain', '\x89504e470d0a1a0a00'::bytea) $$,
  '22021', 'content of "pixels.txt" is not valid UTF-8', 'a PNG named .txt');
SELECT throws_ok($$ SELECT pg_temp.up('data.csv', 'text/csv', '\x612c620a00632c64'::bytea) $$,
  '22021', 'content of "data.csv" contains a NUL byte', 'CSV with a NUL byte');
SELECT throws_ok($$ SELECT pg_temp.up('latin1.csv', 'text/csv', '\x6ee9'::bytea) $$,
  '22021', 'content of "latin1.csv" is not valid UTF-8', 'Latin-1 CSV');

-- The file name
SELECT throws_ok($$ SELECT pg_temp.up('dir/file.txt') $$,
  '22023', 'file_name must not contain a path separator', 'slash');
SELECT throws_ok($$ SELECT pg_temp.up(E'C:\\temp\\file.txt') $$,
  '22023', 'file_name must not contain a path separator', 'backslash');
SELECT throws_ok($$ SELECT pg_temp.up('..txt') $$,
  '22023', 'file_name must not contain ".."', 'dot dot');
SELECT throws_ok($$ SELECT pg_temp.up('a..b.txt') $$,
  '22023', 'file_name must not contain ".."', 'dot dot inside');
SELECT throws_ok($$ SELECT pg_temp.up(E'line\nbreak.txt') $$,
  '22023', 'file_name must not contain control characters', 'newline');
SELECT throws_ok($$ SELECT pg_temp.up(E'bell\x07.txt') $$,
  '22023', 'file_name must not contain control characters', 'C0 control');
SELECT throws_ok($$ SELECT pg_temp.up(E'del\x7f.txt') $$,
  '22023', 'file_name must not contain control characters', 'DEL');
SELECT throws_ok($$ SELECT pg_temp.up(E'next\u0085line.txt') $$,
  '22023', 'file_name must not contain control characters', 'C1 control (U+0085)');
SELECT throws_ok($$ SELECT pg_temp.up(repeat('a', 252) || '.txt') $$,
  '22001', 'file_name is too long', 'longer than 255 bytes');
SELECT lives_ok($$ SELECT document_repo.validate_document(repeat('a', 251) || '.txt', 'text/plain', 'x') $$,
  '255 bytes is allowed');
SELECT throws_ok($$ SELECT pg_temp.up('   ') $$, '23502', 'file_name must not be blank', 'blank file name');
SELECT throws_ok($$ SELECT pg_temp.up(NULL) $$, '23502', 'file_name must not be null', 'no file name');
SELECT throws_ok($$ SELECT pg_temp.up(convert_from('\x610062'::bytea, 'UTF8') || '.txt') $$,
  '22021', NULL, 'a NUL byte cannot even be part of a text file name');

-- Nothing was left behind by any of them.
SELECT is((SELECT count(*) FROM document_repo.documents), 0::bigint, 'no document rows');
SELECT is((SELECT count(*) FROM document_repo.s3_list_objects('submissions/' || (SELECT id FROM sub) || '/')), 0::bigint,
  'no objects under the submission');

-- Intake with a bad document: the whole submission is refused.
SELECT throws_ok($$ SELECT intake.submit_request('Bo Bad', 'bo@example.test', 'With a bad file.', 'incident', 'low',
                                                 'operations', '10000000-0000-4000-8000-000000000001', NULL, 'portal',
                                                 'evil.pdf', 'application/pdf', '\x89504e470d0a1a0a'::bytea) $$,
  '22023', 'content of "evil.pdf" is not a PDF document', 'intake with a PNG named .pdf');
SELECT is((SELECT count(*) FROM intake.submissions WHERE requester_name = 'Bo Bad'), 0::bigint,
  'no submission left by the refused intake');

-- Downloads and URLs
SELECT throws_ok($$ SELECT document_repo.download_document('00000000-0000-4000-8000-000000000000') $$,
  '22023', 'document 00000000-0000-4000-8000-000000000000 does not exist', 'download of an unknown document');
SELECT throws_ok($$ SELECT document_repo.presigned_url('00000000-0000-4000-8000-000000000000') $$,
  '22023', 'document 00000000-0000-4000-8000-000000000000 does not exist', 'URL of an unknown document');

CREATE TEMP TABLE doc AS SELECT pg_temp.up('kept.txt', 'text/plain', convert_to('twelve bytes', 'UTF8')) AS id;
SELECT throws_ok($$ SELECT document_repo.presigned_url((SELECT id FROM doc), '0 seconds') $$,
  '22023', 'expires_in must be between 1 second and 7 days, not 00:00:00', 'URL valid for no time');
SELECT throws_ok($$ SELECT document_repo.s3_presign('GET', 'k', 604801, now()) $$,
  '22023', 'expires_seconds must be between 1 and 604800 (7 days), not 604801', 'presigning for more than 7 days');

-- The object changed behind our back (same size, other bytes): refused.
SELECT document_repo.s3_put_object(d.object_key, convert_to('TWELVE BYTES', 'UTF8'), 'text/plain')
  FROM document_repo.documents d JOIN doc ON doc.id = d.id;
SELECT throws_ok($$ SELECT document_repo.download_document((SELECT id FROM doc)) $$,
  'XX001', NULL, 'checksum mismatch');
-- ... or is gone.
SELECT document_repo.s3_delete_object(d.object_key) FROM document_repo.documents d JOIN doc ON doc.id = d.id;
SELECT throws_ok($$ SELECT document_repo.download_document((SELECT id FROM doc)) $$,
  '58P01', NULL, 'object missing from the bucket');

-- The S3 client is for superusers; the entry points need a grant.
CREATE ROLE documents_tap_user;
SET LOCAL ROLE documents_tap_user;
SELECT throws_ok($$ SELECT document_repo.s3_presign('GET', 'any/key', 60, now()) $$,
  '42501', NULL, 'presigning arbitrary keys needs a superuser');
SELECT throws_ok($$ SELECT document_repo.s3_put_object('any/key', 'x', 'text/plain') $$,
  '42501', NULL, 'writing arbitrary keys needs a superuser');
SELECT throws_ok($$ SELECT document_repo.upload_document(gen_random_uuid(), 'a.txt', 'text/plain', 'x') $$,
  '42501', NULL, 'uploading needs a grant');
RESET ROLE;

SELECT * FROM finish();
ROLLBACK;
