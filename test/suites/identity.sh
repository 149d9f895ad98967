#!/usr/bin/env bash
# Claims are believed only from the authenticator: roles that really log in
# (over TCP, as psql users do) and set request.jwt.claims themselves to
# forge a subject and teams read and change nothing of another team, and
# are recorded under their own names.  Their teams come from
# operational.role_teams.  (test/pgtap/identity.sql covers the same rules
# in detail with SET SESSION AUTHORIZATION.)
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/tap.sh

DB=identity_suite
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d "$DB" "$@"; }
# A login as ROLE over TCP; prints results and errors.
login() { local role=$1; shift; psql -X -q -A -t -h 127.0.0.1 -U "$role" -d "$DB" "$@" 2>&1; }
FORGE="SET request.jwt.claims = '{\"role\": \"lab_admin\", \"sub\": \"the.ceo\", \"teams\": [\"finance_ops\", \"service_desk\"]}';"

dropdb --if-exists "$DB" 2>/dev/null
createdb "$DB"
q -c 'CREATE EXTENSION enterprise_lab' >/dev/null
psql -X -q -d postgres >/dev/null 2>&1 <<'SQL'
DROP ROLE IF EXISTS identity_mallory;
DROP ROLE IF EXISTS identity_alice;
CREATE ROLE identity_mallory LOGIN IN ROLE lab_operator;
CREATE ROLE identity_alice LOGIN IN ROLE lab_operator;
SQL
q >/dev/null <<'SQL'
SELECT count(*) FROM intake.submit_request('Ann Example', 'ann@example.test', 'Team A request',
  'incident', 'high', 'service_desk', '10000000-0000-4000-8000-000000000001');
SELECT count(*) FROM intake.submit_request('Ben Example', 'ben@example.test', 'Team B request',
  'incident', 'high', 'finance_ops', '10000000-0000-4000-8000-000000000002');
SELECT integration.process_events();
INSERT INTO operational.role_teams (role_name, team_code) VALUES ('identity_alice', 'service_desk');
SQL
CASE_A=$(q -c "SELECT id FROM operational.operation_cases WHERE team_code = 'service_desk'")
CASE_B=$(q -c "SELECT id FROM operational.operation_cases WHERE team_code = 'finance_ops'")

is "$(login identity_mallory -c 'SELECT session_user')" identity_mallory "mallory logs in over TCP as herself"
is "$(login identity_mallory -c "$FORGE" -c 'SELECT count(*) FROM operational.operation_cases')" 0 \
  "with forged claims naming two teams, she sees no case (she has no team)"
OUT=$(login identity_mallory -c "$FORGE" -c "SELECT api.set_case_status('{\"case_id\": \"$CASE_B\", \"new_status\": \"in_progress\"}')")
grep -q 'ERROR:  set_case_status: not allowed to change case .* of team finance_ops' <<<"$OUT"
ok $? "and cannot change finance_ops' case (42501)"
OUT=$(login identity_mallory -c "$FORGE" -c 'SET ROLE lab_operator' -c "SELECT api.set_case_status('{\"case_id\": \"$CASE_A\", \"new_status\": \"in_progress\"}')")
grep -q 'ERROR:  set_case_status: not allowed' <<<"$OUT"
ok $? "nor, after SET ROLE lab_operator, service_desk's"
is "$(q -c "SELECT count(*) FROM operational.case_status_history WHERE changed_by IN ('the.ceo', 'identity_mallory')")" 0 \
  "her attempts left no history"
is "$(q -c "SELECT string_agg(processing_status, ',' ORDER BY team_code) FROM operational.operation_cases")" "open,open" \
  "both cases are unchanged"

is "$(login identity_alice -c "$FORGE" -c "SELECT string_agg(team_code, ',') FROM operational.operation_cases")" service_desk \
  "alice, forging the same claims, sees only her own team's case (operational.role_teams)"
OUT=$(login identity_alice -c "$FORGE" -c "SELECT api.set_case_status('{\"case_id\": \"$CASE_A\", \"new_status\": \"in_progress\", \"reason\": \"mine\"}') ->> 'changed_by'")
is "$OUT" identity_alice "she changes her team's case, recorded as identity_alice, not the forged sub"
is "$(q -c "SELECT changed_by FROM operational.case_status_history WHERE case_id = '$CASE_A' ORDER BY id DESC LIMIT 1")" identity_alice \
  "the history shows her own role name"
OUT=$(login identity_alice -c "$FORGE" -c "SELECT api.set_case_status('{\"case_id\": \"$CASE_B\", \"new_status\": \"in_progress\"}')")
grep -q 'DETAIL:  Your teams: service_desk.' <<<"$OUT"
ok $? "the forged team is refused, and the refusal names her real teams"

dropdb --if-exists "$DB" 2>/dev/null
psql -X -q -d postgres -c 'DROP ROLE identity_mallory' -c 'DROP ROLE identity_alice' >/dev/null 2>&1
done_testing
