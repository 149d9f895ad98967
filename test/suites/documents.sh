#!/usr/bin/env bash
# Documents end to end against the harness's S3 (s3rver behind the proxy
# that verifies every request's Signature V4 with botocore): uploads land
# with the right bytes, downloads and presigned URLs return them, expired
# or tampered URLs and a wrong secret are refused by S3's rules, aborted
# transactions leave no object, reconcile cleans up, and an unreachable,
# hanging or cancelled S3 transfer ends with a clear error in bounded time.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/tap.sh
source scripts/cluster.sh

DB=documents_suite
BUCKET=documents-suite-$(date +%s)
export AWS_ACCESS_KEY_ID=S3RVER AWS_SECRET_ACCESS_KEY=S3RVER AWS_DEFAULT_REGION=us-east-1 AWS_PAGER= AWS_CONFIG_FILE=/dev/null
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
# Everything psql prints for a statement that must fail: message, DETAIL, HINT, SQLSTATE.
fails() { psql -X -q -A -t -v VERBOSITY=verbose -d "$DB" "$@" 2>&1; }
aws_s3() { aws --endpoint-url "$EL_S3_ENDPOINT" s3api "$@"; }
log_lines() { wc -l < "$EL_LOG"; }
# eventually SECONDS COMMAND...: poll until COMMAND succeeds (the worker
# deletes abandoned objects shortly after the transaction ends).
eventually() { local deadline=$(( $(date +%s) + $1 )); shift; until "$@"; do [ "$(date +%s)" -lt "$deadline" ] || return 1; sleep 0.2; done; }

PROXY_START=$(wc -l < "$EL_S3_PROXY_LOG")
dropdb --if-exists "$DB" 2>/dev/null
createdb "$DB"
# One bucket per database: reconcile_storage() treats every unreferenced
# object under submissions/ as an orphan.
psql -X -q -d postgres -c "ALTER DATABASE $DB SET enterprise_lab.s3_bucket = '$BUCKET'"
q -c 'CREATE EXTENSION enterprise_lab' >/dev/null

is "$(q -c 'SELECT document_repo.ensure_bucket()')" created "ensure_bucket creates a missing bucket (CreateBucket)"
is "$(q -c 'SELECT document_repo.ensure_bucket()')" exists "ensure_bucket leaves an existing one alone"

SUB=$(q -c "SELECT submission_id FROM intake.submit_request('Sam Suite', 'sam@example.test', 'Documents suite.',
              'document_review', 'medium', 'service_desk', '10000000-0000-4000-8000-000000000001')")

# --- upload: the object is in the bucket with the right bytes -----------
(printf '\x89PNG\r\n\x1a\n'; head -c 300000 /dev/urandom) > "$EL_TEST_WORK/payload.png"
chmod 644 "$EL_TEST_WORK/payload.png"
WANT_SHA=$(sha256sum "$EL_TEST_WORK/payload.png" | cut -d' ' -f1)
DOC=$(q -c "SELECT document_repo.upload_document('$SUB', 'Site Photo.PNG', 'image/png',
              pg_read_binary_file('$EL_TEST_WORK/payload.png'), 'photo')")
ok $? "upload of a 300 kB PNG"
KEY=$(q -c "SELECT object_key FROM document_repo.documents WHERE id = '$DOC'")
is "$KEY" "submissions/$SUB/$DOC/Site_Photo.png" "object key is submissions/<submission>/<document>/<safe name>"
is "$(q -c "SELECT sha256 FROM document_repo.documents WHERE id = '$DOC'")" "$WANT_SHA" "recorded SHA-256 is the content's"
aws_s3 get-object --bucket "$BUCKET" --key "$KEY" "$EL_TEST_WORK/fetched.png" > "$EL_TEST_WORK/head.json" 2>&1
ok $? "the object is in the bucket (read back with the AWS CLI)"
is "$(sha256sum "$EL_TEST_WORK/fetched.png" | cut -d' ' -f1)" "$WANT_SHA" "its bytes are the uploaded ones"
is "$(jq -r .ContentType "$EL_TEST_WORK/head.json")" image/png "it is stored with the canonical content type"
is "$(q -c "SELECT etag = '$(jq -r .ETag "$EL_TEST_WORK/head.json" | sed "s/'/''/g")' FROM document_repo.documents WHERE id = '$DOC'")" t \
   "the recorded ETag is the bucket's"

# --- download -------------------------------------------------------------
is "$(q -c "SELECT encode(sha256(document_repo.download_document('$DOC')), 'hex')")" "$WANT_SHA" \
   "download_document returns the same bytes"

# --- presigned URLs -------------------------------------------------------
URL=$(q -c "SELECT document_repo.presigned_url('$DOC', '2 minutes')")
curl -s -f -g --max-time 10 -o "$EL_TEST_WORK/presigned.png" "$URL"
ok $? "the presigned URL works with plain curl"
is "$(sha256sum "$EL_TEST_WORK/presigned.png" | cut -d' ' -f1)" "$WANT_SHA" "and returns the document's bytes"
SHORT=$(q -c "SELECT document_repo.presigned_url('$DOC', '1 second')")
sleep 2.2
STATUS=$(curl -s -g --max-time 10 -o "$EL_TEST_WORK/expired.xml" -w '%{http_code}' "$SHORT")
is "$STATUS" 403 "an expired presigned URL is refused (403)"
grep -q '<Code>AccessDenied</Code><Message>Request has expired</Message>' "$EL_TEST_WORK/expired.xml"
ok $? "with S3's error: AccessDenied, Request has expired"
TAMPERED=${URL/Site_Photo.png/Site_Photo.pdf}
STATUS=$(curl -s -g --max-time 10 -o "$EL_TEST_WORK/tampered.xml" -w '%{http_code}' "$TAMPERED")
is "$STATUS" 403 "a presigned URL for another key is refused (403)"
grep -q '<Code>SignatureDoesNotMatch</Code>' "$EL_TEST_WORK/tampered.xml"
ok $? "with S3's error: SignatureDoesNotMatch"

# --- a wrong secret -------------------------------------------------------
SECRET='Wr0ng-S3cret-value-4711'
printf '%s\n' "$SECRET" > "$EL_TEST_WORK/wrong_secret"
chmod 600 "$EL_TEST_WORK/wrong_secret"; chown postgres "$EL_TEST_WORK/wrong_secret"
before=$(log_lines)
OUT=$(fails <<SQL
SET enterprise_lab.s3_secret_key = '@$EL_TEST_WORK/wrong_secret';
SELECT document_repo.upload_document('$SUB', 'wrong.txt', 'text/plain', convert_to('secret test', 'UTF8'));
SQL
)
echo "$OUT" | grep -q 'ERROR:  38000: S3 refused PUT of object "submissions/.*/wrong.txt": SignatureDoesNotMatch'
ok $? "a wrong secret is refused: SQLSTATE 38000 naming S3's error code"
echo "$OUT" | grep -q 'DETAIL:  HTTP status 403, message: The request signature we calculated does not match'
ok $? "DETAIL carries S3's status and message"
echo "$OUT" | grep -q 'HINT:  Check enterprise_lab.s3_access_key and enterprise_lab.s3_secret_key'
ok $? "HINT says which settings to check"
! echo "$OUT" | grep -q "$SECRET"
ok $? "the secret is not in the error"
! tail -n +"$before" "$EL_LOG" | grep -q "$SECRET"
ok $? "nor in the server log"
is "$(q -c "SELECT count(*) FROM document_repo.documents WHERE original_file_name = 'wrong.txt'")" 0 "no row for the refused upload"
is "$(q -c "SELECT count(*) FROM pg_settings WHERE name = 'enterprise_lab.s3_secret_key'")" 0 "the secret is not listed in pg_settings"

# --- atomicity: an aborted transaction leaves no object -----------------
before=$(log_lines)
q <<SQL >/dev/null 2>&1
BEGIN;
CREATE TEMP TABLE rolled_back AS
  SELECT document_repo.upload_document('$SUB', 'rolled back.txt', 'text/plain', convert_to('gone', 'UTF8')) AS id;
\copy rolled_back TO '$EL_TEST_WORK/rolled_back.id'
ROLLBACK;
SQL
RB=$(cat "$EL_TEST_WORK/rolled_back.id")
gone() { [ "$(q -c "SELECT document_repo.s3_object_exists('$1')")" = f ]; }
eventually 20 gone "submissions/$SUB/$RB/rolled_back.txt"
ok $? "ROLLBACK after an upload: the object is deleted again (by the worker, soon after)"
tail -n +"$before" "$EL_LOG" | grep -q "deleted S3 object \"submissions/$SUB/$RB/rolled_back.txt\" in bucket \"$BUCKET\" uploaded by an aborted transaction"
ok $? "and the server log says so"

fails <<SQL > "$EL_TEST_WORK/failed_after.out"
BEGIN;
SELECT document_repo.upload_document('$SUB', 'then-error.txt', 'text/plain', convert_to('gone too', 'UTF8'));
SELECT 1 / 0;
COMMIT;
SQL
none_like() { [ "$(q -c "SELECT count(*) FROM document_repo.s3_list_objects('submissions/$SUB/') WHERE object_key ~ '$1'")" = 0 ]; }
eventually 20 none_like '/then-error\.txt$'
ok $? "an error later in the transaction: the object is deleted"

q <<SQL > /dev/null
BEGIN;
SAVEPOINT a;
SELECT document_repo.upload_document('$SUB', 'savepoint.txt', 'text/plain', convert_to('undone', 'UTF8'));
ROLLBACK TO SAVEPOINT a;
SELECT document_repo.upload_document('$SUB', 'kept.txt', 'text/plain', convert_to('kept', 'UTF8'));
COMMIT;
SQL
eventually 20 none_like '/savepoint\.txt$'
is "$(q -c "SELECT string_agg(split_part(object_key, '/', 4), ',' ORDER BY object_key) FROM document_repo.s3_list_objects('submissions/$SUB/')
            WHERE object_key ~ '/(savepoint|kept)\.txt$'")" kept.txt \
   "ROLLBACK TO SAVEPOINT deletes that subtransaction's object, keeps the rest"
is "$(q -c "SELECT count(*) FROM document_repo.documents WHERE original_file_name IN ('rolled back.txt', 'then-error.txt', 'savepoint.txt')")" 0 \
   "and none of them has a row"

# --- reconcile ---------------------------------------------------------
ORPHAN="submissions/00000000-0000-4000-8000-00000000beef/orphan/left-behind.txt"
printf 'orphan' > "$EL_TEST_WORK/orphan.txt"
aws_s3 put-object --bucket "$BUCKET" --key "$ORPHAN" --body "$EL_TEST_WORK/orphan.txt" >/dev/null
ok $? "plant an orphan object with the AWS CLI"
is "$(q -c "SELECT count(*) FROM document_repo.reconcile_storage('1 hour')")" 0 \
   "reconcile within the grace period leaves a new orphan alone (it may be an upload in flight)"
sleep 1.1
KEPT=$(q -c "SELECT object_key FROM document_repo.documents WHERE original_file_name = 'kept.txt'")
aws_s3 delete-object --bucket "$BUCKET" --key "$KEPT" >/dev/null
ok $? "delete a stored document's object behind the extension's back"
q -c "SELECT action, object_key, coalesce(document_id::text, '-') FROM document_repo.reconcile_storage('0 seconds') ORDER BY 1, 2" \
  > "$EL_TEST_WORK/reconcile.out"
grep -qx "deleted_orphan|$ORPHAN|-" "$EL_TEST_WORK/reconcile.out"
ok $? "reconcile deletes the orphan and says so"
grep -q "^marked_missing|$KEPT|" "$EL_TEST_WORK/reconcile.out"
ok $? "reconcile marks the document whose object is gone as missing"
is "$(wc -l < "$EL_TEST_WORK/reconcile.out")" 2 "and does nothing else"
is "$(q -c "SELECT document_repo.s3_object_exists('$ORPHAN')")" f "the orphan is gone"
is "$(q -c "SELECT status FROM document_repo.documents WHERE object_key = '$KEPT'")" missing "the row says missing"
OUT=$(fails -c "SELECT document_repo.download_document((SELECT id FROM document_repo.documents WHERE object_key = '$KEPT'))")
echo "$OUT" | grep -q 'ERROR:  55000: document .* is missing'
ok $? "downloading a missing document is refused (55000)"
is "$(q -c "SELECT count(*) FROM document_repo.reconcile_storage('0 seconds')")" 0 "a second reconcile finds nothing to do"

# --- S3 unreachable, hanging, cancelled ---------------------------------
CLOSED=$(el_free_port)
OUT=$(fails <<SQL
SET enterprise_lab.s3_endpoint = 'http://127.0.0.1:$CLOSED';
SELECT document_repo.upload_document('$SUB', 'nowhere.txt', 'text/plain', convert_to('x', 'UTF8'));
SQL
)
echo "$OUT" | grep -q "ERROR:  08001: could not connect to the S3 endpoint http://127.0.0.1:$CLOSED"
ok $? "S3 unreachable: 08001, could not connect, naming the endpoint"
echo "$OUT" | grep -q 'HINT:  Check that the S3 server is running'
ok $? "with a hint"
HEALTH=$(q <<SQL
SET enterprise_lab.s3_endpoint = 'http://127.0.0.1:$CLOSED';
SELECT jsonb_build_object('reachable', h->'reachable', 'error', h->>'error' LIKE 'could not connect%') FROM document_repo.s3_health() h;
SQL
)
is "$HEALTH" '{"error": true, "reachable": false}' "s3_health reports an unreachable endpoint without raising"
is "$(q -c "SELECT document_repo.s3_health() @> '{\"reachable\": true, \"bucket_exists\": true, \"error\": null}'")" t \
   "s3_health of the working endpoint"

STALL=$(el_free_port)
/usr/bin/python3 test/s3/stalling_server.py --listen "127.0.0.1:$STALL" --log "$EL_TEST_WORK/stall.log" &
echo $! > "$EL_TEST_WORK/stall.pid"
el_wait_port() { for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
el_wait_port "$STALL"
START=$(date +%s%N)
OUT=$(fails <<SQL
SET enterprise_lab.s3_endpoint = 'http://127.0.0.1:$STALL';
SET enterprise_lab.s3_timeout = '1s';
SELECT document_repo.upload_document('$SUB', 'slow.txt', 'text/plain', convert_to('x', 'UTF8'));
SQL
)
MS=$(( ($(date +%s%N) - START) / 1000000 ))
echo "$OUT" | grep -q 'ERROR:  08006: S3 PUT of object ".*/slow.txt" timed out'
ok $? "S3 not answering: 08006, timed out"
echo "$OUT" | grep -q 'HINT:  The limits are enterprise_lab.s3_connect_timeout (5000 ms) and enterprise_lab.s3_timeout (1000 ms).'
ok $? "the hint names the limits"
[ "$MS" -lt 8000 ]
ok $? "within the limit ($MS ms for a 1 s timeout and the cleanup)"

: > "$EL_TEST_WORK/stall.log"
START=$(date +%s%N)
(q <<SQL > "$EL_TEST_WORK/cancel.out" 2>&1
SET application_name = 'documents_cancel';
SET enterprise_lab.s3_endpoint = 'http://127.0.0.1:$STALL';
SET enterprise_lab.s3_timeout = '5min';
SELECT document_repo.upload_document('$SUB', 'cancelled.txt', 'text/plain', convert_to('x', 'UTF8'));
SQL
) &
CANCEL_PID=$!
wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'documents_cancel' AND query LIKE '%upload_document%')" "$DB"
for _ in $(seq 50); do grep -q '^PUT ' "$EL_TEST_WORK/stall.log" && break; sleep 0.1; done
q -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE application_name = 'documents_cancel'" >/dev/null
wait "$CANCEL_PID"
MS=$(( ($(date +%s%N) - START) / 1000000 ))
grep -q 'canceling statement due to user request' "$EL_TEST_WORK/cancel.out"
ok $? "pg_cancel_backend stops a hanging upload"
[ "$MS" -lt 10000 ]
ok $? "promptly ($MS ms in all, for a 5 min timeout)"
eventually 20 grep -q "^DELETE /$BUCKET/submissions/.*/cancelled.txt" "$EL_TEST_WORK/stall.log"
ok $? "and the cancelled upload's object is deleted (it may have reached S3)"

(q <<SQL > "$EL_TEST_WORK/terminate.out" 2>&1
SET application_name = 'documents_terminate';
SET enterprise_lab.s3_endpoint = 'http://127.0.0.1:$STALL';
SET enterprise_lab.s3_timeout = '5min';
SELECT document_repo.download_document('$DOC');
SQL
) &
TERM_PID=$!
START=$(date +%s%N)
wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'documents_terminate' AND query LIKE '%download_document%')" "$DB"
sleep 0.5
q -c "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'documents_terminate'" >/dev/null
wait "$TERM_PID"
MS=$(( ($(date +%s%N) - START) / 1000000 ))
grep -q 'terminating connection due to administrator command' "$EL_TEST_WORK/terminate.out"
ok $? "pg_terminate_backend stops a hanging download ($MS ms)"
kill "$(cat "$EL_TEST_WORK/stall.pid")" 2>/dev/null

# --- intake with a document -------------------------------------------
ROW=$(q -c "SELECT request_number IS NOT NULL, document_id IS NOT NULL FROM intake.submit_request(
              'Ida Intake', 'ida@example.test', 'With attachment.', 'document_review', 'low', 'service_desk',
              '10000000-0000-4000-8000-000000000001', NULL, 'api', 'terms.csv', 'text/csv', convert_to(E'a,b\n1,2\n', 'UTF8'))")
is "$ROW" "t|t" "intake.submit_request with a document returns its id"
is "$(q -c "SELECT convert_from(document_repo.download_document(d.id), 'UTF8') = E'a,b\n1,2\n' FROM document_repo.documents d
            JOIN intake.submissions s ON s.submission_id = d.submission_id WHERE s.requester_name = 'Ida Intake'")" t \
   "and the document is downloadable"

# --- every request above went through the verifying proxy ---------------
tail -n +"$((PROXY_START + 1))" "$EL_S3_PROXY_LOG" > "$EL_TEST_WORK/proxy-documents.log"
VERIFIED=$(grep -c '^verified' "$EL_TEST_WORK/proxy-documents.log")
is "$(grep '^refused' "$EL_TEST_WORK/proxy-documents.log" | cut -d' ' -f2 | sort | uniq -c | awk '{print $2 "=" $1}' | paste -sd' ')" \
   "AccessDenied=1 SignatureDoesNotMatch=2" \
   "the proxy refused exactly the expired URL, the tampered URL and the wrong secret's PUT (the worker deletes with the server's key)"
[ "$VERIFIED" -gt 25 ]
ok $? "and verified every other request with botocore ($VERIFIED)"

dropdb "$DB"
done_testing
