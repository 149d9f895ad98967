#!/usr/bin/env bash
# Infrastructure errors do not burn an event's attempts, with the real
# workers: a handler runs into a lock another session holds and gives up
# after its lock_timeout (55P03).  With max_attempts = 1 a charged attempt
# would dead-letter the event at once; instead the batch is retried, the
# event stays pending with no attempt recorded, and it completes once the
# lock is gone.
set -uo pipefail
source "$(dirname "$0")/../tap.sh"

DB=lock_timeout_suite
q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
setting() { psql -X -q -d postgres -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null; }
reset_setting() { psql -X -q -d postgres -c "ALTER SYSTEM RESET $1" -c "SELECT pg_reload_conf()" >/dev/null; }

dropdb --if-exists --force "$DB" 2>/dev/null
createdb "$DB"
q "CREATE EXTENSION enterprise_lab"
q "CREATE TABLE public.lock_probe (id int PRIMARY KEY, n int NOT NULL DEFAULT 0);
   INSERT INTO public.lock_probe VALUES (1);
   CREATE FUNCTION public.lock_probe_handler(e integration.events) RETURNS void
   LANGUAGE sql SET lock_timeout = '200ms' AS \$\$ UPDATE public.lock_probe SET n = n + 1 WHERE id = 1 \$\$;
   INSERT INTO integration.event_handlers (event_type, handler, description)
   VALUES ('LockProbe', 'public.lock_probe_handler(integration.events)', 'updates a row another session may hold');"
ok $? "a handler that updates a shared row with lock_timeout = 200ms"

setting enterprise_lab.max_attempts 1
setting enterprise_lab.database "$DB"
wait_for 20 "SELECT count(*) >= 1 FROM integration.worker_status WHERE state = 'idle'" "$DB"
ok $? "the workers run in the suite's database, max_attempts = 1"

SUB=$(q "SELECT submission_id FROM intake.submit_request('Lou Lock', 'lou@example.test', 'Lock timeout suite.',
           'incident', 'high', 'operations', '10000000-0000-4000-8000-000000000002')")
wait_for 10 "SELECT event_status = 'completed' FROM integration.events WHERE submission_id = '$SUB' AND event_type = 'RequestCreated'" "$DB"
ok $? "the request itself is processed"

# Another session holds the row for 6 seconds; the event arrives meanwhile.
psql -X -q -d "$DB" -c "SET application_name = 'lock_holder'" \
  -c "BEGIN" -c "SELECT n FROM public.lock_probe WHERE id = 1 FOR UPDATE" -c "SELECT pg_sleep(6)" -c "COMMIT" >/dev/null &
HOLDER=$!
wait_for 10 "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'lock_holder' AND query LIKE '%pg_sleep%')" "$DB"
ok $? "another session holds the row"
before=$(wc -l < "$EL_LOG")
q "SELECT integration.enqueue_event('LockProbe', '$SUB', 'service_request',
     (SELECT id FROM source_system.service_requests WHERE submission_id = '$SUB'), '{}')" >/dev/null
sleep 3
tail -n +"$before" "$EL_LOG" | grep -q 'ERROR:  canceling statement due to lock timeout'
ok $? "the worker's handler ran into the lock timeout (server log)"
is "$(q "SELECT event_status || '/' || attempts || '/' || coalesce(last_error, '-') FROM integration.events WHERE event_type = 'LockProbe'")" \
   "pending/0/-" "while the lock is held the event stays pending: no attempt charged, no error recorded, not dead-lettered"
is "$(q "SELECT count(*) FROM integration.sync_logs WHERE event_type = 'LockProbe'")" 0 "and no failure is logged for it"

wait "$HOLDER"
wait_for 60 "SELECT event_status = 'completed' FROM integration.events WHERE event_type = 'LockProbe'" "$DB"
ok $? "once the lock is gone, the worker's retry completes it"
is "$(q "SELECT attempts || '/' || (SELECT n FROM public.lock_probe) FROM integration.events WHERE event_type = 'LockProbe'")" "1/1" \
   "on its first charged attempt, applied once"

reset_setting enterprise_lab.database
reset_setting enterprise_lab.max_attempts
sleep 1
dropdb --force "$DB"
done_testing
