#!/usr/bin/env bash
# The maintained counts stay exact when the real workers write them: a
# worker holds a batch's count deltas back and writes them once at the end
# of the batch, so chunks rolled back (failing events, bisected), chunks run
# again (events applied twice) and a handler that truncates a counted table
# in the middle of a batch must all leave dashboard.status_count_slots equal
# to count(*) of every layer.
set -uo pipefail
source "$(dirname "$0")/../tap.sh"

DB=worker_counts_suite
q() { psql -X -A -t -q -v ON_ERROR_STOP=1 -d "$DB" -c "$1"; }
setting() { psql -X -q -d postgres -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null; }
reset_setting() { psql -X -q -d postgres -c "ALTER SYSTEM RESET $1" -c "SELECT pg_reload_conf()" >/dev/null; }
drained() { wait_for 60 "SELECT NOT EXISTS (SELECT FROM integration.events WHERE event_status IN ('pending', 'failed'))" "$DB"; }
# Every (layer, status) whose maintained count differs from the table.
DRIFT="WITH actual AS (
  SELECT 'intake' AS layer, submission_status AS status, count(*) AS n FROM intake.submissions GROUP BY 2
  UNION ALL SELECT 'source_system', lifecycle_status, count(*) FROM source_system.service_requests GROUP BY 2
  UNION ALL SELECT 'integration', event_status, count(*) FROM integration.events GROUP BY 2
  UNION ALL SELECT 'operational', processing_status, count(*) FROM operational.operation_cases GROUP BY 2
  UNION ALL SELECT 'canonical', lifecycle_status, count(*) FROM canonical.business_objects GROUP BY 2
), maintained AS (
  SELECT layer, status, sum(count) AS n FROM dashboard.status_count_slots GROUP BY 1, 2
)
SELECT coalesce(string_agg(coalesce(a.layer, m.layer) || '/' || coalesce(a.status, m.status) || ' actual '
                           || coalesce(a.n, 0) || ' maintained ' || coalesce(m.n, 0), ', '), 'none')
  FROM actual a FULL JOIN maintained m ON m.layer = a.layer AND m.status = a.status
 WHERE coalesce(a.n, 0) <> coalesce(m.n, 0)"
submissions() {  # N submissions in one statement
  echo "INSERT INTO intake.submissions (requester_name, requester_email, request_description, request_type,
                                        priority, assigned_team, customer_id)
        SELECT 'Counted ' || i, 'counted@example.test', 'worker counts ' || i, 'incident', 'low', 'operations',
               '10000000-0000-4000-8000-000000000002' FROM generate_series(1, $1) i;"
}
# A RequestCreated event whose service request does not exist: its chunk fails.
POISON="INSERT INTO integration.events (submission_id, event_type, source_system, aggregate_type, aggregate_id)
        VALUES (gen_random_uuid(), 'RequestCreated', 'poison', 'service_request', gen_random_uuid());"

dropdb --if-exists --force "$DB" 2>/dev/null
createdb "$DB"
q "CREATE EXTENSION enterprise_lab"
q "CREATE FUNCTION public.count_fails(e integration.events) RETURNS void LANGUAGE plpgsql AS
     \$\$ BEGIN RAISE EXCEPTION 'downstream system unavailable'; END \$\$;
   CREATE FUNCTION public.count_reset(e integration.events) RETURNS void LANGUAGE sql AS
     \$\$ TRUNCATE canonical.business_objects \$\$;
   INSERT INTO integration.event_handlers (event_type, handler, description) VALUES
     ('CountFails', 'public.count_fails(integration.events)', 'always fails'),
     ('CountReset', 'public.count_reset(integration.events)', 'truncates a counted table')"
ok $? "handlers that fail and that truncate a counted table"

# A backlog with failing events spread over it, then the workers start.
q "BEGIN; $(submissions 50); $POISON $(submissions 50); $POISON $POISON $(submissions 50);
   SELECT integration.enqueue_event('CountFails', gen_random_uuid(), 'test', gen_random_uuid()) FROM generate_series(1, 3);
   $(submissions 50); $POISON $POISON COMMIT" >/dev/null
setting enterprise_lab.max_attempts 1
setting enterprise_lab.chunk_size 8
setting enterprise_lab.worker_count 1
setting enterprise_lab.database "$DB"
drained
ok $? "one worker drains 200 submissions with 8 failing events among them (chunks of 8)"
is "$(q "SELECT count(*) FILTER (WHERE event_status = 'completed') || '/' || count(*) FILTER (WHERE event_status = 'dead_letter')
           FROM integration.events")" "200/8" "200 completed, the 8 failing events dead-lettered alone"
is "$(q "$DRIFT")" none "the counts equal the tables after chunks rolled back and bisected"

# Events applied twice (their chunk meets the rows and runs again), status
# changes and new submissions, in one transaction.
q "BEGIN;
   INSERT INTO integration.events (submission_id, event_type, source_system, aggregate_type, aggregate_id)
   SELECT r.submission_id, 'RequestCreated', r.source_system, 'service_request', r.id
     FROM source_system.service_requests r ORDER BY r.request_number LIMIT 3;
   UPDATE operational.operation_cases SET processing_status = 'in_progress'
    WHERE id IN (SELECT id FROM operational.operation_cases ORDER BY external_reference LIMIT 10);
   $(submissions 30) COMMIT" >/dev/null
drained
ok $? "the worker drains duplicates, status changes and 30 new submissions"
is "$(q "SELECT count(*) FROM integration.events WHERE event_status <> 'completed' AND event_type <> 'CountFails'
           AND source_system <> 'poison'")" 0 "all of them completed"
is "$(q "$DRIFT")" none "the counts equal the tables after chunks run again"

# A handler truncates a counted table between submissions of one batch.
q "BEGIN; $(submissions 20);
   INSERT INTO integration.events (submission_id, event_type, source_system, aggregate_type, aggregate_id)
   VALUES (gen_random_uuid(), 'CountReset', 'test', 'test', gen_random_uuid());
   $(submissions 20); COMMIT" >/dev/null
drained
ok $? "the worker drains a batch with a truncating handler in it"
is "$(q "SELECT event_status FROM integration.events WHERE event_type = 'CountReset'")" completed "the truncating handler ran"
is "$(q "$DRIFT")" none "the counts equal the tables after a truncate in the middle of a batch"

reset_setting enterprise_lab.database
reset_setting enterprise_lab.worker_count
reset_setting enterprise_lab.chunk_size
reset_setting enterprise_lab.max_attempts
dropdb --if-exists --force "$DB" 2>/dev/null
done_testing
