#!/usr/bin/env bash
# mTLS to a real database from a WebAssembly guest: tests/guests/postgres_client against
# Debian's PostgreSQL 15 (tests/lab/postgres.sh: TLS, `cert` for one role, SCRAM-SHA-256 for
# another). The guest speaks SSLRequest in plaintext on its TCP streams, reads the one-byte
# answer, and hands the same streams to client-handshake. Natively (no kTLS here) the host
# must still take them as the socket's own streams (userspace transport, for want of kTLS);
# then, with --inside in the kernel lab, `--backend ktls` must put the session in the kernel:
# nothing of the server's handshake may have been read ahead, and /proc/net/tls_stat counts
# it. Run on the host; it boots the lab itself.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh" "$@"  # cwd: the repository root

bin=$root/bazel-bin/tools/wasi-ktls
guest=$root/bazel-bin/tests/guests/postgres_client.wasm
export XDG_CACHE_HOME=$root/out/wasm-guest-cache  # filled natively, read in the lab
mkdir -p "$XDG_CACHE_HOME" 2>/dev/null
work=$(mktemp -d)
chmod 711 "$work"  # the postgres user reaches its own directory inside, nothing else
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
source "$root/tests/lab/wait.sh"
source "$root/tests/lab/postgres.sh"

tools/make-test-pki "$work/pki" >/dev/null || { echo "make-test-pki failed"; exit 1; }
password=$(openssl rand -hex 16)
port=9643
check "PostgreSQL 15 starts with ssl = on, cert and scram-sha-256 roles" \
  start_postgres "$work/pg" $port "$work/pki" "$password"
pglog=$work/pg/log

if $inside; then backend=ktls; else backend=auto; fi
# guest NAME USER [RUN-OPTIONS...]: the guest as certuser or scramuser, output in $work/NAME.*
guest() {
  timeout 300 "$bin" run -v --backend "$backend" --ca "$work/pki/ca.pem" \
    --allow-connect 127.0.0.1:$port "${@:3}" "$guest" 127.0.0.1 $port localhost "$2" postgres \
    >"$work/$1.out" 2>"$work/$1.err"
  echo $? >"$work/$1.rc"
  sed "s/^/  $1: /" "$work/$1.out" "$work/$1.err"
}
status_is() { [[ $(cat "$work/$1.rc") == "$2" ]]; }
if $inside; then
  backend_line="backend=ktls"
else
  # No kTLS in this kernel, yet the streams still count as the socket's own: the reason is
  # the kernel's, not "the streams are not a TCP socket".
  backend_line="backend=userspace \(kernel cannot take"
fi

# --- cert: the client certificate is the credential -----------------------------------------
if $inside; then
  # Every process measures the kernel once (ktls/probe), installing keys on pairs of its own:
  # what `wasi-ktls probe` adds to the counters, a guest's run adds too, besides its sessions.
  tx0=$(stat_of TlsTxSw) rx0=$(stat_of TlsRxSw)
  "$bin" probe >/dev/null
  probe_tx=$(($(stat_of TlsTxSw) - tx0)) probe_rx=$(($(stat_of TlsRxSw) - rx0))
  tx0=$(stat_of TlsTxSw) rx0=$(stat_of TlsRxSw)
fi
guest cert certuser --cert "$work/pki/client.pem" --key "$work/pki/client.key"
check "cert: SSLRequest answered S, then TLS on the same streams" \
  sh -c "grep -qx 'SSLRequest: S' '$work/cert.out' && grep -q '^TLS: handshake done' '$work/cert.out'"
check "cert: -v shows the session's transport: $backend_line" \
  out_has "$work/cert.err" "^tls: server=localhost version=TLSv1\.3 .*$backend_line"
check "cert: authenticated without a password" out_has "$work/cert.out" '^auth: none asked'
check "cert: SELECT 1 answers 1" out_has "$work/cert.out" '^SELECT 1: 1$'
check "cert: pg_stat_ssl names the client certificate" \
  out_has "$work/cert.out" '^session: certuser\|TLSv1\.3\|[A-Z0-9_]+\|/CN=wasi-ktls test client$'
check "cert: about 1 MiB of rows, each checked in the guest" \
  out_has "$work/cert.out" '^big query: rows=14000 bytes=1[0-9]{6} checked ok$'
check "cert: Terminate, and the server's close_notify" out_has "$work/cert.out" '^terminated: '
check "cert: the guest exits 0" status_is cert 0
if $inside; then
  tx=$(($(stat_of TlsTxSw) - tx0 - probe_tx)) rx=$(($(stat_of TlsRxSw) - rx0 - probe_rx))
  echo "  tls_stat: the guest's run added TlsTxSw +$((tx + probe_tx)), TlsRxSw +$((rx + probe_rx));" \
    "the probe alone adds +$probe_tx, +$probe_rx"
  check "cert: /proc/net/tls_stat counts the guest's connection: one kTLS TX and one RX session" \
    test $tx -eq 1 -a $rx -eq 1
  check "cert: no kTLS session left open, no decrypt error" \
    test "$(stat_of TlsCurrTxSw) $(stat_of TlsCurrRxSw) $(stat_of TlsDecryptError)" = "0 0 0"
fi
check "cert: the server logged the certificate-authenticated session" \
  sh -c "grep -E 'connection authenticated: identity=\"CN=wasi-ktls test client\" method=cert' '$pglog' &&
         grep -E 'connection authorized: user=certuser database=postgres application_name=wasi-ktls guest SSL enabled \(protocol=TLSv1\.3' '$pglog'"

# --- no client certificate: TLS works, the server refuses, and says why ---------------------
guest nocert certuser
check "no client certificate: the server's refusal reaches the guest, printed" \
  out_has "$work/nocert.out" '^server error: FATAL 28000: connection requires a valid client certificate'
check "no client certificate: the guest exits 1" status_is nocert 1

# --- SCRAM-SHA-256 over the same TLS, the password from the environment --------------------
PGPASSWORD=$password guest scram scramuser --env PGPASSWORD
check "SCRAM: authenticated, the server's signature verified" \
  out_has "$work/scram.out" '^auth: SCRAM-SHA-256, the server.s signature verified$'
check "SCRAM: over TLS ($backend_line), queries checked, exit 0" \
  sh -c "grep -qE '^tls: .*$backend_line' '$work/scram.err' &&
         grep -qE '^big query: rows=14000 .* checked ok$' '$work/scram.out' && test \$(cat '$work/scram.rc') = 0"
check "SCRAM: the server logged it" \
  grep -q 'connection authenticated: identity="scramuser" method=scram-sha-256' "$pglog"
PGPASSWORD=not-the-password guest wrongpw scramuser --env PGPASSWORD
check "SCRAM with a wrong password: the server's refusal, printed; exit 1" \
  sh -c "grep -q '^server error: FATAL 28P01: password authentication failed for user \"scramuser\"' '$work/wrongpw.out' &&
         test \$(cat '$work/wrongpw.rc') = 1"
guest nopw scramuser
check "SCRAM without --env PGPASSWORD: the guest says the variable is missing" \
  out_has "$work/nopw.out" 'PGPASSWORD is not set'
no_password_in() { ! grep -qF -- "$password" "$@"; }
check "the password is in no output and no log" no_password_in "$work"/*.out "$work"/*.err "$pglog"

finish_then_lab 600  # then the same on kTLS, in the kernel lab
