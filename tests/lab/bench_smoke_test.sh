#!/usr/bin/env bash
# The benchmark harness cannot rot: `wasi-ktls bench --smoke` on a few rows, natively and
# (for the kernel row) in the kernel lab, must produce its table, its JSON with the raw
# samples, and its plots; the kernel row must really have run on kTLS.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"  # root (cwd), check
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

rows=bulk/tcp/16KiB,bulk/ours-userspace/16KiB,bulk/ours-kernel/16KiB,rr/openssl/64B
rows+=,handshakes/wasi-ktlsserve/ECDSAP-256TLS1.3,idle/nginx
timeout 600 bazel-bin/tools/wasi-ktls bench --smoke --only "$rows" --out "$out" >"$out/stdout" 2>&1
status=$?
cat "$out/stdout"
check "bench --smoke exits 0" test "$status" -eq 0
check "a progress line per row (6)" test "$(grep -c '^\(lab \)\?\[[0-9]*/[0-9]*\]' "$out/stdout")" -eq 6
check "the table has the userspace row with a throughput" \
  grep -qE '^\| ours-userspace \| 16 KiB \| [0-9.]+ ' "$out/bench.md"
check "the kernel row ran in the kernel lab, on kTLS" \
  python3 -c '
import json, sys
run = json.load(open(sys.argv[1]))
row = [c for c in run["cases"] if c["id"] == "bulk/ours-kernel/16KiB"][0]
assert row["where"] == "lab" and row["status"] == "ok", row
assert row["samples"][0]["server"]["transport"].startswith("ktls"), row["samples"][0]
assert all(c["status"] == "ok" for c in run["cases"]), [c for c in run["cases"] if c["status"] != "ok"]
' "$out/bench.json"
check "raw samples are kept (rtt of every round trip)" \
  python3 -c '
import json, sys
run = json.load(open(sys.argv[1]))
row = [c for c in run["cases"] if c["id"] == "rr/openssl/64B"][0]
assert len(row["samples"][0]["client"]["rtt_us"]) == 50
' "$out/bench.json"
for png in bulk-throughput bulk-cpu latency handshakes memory; do
  check "$png.png is a PNG" python3 -c 'import sys; assert open(sys.argv[1], "rb").read(8) == b"\x89PNG\r\n\x1a\n"' "$out/$png.png"
done
check "a row that cannot run says why" bash -c \
  "bazel-bin/tools/wasi-ktls bench --smoke --no-lab --only bulk/ours-kernel/16KiB --out '$out/nolab' | grep -q 'skipped: this kernel'"

echo "$passed passed, $failed failed"
((failed == 0))
