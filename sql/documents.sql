-- Documents: validated uploads to S3 (through the harness's verifying
-- proxy in front of s3rver), checksummed downloads, presigned URLs.
-- The enterprise_lab.s3_* settings come from the server's configuration.
CREATE EXTENSION IF NOT EXISTS enterprise_lab;
\set SHOW_CONTEXT never

-- Signature V4 against AWS's published examples (examplebucket, the
-- documented example keys, 24 May 2013).  Only the settings differ from a
-- real deployment; the code is the one every request runs.
-- The secret key is read from a file only the server's user may read: the
-- shell COPY runs (in the data directory) writes it with mode 0600.
COPY (SELECT 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY') TO PROGRAM 'umask 077 && cat > enterprise_lab_example_secret';
SELECT setting || '/enterprise_lab_example_secret' AS secret_file FROM pg_settings WHERE name = 'data_directory' \gset
BEGIN;
SET LOCAL enterprise_lab.s3_endpoint = 'https://s3.amazonaws.com';
SET LOCAL enterprise_lab.s3_path_style = off;
SET LOCAL enterprise_lab.s3_bucket = 'examplebucket';
SET LOCAL enterprise_lab.s3_region = 'us-east-1';
SET LOCAL enterprise_lab.s3_access_key = 'AKIAIOSFODNN7EXAMPLE';
SELECT set_config('enterprise_lab.s3_secret_key', '@' || :'secret_file', true) IS NOT NULL AS secret_file_set;
-- Presigned GET of test.txt, valid for 86400 s.
SELECT document_repo.s3_presign('GET', 'test.txt', 86400, '2013-05-24 00:00:00+00') AS presigned_url;
-- GET Object (Range: bytes=0-9)
SELECT canonical_request, string_to_sign, authorization_header
  FROM document_repo.s3_signature('GET', 'test.txt', '{}', '{}', '{Range}', '{bytes=0-9}', '', '2013-05-24 00:00:00+00');
-- PUT Object ($ in the key, a Date header, a storage class)
SELECT signature
  FROM document_repo.s3_signature('PUT', 'test$file.text', '{}', '{}',
         '{Date,x-amz-storage-class}', '{"Fri, 24 May 2013 00:00:00 GMT",REDUCED_REDUNDANCY}',
         convert_to('Welcome to Amazon S3.', 'UTF8'), '2013-05-24 00:00:00+00');
-- GET Bucket lifecycle, and List Objects (max-keys=2, prefix=J)
SELECT signature
  FROM document_repo.s3_signature('GET', NULL, '{lifecycle}', '{""}', '{}', '{}', '', '2013-05-24 00:00:00+00');
SELECT signature
  FROM document_repo.s3_signature('GET', NULL, '{max-keys,prefix}', '{2,J}', '{}', '{}', '', '2013-05-24 00:00:00+00');
-- The secret key is never shown: SHOW names its file.
SELECT current_setting('enterprise_lab.s3_secret_key') = '@' || :'secret_file' AS shows_the_file,
       strpos(current_setting('enterprise_lab.s3_secret_key'), 'EXAMPLEKEY') = 0 AS secret_not_shown;
-- A secret set inline is refused, not used.
SET LOCAL enterprise_lab.s3_secret_key = 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY';
SHOW enterprise_lab.s3_secret_key;
SELECT document_repo.s3_presign('GET', 'test.txt', 86400, '2013-05-24 00:00:00+00');
ROLLBACK;

SELECT document_repo.ensure_bucket();

-- Validation alone, before anything is sent: the stored name is sanitized,
-- the content type canonical, the type detected from the magic bytes.
SELECT * FROM document_repo.validate_document('Quarterly Report (final) ü.PDF', 'application/pdf', convert_to('%PDF-1.7 ...', 'UTF8'));
SELECT stored_file_name, content_type, detected_content_type, size_bytes
  FROM document_repo.validate_document(' .hidden notes!.csv', 'text/csv', convert_to('a,b', 'UTF8'));
SELECT stored_file_name, content_type, detected_content_type
  FROM document_repo.validate_document('scan.JPEG', 'image/jpeg; charset=binary', '\xffd8ffe000104a464946'::bytea);
SELECT stored_file_name, content_type FROM document_repo.validate_document('data.csv', 'application/vnd.ms-excel', convert_to('x;y', 'UTF8'));

-- Some rejections (test/pgtap/documents_rejections.sql checks every one
-- with its SQLSTATE, and that nothing is left behind).
SELECT document_repo.validate_document('photo.png', 'image/png', '\x255044462d'::bytea);
SELECT document_repo.validate_document('image.pdf', 'application/pdf', '\x89504e470d0a1a0a0000'::bytea);
SELECT document_repo.validate_document('notes.txt', 'text/plain', '\x6869006869'::bytea);
SELECT document_repo.validate_document('../etc/passwd.txt', 'text/plain', 'x'::bytea);
SELECT document_repo.validate_document('tool.exe', 'application/octet-stream', 'MZ'::bytea);
SELECT document_repo.validate_document('notes.txt', 'application/pdf', 'x'::bytea);
BEGIN;
SET LOCAL enterprise_lab.max_document_size = '1kB';
SELECT document_repo.validate_document('big.txt', 'text/plain', convert_to(repeat('x', 1025), 'UTF8'));
ROLLBACK;

-- A request with a supporting document, in one call.
SELECT request_number, document_id IS NOT NULL AS has_document
  FROM intake.submit_request(
         requester_name  => 'Alex Example',
         requester_email => 'alex@example.test',
         description     => 'Review the attached addendum.',
         request_type    => 'document_review',
         priority        => 'medium',
         team            => 'service_desk',
         customer_id     => '10000000-0000-4000-8000-000000000001',
         file_name       => 'Addendum v2.txt',
         content_type    => 'text/plain',
         content         => convert_to('Data processing addendum, version 2.', 'UTF8'));

SELECT original_file_name, stored_file_name, file_extension, declared_content_type, content_type,
       detected_content_type, size_bytes, sha256 = encode(sha256(convert_to('Data processing addendum, version 2.', 'UTF8')), 'hex') AS sha256_ok,
       bucket, object_key = format('submissions/%s/%s/Addendum_v2.txt', submission_id, id) AS key_ok,
       etag IS NOT NULL AS has_etag, status, uploaded_by
  FROM document_repo.documents;

-- The document is linked to its request in the lineage.
SELECT l.from_type, l.to_type, l.relationship
  FROM canonical.lineage_records l JOIN document_repo.documents d ON d.id = l.to_id;

-- Download: the bytes come back from the bucket and match the checksum.
SELECT convert_from(document_repo.download_document(id), 'UTF8') FROM document_repo.documents;

-- The object is there, with the same size.
SELECT l.size_bytes, l.object_key = d.object_key AS same_key
  FROM document_repo.s3_list_objects('submissions/') l JOIN document_repo.documents d ON d.object_key = l.object_key;

-- Presigned URLs point at the configured endpoint and carry a signature.
SELECT document_repo.presigned_url(id, '5 minutes') ~ ('^' || current_setting('enterprise_lab.s3_endpoint')
         || '/enterprise-documents/submissions/.*X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature=[0-9a-f]{64}$') AS looks_right
  FROM document_repo.documents;
SELECT document_repo.presigned_url(id, '8 days') FROM document_repo.documents;

-- A deleted document: its row says so; after the commit the first worker
-- deletes its object (the commit itself never waits on S3).
SELECT document_repo.delete_document(id) FROM document_repo.documents;
SELECT status FROM document_repo.documents;
DO $$
BEGIN
  FOR i IN 1 .. 100 LOOP
    EXIT WHEN NOT EXISTS (SELECT 1 FROM document_repo.s3_list_objects('submissions/') l
                            JOIN document_repo.documents d ON d.object_key = l.object_key);
    PERFORM pg_sleep(0.1);
  END LOOP;
END $$;
SELECT count(*) AS objects_left FROM document_repo.s3_list_objects('submissions/') l
  JOIN document_repo.documents d ON d.object_key = l.object_key;

-- Health, for the status view.
SELECT s3_health - 'latency_ms' - 'endpoint' FROM document_repo.s3_health();

DROP EXTENSION enterprise_lab;
