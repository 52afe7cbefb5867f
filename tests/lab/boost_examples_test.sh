#!/usr/bin/env bash
# Boost's own SSL examples (Debian's libboost1.81-doc) on this library, changed only by the
# sed the README shows (the include and the stream type), built with g++ against the
# installed library (tools/install, pkg-config) as any C++ program is: Asio's cpp11/ssl client
# and server, Beast's HTTP async-ssl server and async-ssl and sync-ssl clients. They talk to
# each other and to openssl s_server / s_client, natively (this kernel has no kTLS: the
# userspace transport), then, with --inside, in the kernel lab with WASI_KTLS_BACKEND=ktls
# (a handshake the kernel cannot take fails there) where /proc/net/tls_stat counts the kTLS
# sessions; and built on Asio's io_uring backend too. Everything is built
# once on the host, under out/boost-examples, and run from there in the lab (read-only).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/checks.sh"  # root (cwd), inside, check, stat_of
source "$root/tests/lab/wait.sh"

build=$root/out/boost-examples
examples=/usr/share/doc/libboost1.81-doc/examples/libs
bin=$build/bin

# --- build (host only) ---------------------------------------------------------------------
if ! $inside; then
  rm -rf "$build"
  src=$build/src
  mkdir -p "$src/example/common" "$bin" "$build/certs"
  if ! tools/install "$build/prefix" >"$build/install.log" 2>&1; then
    cat "$build/install.log"; echo "FAIL  tools/install"; echo "0 passed, 1 failed"; exit 1
  fi
  export PKG_CONFIG_PATH=$build/prefix/lib/pkgconfig

  cp "$examples/asio/example/cpp11/ssl/client.cpp" "$src/asio_client.cpp"
  cp "$examples/asio/example/cpp11/ssl/server.cpp" "$src/asio_server.cpp"
  cp "$examples/beast/example/http/client/async-ssl/http_client_async_ssl.cpp" "$src/beast_client_async.cpp"
  cp "$examples/beast/example/http/client/sync-ssl/http_client_sync_ssl.cpp" "$src/beast_client_sync.cpp"
  cp "$examples/beast/example/http/server/async-ssl/http_server_async_ssl.cpp" "$src/beast_server_async.cpp"
  cp "$examples/beast/example/common/server_certificate.hpp" "$src/example/common/"
  # The swap, exactly as the README shows it.
  sed -i -e 's|#include <boost/asio/ssl.hpp>|#include <ktls/asio/stream.h>|' \
         -e 's|boost::asio::ssl::stream<|wasi_ktls::asio::stream<|g' "$src"/asio_*.cpp
  sed -i -e 's|#include <boost/beast/ssl.hpp>|#include <ktls/asio/beast_ssl_stream.h>|' \
         -e 's|beast::ssl_stream<|wasi_ktls::beast::ssl_stream<|g' "$src"/beast_*.cpp
  only_swapped() {  # only_swapped ORIGINAL COPY: the copy's include and type changed, no more
    local changed
    changed=$(diff "$1" "$2" | grep '^>' || true)  # diff's own status is 1: they differ
    grep -q 'ktls/asio/' <<<"$changed" && ! grep -v 'wasi_ktls::\|ktls/asio/' <<<"$changed"
  }
  check "the sed changed Asio's client: its include and stream type only" \
    only_swapped "$examples/asio/example/cpp11/ssl/client.cpp" "$src/asio_client.cpp"
  check "the sed changed Asio's server: its include and stream type only" \
    only_swapped "$examples/asio/example/cpp11/ssl/server.cpp" "$src/asio_server.cpp"
  check "the sed changed Beast's async-ssl client: its include and stream type only" \
    only_swapped "$examples/beast/example/http/client/async-ssl/http_client_async_ssl.cpp" "$src/beast_client_async.cpp"
  check "the sed changed Beast's sync-ssl client: its include and stream type only" \
    only_swapped "$examples/beast/example/http/client/sync-ssl/http_client_sync_ssl.cpp" "$src/beast_client_sync.cpp"
  check "the sed changed Beast's async-ssl server: its include and stream type only" \
    only_swapped "$examples/beast/example/http/server/async-ssl/http_server_async_ssl.cpp" "$src/beast_server_async.cpp"

  # The Beast server's certificate and key (self-signed, CN=www.example.com), for s_server.
  pem_of() {  # pem_of NAME: the PEM text of `std::string const NAME = "..."` in the header
    awk -v name="$1" '$0 ~ "std::string const " name " =" { on = 1; next }
                      on { line = $0; sub(/^ *"/, "", line); sub(/\\n";?$/, "", line); print line }
                      on && /;$/ { exit }' "$src/example/common/server_certificate.hpp"
  }
  pem_of cert >"$build/certs/beast-cert.pem"
  pem_of key >"$build/certs/beast-key.pem"
  # Beast's root_certificates.hpp trusts public CAs, none of which signed the examples' server
  # certificate (Boost's own ssl::stream fails the same way): its replacement trusts that one.
  {
    echo '// Written by tests/lab/boost_examples_test.sh: the Beast examples trust their own server.'
    echo '#pragma once'
    echo '#include <boost/asio/ssl.hpp>'
    echo 'namespace ssl = boost::asio::ssl;'
    echo 'inline void load_root_certificates(ssl::context& ctx, boost::system::error_code& ec) {'
    echo '  static const char pem[] = R"PEM('
    cat "$build/certs/beast-cert.pem"
    echo ')PEM";'
    echo '  ctx.add_certificate_authority(boost::asio::buffer(pem, sizeof pem - 1), ec);'
    echo '}'
    echo 'inline void load_root_certificates(ssl::context& ctx) {'
    echo '  boost::system::error_code ec;'
    echo '  load_root_certificates(ctx, ec);'
    echo '  if (ec) throw boost::system::system_error{ec};'
    echo '}'
  } >"$src/example/common/root_certificates.hpp"
  # Asio's examples read ca.pem, server.pem (certificate and key) and dh4096.pem from their
  # directory; the shipped certificates expired in November 2026, so they get fresh ones.
  tools/make-test-pki "$build/pki" >/dev/null || { echo "make-test-pki failed"; exit 1; }
  mkdir -p "$build/asio-run"
  cp "$build/pki/ca.pem" "$build/asio-run/ca.pem"
  cat "$build/pki/server.pem" "$build/pki/server.key" >"$build/asio-run/server.pem"
  cp "$examples/asio/example/cpp11/ssl/dh4096.pem" "$build/asio-run/"

  # Two compilers at a time; the io_uring builds are Asio's own switch.
  uring=(-DBOOST_ASIO_HAS_IO_URING -DBOOST_ASIO_DISABLE_EPOLL -luring)
  build_one() {  # build_one NAME [FLAGS...]: bin/NAME from src/NAME%-uring.cpp
    local name=$1 source=${1%-uring}
    g++ -std=c++20 -I"$src" -o "$bin/$name" "$src/$source.cpp" "${@:2}" \
      $(pkg-config --cflags --libs wasi-ktls) >"$build/$name.log" 2>&1
  }
  targets=(asio_client asio_server beast_client_async beast_client_sync beast_server_async
           asio_client-uring asio_server-uring beast_client_async-uring beast_server_async-uring)
  declare -A jobs=()
  for t in "${targets[@]}"; do
    flags=(); [[ $t == *-uring ]] && flags=("${uring[@]}")
    build_one "$t" "${flags[@]}" &
    jobs[$t]=$!
    while (($(jobs -rp | wc -l) >= 2)); do wait -n; done
  done
  for t in "${targets[@]}"; do
    wait "${jobs[$t]}"
    check "g++ $t \$(pkg-config --cflags --libs wasi-ktls)" test -x "$bin/$t" ||
      head -20 "$build/$t.log"
  done
fi

# --- run -----------------------------------------------------------------------------------
work=$(mktemp -d)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
mkdir -p "$work/www"
echo "served by the Beast example over wasi-ktls" >"$work/www/index.html"
if $inside; then
  export WASI_KTLS_BACKEND=ktls
  tx0=$(stat_of TlsTxSw) rx0=$(stat_of TlsRxSw)
fi
ours=0  # endpoints of ours that completed a handshake, for tls_stat
empty() { [[ ! -s $1 ]]; }
has() { grep -qF -- "$2" "$1"; }  # has FILE TEXT

# start NAME PORT COMMAND...: a server in the background, waited for until it listens.
start() {
  (cd "$work" && exec "${@:3}") >"$work/$1.out" 2>"$work/$1.err" &
  pids+=($!)
  check "$1 listens on $2" wait_listening "$2"
}

# 1. Asio: client <-> server (echo), and openssl s_client -> server.
asio_pair() {  # asio_pair SUFFIX PORT
  local s=$1 port=$2
  (cd "$build/asio-run" && exec "$bin/asio_server$s" "$port") >"$work/asio_server$s.out" 2>&1 &
  pids+=($!)
  check "asio_server$s listens" wait_listening "$port"
  echo "hello from the Asio example" |
    (cd "$build/asio-run" && timeout 30 "$bin/asio_client$s" 127.0.0.1 "$port") >"$work/ac$s.out" 2>&1
  check "asio_client$s <-> asio_server$s: the echo comes back" \
    has "$work/ac$s.out" "Reply: hello from the Asio example"
  check "asio_client$s: its verify callback saw the chain" has "$work/ac$s.out" "Verifying /CN=localhost"
  has "$work/ac$s.out" "Reply:" && ours=$((ours + 2))
}
asio_pair "" 9651

# s_client stays open until the echo is back (without -quiet, the end of its input is its
# close_notify).
mkfifo "$work/sc.in"
timeout 30 openssl s_client -connect 127.0.0.1:9651 -CAfile "$build/pki/ca.pem" \
  -verify_return_error <"$work/sc.in" >"$work/sc.out" 2>"$work/sc.err" &
sc=$!
exec 3>"$work/sc.in"
echo "echo me, Asio example" >&3
check "openssl s_client -> asio_server: the echo comes back" \
  wait_until 30 has "$work/sc.out" "echo me, Asio example"
exec 3>&-
wait $sc
has "$work/sc.out" "echo me, Asio example" && ours=$((ours + 1))

# 2. Beast: async-ssl server; async-ssl and sync-ssl clients; openssl on the other side.
start beast_server 9652 "$bin/beast_server_async" 127.0.0.1 9652 "$work/www" 2
start s_server_www 9653 openssl s_server -quiet -www -accept 9653 \
  -cert "$build/certs/beast-cert.pem" -key "$build/certs/beast-key.pem"
beast_get() {  # beast_get CLIENT PORT TARGET EXPECT: a clean exit, the reply, nothing on stderr
  timeout 30 "$bin/$1" 127.0.0.1 "$2" "$3" >"$work/$1-$2.out" 2>"$work/$1-$2.err"
  local rc=$?
  check "$1 -> port $2 $3: exit 0, \"$4\", no error printed" \
    eval "[[ $rc == 0 ]] && has '$work/$1-$2.out' '$4' && empty '$work/$1-$2.err'"
  [[ $rc == 0 ]] && ours=$((ours + $5))
}
for client in beast_client_async beast_client_sync; do
  beast_get $client 9652 /index.html "served by the Beast example over wasi-ktls" 2
  beast_get $client 9653 / "HTTP/1.0 200 ok" 1
done
printf 'GET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n' |
  timeout 30 openssl s_client -quiet -connect 127.0.0.1:9652 >"$work/bsc.out" 2>"$work/bsc.err"
check "openssl s_client -> beast_server: the page" \
  has "$work/bsc.out" "served by the Beast example over wasi-ktls"
has "$work/bsc.out" "served by the Beast example" && ours=$((ours + 1))

# 3. On Asio's io_uring backend: the Asio pair, and Beast's async client and server.
asio_pair -uring 9654
start beast_server-uring 9655 "$bin/beast_server_async-uring" 127.0.0.1 9655 "$work/www" 1
beast_get beast_client_async-uring 9655 /index.html "served by the Beast example over wasi-ktls" 2

# Every close was clean: the Beast server prints any failed read, write or shutdown.
check "beast_server reported no error" empty "$work/beast_server.err"
check "beast_server-uring reported no error" empty "$work/beast_server-uring.err"

if $inside; then
  tx=$(($(stat_of TlsTxSw) - tx0)) rx=$(($(stat_of TlsRxSw) - rx0))
  echo "tls_stat: TlsTxSw +$tx, TlsRxSw +$rx for $ours endpoints of ours"
  # At least: each process's first handshake also runs the library's kernel probe, whose
  # trial installs count too. That every handshake above succeeded under backend ktls is the
  # proof per connection.
  check "tls_stat: a kTLS session each way per endpoint of ours ($ours)" \
    eval "[[ $tx -ge $ours && $rx -ge $ours ]]"
fi

if ((failed > 0)); then
  for f in "$work"/*.err "$work"/*.out; do [[ -s $f ]] && { echo "--- $f"; tail -5 "$f"; }; done
fi
echo "$passed passed, $failed failed ($($inside && echo 'kernel lab, kTLS' || echo native))"
status=$((failed > 0))
$inside && exit $status
((status == 0)) || exit 1

# --- the same inside the kernel lab --------------------------------------------------------
kill "${pids[@]}" 2>/dev/null; wait 2>/dev/null
pids=()
tools/kernel-lab --timeout 900 -- "$0" --inside
