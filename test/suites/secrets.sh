#!/usr/bin/env bash
# Secrets stay secret: enterprise_lab.s3_secret_key and
# enterprise_lab.jwt_secret name files ("@/path") that only the server's
# user reads.  No role but a superuser reads either secret, with the library
# preloaded (the harness's cluster) or not (a second cluster started here
# without shared_preload_libraries, where the settings stay placeholders
# every role may SHOW); the features work with the files, a rotated file is
# picked up without a reload, and a secret set inline, or in a file others
# may read, is refused with a clear error and never used or logged.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/tap.sh
source scripts/cluster.sh

DB=secrets_suite
READER=secrets_reader
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
# Everything a role sees for a statement, errors included.
as_role() { local role=$1; shift; psql -X -q -A -t -U "$role" -d "$DB" "$@" 2>&1; }
log_lines() { wc -l < "$EL_LOG"; }
secret_file() {  # secret_file PATH VALUE [MODE]: a file the server's user owns
  printf '%s\n' "$2" > "$1"; chmod "${3:-600}" "$1"; chown postgres "$1"
}
token() {  # token SECRET: an HS256 JWT for lab_operator, valid for 5 minutes
  python3 - "$1" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"role": "lab_operator", "sub": "secrets.suite", "exp": int(time.time()) + 300}).encode())
sig = b64(hmac.new(sys.argv[1].encode(), (head + "." + body).encode(), hashlib.sha256).digest())
print(head + "." + body + "." + sig)
PY
}
rpc_status() {  # rpc_status TOKEN: HTTP status of POST /rpc/reference_data with it
  curl -s -o /dev/null -w '%{http_code}' --max-time 10 -X POST "$EL_HTTP_URL/rpc/reference_data" \
    -H 'Content-Type: application/json' -H "Authorization: Bearer $1" -d '{}'
}
# Every way a role might read a setting, in one psql run.
read_attempts() {  # read_attempts ROLE
  as_role "$1" <<'SQL'
SHOW enterprise_lab.s3_secret_key;
SHOW enterprise_lab.jwt_secret;
SELECT current_setting('enterprise_lab.s3_secret_key', true), current_setting('enterprise_lab.jwt_secret', true);
SELECT name, setting FROM pg_settings WHERE name LIKE 'enterprise_lab.%';
SHOW ALL;
SELECT setconfig FROM pg_db_role_setting;
SQL
}

dropdb --if-exists "$DB" 2>/dev/null
createdb "$DB"
q -c 'CREATE EXTENSION enterprise_lab' >/dev/null
psql -X -q -d lab -c 'CREATE EXTENSION IF NOT EXISTS enterprise_lab' >/dev/null
psql -X -q -d postgres -c "SET client_min_messages = warning; DROP ROLE IF EXISTS $READER; CREATE ROLE $READER LOGIN;
  DROP ROLE IF EXISTS secrets_settings_reader; CREATE ROLE secrets_settings_reader LOGIN IN ROLE pg_read_all_settings" >/dev/null
JWT_FILE=${EL_JWT_SECRET_FILE:?the gateway service sets it}
S3_FILE=${EL_S3_SECRET_FILE:?the S3 service sets it}

# --- preloaded: the settings are the library's -------------------------
OUT=$(read_attempts "$READER")
! grep -qF "$EL_JWT_SECRET" <<<"$OUT"
ok $? "preloaded: a plain role reads no JWT secret (SHOW, current_setting, pg_settings, SHOW ALL, pg_db_role_setting)"
grep -q 'permission denied to examine "enterprise_lab.jwt_secret"\|must be superuser or have privileges of pg_read_all_settings to examine "enterprise_lab.jwt_secret"' <<<"$OUT"
ok $? "preloaded: SHOW enterprise_lab.jwt_secret is refused to it"
OUT=$(read_attempts secrets_settings_reader)
! grep -qF "$EL_JWT_SECRET" <<<"$OUT"
ok $? "preloaded: a member of pg_read_all_settings reads no secret either"
is "$(as_role secrets_settings_reader -c 'SHOW enterprise_lab.jwt_secret')" "@$JWT_FILE" "preloaded: it sees the file's name"
is "$(as_role secrets_settings_reader -c 'SHOW enterprise_lab.s3_secret_key')" "@$S3_FILE" "preloaded: for the S3 key too"
OUT=$(as_role "$READER" -c "SELECT pg_read_file('$JWT_FILE')")
grep -q 'permission denied for function pg_read_file' <<<"$OUT"
ok $? "a plain role cannot read the file through the server"
is "$(stat -c '%U %a' "$JWT_FILE")" "postgres 600" "the harness's secret file belongs to the server's user, mode 600"

# --- the features work with the files ----------------------------------
is "$(rpc_status "$(token "$EL_JWT_SECRET")")" 200 "the gateway accepts a token signed with the file's secret"
is "$(rpc_status "$(token "another-secret-of-more-than-32-characters")")" 401 "and refuses one signed with another"
is "$(q -c "SELECT document_repo.ensure_bucket() IN ('created', 'exists')" 2>&1)" t "S3 signs with the file's key (the verifying proxy accepts it)"

# A rotated file is read again without a reload.
ROTATED=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
secret_file "$JWT_FILE" "$ROTATED"
is "$(rpc_status "$(token "$ROTATED")")" 200 "after rotating the file, the new secret is accepted at once"
is "$(rpc_status "$(token "$EL_JWT_SECRET")")" 401 "and the old one refused"
secret_file "$JWT_FILE" "$EL_JWT_SECRET"
is "$(rpc_status "$(token "$EL_JWT_SECRET")")" 200 "the original secret works again"

# --- refused: inline, or in a file others may read ----------------------
INLINE="inline-jwt-secret-$(date +%s%N)"
before=$(log_lines)
psql -X -q -d postgres -c "ALTER SYSTEM SET enterprise_lab.jwt_secret = '$INLINE'" -c 'SELECT pg_reload_conf()' >/dev/null
sleep 1
is "$(rpc_status "$(token "$INLINE")")" 500 "an inline JWT secret is not used: a token signed with it gets 500"
wait_log() { for _ in $(seq 50); do tail -n +"$before" "$EL_LOG" | grep -q "$1" && return 0; sleep 0.1; done; return 1; }
wait_log 'enterprise_lab.jwt_secret must name a file that holds the secret, not the secret itself'
ok $? "the server log says why"
# PostgreSQL itself logs a reloaded setting's new value ("parameter ...
# changed to ..."): one more reason a setting must not hold a secret.
! tail -n +"$before" "$EL_LOG" | grep -F "$INLINE" | grep -qv 'LOG:  parameter "enterprise_lab.jwt_secret" changed to'
ok $? "no message of the extension contains the inline secret (only PostgreSQL's own reload line does)"
psql -X -q -d postgres -c 'ALTER SYSTEM RESET enterprise_lab.jwt_secret' -c 'SELECT pg_reload_conf()' >/dev/null
sleep 1
is "$(rpc_status "$(token "$EL_JWT_SECRET")")" 200 "back to the file: tokens work again"

INLINE="inline-s3-secret-$(date +%s%N)"
psql -X -q -d postgres -c "ALTER DATABASE $DB SET enterprise_lab.s3_secret_key = '$INLINE'" >/dev/null
as_role "$READER" -c 'SELECT setconfig FROM pg_db_role_setting' | grep -qF "$INLINE"
ok $? "a secret set with ALTER DATABASE is readable by every role (pg_db_role_setting): the reason it is refused"
OUT=$(psql -X -q -A -t -v VERBOSITY=verbose -d "$DB" -c 'SELECT document_repo.ensure_bucket()' 2>&1)
grep -q 'ERROR:  55000: enterprise_lab.s3_secret_key must name a file that holds the secret, not the secret itself' <<<"$OUT"
ok $? "S3 refuses a key set with ALTER DATABASE: SQLSTATE 55000"
grep -q "HINT:  Write the secret to a file only the database server's user can read" <<<"$OUT"
ok $? "with a HINT that says what to do"
! grep -qF "$INLINE" <<<"$OUT"
ok $? "the error does not contain the secret"
psql -X -q -d postgres -c "ALTER DATABASE $DB RESET enterprise_lab.s3_secret_key" >/dev/null

secret_file "$EL_TEST_WORK/readable_secret" "$EL_S3_SECRET_KEY" 644
OUT=$(psql -X -q -A -t -v VERBOSITY=verbose -d "$DB" -c "SET enterprise_lab.s3_secret_key = '@$EL_TEST_WORK/readable_secret'" \
        -c 'SELECT document_repo.ensure_bucket()' 2>&1)
grep -q 'ERROR:  F0000: the secret file ".*readable_secret" named by enterprise_lab.s3_secret_key may be read by other users' <<<"$OUT"
ok $? "a secret file others may read is refused (F0000)"
OUT=$(psql -X -q -A -t -d "$DB" -c "SET enterprise_lab.s3_secret_key = '@$EL_TEST_WORK/no_such_file'" \
        -c 'SELECT document_repo.ensure_bucket()' 2>&1)
grep -q 'could not open the secret file ".*no_such_file" named by enterprise_lab.s3_secret_key: No such file or directory' <<<"$OUT"
ok $? "a missing file is named in the error"

# --- not preloaded: the settings are placeholders in a fresh session ----
MAIN_PGHOST=$PGHOST MAIN_PGPORT=$PGPORT MAIN_EL_DATA=$EL_DATA MAIN_EL_LOG=$EL_LOG
PLAIN=$EL_TEST_WORK/plain
BUCKET=secrets-plain-$(date +%s)
el_setup_cluster "$PLAIN" "shared_preload_libraries = ''" \
  "enterprise_lab.s3_endpoint = '$EL_S3_ENDPOINT'" "enterprise_lab.s3_bucket = '$BUCKET'" \
  "enterprise_lab.s3_access_key = '$EL_S3_ACCESS_KEY'" "enterprise_lab.s3_secret_key = '@$S3_FILE'" \
  "enterprise_lab.s3_path_style = on" "enterprise_lab.jwt_secret = '@$JWT_FILE'" >/dev/null
ok $? "a second cluster starts without shared_preload_libraries"
createdb "$DB"
q -c 'CREATE EXTENSION enterprise_lab' >/dev/null
psql -X -q -d postgres -c "CREATE ROLE $READER LOGIN" >/dev/null
is "$(q -c "SELECT count(*) FROM pg_settings WHERE name = 'shared_preload_libraries' AND setting = ''")" 1 "not preloaded"
OUT=$(read_attempts "$READER")
! grep -qF "$EL_JWT_SECRET" <<<"$OUT"
ok $? "not preloaded: a plain role reads no JWT secret in a session that has not loaded the library"
is "$(as_role "$READER" -c 'SHOW enterprise_lab.jwt_secret')" "@$JWT_FILE" "not preloaded: SHOW gives the placeholder, which is the file's name"
is "$(as_role "$READER" -c "SELECT current_setting('enterprise_lab.s3_secret_key')")" "@$S3_FILE" "not preloaded: the same for the S3 key"
is "$(q -c 'SELECT document_repo.ensure_bucket()' 2>&1)" created "not preloaded: S3 works with the key from the file (CreateBucket)"
SUB=$(q -c "SELECT submission_id FROM intake.submit_request('Sue Secret', 'sue@example.test', 'Secrets suite.',
              'document_review', 'low', 'service_desk', '10000000-0000-4000-8000-000000000001')")
DOC=$(q -c "SELECT document_repo.upload_document('$SUB', 'note.txt', 'text/plain', convert_to('kept secret', 'UTF8'))" 2>&1)
is "$(q -c "SELECT convert_from(document_repo.download_document('$DOC'), 'UTF8')" 2>&1)" "kept secret" \
  "not preloaded: an upload and its checked download work"
el_stop_cluster fast
PGHOST=$MAIN_PGHOST PGPORT=$MAIN_PGPORT EL_DATA=$MAIN_EL_DATA EL_LOG=$MAIN_EL_LOG
export PGHOST PGPORT EL_DATA EL_LOG

dropdb --if-exists "$DB" 2>/dev/null
psql -X -q -d postgres -c "DROP ROLE IF EXISTS $READER; DROP ROLE IF EXISTS secrets_settings_reader" >/dev/null
done_testing
