-- enterprise_lab 0.2.0 -> 0.3.0.
--
-- Every change to src/sql/ after 0.2.0 must be repeated here: the upgrade
-- suite (test/suites/upgrade) compares an upgraded database with a fresh
-- install of the newest version, object by object.

\echo Use "ALTER EXTENSION enterprise_lab UPDATE TO '0.3.0'" to load this file. \quit

-- COMMIT and ROLLBACK never wait on S3: transaction callbacks hand objects
-- to a cleanup queue that the first worker drains (src/object_cleanup.c).
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

COMMENT ON FUNCTION document_repo.s3_put_object(text, bytea, text) IS
  'PUT an object; if the calling (sub)transaction aborts, the object is handed to the cleanup queue (document_repo.abandoned_objects) and deleted soon after. Returns the ETag.';
COMMENT ON FUNCTION document_repo.s3_delete_object_at_commit(text) IS
  'Hand an object to the cleanup queue once the calling transaction commits; it is deleted soon after (nothing happens if the transaction aborts).';
COMMENT ON FUNCTION document_repo.upload_document(uuid, text, text, bytea, text) IS
  'Validate a document (name, extension, content type, magic bytes, size), PUT it to the bucket under submissions/<submission>/<document>/<safe name> and record it. If the transaction aborts, the object is deleted soon after, by a worker.';
COMMENT ON FUNCTION document_repo.delete_document(uuid) IS
  'Mark a document deleted; once the transaction commits, a worker deletes its object from the bucket.';
