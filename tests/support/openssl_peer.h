// openssl s_server / s_client as a test's peer: pinned to one version and suite, stderr to a log
// (shown when a check fails) so that stdout is pure data, data exchanged both ways with our
// side running on a thread. Every wait is bounded; failures are doctest REQUIREs.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "handshake/tls_params.h"
#include "tests/support/child_process.h"
#include "tests/support/tls_matrix.h"

namespace wasi_ktls::test {

inline constexpr std::chrono::seconds kPeerTimeout{60};  // any one wait on a peer; UML is slow

struct OpensslPeer {
  std::optional<ChildProcess> proc;
  std::string log;
  std::size_t consumed = 0;  // stdout bytes already checked

  std::string stderr_text() const;
};

// s_server/s_client flags pinning version v and suite c.
std::vector<std::string> openssl_pin(TlsVersion v, Cipher c);

// `openssl args...`; `name` tells the log files apart.
OpensslPeer spawn_openssl(const std::vector<std::string>& args, const std::string& name);

// A free port on 127.0.0.1 for a peer to listen on.
int port_or_fail();

// True once a socket listens on `port`, from /proc/net/tcp{,6}: probing with a connection
// would use up s_server's only accept.
bool tcp_listening(int port);

// s_server for one connection on 127.0.0.1:port with the localhost certificate (or cert/key),
// returned once it listens. Not `quiet`: it reads commands from stdin ("k" = KeyUpdate).
OpensslPeer start_s_server(int port, const std::vector<std::string>& extra, bool quiet = true,
                           const std::string& cert = "", const std::string& key = "");

// s_client to 127.0.0.1:port, verifying "localhost" against the test CA. Not `quiet`: it
// ends with close_notify when its stdin ends, and reads commands ("k" = KeyUpdate).
OpensslPeer start_s_client(int port, const std::vector<std::string>& extra, bool quiet = true);

// Feeds the peer's stdin in PIPE_BUF pieces: poll() then promises each write won't block, so
// the deadline holds even if the peer stops reading.
Status feed_stdin(OpensslPeer& peer, std::string_view data);

// `our_write` (on a thread) sends `data`; the peer must print exactly it next.
void send_to_peer(OpensslPeer& peer, const Bytes& data, const std::function<Status()>& our_write);

// The peer gets `data` on stdin and sends it; `our_read` (on a thread) must read exactly it.
void receive_from_peer(OpensslPeer& peer, const Bytes& data,
                       const std::function<Result<std::size_t>(Bytes& into)>& our_read);

}  // namespace wasi_ktls::test
