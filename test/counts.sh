# How test/run counts results: one function per output format, each
# printing "PASSED FAILED".  A result that cannot be read is a failure,
# never a pass: test/suites/runner_counts checks these functions against
# samples of every format.

# pg_regress: up to 15 "test name ... ok" / "... FAILED"; from 16 on
# "ok 1 - name" / "not ok 4 - name" (TAP).  EXPECTED is the number of
# tests scheduled and STATUS make's exit status: fewer results than tests,
# or a failing exit with no failed test, count as failures.
el_count_regress() {  # FILE EXPECTED STATUS
  local file=$1 expected=$2 status=$3 p f
  p=$(grep -cE '\.\.\. ok( |$)|^ok [0-9]+ +[-+] ' "$file")
  f=$(grep -cE '\.\.\. (FAILED|failed)( |$)|^not ok [0-9]+ +[-+] ' "$file")
  [ $((p + f)) -lt "$expected" ] && f=$((f + expected - p - f))
  [ "$status" -ne 0 ] && [ "$f" -eq 0 ] && f=1
  echo "$p $f"
}

# pg_prove: "Files=N, Tests=T, ..." and "Result: PASS|FAIL"; failed tests
# as "Failed X/Y subtests".
el_count_pgtap() {  # FILE STATUS
  local file=$1 status=$2 t f
  t=$(sed -n 's/^Files=[0-9]*, Tests=\([0-9]*\).*/\1/p' "$file" | tail -1)
  f=$(grep -oE 'Failed [0-9]+/[0-9]+ subtests' "$file" | awk -F'[ /]' '{s+=$2} END {print s+0}')
  if ! grep -q '^Result: PASS' "$file" || [ "$status" -ne 0 ] || [ -z "$t" ]; then
    [ "$f" -gt 0 ] || f=1
  fi
  echo "$(( ${t:-0} > f ? ${t:-0} - f : 0 )) $f"
}

# A process-level suite's TAP: "ok N - ..." / "not ok N - ...", closed by
# the plan "1..N".  "ok N # SKIP reason" is a skip, counted apart (it is
# neither a pass nor a failure).  A missing plan, a plan that does not
# match the lines seen, or a non-zero exit with no failure line counts one
# failure.  Prints "PASSED FAILED SKIPPED".
el_count_tap() {  # FILE STATUS
  local file=$1 status=$2 p f s plan
  s=$(grep -ciE '^ok [0-9]+ *(- .*)?# *skip' "$file")
  p=$(( $(grep -cE '^ok [0-9]+' "$file") - s ))
  f=$(grep -cE '^not ok [0-9]+' "$file")
  plan=$(sed -n 's/^1\.\.\([0-9][0-9]*\)$/\1/p' "$file" | tail -1)
  if [ -z "$plan" ] || [ "$plan" -ne $((p + f + s)) ] || { [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; }; then
    f=$((f + 1))
  fi
  echo "$p $f $s"
}
