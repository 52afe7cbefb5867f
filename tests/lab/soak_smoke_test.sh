#!/usr/bin/env bash
# The soak cannot rot: tools/soak for 20 s on 32 connections (8 per transport x engine) in the
# kernel lab must pass, with closes made frequent enough that both abrupt kinds (FIN, RST)
# and clean closes happen, the kernel groups really on kTLS, and all four outputs written;
# then a short run with bytes corrupted on purpose must fail, having found each of them.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"  # root (cwd), check
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Samples every 2 s so that the flatness verdict has its 3+ samples after warm-up.
timeout 300 tools/soak --duration 20 --connections 32 --out "$out" --sample-interval 2 \
  --think-ms 300 --close-probability 0.2 --abrupt-share 0.5 >"$out/stdout" 2>&1
status=$?
cat "$out/stdout"
check "tools/soak exits 0" test "$status" -eq 0
check "report.md says PASS" grep -q '^\*\*Verdict: PASS\*\*' "$out/report.md"
check "soak.png is a PNG" python3 -c 'import sys; assert open(sys.argv[1], "rb").read(8) == b"\x89PNG\r\n\x1a\n"' "$out/soak.png"
check "samples.csv has a header and the samples" test "$(wc -l <"$out/samples.csv")" -ge 12
check "samples.json: traffic on all four groups, every byte checked, nothing unexpected" python3 -c '
import json, sys
run = json.load(open(sys.argv[1]))
t = run["total"]
assert run["passed"] and not run["failures"], run["failures"]
assert sorted(g["name"] for g in run["groups"]) == ["ktls/io_uring", "ktls/poll", "userspace/io_uring", "userspace/poll"]
for g in run["groups"]:
    assert g["messages"] > 0 and g["bytes_checked"] > 0 and g["opened"] >= g["connections"], g
assert t["mismatched_bytes"] == 0 and t["errors"] == 0, t
assert t["closed_clean"] > 0 and t["abrupt_fin"] > 0 and t["abrupt_rst"] > 0, t
assert (t["server_truncated"], t["server_reset"]) == (t["abrupt_fin"], t["abrupt_rst"]), t
' "$out/samples.json"
check "the kernel held kTLS state for the kernel groups, and none after the drain" python3 -c '
import json, sys
s = json.load(open(sys.argv[1]))["samples"]
assert max(x["ktls_tx"] for x in s if x["phase"] == "run") >= 16, s
assert s[-1]["phase"] == "drained" and s[-1]["ktls_tx"] == s[-1]["ktls_rx"] == 0, s[-1]
' "$out/samples.json"

# The checks can fail: one byte inverted in every 10th reply must be found, each one, and
# must fail the soak.
timeout 120 tools/soak --duration 4 --connections 4 --out "$out/corrupt" --sample-interval 1 \
  --think-ms 100 --corrupt-every 10 >"$out/corrupt.stdout" 2>&1
status=$?
grep -E '^soak: (PASS|FAIL)|mismatched bytes|corrupted on purpose' "$out/corrupt.stdout"
check "with --corrupt-every the soak exits 1" test "$status" -eq 1
check "every corrupted byte was found, and no other" python3 -c '
import json, sys
t = json.load(open(sys.argv[1]))["total"]
assert t["corrupted"] > 0 and t["mismatched_bytes"] == t["corrupted"] == t["mismatched_messages"], t
' "$out/corrupt/samples.json"

echo "$passed passed, $failed failed"
((failed == 0))
