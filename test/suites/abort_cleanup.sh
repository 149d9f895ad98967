#!/usr/bin/env bash
# COMMIT and ROLLBACK never wait on S3: a transaction uploads documents, S3
# then stalls (a proxy that holds every request), and ROLLBACK still
# returns at once; the objects are handed to the cleanup queue, and the
# first worker deletes them once S3 answers again.  Committed deletions of
# documents take the same path.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/tap.sh
source scripts/cluster.sh

DB=abort_cleanup_suite
BUCKET=abort-cleanup-$(date +%s)
N=5
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
objects() { q -c "SELECT count(*) FROM document_repo.s3_list_objects('submissions/$SUB/')"; }
queued() { q -c "SELECT count(*) FROM document_repo.abandoned_objects() WHERE bucket = '$BUCKET'"; }
# A retry may be due a few seconds after S3 came back (backoff).
wait_until_clean() {
  local deadline=$(( $(date +%s) + 40 ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    [ "$(objects)" = 0 ] && [ "$(queued)" = 0 ] && return 0
    sleep 0.5
  done
}
el_wait_port() { for _ in $(seq 50); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }

dropdb --if-exists "$DB" 2>/dev/null
createdb "$DB"
psql -X -q -d postgres -c "ALTER DATABASE $DB SET enterprise_lab.s3_bucket = '$BUCKET'"
q -c 'CREATE EXTENSION enterprise_lab' >/dev/null
q -c 'SELECT document_repo.ensure_bucket()' >/dev/null
SUB=$(q -c "SELECT submission_id FROM intake.submit_request('Abe Abort', 'abe@example.test', 'Abort cleanup suite.',
              'document_review', 'medium', 'service_desk', '10000000-0000-4000-8000-000000000001')")

# A long nap: a retry that comes due must wake the worker by itself.
psql -X -q -d postgres -c "ALTER SYSTEM SET enterprise_lab.naptime = '60s'" -c "SELECT pg_reload_conf()" >/dev/null

PROXY=$(el_free_port)
/usr/bin/python3 test/s3/switchable_proxy.py --listen "127.0.0.1:$PROXY" --backend "${EL_S3_ENDPOINT#http://}" &
PROXY_PID=$!
echo "$PROXY_PID" > "$EL_TEST_WORK/switchable_proxy.pid"
el_wait_port "$PROXY"
ok $? "a switchable proxy stands in front of S3"

# --- ROLLBACK with S3 stalled ---------------------------------------------
# Each upload goes through the proxy; then the proxy stalls, and only then
# does the transaction roll back.  Before, the rollback sent one DELETE per
# object and waited up to enterprise_lab.s3_timeout (2 s here) for each.
before=$(wc -l < "$EL_LOG")
q > "$EL_TEST_WORK/abort.out" 2>&1 <<SQL
SET enterprise_lab.s3_endpoint = 'http://127.0.0.1:$PROXY';
SET enterprise_lab.s3_timeout = '2s';
BEGIN;
SELECT count(document_repo.upload_document('$SUB', 'rolled back ' || i || '.txt', 'text/plain', convert_to('gone ' || i, 'UTF8')))
  FROM generate_series(1, $N) i;
\! kill -USR1 $PROXY_PID; date +%s%N > $EL_TEST_WORK/rollback.start
ROLLBACK;
\! date +%s%N > $EL_TEST_WORK/rollback.end
SQL
ok $? "$N uploads in a transaction, then S3 stalls and the transaction rolls back"
MS=$(( ($(cat "$EL_TEST_WORK/rollback.end") - $(cat "$EL_TEST_WORK/rollback.start")) / 1000000 ))
echo "# ROLLBACK of $N uploads with S3 stalled: $MS ms"
[ "$MS" -lt 500 ]
ok $? "ROLLBACK returns at once ($MS ms for $N objects, S3 stalled, 2 s timeout)"
is "$(objects)" "$N" "the objects are still in the bucket right after the rollback"
is "$(q -c "SELECT count(*) FROM document_repo.abandoned_objects() WHERE bucket = '$BUCKET' AND reason = 'aborted_upload'
            AND object_key LIKE 'submissions/$SUB/%'")" "$N" \
   "and all $N are listed by document_repo.abandoned_objects() (waiting, or being deleted)"
is "$(q -c "SELECT count(*) FROM document_repo.documents WHERE submission_id = '$SUB'")" 0 "no document row was kept"

# S3 comes back: the first worker deletes them (after its failed attempts'
# backoff, not after its 60 s nap), without anyone calling anything.
sleep 6
kill -USR2 "$PROXY_PID"
wait_until_clean
is "$(objects)" 0 "once S3 answers again, the worker deletes every object of the rolled-back transaction"
is "$(queued)" 0 "and the queue is empty"
is "$(tail -n +"$before" "$EL_LOG" | grep -c "deleted S3 object \"submissions/$SUB/.*\" in bucket \"$BUCKET\" uploaded by an aborted transaction")" "$N" \
   "the server log names each deleted object"
tail -n +"$before" "$EL_LOG" | grep -q "could not delete S3 object \"submissions/$SUB/.*will retry"
ok $? "and the attempts that met the stalled S3, which were retried"

# --- COMMIT of a document deletion with S3 stalled -------------------------
DOC=$(q -c "SELECT document_repo.upload_document('$SUB', 'kept.txt', 'text/plain', convert_to('kept', 'UTF8'))")
is "$(objects)" 1 "a stored document"
kill -USR1 "$PROXY_PID"
START=$(date +%s%N)
q -c "SET enterprise_lab.s3_endpoint = 'http://127.0.0.1:$PROXY'; SELECT document_repo.delete_document('$DOC')" >/dev/null
ok $? "delete_document commits while S3 is stalled"
MS=$(( ($(date +%s%N) - START) / 1000000 ))
[ "$MS" -lt 1000 ]
ok $? "without waiting for S3 ($MS ms for the whole psql call)"
is "$(q -c "SELECT status FROM document_repo.documents WHERE id = '$DOC'")" deleted "the row says deleted"
kill -USR2 "$PROXY_PID"
wait_until_clean
is "$(objects)" 0 "and the worker deletes its object once S3 answers"

# --- the SQL entry point ---------------------------------------------------
is "$(q -c 'SELECT document_repo.delete_abandoned_objects()')" 0 "delete_abandoned_objects() with nothing to do"
OUT=$(psql -X -q -A -t -v VERBOSITY=verbose -d "$DB" -c 'SELECT document_repo.delete_abandoned_objects(0)' 2>&1)
echo "$OUT" | grep -q 'ERROR:  22023: max_objects must be at least 1'
ok $? "max_objects below 1 is refused (22023)"
createuser abort_cleanup_nobody 2>/dev/null
OUT=$(psql -X -q -A -t -U abort_cleanup_nobody -d "$DB" -c 'SELECT * FROM document_repo.abandoned_objects()' 2>&1)
echo "$OUT" | grep -q 'permission denied'
ok $? "only superusers see the queue"
dropuser abort_cleanup_nobody

kill "$PROXY_PID" 2>/dev/null
psql -X -q -d postgres -c "ALTER SYSTEM RESET enterprise_lab.naptime" -c "SELECT pg_reload_conf()" >/dev/null
dropdb "$DB"
done_testing
