// Our Connection in tests: our client and server over loopback, one of ours against an openssl
// peer, and data moved between them. Failures are doctest REQUIREs.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ktls/conn/connection.h"
#include "tests/support/openssl_peer.h"
#include "tests/support/tls_matrix.h"

namespace wasi_ktls::test {

struct Handshake {
  std::optional<Result<Connection>> client;
  std::optional<Result<Connection>> server;
};

// Our server (Connection::accept on a thread) and our client over loopback.
Handshake handshake(const Policy& cp, const Policy& sp, std::string_view server_name,
                    ConnectionOptions copt = {}, ConnectionOptions sopt = {});

// `from` writes all of data while `to` reads exactly that much; both must succeed and match.
void transfer(Connection& from, Connection& to, const Bytes& data, const char* direction = "");

// Our client to 127.0.0.1:port (a peer), for "localhost".
Result<Connection> connect_to(int port, const Policy& cp, const ConnectionOptions& opt);

// Our server for one s_client: listens, starts the client, accepts.
struct ServedClient {
  OpensslPeer peer;
  std::optional<Result<Connection>> conn;
};
ServedClient serve_s_client(const Policy& sp, const std::vector<std::string>& client_args,
                            bool quiet, const ConnectionOptions& opt);

// Data to and from an openssl peer through one of ours (see openssl_peer.h).
void send_to_peer(Connection& conn, OpensslPeer& peer, const Bytes& data);
void receive_from_peer(Connection& conn, OpensslPeer& peer, const Bytes& data);

// Our client writes `data` the moment connect() returns, so that it may share a segment with
// its Finished (TLS 1.3); our server (accept on a thread) must read exactly it. Returns the
// server connection for more evidence.
Connection data_right_behind_finished(const Policy& cp, const Policy& sp,
                                      const ConnectionOptions& opt, const Bytes& data);

}  // namespace wasi_ktls::test
