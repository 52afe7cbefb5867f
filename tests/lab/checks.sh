# What the lab test scripts share, sourced first with the script's arguments: the repository
# root as cwd, `inside` (true when the script runs in the kernel lab, started there with
# --inside), one counted PASS/FAIL line per check, the kernel's kTLS counters, and the
# native-run-then-lab ending.

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root" || exit 2
inside=false
[[ ${1:-} == --inside ]] && inside=true

passed=0 failed=0
check() {  # check NAME COMMAND...
  if "${@:2}"; then passed=$((passed + 1)); echo "PASS  $1"
  else failed=$((failed + 1)); echo "FAIL  $1"; fi
}
stat_of() { awk -v k="$1" '$1 == k { print $2 }' /proc/net/tls_stat; }  # stat_of COUNTER
out_has() { grep -qE -- "$2" "$1"; }  # out_has FILE REGEX: a line of FILE matches REGEX

# finish_then_lab TIMEOUT: the summary line, and the exit status, of a script that runs first
# natively and then, as `$0 --inside`, in the kernel lab (TIMEOUT seconds at most): after a
# native pass its servers (`pids`) and `work` go, and the script starts again in the lab.
finish_then_lab() {
  echo "$passed passed, $failed failed ($($inside && echo 'kernel lab, kTLS' || echo native))"
  ((failed == 0)) || exit 1
  $inside && exit 0
  kill "${pids[@]}" 2>/dev/null
  wait 2>/dev/null
  pids=()
  rm -rf "$work"
  exec tools/kernel-lab --timeout "$1" -- "$0" --inside
}
