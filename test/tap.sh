# Minimal TAP output for the process-level suites (bash).
# ok/not ok lines are what test/run counts; a suite also exits non-zero on
# any failure.
TAP_N=0
TAP_FAILED=0

ok() {  # ok CONDITION-EXIT-STATUS DESCRIPTION
  local status=$1; shift
  TAP_N=$((TAP_N + 1))
  if [ "$status" -eq 0 ]; then echo "ok $TAP_N - $*"; else echo "not ok $TAP_N - $*"; TAP_FAILED=$((TAP_FAILED + 1)); fi
}

is() {  # is GOT EXPECTED DESCRIPTION
  local got=$1 expected=$2; shift 2
  if [ "$got" == "$expected" ]; then ok 0 "$*"; else ok 1 "$*"; echo "#   got:      '$got'"; echo "#   expected: '$expected'"; fi
}

done_testing() {
  echo "1..$TAP_N"
  [ "$TAP_FAILED" -eq 0 ]
}

# wait_for TIMEOUT_SECONDS SQL DB: poll until SQL returns 't'.
wait_for() {
  local timeout=$1 sql=$2 db=${3:-lab} deadline
  deadline=$(( $(date +%s) + timeout ))
  while [ "$(date +%s)" -lt "$deadline" ]; do
    [ "$(psql -X -A -t -q -d "$db" -c "$sql" 2>/dev/null)" = t ] && return 0
    sleep 0.1
  done
  return 1
}
