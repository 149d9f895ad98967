#!/usr/bin/env bash
# GET /metrics of the built-in gateway: Prometheus' text format as promtool
# (Debian's prometheus package) checks it, numbers that match the tables
# and grow with the work done (completions, failures, dead letters), events
# left waiting while the workers are stopped, and
# enterprise_lab.metrics_access (anonymous, authenticated, off).
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/tap.sh

q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d lab "$@"; }
setting() { psql -X -q -d postgres -c "ALTER SYSTEM SET $1 = '$2'" -c "SELECT pg_reload_conf()" >/dev/null; }
reset_setting() { psql -X -q -d postgres -c "ALTER SYSTEM RESET $1" -c "SELECT pg_reload_conf()" >/dev/null; }
scrape() { curl -s --max-time 10 "$@" "$EL_HTTP_URL/metrics"; }
status_of() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@" "$EL_HTTP_URL/metrics"; }
# value SCRAPE SERIES: the sample of one series (name with its labels, as printed)
value() { awk -v s="$2" '$1 == s { print $2 }' <<<"$1"; }
# sum SCRAPE NAME: the sum of a family's samples over all labels
sum() { awk -v n="$2" '$1 == n || index($1, n "{") == 1 { t += $2 } END { printf "%d\n", t }' <<<"$1"; }
submit() {  # submit N: N submissions in one statement
  q -c "SELECT count(*) FROM generate_series(1, $1) g,
          intake.submit_request('Mia Metrics', 'mia@example.test', 'metrics suite ' || g, 'incident', 'high',
                                'service_desk', '10000000-0000-4000-8000-000000000001')" >/dev/null
}
token() {  # an HS256 JWT for lab_operator, valid for 5 minutes
  python3 - "$EL_JWT_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b'=').decode()
head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
body = b64(json.dumps({"role": "lab_operator", "sub": "metrics.suite", "exp": int(time.time()) + 300}).encode())
sig = b64(hmac.new(sys.argv[1].encode(), (head + "." + body).encode(), hashlib.sha256).digest())
print(head + "." + body + "." + sig)
PY
}
promtool_ok() { promtool check metrics <<<"$1" 2>&1; }
OLDEST_AGE="SELECT coalesce(extract(epoch FROM now() - min(created_at)), 0) FROM integration.events
             WHERE event_status IN ('pending', 'failed')"

q -c 'CREATE EXTENSION IF NOT EXISTS enterprise_lab CASCADE' >/dev/null 2>&1
for _ in $(seq 100); do
  [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$EL_HTTP_URL/health")" = 200 ] && break
  sleep 0.2
done
wait_for 30 "SELECT count(*) > 0 FROM integration.worker_status" || echo "# no event worker running"

# --- format ------------------------------------------------------------
TYPE=$(curl -s -o /dev/null -w '%{content_type}' --max-time 10 "$EL_HTTP_URL/metrics")
is "$TYPE" "text/plain; version=0.0.4; charset=utf-8" "GET /metrics answers in Prometheus' text format 0.0.4"
FIRST=$(scrape)
OUT=$(promtool_ok "$FIRST"); ok $? "promtool check metrics accepts the first scrape"
[ -n "$OUT" ] && sed 's/^/#   /' <<<"$OUT"
is "$(value "$FIRST" enterprise_lab_database_up)" 1 "the queue numbers were read from the database"
grep -q '^# TYPE enterprise_lab_worker_batch_duration_seconds histogram$' <<<"$FIRST"
ok $? "batch durations are a histogram"
grep -q '^# TYPE enterprise_lab_http_responses_total counter$' <<<"$FIRST"
ok $? "gateway responses are a counter"
OUT=$(promtool check metrics <<<'enterprise_lab_bad_counter{le="x" 1' 2>&1)
[ $? -ne 0 ]; ok $? "promtool refuses a malformed exposition (the check can fail)"

# --- numbers follow the work -----------------------------------------------
HIST_BEFORE=$(sum "$FIRST" enterprise_lab_worker_batch_duration_seconds_count)
DONE_BEFORE=$(sum "$FIRST" enterprise_lab_worker_events_processed_total)
OK_BEFORE=$(value "$FIRST" 'enterprise_lab_http_responses_total{code="200"}')
submit 25
wait_for 60 "SELECT count(*) = 0 FROM integration.events WHERE event_status IN ('pending', 'failed')" ||
  echo "# events still pending"
SECOND=$(scrape)
OUT=$(promtool_ok "$SECOND"); ok $? "promtool check metrics accepts a scrape after processing"
[ -n "$OUT" ] && sed 's/^/#   /' <<<"$OUT"
for s in completed pending failed dead_letter skipped; do
  is "$(value "$SECOND" "enterprise_lab_events{status=\"$s\"}")" \
     "$(q -c "SELECT count(*) FROM integration.events WHERE event_status = '$s'")" \
     "enterprise_lab_events{status=\"$s\"} matches the table"
done
HIST_AFTER=$(sum "$SECOND" enterprise_lab_worker_batch_duration_seconds_count)
[ "$HIST_AFTER" -gt "$HIST_BEFORE" ]; ok $? "the batch-duration histogram counted the new batches ($HIST_BEFORE -> $HIST_AFTER)"
is "$(value "$SECOND" 'enterprise_lab_worker_batch_duration_seconds_bucket{worker="1",le="+Inf"}')" \
   "$(value "$SECOND" 'enterprise_lab_worker_batch_duration_seconds_count{worker="1"}')" \
   "its +Inf bucket equals its count"
DONE_AFTER=$(sum "$SECOND" enterprise_lab_worker_events_processed_total)
[ $((DONE_AFTER - DONE_BEFORE)) -ge 25 ]; ok $? "the workers' processed counters grew by the events completed ($DONE_BEFORE -> $DONE_AFTER)"
OK_AFTER=$(value "$SECOND" 'enterprise_lab_http_responses_total{code="200"}')
[ "${OK_AFTER:-0}" -gt "${OK_BEFORE:-0}" ]; ok $? "the gateway counted the earlier 200 responses (${OK_BEFORE:-0} -> $OK_AFTER)"
NOT_FOUND=$(value "$(scrape)" 'enterprise_lab_http_responses_total{code="404"}')
curl -s -o /dev/null --max-time 10 "$EL_HTTP_URL/no-such-file"
is "$(value "$(scrape)" 'enterprise_lab_http_responses_total{code="404"}')" $(( ${NOT_FOUND:-0} + 1 )) \
  "a 404 is counted under code=\"404\""

# --- failures and dead letters ----------------------------------------------
# A handler that always fails, two attempts, no backoff: each event fails
# once, then is dead-lettered.
DEAD_BEFORE=$(sum "$(scrape)" enterprise_lab_worker_events_dead_lettered_total)
setting enterprise_lab.max_attempts 2
setting enterprise_lab.backoff_base 0
q >/dev/null <<'SQL'
CREATE FUNCTION public.metrics_suite_failing(e integration.events) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'downstream system unavailable' USING ERRCODE = 'connection_failure';
END $$;
INSERT INTO integration.event_handlers (event_type, handler)
VALUES ('MetricsSuiteFailure', 'public.metrics_suite_failing(integration.events)');
SELECT count(*) FROM (
  SELECT integration.enqueue_event('MetricsSuiteFailure', r.submission_id, 'service_request', r.id)
    FROM source_system.service_requests r ORDER BY r.request_number LIMIT 3) x;
SQL
wait_for 60 "SELECT count(*) = 3 FROM integration.events WHERE event_type = 'MetricsSuiteFailure' AND event_status = 'dead_letter'" ||
  echo "# the failing events were not dead-lettered"
FAILED=$(scrape)
is "$(sum "$FAILED" enterprise_lab_worker_events_dead_lettered_total)" $((DEAD_BEFORE + 3)) \
  "the workers' dead-letter counters count the 3 dead letters"
[ "$(sum "$FAILED" enterprise_lab_worker_events_failed_total)" -ge 3 ]
ok $? "their failure counters count the first failed attempts ($(sum "$FAILED" enterprise_lab_worker_events_failed_total))"
is "$(value "$FAILED" 'enterprise_lab_events{status="dead_letter"}')" \
   "$(q -c "SELECT count(*) FROM integration.events WHERE event_status = 'dead_letter'")" \
   "enterprise_lab_events{status=\"dead_letter\"} counts them"
q >/dev/null <<'SQL'
SELECT count(*) FROM integration.events e, integration.skip_event(e.id, 'metrics suite')
 WHERE e.event_type = 'MetricsSuiteFailure';
DELETE FROM integration.event_handlers WHERE event_type = 'MetricsSuiteFailure';
DROP FUNCTION public.metrics_suite_failing(integration.events);
SQL
reset_setting enterprise_lab.max_attempts
reset_setting enterprise_lab.backoff_base

# --- waiting events: pending and the oldest one's age ----------------------
setting enterprise_lab.worker_count 0
wait_for 30 "SELECT count(*) = 0 FROM integration.worker_status" || echo "# workers did not stop"
submit 3
sleep 1.1
THIRD=$(scrape)
is "$(value "$THIRD" enterprise_lab_events_pending)" \
   "$(q -c "SELECT count(*) FROM integration.events WHERE event_status IN ('pending', 'failed')")" \
   "with the workers stopped, enterprise_lab_events_pending counts the waiting events"
AGE=$(value "$THIRD" enterprise_lab_events_oldest_pending_age_seconds)
AGE_SQL=$(q -c "$OLDEST_AGE")
awk -v a="$AGE" -v b="$AGE_SQL" 'BEGIN { d = a - b; exit !(a >= 1 && d < 2 && d > -2) }'
ok $? "and the oldest waiting event's age is reported ($AGE s; the table says $AGE_SQL s)"
is "$(value "$THIRD" enterprise_lab_workers_running)" 0 "enterprise_lab_workers_running is 0"
PLAN=$(q -c "EXPLAIN (COSTS OFF) SELECT e.created_at FROM integration.events e WHERE e.event_status IN ('pending', 'failed') ORDER BY e.seq LIMIT 1")
grep -q 'events_due_idx' <<<"$PLAN"; ok $? "the oldest waiting event is found through the claim's partial index"
reset_setting enterprise_lab.worker_count
wait_for 60 "SELECT count(*) = 0 FROM integration.events WHERE event_status IN ('pending', 'failed')" ||
  echo "# events still pending"
AGE=$(value "$(scrape)" enterprise_lab_events_oldest_pending_age_seconds)
AGE_SQL=$(q -c "$OLDEST_AGE")
awk -v a="$AGE" -v b="$AGE_SQL" 'BEGIN { exit !((b == 0 && a == 0) || (b > 0 && a - b < 2 && b - a < 2)) }'
ok $? "once they are processed the age follows (0 when nothing waits; $AGE s, the table says $AGE_SQL s)"

# --- the SQL side, as an api function ---------------------------------------
RPC=$(curl -s --max-time 10 -X POST "$EL_HTTP_URL/rpc/queue_metrics" -H 'Content-Type: application/json' -d '{}')
is "$(jq -r '.events.completed' <<<"$RPC")" "$(q -c "SELECT count(*) FROM integration.events WHERE event_status = 'completed'")" \
  "POST /rpc/queue_metrics serves the same counts to an anonymous caller"
RPC=$(curl -s --max-time 10 -w ' %{http_code}' -X POST "$EL_HTTP_URL/rpc/queue_metrics" -H 'Content-Type: application/json' -d '{"since": 1}')
grep -q '"code":"22023".*unknown key \\"since\\".* 400$' <<<"$RPC"; ok $? "and refuses a key it does not take (400, 22023)"

# --- access --------------------------------------------------------------
setting enterprise_lab.metrics_access authenticated
sleep 0.5
is "$(status_of)" 401 "metrics_access = authenticated: a scrape without a token gets 401"
grep -q '"code":"PGRST302"' <<<"$(scrape)"; ok $? "with PostgREST's 'anonymous access disabled' code"
is "$(status_of -H "Authorization: Bearer $(token)")" 200 "a valid token is let in"
is "$(status_of -H 'Authorization: Bearer not.a.token')" 401 "a bad token is not"
setting enterprise_lab.metrics_access off
sleep 0.5
is "$(status_of -H "Authorization: Bearer $(token)")" 404 "metrics_access = off: 404 for everyone"
reset_setting enterprise_lab.metrics_access
sleep 0.5
is "$(status_of)" 200 "the default (anonymous) serves anyone again"

done_testing
