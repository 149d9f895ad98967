-- document_repo: supporting documents.  The bytes live in an S3 bucket
-- (MinIO, AWS S3, ...), reached through the extension's own libcurl client;
-- the metadata lives here, linked to the submission (the root key) and its
-- service request.  See docs/documents.md.

CREATE SCHEMA document_repo;
COMMENT ON SCHEMA document_repo IS
  'Supporting documents: validated uploads to an S3 bucket, metadata, checksummed downloads, presigned URLs, reconciliation.';

CREATE TABLE document_repo.documents (
  id                    uuid PRIMARY KEY,
  submission_id         uuid NOT NULL REFERENCES intake.submissions (submission_id),
  service_request_id    uuid NOT NULL REFERENCES source_system.service_requests (id),
  document_type         text NOT NULL DEFAULT 'supporting_document'
                        CONSTRAINT documents_document_type_valid CHECK (document_type ~ '^[a-z][a-z0-9_]{0,62}$'),
  original_file_name    text NOT NULL
                        CONSTRAINT documents_original_file_name_valid CHECK (octet_length(original_file_name) BETWEEN 1 AND 255),
  stored_file_name      text NOT NULL
                        CONSTRAINT documents_stored_file_name_safe CHECK (stored_file_name ~ '^[A-Za-z0-9][A-Za-z0-9._-]*\.[a-z]+$'),
  file_extension        text NOT NULL
                        CONSTRAINT documents_file_extension_valid CHECK (file_extension IN ('pdf', 'txt', 'csv', 'png', 'jpg', 'jpeg')),
  declared_content_type text NOT NULL,
  content_type          text NOT NULL,
  detected_content_type text NOT NULL,
  size_bytes            bigint NOT NULL CONSTRAINT documents_size_positive CHECK (size_bytes > 0),
  sha256                text NOT NULL CONSTRAINT documents_sha256_hex CHECK (sha256 ~ '^[0-9a-f]{64}$'),
  bucket                text NOT NULL,
  object_key            text NOT NULL,
  etag                  text,
  status                text NOT NULL DEFAULT 'stored'
                        CONSTRAINT documents_status_valid CHECK (status IN ('stored', 'deleted', 'missing')),
  uploaded_by           text NOT NULL,
  uploaded_at           timestamptz NOT NULL DEFAULT now(),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  -- The key contains the submission id, so adding it (Citus) changes nothing.
  CONSTRAINT documents_object_unique UNIQUE (bucket, object_key)
);
CREATE INDEX documents_submission_idx ON document_repo.documents (submission_id);
COMMENT ON TABLE document_repo.documents IS
  'One row per uploaded document: validated names and types, size, SHA-256 and where the bytes are (bucket, object_key). status: stored, deleted (by delete_document), missing (found gone by reconcile_storage).';
COMMENT ON COLUMN document_repo.documents.stored_file_name IS 'Sanitized file name used in the object key.';
COMMENT ON COLUMN document_repo.documents.content_type IS 'Canonical content type for the extension; sent to S3.';
COMMENT ON COLUMN document_repo.documents.detected_content_type IS 'What the magic bytes say the content is.';
CREATE TRIGGER documents_10_touch BEFORE UPDATE ON document_repo.documents
  FOR EACH ROW EXECUTE FUNCTION enterprise_lab.touch_updated_at();
SELECT pg_catalog.pg_extension_config_dump('document_repo.documents', '');

-- The S3 client (src/s3.c).  These act with the configured keys on any
-- object, so only superusers may call them; the document functions below
-- are the checked entry points.
CREATE FUNCTION document_repo.s3_presign(method text, object_key text, expires_seconds integer, signed_at timestamptz)
RETURNS text LANGUAGE c STABLE STRICT AS 'MODULE_PATHNAME', 'el_s3_presign';
COMMENT ON FUNCTION document_repo.s3_presign(text, text, integer, timestamptz) IS
  'Signature V4 presigned URL for an object of the configured bucket, signed at the given time (so that it can be checked against published examples).';

CREATE FUNCTION document_repo.s3_signature(
  method text, object_key text, query_names text[], query_values text[],
  header_names text[], header_values text[], payload bytea, signed_at timestamptz,
  OUT url text, OUT canonical_request text, OUT string_to_sign text,
  OUT signature text, OUT authorization_header text, OUT signed_headers text)
RETURNS record LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'el_s3_signature';
COMMENT ON FUNCTION document_repo.s3_signature(text, text, text[], text[], text[], text[], bytea, timestamptz) IS
  'The Signature V4 Authorization header the client sends for a request (object_key NULL: the bucket), with its canonical request and string to sign. Same code path as real requests; for verification.';

CREATE FUNCTION document_repo.s3_bucket()
RETURNS text LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'el_s3_configured_bucket';
COMMENT ON FUNCTION document_repo.s3_bucket() IS 'The configured bucket (enterprise_lab.s3_bucket).';

CREATE FUNCTION document_repo.s3_put_object(object_key text, content bytea, content_type text)
RETURNS text LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_put_object';
COMMENT ON FUNCTION document_repo.s3_put_object(text, bytea, text) IS
  'PUT an object; if the calling (sub)transaction aborts, the object is handed to the cleanup queue (document_repo.abandoned_objects) and deleted soon after. Returns the ETag.';

CREATE FUNCTION document_repo.s3_get_object(object_key text)
RETURNS bytea LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_get_object';
COMMENT ON FUNCTION document_repo.s3_get_object(text) IS 'GET an object''s bytes.';

CREATE FUNCTION document_repo.s3_get_verified(object_key text, sha256 text, size_bytes bigint)
RETURNS bytea LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_get_verified';
COMMENT ON FUNCTION document_repo.s3_get_verified(text, text, bigint) IS
  'GET an object and return it only if its size and SHA-256 are the recorded ones.';

CREATE FUNCTION document_repo.s3_object_exists(object_key text)
RETURNS boolean LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_object_exists';
COMMENT ON FUNCTION document_repo.s3_object_exists(text) IS 'HEAD of an object: does it exist?';

CREATE FUNCTION document_repo.s3_delete_object(object_key text)
RETURNS void LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_delete_object';
COMMENT ON FUNCTION document_repo.s3_delete_object(text) IS 'DELETE an object now (an absent object is not an error).';

CREATE FUNCTION document_repo.s3_delete_object_at_commit(object_key text)
RETURNS void LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_s3_delete_object_at_commit';
COMMENT ON FUNCTION document_repo.s3_delete_object_at_commit(text) IS
  'Hand an object to the cleanup queue once the calling transaction commits; it is deleted soon after (nothing happens if the transaction aborts).';

CREATE FUNCTION document_repo.s3_bucket_exists()
RETURNS boolean LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'el_s3_bucket_exists';
COMMENT ON FUNCTION document_repo.s3_bucket_exists() IS 'HEAD of the configured bucket.';

CREATE FUNCTION document_repo.s3_create_bucket()
RETURNS void LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'el_s3_create_bucket';
COMMENT ON FUNCTION document_repo.s3_create_bucket() IS 'CreateBucket for the configured bucket and region.';

CREATE FUNCTION document_repo.s3_list_objects_page(prefix text, continuation_token text)
RETURNS text LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'el_s3_list_objects_page';
COMMENT ON FUNCTION document_repo.s3_list_objects_page(text, text) IS
  'One ListObjectsV2 page of the configured bucket, as the XML that S3 returned.';

-- Objects left to delete (src/object_cleanup.c): uploads of aborted
-- transactions and objects of deleted documents.  Transaction callbacks
-- only record them; the first worker deletes them outside any transaction.
CREATE FUNCTION document_repo.abandoned_objects()
RETURNS TABLE (bucket text, object_key text, reason text, failed_attempts integer, next_attempt_at timestamptz)
LANGUAGE c VOLATILE AS 'MODULE_PATHNAME', 'el_abandoned_objects';
COMMENT ON FUNCTION document_repo.abandoned_objects() IS
  'S3 objects waiting to be deleted (reason aborted_upload or deleted_document), held in shared memory until the first worker deletes them; empty without shared_preload_libraries.';

CREATE FUNCTION document_repo.delete_abandoned_objects(max_objects integer DEFAULT 100)
RETURNS integer LANGUAGE c VOLATILE STRICT AS 'MODULE_PATHNAME', 'el_delete_abandoned_objects';
COMMENT ON FUNCTION document_repo.delete_abandoned_objects(integer) IS
  'Delete up to max_objects due abandoned objects now (what the first worker does on its own); returns how many were deleted.';

REVOKE ALL ON FUNCTION
  document_repo.abandoned_objects(),
  document_repo.delete_abandoned_objects(integer)
FROM PUBLIC;

CREATE FUNCTION document_repo.validate_document(
  file_name text, content_type text, content bytea,
  OUT stored_file_name text, OUT file_extension text, OUT content_type text,
  OUT detected_content_type text, OUT size_bytes bigint, OUT sha256 text)
RETURNS record LANGUAGE c STABLE AS 'MODULE_PATHNAME', 'el_validate_document';
COMMENT ON FUNCTION document_repo.validate_document(text, text, bytea) IS
  'Every check of an upload (file name, extension, content type, size, magic bytes, UTF-8 text) and the derived stored name, canonical content type and SHA-256. Raises on the first failure.';

CREATE FUNCTION document_repo.s3_list_objects(prefix text DEFAULT '')
RETURNS TABLE (object_key text, size_bytes bigint, last_modified timestamptz, etag text)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  page xml;
  token text;
  truncated text;
BEGIN
  LOOP
    page := document_repo.s3_list_objects_page(prefix, token)::xml;
    RETURN QUERY
      SELECT x.key, x.size, x.last_modified, x.etag
        FROM XMLTABLE('/*[local-name()="ListBucketResult"]/*[local-name()="Contents"]' PASSING page
               COLUMNS key text PATH '*[local-name()="Key"]',
                       size bigint PATH '*[local-name()="Size"]',
                       last_modified timestamptz PATH '*[local-name()="LastModified"]',
                       etag text PATH '*[local-name()="ETag"]') AS x;
    SELECT x.truncated, x.next INTO STRICT truncated, token
      FROM XMLTABLE('/*[local-name()="ListBucketResult"]' PASSING page
             COLUMNS truncated text PATH '*[local-name()="IsTruncated"]',
                     next text PATH '*[local-name()="NextContinuationToken"]') AS x;
    EXIT WHEN truncated IS DISTINCT FROM 'true' OR token IS NULL;
  END LOOP;
END $$;
COMMENT ON FUNCTION document_repo.s3_list_objects(text) IS
  'Every object of the configured bucket under a prefix (ListObjectsV2, all pages).';

REVOKE ALL ON FUNCTION
  document_repo.s3_presign(text, text, integer, timestamptz),
  document_repo.s3_signature(text, text, text[], text[], text[], text[], bytea, timestamptz),
  document_repo.s3_put_object(text, bytea, text),
  document_repo.s3_get_object(text),
  document_repo.s3_get_verified(text, text, bigint),
  document_repo.s3_object_exists(text),
  document_repo.s3_delete_object(text),
  document_repo.s3_delete_object_at_commit(text),
  document_repo.s3_bucket_exists(),
  document_repo.s3_create_bucket(),
  document_repo.s3_list_objects_page(text, text),
  document_repo.s3_list_objects(text)
FROM PUBLIC;

-- The checked entry points.  SECURITY DEFINER: callers need EXECUTE on
-- these (granted by the api schema to its roles), not on the S3 client.

CREATE FUNCTION document_repo.upload_document(
  submission_id uuid, file_name text, content_type text, content bytea,
  document_type text DEFAULT 'supporting_document')
RETURNS uuid
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  req source_system.service_requests;
  v record;
  doc_id uuid := gen_random_uuid();
  key text;
  tag text;
BEGIN
  IF upload_document.submission_id IS NULL THEN
    RAISE EXCEPTION 'submission_id must not be null'
      USING ERRCODE = 'not_null_violation', COLUMN = 'submission_id';
  END IF;
  SELECT r.* INTO req FROM source_system.service_requests r
   WHERE r.submission_id = upload_document.submission_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'submission % does not exist', upload_document.submission_id
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'submission_id',
            HINT = 'Attach documents to an existing submission (intake.submissions).';
  END IF;
  IF document_type IS NULL OR document_type !~ '^[a-z][a-z0-9_]{0,62}$' THEN
    RAISE EXCEPTION 'document_type "%" is not valid', document_type
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'document_type',
            HINT = 'Use lowercase letters, digits and underscores, e.g. supporting_document.';
  END IF;

  v := document_repo.validate_document(file_name, content_type, content);
  -- uploaded_by names the caller exactly as submitted_by and changed_by do.
  key := format('submissions/%s/%s/%s', upload_document.submission_id, doc_id, v.stored_file_name);
  tag := document_repo.s3_put_object(key, content,
           CASE WHEN v.content_type LIKE 'text/%' THEN v.content_type || '; charset=utf-8' ELSE v.content_type END);

  INSERT INTO document_repo.documents
         (id, submission_id, service_request_id, document_type, original_file_name,
          stored_file_name, file_extension, declared_content_type, content_type,
          detected_content_type, size_bytes, sha256, bucket, object_key, etag, uploaded_by)
  VALUES (doc_id, upload_document.submission_id, req.id, upload_document.document_type, file_name,
          v.stored_file_name, v.file_extension, upload_document.content_type, v.content_type,
          v.detected_content_type, v.size_bytes, v.sha256,
          document_repo.s3_bucket(), key, tag,
          enterprise_lab.request_subject());

  INSERT INTO canonical.lineage_records (submission_id, from_type, from_id, to_type, to_id, relationship)
  VALUES (upload_document.submission_id, 'service_request', req.id, 'document', doc_id, 'documented_by')
  ON CONFLICT DO NOTHING;
  RETURN doc_id;
END $$;
COMMENT ON FUNCTION document_repo.upload_document(uuid, text, text, bytea, text) IS
  'Validate a document (name, extension, content type, magic bytes, size), PUT it to the bucket under submissions/<submission>/<document>/<safe name> and record it. If the transaction aborts, the object is deleted soon after, by a worker.';

-- The document row a caller may read or change, with the checks every
-- entry point shares.
CREATE FUNCTION document_repo.stored_document(document_id uuid)
RETURNS document_repo.documents
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d document_repo.documents;
BEGIN
  SELECT * INTO d FROM document_repo.documents WHERE id = document_id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'document % does not exist', coalesce(document_id::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'document_id';
  ELSIF d.status <> 'stored' THEN
    RAISE EXCEPTION 'document % is %', document_id, d.status
      USING ERRCODE = 'object_not_in_prerequisite_state',
            DETAIL = CASE d.status WHEN 'missing' THEN 'Its object was found missing from the bucket by reconcile_storage().'
                                   ELSE 'It was deleted.' END;
  ELSIF d.bucket <> document_repo.s3_bucket() THEN
    RAISE EXCEPTION 'document % is stored in bucket "%", not in the configured bucket "%"',
                    document_id, d.bucket, document_repo.s3_bucket()
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'Set enterprise_lab.s3_bucket to the bucket that holds the document.';
  END IF;
  RETURN d;
END $$;
COMMENT ON FUNCTION document_repo.stored_document(uuid) IS
  'The row of a stored document of the configured bucket, or an error saying why not.';
REVOKE ALL ON FUNCTION document_repo.stored_document(uuid) FROM PUBLIC;

CREATE FUNCTION document_repo.download_document(document_id uuid)
RETURNS bytea
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d document_repo.documents := document_repo.stored_document(document_id);
BEGIN
  RETURN document_repo.s3_get_verified(d.object_key, d.sha256, d.size_bytes);
END $$;
COMMENT ON FUNCTION document_repo.download_document(uuid) IS
  'The document''s bytes, fetched from the bucket and verified against the recorded size and SHA-256.';

CREATE FUNCTION document_repo.presigned_url(document_id uuid, expires_in interval DEFAULT '15 minutes')
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d document_repo.documents := document_repo.stored_document(document_id);
  seconds numeric := extract(epoch FROM expires_in);
BEGIN
  IF seconds IS NULL OR seconds < 1 OR seconds > 604800 THEN
    RAISE EXCEPTION 'expires_in must be between 1 second and 7 days, not %', coalesce(expires_in::text, 'NULL')
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'expires_in',
            DETAIL = 'Signature Version 4 limits presigned URLs to seven days.';
  END IF;
  RETURN document_repo.s3_presign('GET', d.object_key, floor(seconds)::integer, clock_timestamp());
END $$;
COMMENT ON FUNCTION document_repo.presigned_url(uuid, interval) IS
  'A presigned GET URL for the document, valid for expires_in (at most 7 days). Anyone holding it can download the document until then.';

CREATE FUNCTION document_repo.delete_document(document_id uuid)
RETURNS void
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  d document_repo.documents := document_repo.stored_document(document_id);
BEGIN
  UPDATE document_repo.documents SET status = 'deleted' WHERE id = d.id;
  PERFORM document_repo.s3_delete_object_at_commit(d.object_key);
END $$;
COMMENT ON FUNCTION document_repo.delete_document(uuid) IS
  'Mark a document deleted; once the transaction commits, a worker deletes its object from the bucket.';

CREATE FUNCTION document_repo.ensure_bucket()
RETURNS text
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF document_repo.s3_bucket_exists() THEN
    RETURN 'exists';
  END IF;
  PERFORM document_repo.s3_create_bucket();
  RETURN 'created';
END $$;
COMMENT ON FUNCTION document_repo.ensure_bucket() IS
  'Create the configured bucket if it does not exist; returns created or exists.';

CREATE FUNCTION document_repo.reconcile_storage(grace interval DEFAULT '1 hour')
RETURNS TABLE (action text, object_key text, document_id uuid, detail text)
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  b text := document_repo.s3_bucket();
  r record;
BEGIN
  IF grace IS NULL OR grace < interval '0' THEN
    RAISE EXCEPTION 'grace must be a non-negative interval'
      USING ERRCODE = 'invalid_parameter_value', COLUMN = 'grace';
  END IF;
  FOR r IN
    WITH listing AS MATERIALIZED (
      SELECT l.object_key, l.last_modified, l.size_bytes FROM document_repo.s3_list_objects('submissions/') l)
    SELECT 'orphan' AS kind, l.object_key, NULL::uuid AS id, l.last_modified, l.size_bytes
      FROM listing l
     WHERE l.last_modified < now() - grace
       AND NOT EXISTS (SELECT 1 FROM document_repo.documents d
                        WHERE d.bucket = b AND d.object_key = l.object_key AND d.status IN ('stored', 'missing'))
    UNION ALL
    SELECT 'unlisted', d.object_key, d.id, NULL, NULL
      FROM document_repo.documents d
     WHERE d.bucket = b AND d.status = 'stored'
       AND NOT EXISTS (SELECT 1 FROM listing l WHERE l.object_key = d.object_key)
    UNION ALL
    SELECT 'returned', d.object_key, d.id, NULL, NULL
      FROM document_repo.documents d JOIN listing l ON l.object_key = d.object_key
     WHERE d.bucket = b AND d.status = 'missing'
  LOOP
    IF r.kind = 'orphan' THEN
      PERFORM document_repo.s3_delete_object(r.object_key);
      action := 'deleted_orphan'; object_key := r.object_key; document_id := NULL;
      detail := format('%s bytes, last modified %s, referenced by no stored document', r.size_bytes, r.last_modified);
      RETURN NEXT;
    -- Uploaded after the listing started?  Ask for the object itself.
    ELSIF r.kind = 'unlisted' AND NOT document_repo.s3_object_exists(r.object_key) THEN
      UPDATE document_repo.documents SET status = 'missing' WHERE id = r.id;
      action := 'marked_missing'; object_key := r.object_key; document_id := r.id;
      detail := 'object not found in the bucket';
      RETURN NEXT;
    ELSIF r.kind = 'returned' THEN
      UPDATE document_repo.documents SET status = 'stored' WHERE id = r.id;
      action := 'marked_stored'; object_key := r.object_key; document_id := r.id;
      detail := 'object present again';
      RETURN NEXT;
    END IF;
  END LOOP;
END $$;
COMMENT ON FUNCTION document_repo.reconcile_storage(interval) IS
  'Bring bucket and metadata together: delete objects under submissions/ older than grace that no stored document references (orphans of crashed or failed transactions, deleted documents), mark stored documents whose object is gone as missing (and missing ones whose object is back as stored). Returns one row per action.';

CREATE FUNCTION document_repo.s3_health()
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  started timestamptz := clock_timestamp();
  bucket_exists boolean;
  reachable boolean := true;
  err text;
  code text;
BEGIN
  BEGIN
    bucket_exists := document_repo.s3_bucket_exists();
  EXCEPTION WHEN OTHERS THEN
    GET STACKED DIAGNOSTICS err = MESSAGE_TEXT, code = RETURNED_SQLSTATE;
    -- Transport failures mean unreachable; a refusal (38000) is an answer.
    reachable := code NOT LIKE '08%' AND code <> '55000';
  END;
  RETURN jsonb_build_object(
    'endpoint', current_setting('enterprise_lab.s3_endpoint'),
    'bucket', document_repo.s3_bucket(),
    'reachable', reachable,
    'bucket_exists', bucket_exists,
    'latency_ms', round((extract(epoch FROM clock_timestamp() - started) * 1000)::numeric, 1),
    'error', err);
END $$;
COMMENT ON FUNCTION document_repo.s3_health() IS
  'Is the S3 endpoint reachable, does the bucket exist, how long did asking take (HEAD of the bucket)? Never raises for S3 failures.';

REVOKE ALL ON FUNCTION
  document_repo.upload_document(uuid, text, text, bytea, text),
  document_repo.download_document(uuid),
  document_repo.presigned_url(uuid, interval),
  document_repo.delete_document(uuid),
  document_repo.ensure_bucket(),
  document_repo.reconcile_storage(interval),
  document_repo.s3_health()
FROM PUBLIC;
