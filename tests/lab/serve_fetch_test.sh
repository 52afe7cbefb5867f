#!/usr/bin/env bash
# Kernel lab: `wasi-ktls serve` answers Debian's curl over kTLS, and `wasi-ktls fetch` gets
# the right bytes over kTLS from our serve, from `openssl s_server -www` and from nginx.
# Proof that the kernel did the work: the connection log says backend=ktls, and
# /proc/net/tls_stat counts the sessions. Run on the host; it boots the lab itself.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh" "$@"  # cwd: the repository root
$inside || exec tools/kernel-lab --timeout 600 -- "$0" --inside

# pattern_ok FILE N: FILE holds exactly N bytes, byte i = i % 251.
pattern_ok() {
  python3 - "$1" "$2" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read(); n = int(sys.argv[2])
sys.exit(0 if len(d) == n and d == bytes(i % 251 for i in range(n)) else 1)
PY
}

bin=bazel-bin/tools/wasi-ktls
work=$(mktemp -d)
pki=$work/pki
tools/make-test-pki "$pki" >/dev/null || { echo "make-test-pki failed"; exit 1; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

source "$root/tests/lab/wait.sh"
source "$root/tests/lab/nginx.sh"
# wait_log FILE REGEX [COUNT]: FILE has COUNT (default 1) lines matching REGEX (grep -E).
log_has() { [[ $(grep -cE -- "$2" "$1" 2>/dev/null) -ge ${3:-1} ]]; }
wait_log() { wait_until 60 log_has "$@"; }

# --- our serve, curl as the client (TLS 1.3 and 1.2) ----------------------------------
port=9443
"$bin" serve --cert "$pki/server.pem" --key "$pki/server.key" --port $port \
  --backend ktls 2>"$work/serve.log" &
pids+=($!)
check "serve listens" wait_listening $port
probe_before_workers() {  # probe_before_workers LOG
  wait_log "$1" '^worker ' &&
    awk '/^kernel probe: / && !w { p = 1 } /^worker / { w = 1 } END { exit !(p && w) }' "$1"
}
check "serve logged its kernel probe before its workers" probe_before_workers "$work/serve.log"

tx0=$(stat_of TlsTxSw) rx0=$(stat_of TlsRxSw)
for v in 1.3 1.2; do
  curl -sS --max-time 60 --cacert "$pki/ca.pem" --tlsv$v --tls-max $v \
    "https://localhost:$port/bytes/1000000" -o "$work/curl-$v.bin"
  check "curl TLS $v /bytes/1000000 from serve: right bytes" pattern_ok "$work/curl-$v.bin" 1000000
done
curl -sS --max-time 60 --cacert "$pki/ca.pem" "https://localhost:$port/" -o "$work/root.txt"
check "curl GET / from serve" grep -q 'GET /bytes/N' "$work/root.txt"
check "serve logged backend=ktls for every curl connection" \
  wait_log "$work/serve.log" 'backend=ktls .* ok$' 3
check "serve logged TLS 1.2 and 1.3" \
  sh -c "grep -q 'version=1.2 ' '$work/serve.log' && grep -q 'version=1.3 ' '$work/serve.log'"
check "tls_stat: serve's kTLS TX and RX sessions counted" \
  test $(($(stat_of TlsTxSw) - tx0)) -ge 3 -a $(($(stat_of TlsRxSw) - rx0)) -ge 3

# --- serve --root: a 64 MiB file spliced into kTLS (send_file), on io_uring and on poll ------
mkdir -p "$work/root"
head -c $((64 << 20)) /dev/urandom >"$work/root/big.bin"
for engine in io_uring poll; do
  fport=$((port + 10))
  [[ $engine == poll ]] && fport=$((port + 11))
  "$bin" serve --cert "$pki/server.pem" --key "$pki/server.key" --port $fport --root "$work/root" \
    --backend ktls --engine $engine --connections 1 2>"$work/serve-root-$engine.log" &
  pids+=($!)
  check "serve --root ($engine engine) listens" wait_listening $fport
  tx_before=$(stat_of TlsTxSw)
  curl -sS --max-time 120 --cacert "$pki/ca.pem" "https://localhost:$fport/big.bin" \
    -o "$work/big-$engine.bin"
  wait_log "$work/serve-root-$engine.log" 'backend=ktls .* out=671089[0-9][0-9] ok'
  check "send_file ($engine engine): 64 MiB file arrives intact at curl over kTLS" \
    sh -c "cmp -s '$work/root/big.bin' '$work/big-$engine.bin' &&
           grep -q 'engine $engine' '$work/serve-root-$engine.log' &&
           grep -q 'backend=ktls .* out=671089[0-9][0-9] ok' '$work/serve-root-$engine.log'"
  check "send_file ($engine engine): a kTLS TX session was opened" \
    test $(($(stat_of TlsTxSw) - tx_before)) -ge 1
  rm -f "$work/big-$engine.bin"
done
mkdir -p "$work/outside" && echo secret >"$work/outside/secret.txt"
ln -s "$work/outside/secret.txt" "$work/root/link.txt"
"$bin" serve --cert "$pki/server.pem" --key "$pki/server.key" --port $((port + 12)) \
  --root "$work/root" --connections 2 2>"$work/serve-escape.log" &
pids+=($!)
check "serve --root (escapes) listens" wait_listening $((port + 12))
code1=$(curl -s -o /dev/null -w '%{http_code}' --path-as-is --cacert "$pki/ca.pem" \
  "https://localhost:$((port + 12))/../outside/secret.txt")
code2=$(curl -s -o /dev/null -w '%{http_code}' --cacert "$pki/ca.pem" \
  "https://localhost:$((port + 12))/link.txt")
check "serve --root refuses .. and symlinks out of the root (403, 403): got $code1, $code2" \
  test "$code1$code2" = 403403

# --- keep-alive: two requests on one connection ------------------------------------------------
kport=$((port + 13))
"$bin" serve --cert "$pki/server.pem" --key "$pki/server.key" --port $kport --backend ktls \
  --connections 1 2>"$work/serve-keepalive.log" &
pids+=($!)
check "keep-alive serve listens" wait_listening $kport
curl -sS --max-time 60 --cacert "$pki/ca.pem" "https://localhost:$kport/bytes/300000" \
  "https://localhost:$kport/bytes/200000" -o "$work/ka1.bin" -o "$work/ka2.bin"
wait_log "$work/serve-keepalive.log" '^peer='
check "keep-alive: both responses right, over one kTLS connection" \
  sh -c "[ \$(grep -c 'backend=ktls' '$work/serve-keepalive.log') = 1 ] &&
         grep -q 'out=500[0-9][0-9][0-9] ok' '$work/serve-keepalive.log'"
check "keep-alive: first body" pattern_ok "$work/ka1.bin" 300000
check "keep-alive: second body" pattern_ok "$work/ka2.bin" 200000

# --- serve --echo, with Python's ssl module (OpenSSL) as the client ------------------------------
eport=$((port + 14))
"$bin" serve --echo --cert "$pki/server.pem" --key "$pki/server.key" --port $eport \
  --backend ktls --connections 1 2>"$work/serve-echo.log" &
pids+=($!)
check "echo serve listens" wait_listening $eport
python3 - "$eport" "$pki/ca.pem" >"$work/echo.out" 2>&1 <<'PY'
import os, socket, ssl, sys
port, ca = int(sys.argv[1]), sys.argv[2]
ctx = ssl.create_default_context(cafile=ca)
data = os.urandom(1000000)
with socket.create_connection(("127.0.0.1", port), timeout=60) as raw:
    with ctx.wrap_socket(raw, server_hostname="localhost") as s:
        got = bytearray()
        s.sendall(data[:500000])
        while len(got) < 100000:
            got += s.recv(65536)
        s.sendall(data[500000:])
        while len(got) < len(data):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.unwrap()  # our close_notify; serve answers with its own
        print("echo", "ok" if bytes(got) == data else "MISMATCH", len(got))
PY
wait_log "$work/serve-echo.log" '^peer='
check "serve --echo returns 1 MB intact to a Python ssl client, over kTLS" \
  sh -c "grep -q '^echo ok 1000000' '$work/echo.out' &&
         grep -q 'backend=ktls in=1000000 out=1000000 ok' '$work/serve-echo.log'"

# --- idle kTLS keep-alive connections: what they cost, and that each wakes for its next request --
# Each connection gets an answer, idles (serve waits with a one-byte MSG_PEEK, holding no
# buffer), then asks again. Serve's RSS growth per idle connection is bounded generously
# (about 4 KiB now; a 64 KiB read buffer each before).
iport=$((port + 16))
"$bin" serve --cert "$pki/server.pem" --key "$pki/server.key" --port $iport --backend ktls \
  --threads 1 --connections 201 2>"$work/serve-idle.log" &
ipid=$!
pids+=($ipid)
check "idle serve listens" wait_listening $iport
python3 - "$iport" "$pki/ca.pem" "$ipid" >"$work/idle.out" 2>&1 <<'PY'
import socket, ssl, sys
port, ca, pid = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
ctx = ssl.create_default_context(cafile=ca)
def rss_kib():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
def get(s, n):
    s.sendall(b"GET /bytes/%d HTTP/1.1\r\nHost: x\r\n\r\n" % n)
    got = b""
    while b"\r\n\r\n" not in got or len(got.split(b"\r\n\r\n", 1)[1]) < n:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("closed early")
        got += chunk
    return got.split(b"\r\n\r\n", 1)[1] == bytes(i % 251 for i in range(n))
def connect():
    return ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=60),
                           server_hostname="localhost")
warm = connect()
ok = get(warm, 100000)
before = rss_kib()
conns = [connect() for _ in range(200)]
ok = all(get(s, 100000) for s in conns) and ok
after = rss_kib()
ok = all(get(s, 1000) for s in conns) and ok  # each wakes from its idle wait
for s in conns + [warm]:
    s.close()
print("idle", "ok" if ok else "MISMATCH", (after - before) // 200)
PY
read -r _ idle_ok idle_kib <"$work/idle.out"
echo "idle kTLS connections: ${idle_kib:-?} KiB of serve RSS each"
check "200 idle kTLS keep-alive connections: answers right before and after idling" \
  test "${idle_ok:-}" = ok
check "200 idle kTLS keep-alive connections: under 16 KiB of serve RSS each (${idle_kib:-?})" \
  test "${idle_kib:-99999}" -lt 16

# --- serve --require-client-cert: curl with and without a client certificate ---------------------
mport=$((port + 15))
"$bin" serve --cert "$pki/server.pem" --key "$pki/server.key" --ca "$pki/ca.pem" \
  --require-client-cert --port $mport --connections 2 2>"$work/serve-mtls.log" &
pids+=($!)
check "mTLS serve listens" wait_listening $mport
curl -sS --max-time 30 --cacert "$pki/ca.pem" --cert "$pki/client.pem" --key "$pki/client.key" \
  "https://localhost:$mport/bytes/1000" -o "$work/mtls.bin"
check "mTLS: a client with a certificate gets the bytes" pattern_ok "$work/mtls.bin" 1000
curl -s --max-time 30 --cacert "$pki/ca.pem" "https://localhost:$mport/bytes/1000" \
  -o "$work/nocert.bin"
check "mTLS: a client without a certificate is refused, and the log says why" \
  wait_log "$work/serve-mtls.log" 'peer did not return a certificate'

# --- our fetch against our serve (both ends kTLS) -----------------------------------------
for v in 1.2 1.3; do
  "$bin" fetch -v --backend ktls --ca "$pki/ca.pem" --min-version $v --max-version $v \
    "https://localhost:$port/bytes/2000000" -o "$work/fetch-$v.bin" 2>"$work/fetch-$v.err"
  check "fetch TLS $v from serve: right bytes" pattern_ok "$work/fetch-$v.bin" 2000000
  check "fetch TLS $v reports backend ktls" grep -q '^\* backend ktls$' "$work/fetch-$v.err"
done

# --- fetch against openssl s_server -www ---------------------------------------------------
sport=9444
openssl s_server -quiet -www -accept $sport -cert "$pki/server.pem" -key "$pki/server.key" \
  </dev/null >"$work/s_server.log" 2>&1 &
pids+=($!)
check "openssl s_server listens" wait_listening $sport
"$bin" fetch -v --backend ktls --ca "$pki/ca.pem" "https://localhost:$sport/" \
  -o "$work/s_server.html" 2>"$work/fetch-s_server.err"
check "fetch from openssl s_server -www over kTLS" \
  sh -c "grep -q 'Ciphers supported in s_server' '$work/s_server.html' &&
         grep -q '^\* backend ktls$' '$work/fetch-s_server.err'"

# --- fetch against nginx ---------------------------------------------------------------------
nport=9445
mkdir -p "$work/nginx/html"
head -c 3000000 /dev/urandom >"$work/nginx/html/blob"
start_nginx "$work/nginx" $nport "$pki"
check "nginx listens" wait_listening $nport
for v in 1.2 1.3; do
  "$bin" fetch -v --backend ktls --ca "$pki/ca.pem" --min-version $v --max-version $v \
    "https://localhost:$nport/blob" -o "$work/nginx-$v.bin" 2>"$work/fetch-nginx-$v.err"
  check "fetch TLS $v from nginx over kTLS: 3 MB intact" \
    sh -c "cmp -s '$work/nginx/html/blob' '$work/nginx-$v.bin' &&
           grep -q '^\* backend ktls$' '$work/fetch-nginx-$v.err'"
done

if ((failed > 0)); then
  for f in "$work"/*.log "$work"/*.err "$work"/*.out; do echo "--- $f"; tail -5 "$f"; done
fi
echo "$passed passed, $failed failed"
((failed == 0))
