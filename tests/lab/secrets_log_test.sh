#!/usr/bin/env bash
# No TLS secret in any log: `serve` (its one line per connection is its most verbose),
# `fetch -v` and `run -v` (the https_get guest) talk to real OpenSSL peers that write the
# connection secrets (SSLKEYLOGFILE format: curl's SSLKEYLOGFILE, `openssl s_client` and
# `s_server -keylogfile`), TLS 1.3 and 1.2; then every secret (TLS 1.3 traffic secrets, the
# TLS 1.2 master secret) is looked for in everything our processes printed, as hex in either
# case, the first half of that hex, and raw bytes. First natively (the userspace transport),
# then in the kernel lab, where the keys go to the kernel and the hand-over code runs.
# Run on the host; it boots the lab itself.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh" "$@"  # cwd: the repository root

bin=$root/bazel-bin/tools/wasi-ktls
guests=$root/bazel-bin/tests/guests
cache=$root/out/wasm-guest-cache  # as wasm_guests_test.sh: filled natively, read in the lab
work=$(mktemp -d)
pki=$work/pki
tools/make-test-pki "$pki" >/dev/null || { echo "make-test-pki failed"; exit 1; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
source "$root/tests/lab/wait.sh"
export XDG_CACHE_HOME=$cache
mkdir -p "$cache" 2>/dev/null

if $inside; then backend=ktls; else backend=auto; fi
keys=$work/keys      # every peer's keylog lines, appended
logs=$work/logs      # everything our processes printed, one file each
mkdir -p "$keys" "$logs" "$work/www"
printf 'a file for s_server -WWW\n' >"$work/www/f.txt"
request=$'GET /bytes/1000 HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'

# --- serve, with curl and openssl s_client as clients ----------------------------------------
port=9643
"$bin" serve --cert "$pki/server.pem" --key "$pki/server.key" --port $port --backend $backend \
  >"$logs/serve.out" 2>"$logs/serve.err" &
pids+=($!)
check "serve listens" wait_listening $port
for v in 1.3 1.2; do
  SSLKEYLOGFILE=$keys/curl-$v curl -sS --max-time 60 --cacert "$pki/ca.pem" --tlsv$v --tls-max $v \
    "https://localhost:$port/bytes/1000" -o "$work/curl-$v.bin"
  check "curl TLS $v: 1000 bytes from serve" test "$(stat -c %s "$work/curl-$v.bin")" = 1000
  printf '%s' "$request" | timeout 60 openssl s_client -quiet -ign_eof -no_ticket \
    -tls${v/./_} -connect 127.0.0.1:$port -servername localhost -CAfile "$pki/ca.pem" \
    -keylogfile "$keys/s_client-$v" >"$work/s_client-$v.out" 2>/dev/null
  check "s_client TLS $v: answered by serve" grep -q '^HTTP/1.1 200' "$work/s_client-$v.out"
done
expected_backend=$($inside && echo ktls || echo userspace)
check "serve logged 4 connections on the $expected_backend transport" \
  wait_until 30 sh -c "test \$(grep -c 'backend=$expected_backend.* ok$' '$logs/serve.err') -ge 4"

# --- fetch -v and run -v against openssl s_server --------------------------------------------
sport=9644
for v in 1.3 1.2; do
  (cd "$work/www" && exec openssl s_server -quiet -WWW -accept $sport -tls${v/./_} -no_ticket \
    -cert "$pki/server.pem" -key "$pki/server.key" -keylogfile "$keys/s_server-$v" \
    </dev/null >"$work/s_server-$v.log" 2>&1) &
  spid=$!
  pids+=($spid)
  check "s_server TLS $v listens" wait_listening $sport
  timeout 60 "$bin" fetch -v --backend $backend --ca "$pki/ca.pem" \
    "https://localhost:$sport/f.txt" >"$logs/fetch-$v.out" 2>"$logs/fetch-$v.err"
  check "fetch -v TLS $v: the file, and the connection described" \
    sh -c "grep -q 'a file for' '$logs/fetch-$v.out' && grep -q 'TLS.*$v' '$logs/fetch-$v.err'"
  timeout 300 "$bin" run -v --backend $backend --ca "$pki/ca.pem" --allow-connect 127.0.0.1 \
    "$guests/https_get.wasm" 127.0.0.1 $sport localhost /f.txt \
    >"$logs/run-$v.out" 2>"$logs/run-$v.err"
  check "run -v https_get TLS $v: 200, and the connection described" \
    sh -c "grep -q '^status=200 ' '$logs/run-$v.out' && grep -q '^tls: .*version=TLSv$v' '$logs/run-$v.err'"
  check "fetch and run TLS $v: $expected_backend transport" \
    sh -c "grep -q 'backend $expected_backend' '$logs/fetch-$v.err' &&
           grep -q 'backend=$expected_backend' '$logs/run-$v.err'"
  kill $spid 2>/dev/null
  wait $spid 2>/dev/null
  check "s_server TLS $v has stopped" wait_until 30 sh -c "! kill -0 $spid 2>/dev/null"
done
kill "${pids[@]}" 2>/dev/null  # serve: whatever it logs at exit is in its log too
wait 2>/dev/null
pids=()

# --- the secrets, and where they must not be -------------------------------------------------
# find_secrets KEYDIR LOGDIR: one line per secret found in a log, "LABEL in FILE (how)"; the
# count of secrets looked for on stderr. Exit 1 when none was found, 0 when some was.
find_secrets() {
  python3 - "$1" "$2" <<'PY'
import binascii, os, sys
keydir, logdir = sys.argv[1:3]
secrets = []  # (label, bytes)
for name in sorted(os.listdir(keydir)):
    for line in open(os.path.join(keydir, name)):
        f = line.split()
        if len(f) == 3 and not line.startswith('#'):
            secrets.append((f"{name}:{f[0]}", binascii.unhexlify(f[2])))
print(f"{len(secrets)} secrets", file=sys.stderr)
found = 0
for name in sorted(os.listdir(logdir)):
    data = open(os.path.join(logdir, name), 'rb').read()
    low = data.lower()
    for label, s in secrets:
        h = s.hex().encode()
        for how, needle, hay in (("hex", h, low), ("first half, hex", h[:len(h) // 2], low),
                                 ("raw bytes", s, data)):
            if needle in hay:
                print(f"{label} in {name} ({how})")
                found += 1
sys.exit(0 if found else 1)
PY
}
count_lines() { cat "$keys"/* | grep -c "^$1 "; }
check "the peers logged TLS 1.3 traffic secrets of 4 connections (both directions)" \
  test "$(count_lines CLIENT_TRAFFIC_SECRET_0)" -ge 4 -a "$(count_lines SERVER_TRAFFIC_SECRET_0)" -ge 4
check "the peers logged TLS 1.2 master secrets of 4 connections" test "$(count_lines CLIENT_RANDOM)" -ge 4
check "our logs are not empty" test "$(cat "$logs"/* | wc -c)" -gt 1000
# The search finds what is there: each form of one secret planted in a copy of the logs.
mkdir -p "$work/planted"
cp "$logs"/* "$work/planted/"
one=$(grep -h '^SERVER_TRAFFIC_SECRET_0 ' "$keys"/* | head -1 | awk '{ print $3 }')
printf 'x %s y\n' "${one^^}" >>"$work/planted/serve.err"
printf 'key=%s\n' "${one:0:${#one}/2}" >>"$work/planted/fetch-1.3.err"
python3 -c 'import sys; sys.stdout.buffer.write(bytes.fromhex(sys.argv[1]))' "$one" \
  >>"$work/planted/run-1.3.out"
planted=$(find_secrets "$keys" "$work/planted" 2>/dev/null)
check "the search finds a secret planted as upper-case hex, half hex and raw bytes" \
  bash -c "test -n '$one' &&
         grep -q 'SERVER_TRAFFIC_SECRET_0 in serve.err (hex)' <<<'$planted' &&
         grep -q 'SERVER_TRAFFIC_SECRET_0 in fetch-1.3.err (first half, hex)' <<<'$planted' &&
         grep -q 'SERVER_TRAFFIC_SECRET_0 in run-1.3.out (raw bytes)' <<<'$planted'"
if found=$(find_secrets "$keys" "$logs"); then
  echo "$found"
  check "no secret in serve's, fetch's or run's output" false
else
  check "no secret in serve's, fetch's or run's output" true
fi

finish_then_lab 900  # then the same on kTLS, in the kernel lab
