// After a kTLS hand-over the keys live in the kernel, and nowhere else (run in tools/kernel-lab
// as root): this process's memory, live and freed, holds no copy of the AEAD keys or TLS 1.3
// IVs the kernel reports for our sockets, and no copy of the TLS 1.3 traffic secrets the
// OpenSSL peer logged, unless the kernel can rekey (then the two secrets are all we keep).
// Our client against s_server and s_client against our server, TLS 1.3 and 1.2.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fcntl.h>
#include <openssl/crypto.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "handshake/openssl_memory.h"
#include "ktls/conn/connection.h"
#include "ktls/probe/probe.h"
#include "ktls/record/install.h"
#include "tests/support/connection_pair.h"
#include "tests/support/kernel_evidence.h"
#include "tests/support/message_of.h"
#include "tests/support/openssl_peer.h"
#include "tests/support/process_memory.h"
#include "tests/support/tls_contexts.h"
#include "tests/support/tls_matrix.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;
using namespace std::chrono_literals;

namespace {

constexpr std::uint8_t kMask = 0xa5;

struct Needle {
  std::string what;
  std::vector<std::uint8_t> masked;
};

ConnectionOptions kernel_only() {
  ConnectionOptions o;
  o.backend = Backend::ktls;
  o.handshake_timeout = 30s;
  o.io_timeout = 60s;
  return o;
}

// The key (and, TLS 1.3, the IV) of one direction as the kernel holds it, masked at once.
void kernel_needles(int fd, Direction d, TlsVersion v, std::vector<Needle>& out) {
  auto info = read_kernel_crypto_info(fd, d);
  REQUIRE_MESSAGE(info.ok(), message_of(info));
  const std::string dir(to_string(d));
  out.push_back({dir + " AEAD key", masked(info->key(), kMask)});
  if (v == TlsVersion::tls13) {
    // salt || iv is the 12-byte TLS 1.3 IV.
    std::vector<std::uint8_t> iv(info->salt().begin(), info->salt().end());
    iv.insert(iv.end(), info->iv().begin(), info->iv().end());
    if (info->salt().empty()) iv.assign(info->iv().begin(), info->iv().end());
    out.push_back({dir + " IV", masked(iv, kMask)});
    OPENSSL_cleanse(iv.data(), iv.size());
  }
}

int hex(char c) { return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10; }

// CLIENT_/SERVER_TRAFFIC_SECRET_0 from the peer's key log, masked while decoded; nullopt
// until both are there (the peer may log its own one after its Finished went out).
std::optional<std::vector<Needle>> try_secret_needles(const std::string& keylog) {
  int fd = ::open(keylog.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::vector<char> text(64 * 1024);
  const ssize_t n = ::read(fd, text.data(), text.size());
  ::close(fd);
  std::vector<Needle> out;
  for (std::size_t pos = 0; n > 0 && pos < static_cast<std::size_t>(n);) {
    std::size_t end = pos;
    while (end < static_cast<std::size_t>(n) && text[end] != '\n') ++end;
    const std::string_view line(text.data() + pos, end - pos);
    for (const char* label : {"CLIENT_TRAFFIC_SECRET_0 ", "SERVER_TRAFFIC_SECRET_0 "}) {
      if (!line.starts_with(label)) continue;
      const std::string_view hexed = line.substr(line.rfind(' ') + 1);
      std::vector<std::uint8_t> m;
      for (std::size_t i = 0; i + 1 < hexed.size(); i += 2)
        m.push_back(static_cast<std::uint8_t>((hex(hexed[i]) << 4 | hex(hexed[i + 1])) ^ kMask));
      out.push_back({std::string(label, std::strlen(label) - 1), std::move(m)});
    }
    pos = end + 1;
  }
  OPENSSL_cleanse(text.data(), text.size());
  if (out.size() != 2) return std::nullopt;
  return out;
}

void secret_needles(const std::string& keylog, std::vector<Needle>& out) {
  const auto until = std::chrono::steady_clock::now() + 20s;
  std::optional<std::vector<Needle>> got;
  while (!(got = try_secret_needles(keylog)) && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(20ms);
  REQUIRE_MESSAGE(got.has_value(), "the peer's key log never had both traffic secrets");
  out.insert(out.end(), got->begin(), got->end());
}

void check_gone(const std::vector<Needle>& needles) {
  for (const Needle& n : needles) {
    MemoryScanStats stats;
    auto found = process_memory_contains_masked(n.masked, kMask, &stats);
    REQUIRE_MESSAGE(found.ok(), message_of(found));
    INFO(n.what << " (" << n.masked.size() << " bytes; scanned " << stats.mappings
                << " mappings, " << stats.bytes << " bytes)");
    CHECK_FALSE(*found);
  }
}

std::string keylog_path(const char* who) {
  return "/tmp/wasi-ktls-keylog-" + std::to_string(::getpid()) + "-" + who;
}

}  // namespace

TEST_CASE("OpenSSL wipes what it frees in this process") { CHECK(openssl_frees_are_wiped()); }

TEST_CASE("our client: after the hand-over no copy of the keys is left in this process") {
  for (const auto& [v, c] : {std::pair{TlsVersion::tls13, Cipher::aes_128_gcm},
                             std::pair{TlsVersion::tls12, Cipher::aes_256_gcm}}) {
    INFO(combo_name(v, c));
    const std::string keylog = keylog_path("server");
    const int port = port_or_fail();
    std::vector<std::string> args = openssl_pin(v, c);
    args.insert(args.end(), {"-keylogfile", keylog});
    OpensslPeer peer = start_s_server(port, args);
    auto conn = connect_to(port, client_policy(v, c), kernel_only());
    REQUIRE_MESSAGE(conn.ok(), message_of(conn));
    require_kernel(*conn);
    std::vector<Needle> needles;
    kernel_needles(conn->fd(), Direction::tx, v, needles);
    kernel_needles(conn->fd(), Direction::rx, v, needles);
    if (v == TlsVersion::tls13 && !kernel_probe().rekey.ok) secret_needles(keylog, needles);
    ::unlink(keylog.c_str());
    check_gone(needles);
    // And data still flows: the kernel has what it needs.
    receive_from_peer(peer, random_bytes(1000, 3), [&](Bytes& into) { return conn->read_full(into); });
  }
}

TEST_CASE("our server: after the hand-over no copy of the keys is left in this process") {
  for (const auto& [v, c] : {std::pair{TlsVersion::tls13, Cipher::chacha20_poly1305},
                             std::pair{TlsVersion::tls12, Cipher::aes_128_gcm}}) {
    INFO(combo_name(v, c));
    const std::string keylog = keylog_path("client");
    std::vector<std::string> args = openssl_pin(v, c);
    args.insert(args.end(), {"-keylogfile", keylog});
    ServedClient sc = serve_s_client(server_policy(v, c), args, /*quiet=*/true, kernel_only());
    REQUIRE_MESSAGE(sc.conn->ok(), message_of(*sc.conn));
    Connection& server = **sc.conn;
    require_kernel(server);
    std::vector<Needle> needles;
    kernel_needles(server.fd(), Direction::tx, v, needles);
    kernel_needles(server.fd(), Direction::rx, v, needles);
    if (v == TlsVersion::tls13 && !kernel_probe().rekey.ok) secret_needles(keylog, needles);
    ::unlink(keylog.c_str());
    check_gone(needles);
  }
}
