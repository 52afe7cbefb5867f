# PASS/FAIL lines for the lab scripts (sourced): `check NAME COMMAND...` runs COMMAND and
# counts it in $passed or $failed.
passed=0 failed=0
check() {
  if "${@:2}"; then passed=$((passed + 1)); echo "PASS  $1"
  else failed=$((failed + 1)); echo "FAIL  $1"; fi
}
