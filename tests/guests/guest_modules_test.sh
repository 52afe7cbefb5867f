#!/usr/bin/env bash
# Checks the guest modules as a host sees them (run by Bazel from the runfiles root):
#  - the SDK's imports have the core types of sdk_imports.expected;
#  - every guest imports only those and wasi_snapshot_preview1, and wasm2c translates it;
#  - the SDK README's example is readme_example.c, word for word.
set -euo pipefail
here=tests/guests
fail=0
problem() { echo "FAIL: $*"; fail=1; }

expected=$(grep -v '^#' "$here/sdk_imports.expected")
if ! diff <(echo "$expected") <("$here/list_imports.sh" "$here/sdk_imports.wasm"); then
  problem "the SDK's imports differ from sdk_imports.expected (< expected, > built)"
fi

guests=0
for wasm in "$here"/*.wasm; do
  [[ $(basename "$wasm") == sdk_imports.wasm ]] && continue
  guests=$((guests + 1))
  # missing_import imports what no host here provides, on purpose (the load must fail).
  [[ $(basename "$wasm") == missing_import.wasm ]] ||
  while read -r import; do
    grep -qxF "$import" <<<"$expected" || problem "$(basename "$wasm") imports $import"
  done < <("$here/list_imports.sh" "$wasm" | grep -v '^wasi_snapshot_preview1\.')
  wasm2c "$wasm" -o "$TEST_TMPDIR/guest.c" || problem "wasm2c refuses $(basename "$wasm")"
done
[[ $guests -gt 0 ]] || problem "no guest modules found"

readme=wasi_binding/sdk/README.md
if ! diff <(awk '/^```c$/ { inside = 1; next } /^```$/ { inside = 0 } inside' "$readme") \
    "$here/readme_example.c"; then
  problem "the example in $readme differs from $here/readme_example.c"
fi

[[ $fail -eq 0 ]] && echo "PASS: SDK imports, $guests guests, README example"
exit $fail
