#include "tests/support/openssl_peer.h"

#include <errno.h>
#include <unistd.h>

#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/support/message_of.h"
#include "tests/support/tls_contexts.h"

namespace wasi_ktls::test {

using namespace std::chrono_literals;

std::string OpensslPeer::stderr_text() const {
  std::ifstream f(log);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::vector<std::string> openssl_pin(TlsVersion v, Cipher c) {
  if (v == TlsVersion::tls13) return {"-tls1_3", "-ciphersuites", tls13_suite(c)};
  return {"-tls1_2", "-cipher", tls12_cipher(c)};
}

OpensslPeer spawn_openssl(const std::vector<std::string>& args, const std::string& name) {
  static int counter = 0;
  OpensslPeer p;
  p.log = "/tmp/" + std::string(program_invocation_short_name) + "_" + name + "_" +
          std::to_string(::getpid()) + "_" + std::to_string(++counter) + ".stderr";
  std::vector<std::string> argv = {"sh", "-c", "exec openssl \"$@\" 2>'" + p.log + "'", "sh"};
  argv.insert(argv.end(), args.begin(), args.end());
  auto c = ChildProcess::spawn(argv, /*inherit_stderr=*/true);
  REQUIRE_MESSAGE(c.ok(), message_of(c));
  p.proc.emplace(std::move(*c));
  return p;
}

int port_or_fail() {
  auto p = free_port();
  REQUIRE_MESSAGE(p.ok(), message_of(p));
  return *p;
}

bool tcp_listening(int port) {
  char want[8];
  std::snprintf(want, sizeof want, ":%04X", port);
  for (const char* path : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream f(path);
    std::string line;
    while (std::getline(f, line)) {
      std::istringstream ls(line);
      std::string sl, local, remote, state;
      ls >> sl >> local >> remote >> state;
      if (state == "0A" && local.size() > 5 && local.substr(local.size() - 5) == want) return true;
    }
  }
  return false;
}

OpensslPeer start_s_server(int port, const std::vector<std::string>& extra, bool quiet,
                           const std::string& cert, const std::string& key) {
  std::vector<std::string> args = {"s_server", "-accept", "127.0.0.1:" + std::to_string(port),
                                   "-cert", cert.empty() ? pki().server_cert : cert,
                                   "-key", key.empty() ? pki().server_key : key,
                                   "-naccept", "1"};
  if (quiet) args.push_back("-quiet");
  args.insert(args.end(), extra.begin(), extra.end());
  OpensslPeer p = spawn_openssl(args, "s_server");
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (!tcp_listening(port)) {
    INFO("s_server stderr: " << p.stderr_text());
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(20ms);
  }
  return p;
}

OpensslPeer start_s_client(int port, const std::vector<std::string>& extra, bool quiet) {
  std::vector<std::string> args = {"s_client", "-connect", "127.0.0.1:" + std::to_string(port),
                                   "-CAfile", pki().ca, "-servername", "localhost",
                                   "-verify_return_error"};
  if (quiet) args.push_back("-quiet");
  args.insert(args.end(), extra.begin(), extra.end());
  return spawn_openssl(args, "s_client");
}

Status feed_stdin(OpensslPeer& peer, std::string_view data) {
  auto deadline = std::chrono::steady_clock::now() + kPeerTimeout;
  while (!data.empty()) {
    auto chunk = data.substr(0, 4096);
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return make_error("timed out feeding the peer's stdin");
    if (Status s = peer.proc->write_stdin(chunk, left); !s) return s;
    data.remove_prefix(chunk.size());
  }
  return {};
}

void send_to_peer(OpensslPeer& peer, const Bytes& data, const std::function<Status()>& our_write) {
  INFO(data.size() << " bytes to the peer");
  Status written;
  std::thread writer([&] { written = our_write(); });
  const std::size_t want = peer.consumed + data.size();
  Status printed = peer.proc->read_until(
      [want](const std::string& out) { return out.size() >= want; }, kPeerTimeout);
  writer.join();
  INFO("peer stderr: " << peer.stderr_text());
  REQUIRE_MESSAGE(printed.ok(), message_of(printed));
  REQUIRE_MESSAGE(written.ok(), message_of(written));
  const std::string& out = peer.proc->output();
  REQUIRE(out.size() == want);
  CHECK(std::string_view(out).substr(peer.consumed) == as_text(data));
  peer.consumed = want;
}

void receive_from_peer(OpensslPeer& peer, const Bytes& data,
                       const std::function<Result<std::size_t>(Bytes& into)>& our_read) {
  INFO(data.size() << " bytes from the peer");
  Bytes got(data.size());
  Result<std::size_t> n = make_error("not read");
  std::thread reader([&] { n = our_read(got); });
  Status fed = feed_stdin(peer, as_text(data));
  reader.join();
  INFO("peer stderr: " << peer.stderr_text());
  REQUIRE_MESSAGE(fed.ok(), message_of(fed));
  REQUIRE_MESSAGE(n.ok(), message_of(n));
  REQUIRE(*n == data.size());
  CHECK(got == data);
}

}  // namespace wasi_ktls::test
