#!/usr/bin/env bash
# Seed compatibility: the original Enterprise Integration Lab's README,
# "API Examples", run as written against the built-in gateway and the demo
# data.  Only the host and port (http://localhost:8000 -> the gateway), the
# operator token the extension asks for on PATCH, the <operation_case_id>
# placeholder and psql's connection options (docker compose exec postgres
# psql -U enterprise_lab -d enterprise_lab -> psql -d lab) differ.  Plus the
# original's form upload (curl -F) with a small PDF and with a file the
# allowlist refuses.
set -uo pipefail
cd "$(dirname "$0")/../.."
source test/tap.sh

API=$EL_HTTP_URL
q() { psql -X -q -A -t -v ON_ERROR_STOP=1 -d lab "$@"; }
TOKEN=$(python3 - "$EL_JWT_SECRET" <<'PY'
import base64, hashlib, hmac, json, sys, time
b64 = lambda d: base64.urlsafe_b64encode(d).rstrip(b"=").decode()
claims = {"role": "lab_operator", "sub": "demo.operator", "exp": int(time.time()) + 3600,
          "teams": ["service_desk", "operations", "finance_ops", "security", "OPERATIONS_TEAM"]}
signing = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
print(signing + "." + b64(hmac.new(sys.argv[1].encode(), signing.encode(), hashlib.sha256).digest()))
PY
)

q -c 'CREATE EXTENSION IF NOT EXISTS enterprise_lab' >/dev/null
q -c 'SELECT document_repo.ensure_bucket()' >/dev/null
q -c 'SELECT enterprise_lab.load_demo_data()' >/dev/null
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# ---------------------------------------------------------------- Create a JSON submission
created=$(curl -s -X POST $API/intake/submissions \
  -H "Content-Type: application/json" \
  -d '{
    "intake_method": "manual_form",
    "requester_name": "Demo User",
    "requester_email": "demo.user@example.test",
    "request_description": "Create a generic service request.",
    "request_type": "GENERAL_INQUIRY",
    "priority": "medium",
    "assigned_team": "OPERATIONS_TEAM"
  }' | jq)
submission_id=$(jq -r '.submission_id // empty' <<<"$created")
[ -n "$submission_id" ]
ok $? "README: Create a JSON submission -> a submission_id"
[ -n "$submission_id" ] || echo "#   $created"
is "$(q -c "SELECT requester_name || '|' || intake_method FROM intake.submissions WHERE submission_id = '$submission_id'")" \
   "Demo User|manual_form" "the submission is stored as sent"

# The worker opens the submission's case.
operation_case_id=
for _ in $(seq 1 150); do
  q -c 'SELECT integration.process_events(100)' >/dev/null
  operation_case_id=$(q -c "SELECT c.id FROM operational.operation_cases c
                              JOIN source_system.service_requests r ON r.id = c.service_request_id
                             WHERE r.submission_id = '$submission_id'" 2>/dev/null)
  [ -n "$operation_case_id" ] && break
  sleep 0.2
done
[ -n "$operation_case_id" ]
ok $? "the submission's operational case is opened"

# ---------------------------------------------------------------- Update operational status
moved=$(curl -s -X PATCH "$API/operational/cases/$operation_case_id/status" \
  -H "Authorization: Bearer $TOKEN" \
  -H "Content-Type: application/json" \
  -d '{
    "new_status": "in_progress",
    "changed_by": "dashboard-user",
    "change_reason": "Start downstream processing"
  }' | jq)
is "$(jq -r '.new_status // .message' <<<"$moved")" in_progress "README: Update operational status -> the case is in_progress"
is "$(q -c "SELECT processing_status FROM operational.operation_cases WHERE id = '$operation_case_id'")" in_progress \
   "the case row says in_progress"
is "$(q -c "SELECT change_reason FROM operational.case_status_history WHERE case_id = '$operation_case_id' AND new_status = 'in_progress'")" \
   "Start downstream processing" "the status history has the change and its reason"

# The same request without a token, as the original README has it.
status=$(curl -s -o "$WORK/anon.json" -w '%{http_code}' -X PATCH "$API/operational/cases/$operation_case_id/status" \
  -H "Content-Type: application/json" -d '{"new_status": "completed"}')
is "$status" 401 "without a token the case route answers 401"
jq -e '.hint | contains("./scripts/demo")' "$WORK/anon.json" >/dev/null
ok $? "... with a hint where the token comes from"

# ---------------------------------------------------------------- Inspect lifecycle records
inspect() {  # inspect MIN_ROWS SQL: the query as the README has it, psql's connection options changed
  local rows
  rows=$(psql -X -A -t -d lab -c "$2" 2>&1)
  local status=$?
  [ $status -eq 0 ] && [ "$(grep -c . <<<"$rows")" -ge "$1" ]
  ok $? "README: $2"
  [ $status -eq 0 ] || echo "#   $rows"
}
inspect 5 "SELECT submission_id, requester_name, submission_status FROM intake.submissions ORDER BY created_at DESC LIMIT 5;"
inspect 5 "SELECT request_number, lifecycle_status FROM source_system.service_requests ORDER BY created_at DESC LIMIT 5;"
inspect 10 "SELECT event_type, source_system, event_status FROM integration.events ORDER BY created_at DESC LIMIT 10;"
inspect 5 "SELECT external_reference, processing_status FROM operational.operation_cases ORDER BY updated_at DESC LIMIT 5;"
inspect 5 "SELECT object_type, canonical_category, lifecycle_status FROM canonical.business_objects ORDER BY updated_at DESC LIMIT 5;"
is "$(psql -X -A -t -d lab -c "SELECT requester_name, submission_status FROM intake.submissions ORDER BY created_at DESC LIMIT 1;")" \
   "Demo User|received" "the newest submission is the README's, received"

# ---------------------------------------------------------------- The form upload of the portal
printf '%s\n' '%PDF-1.4' '1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj' '2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj' \
  'trailer<</Root 1 0 R>>' '%%EOF' > "$WORK/addendum.pdf"
printf 'MZ\x90\x00not really a program' > "$WORK/setup.exe"
form() {
  curl -s -X POST $API/intake/submissions \
    -F intake_method=manual_form -F "requester_name=Demo User" -F requester_email=demo.user@example.test \
    -F "request_description=Please review the attached addendum." -F request_type=GENERAL_INQUIRY \
    -F priority=medium -F assigned_team=OPERATIONS_TEAM "$@"
}
uploaded=$(form -F "file=@$WORK/addendum.pdf;type=application/pdf")
document_id=$(jq -r '.document_id // empty' <<<"$uploaded")
[ -n "$document_id" ]
ok $? "a form with a small PDF -> a submission with a document"
[ -n "$document_id" ] || echo "#   $uploaded"
is "$(q -c "SELECT original_file_name || '|' || content_type || '|' || size_bytes FROM document_repo.documents WHERE id = '$document_id'")" \
   "addendum.pdf|application/pdf|$(stat -c %s "$WORK/addendum.pdf")" "document_repo.documents has its name, type and size"
before=$(q -c 'SELECT count(*) FROM intake.submissions')
refused=$(form -F "file=@$WORK/setup.exe;type=application/x-msdownload")
is "$(jq -r '.code + " " + .message' <<<"$refused")" '22023 file type ".exe" is not allowed' \
   "a form with an .exe is refused by the allowlist (22023)"
is "$(q -c 'SELECT count(*) FROM intake.submissions')" "$before" "... and leaves no submission"

done_testing
