#!/usr/bin/env bash
# The api's roles are cluster-wide: installing the extension in a second
# database reuses them, and dropping it in one database leaves the roles
# and the other database working.
cd "$(dirname "$0")/../.."
source test/tap.sh

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$@" 2>&1; }
as_role() {  # as_role DB ROLE CLAIMS SQL: one PostgREST-style request
  q "$1" -c "BEGIN" -c "SET LOCAL ROLE $2" -c "SELECT set_config('request.jwt.claims', '$3', true) IS NULL" \
         -c "$4" -c "COMMIT" | sed -n 2p
}

for db in api_one api_two; do dropdb --if-exists "$db" 2>/dev/null; createdb "$db"; done

q api_one -c 'CREATE EXTENSION enterprise_lab' >/dev/null; ok $? "CREATE EXTENSION in a first database"
q api_two -c 'CREATE EXTENSION enterprise_lab' >/dev/null; ok $? "CREATE EXTENSION in a second database, where the roles exist"
is "$(as_role api_two lab_anon '{"role": "lab_anon"}' "SELECT api.health() ->> 'status'")" "ok" \
   "the second database grants the existing roles"

q api_one -c 'DROP EXTENSION enterprise_lab' >/dev/null; ok $? "DROP EXTENSION in the first database"
is "$(q api_one -c "SELECT count(*) FROM pg_roles
                            WHERE rolname IN ('lab_anon', 'lab_operator', 'lab_auditor', 'lab_admin', 'lab_authenticator')")" "5" "the roles outlive the extension"
is "$(as_role api_two lab_operator '{"role": "lab_operator", "sub": "op", "team": "security"}' \
        "SELECT (api.submissions() ->> 'total')")" "0" "the second database still serves its requests"
q api_one -c 'CREATE EXTENSION enterprise_lab' >/dev/null; ok $? "CREATE EXTENSION again after DROP"
# lab_anon's grants in the reinstalled database match those of the database
# that never dropped the extension, function by function.
anon_grants="SELECT string_agg(routine_name, ',' ORDER BY routine_name) FROM information_schema.role_routine_grants
              WHERE routine_schema = 'api' AND grantee = 'lab_anon'"
expected_grants=$(q api_two -c "$anon_grants")
ok "$([ -n "$expected_grants" ]; echo $?)" "lab_anon is granted api functions where the extension stayed"
is "$(q api_one -c "$anon_grants")" "$expected_grants" "the reinstalled api is granted to lab_anon again"

for db in api_one api_two; do dropdb "$db"; done
done_testing
