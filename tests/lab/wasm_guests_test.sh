#!/usr/bin/env bash
# WebAssembly guests through `wasi-ktls run`, as a user runs them: the C guests of
# tests/guests (built by Bazel with clang-14 for wasm32-wasi) against real TLS servers.
# First natively (this kernel has no kTLS: the userspace transport), then, with --inside,
# in the kernel lab where `--backend ktls` must put the keys in the kernel
# (/proc/net/tls_stat counts the sessions). Run on the host; it boots the lab itself.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh" "$@"  # cwd: the repository root

bin=$root/bazel-bin/tools/wasi-ktls
guests=$root/bazel-bin/tests/guests
# The compile cache: filled by the native run, read (read-only) by the lab run.
cache=$root/out/wasm-guest-cache
work=$(mktemp -d)
pki=$work/pki
tools/make-test-pki "$pki" >/dev/null || { echo "make-test-pki failed"; exit 1; }
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

source "$root/tests/lab/wait.sh"
source "$root/tests/lab/nginx.sh"

if $inside; then backend=ktls; else backend=auto; fi
export XDG_CACHE_HOME=$cache
mkdir -p "$cache" 2>/dev/null
run() {  # run NAME.wasm ARGS...: the guest, allowed to reach loopback, trusting the test CA
  timeout 300 "$bin" run -v --backend "$backend" --ca "$pki/ca.pem" --allow-connect 127.0.0.1 \
    "$guests/$1" "${@:2}"
}

# --- servers -------------------------------------------------------------------------------
port=9543 eport=9544 mport=9545 sport=9546 nport=9547 e6port=9548 aport=9549
"$bin" serve --cert "$pki/server.pem" --key "$pki/server.key" --port $port --backend $backend \
  2>"$work/serve.log" &
pids+=($!)
"$bin" serve --echo --cert "$pki/server.pem" --key "$pki/server.key" --port $eport \
  --backend $backend 2>"$work/echo.log" &
pids+=($!)
"$bin" serve --echo --listen ::1 --cert "$pki/server.pem" --key "$pki/server.key" --port $e6port \
  --backend $backend 2>"$work/echo6.log" &
pids+=($!)
"$bin" serve --alpn h2,http/1.1 --cert "$pki/server.pem" --key "$pki/server.key" --port $aport \
  --backend $backend 2>"$work/alpn.log" &
pids+=($!)
"$bin" serve --require-client-cert --ca "$pki/ca.pem" --cert "$pki/server.pem" \
  --key "$pki/server.key" --port $mport --backend $backend 2>"$work/mtls.log" &
pids+=($!)
openssl s_server -quiet -www -accept $sport -cert "$pki/server.pem" -key "$pki/server.key" \
  </dev/null >"$work/s_server.log" 2>&1 &
pids+=($!)
mkdir -p "$work/nginx/html"
python3 -c "import sys; sys.stdout.buffer.write(bytes(i % 251 for i in range(3000000)))" \
  >"$work/nginx/html/blob"
start_nginx "$work/nginx" $nport "$pki"
for p in $port $eport $mport $sport $nport $e6port $aport; do check "server on port $p listens" wait_listening $p; done

# --- 1. HTTPS GET from serve, openssl s_server -www and nginx --------------------------------
if $inside; then tx0=$(stat_of TlsTxSw) rx0=$(stat_of TlsRxSw); fi
run https_get.wasm 127.0.0.1 $port localhost /bytes/2000000 2000000 >"$work/get.out" 2>"$work/get.err"
check "https_get: 2 MB from serve, checked in the guest" out_has "$work/get.out" '^status=200 body=2000000 ok$'
check "https_get: -v names the connection and its backend" \
  out_has "$work/get.err" "^tls: server=localhost version=TLSv1\.[23] suite=.* backend=$([[ $backend == ktls ]] && echo ktls || echo '(ktls|userspace)')"
run https_get.wasm 127.0.0.1 $sport localhost / >"$work/sget.out" 2>"$work/sget.err"
check "https_get: openssl s_server -www answers 200" out_has "$work/sget.out" '^status=200 '
run https_get.wasm 127.0.0.1 $nport localhost /blob 3000000 >"$work/nget.out" 2>"$work/nget.err"
check "https_get: 3 MB from nginx, checked in the guest" out_has "$work/nget.out" '^status=200 body=3000000 ok$'

timeout 300 "$bin" run -v --backend "$backend" --alpn foo,http/1.1 --ca "$pki/ca.pem" \
  --allow-connect 127.0.0.1 "$guests/https_get.wasm" 127.0.0.1 $aport localhost /bytes/1000 1000 \
  >"$work/alpn.out" 2>"$work/alpn.err"
check "--alpn: negotiated with the server, named by -v" \
  sh -c "grep -q 'body=1000 ok' '$work/alpn.out' && grep -q 'alpn=http/1.1 ' '$work/alpn.err'"

# --- 2. bulk: 16 MiB up and 16 MiB down through serve --echo ----------------------------------
run bulk.wasm 127.0.0.1 $eport localhost 16 >"$work/bulk.out" 2>"$work/bulk.err"
check "bulk: 16 MiB each way, checksummed in the guest" out_has "$work/bulk.out" '^up=16777216 down=16777216 .*checksum ok$'

# --- 3. failures -------------------------------------------------------------------------------
run handshake_fail.wasm 127.0.0.1 $port wrong.example >"$work/fail.out" 2>&1
check "wrong server name: io-error that says certificate" out_has "$work/fail.out" 'handshake failed: .*certificate'
run https_get.wasm 127.0.0.1 $mport localhost /bytes/1000 1000 >"$work/nocert.out" 2>&1
check "mTLS server refuses a guest without --cert" test $? -ne 0
timeout 300 "$bin" run --backend "$backend" --ca "$pki/ca.pem" --cert "$pki/client.pem" \
  --key "$pki/client.key" --allow-connect 127.0.0.1:$mport \
  "$guests/https_get.wasm" 127.0.0.1 $mport localhost /bytes/1000 1000 >"$work/mtls.out" 2>&1
check "mTLS server accepts the guest with --cert/--key" out_has "$work/mtls.out" '^status=200 body=1000 ok$'
timeout 60 "$bin" run --allow-connect 10.0.0.0/8 "$guests/connect_denied.wasm" 127.0.0.1 $port \
  >"$work/denied.out" 2>&1
check "a connect outside --allow-connect gets access-denied" test $? -eq 0
timeout 60 "$bin" run --allow-connect 127.0.0.1:$port "$guests/connect_denied.wasm" 127.0.0.1 $port \
  >"$work/allowed.out" 2>&1
check "inside --allow-connect it connects (the guest's own exit status, 1, passes through)" \
  test $? -eq 1

# --- the rest of the surface: cli, random, clocks, lookup, IPv4 and IPv6, socket options,
# write-zeroes, skip, splice, poll, close-output, shutdown, wasi:cli/exit ----------------------
timeout 300 "$bin" run --backend "$backend" --ca "$pki/ca.pem" --allow-connect 127.0.0.1 \
  --allow-connect '[::1]' "$guests/stream_ops.wasm" $eport $e6port </dev/null >"$work/ops.out" 2>&1
check "stream_ops: every call behaves, exit through wasi:cli/exit(ok)" \
  sh -c "test $? -eq 0 && grep -qx 'all ok' '$work/ops.out'"
grep -qx 'all ok' "$work/ops.out" || sed 's/^/  stream_ops: /' "$work/ops.out"

# --- the guest's environment: exactly what --env gives, through wasi:cli and preview1 --------
WK_TEST_FROM_HOST='from the host' timeout 60 "$bin" run --env A=1 --env EMPTY= --env B=x=y \
  --env WK_TEST_FROM_HOST "$guests/environment.wasm" >"$work/env.out" 2>&1
printf '%s\n' A=1 EMPTY= B=x=y 'WK_TEST_FROM_HOST=from the host' \
  '4 variables, the same both ways' >"$work/env.expected"
check "--env NAME=VALUE and --env NAME (the value here): get-environment and environ agree" \
  sh -c "test $? -eq 0 && cmp -s '$work/env.out' '$work/env.expected'"
timeout 60 "$bin" run "$guests/environment.wasm" >"$work/noenv.out" 2>&1
check "without --env the guest's environment is empty" \
  sh -c "test $? -eq 0 && grep -qx '0 variables, the same both ways' '$work/noenv.out'"
timeout 60 "$bin" run --env WK_TEST_UNSET_VARIABLE "$guests/environment.wasm" >"$work/unset.out" 2>&1
check "--env NAME with NAME unset here: exit 2 naming it, nothing run" \
  sh -c "test $? -eq 2 && grep -q 'WK_TEST_UNSET_VARIABLE is not set' '$work/unset.out' &&
         ! grep -q variables '$work/unset.out'"

# --- TLS over streams that are not a socket of the guest's: userspace TLS over the streams ---
# stdin and stdout are a TCP connection to serve (opened by bash); the guest uses them through
# wasi:cli, so the host cannot hand the socket to the kernel and says why.
timeout 300 bash -c 'exec "$0" run -v --ca "$1" "$2" localhost /bytes/300000 300000 \
    <>/dev/tcp/127.0.0.1/"$3" >&0' "$bin" "$pki/ca.pem" "$guests/tls_over_stdio.wasm" $port \
  2>"$work/stdio.err"
check "TLS over the guest's stdin/stdout streams: 300 kB checked" out_has "$work/stdio.err" '^status=200 body=300000 ok$'
check "TLS over stdio streams: -v says userspace and why" \
  out_has "$work/stdio.err" 'backend=userspace \(the streams are not a TCP socket of this host'
timeout 60 bash -c 'exec "$0" run --backend ktls --ca "$1" "$2" localhost /bytes/10 10 \
    <>/dev/tcp/127.0.0.1/"$3" >&0' "$bin" "$pki/ca.pem" "$guests/tls_over_stdio.wasm" $port \
  2>"$work/stdio-ktls.err"
check "--backend ktls over non-socket streams: the handshake fails saying why" \
  out_has "$work/stdio-ktls.err" 'backend ktls requested but the streams are not a TCP socket'

# --- 4. close-output, then the reply read to its end ------------------------------------------
run close_output.wasm 127.0.0.1 $port localhost /bytes/100000 >"$work/close.out" 2>&1
check "close-output, then the whole reply" out_has "$work/close.out" '^ok$'

# --- the README's example, built as the README says (not by Bazel) ----------------------------
clang-14 --target=wasm32-wasi --sysroot=/usr -O2 -mexec-model=reactor -Iwasi_binding/sdk \
  -o "$work/readme_example.wasm" tests/guests/readme_example.c
timeout 300 "$bin" run -v --backend "$backend" --ca "$pki/ca.pem" --allow-connect 127.0.0.1 \
  "$work/readme_example.wasm" localhost $sport / >"$work/readme.out" 2>"$work/readme.err"
check "README example, built by hand, against openssl s_server -www" \
  sh -c "grep -q 's_server' '$work/readme.out' && grep -q 'backend=$([[ $backend == ktls ]] && echo ktls || echo '')' '$work/readme.err'"

# --- 5. hostile guests: one trap line each, status 134 ----------------------------------------
hostile() {  # hostile NAME CAUSE-REGEX [ARGS...]
  timeout 60 "$bin" run --ca "$pki/ca.pem" --allow-connect 127.0.0.1 "$guests/$1.wasm" "${@:3}" \
    >"$work/$1.out" 2>"$work/$1.err"
  local rc=$?
  check "$1: exit 134 with a trap line: $2" \
    sh -c "test $rc -eq 134 && grep -qE -- '^trap: .*$2' '$work/$1.err'"
}
hostile hostile_oob_pointer 'server-name: .*past the end of guest memory' 127.0.0.1 $port
hostile hostile_len_past_end 'output-stream.write: contents: .*past the end' 127.0.0.1 $port
hostile hostile_misaligned_retarea 'not 8-byte aligned' 127.0.0.1 $port
hostile hostile_unknown_handle 'handle 12345 is not a live resource'
hostile hostile_double_drop '\[resource-drop\]pollable: .*not a live resource'
hostile hostile_parent_before_child '\[resource-drop\]tcp-socket: .*child'
hostile hostile_bad_utf8_name 'not valid UTF-8' 127.0.0.1 $port
hostile hostile_bad_family 'address-family: 7'
hostile hostile_bad_addr_tag 'ip-socket-address tag 5'
hostile hostile_block_forever 'can ever become ready'

# --- loading --------------------------------------------------------------------------------
timeout 60 "$bin" run /etc/hostname >/dev/null 2>"$work/notwasm.err"
check "a file that is not wasm: exit 2 with a reason" \
  sh -c "test $? -eq 2 && grep -q 'cannot load' '$work/notwasm.err'"
timeout 60 "$bin" run "$guests/missing_import.wasm" >"$work/missing.out" 2>"$work/missing.err"
check "an import the host lacks: exit 2 naming it, nothing run" \
  sh -c "test $? -eq 2 && grep -q 'wasi:filesystem/preopens@0.2.0.*get-directories' '$work/missing.err' &&
         ! test -s '$work/missing.out'"

if $inside; then
  check "tls_stat: the guests' kTLS TX and RX sessions counted" \
    test $(($(stat_of TlsTxSw) - tx0)) -ge 8 -a $(($(stat_of TlsRxSw) - rx0)) -ge 8
  # Without a writable cache (the lab's root is read-only) the module still runs.
  XDG_CACHE_HOME=/nonexistent/cache run https_get.wasm 127.0.0.1 $port localhost /bytes/10 10 \
    >"$work/ro.out" 2>&1
  check "no writable cache: compiled in a temporary directory, runs" out_has "$work/ro.out" 'body=10 ok'
else
  # The cache: a second run of a module compiles nothing (its .so is the same file).
  compiled() { ls -il --time-style=+%s.%N "$cache"/wasi-ktls/*.so 2>/dev/null; }
  so_before=$(compiled)
  run https_get.wasm 127.0.0.1 $port localhost /bytes/10 10 >/dev/null 2>&1
  check "second run of a module reuses its compiled .so (same inode and mtime)" \
    sh -c "test -n '$so_before' && test '$(compiled)' = '$so_before'"
fi

finish_then_lab 900  # then the same on kTLS, in the kernel lab
