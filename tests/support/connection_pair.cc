#include "tests/support/connection_pair.h"

#include <doctest/doctest.h>

#include <cstring>
#include <thread>

#include "ktls/io/tcp_socket.h"
#include "tests/support/message_of.h"
#include "tests/support/tls_contexts.h"

namespace wasi_ktls::test {

using namespace std::chrono_literals;

namespace {
constexpr auto kTcpTimeout = 30s;  // accept/connect on loopback; only a failure waits this long
}  // namespace

Handshake handshake(const Policy& cp, const Policy& sp, std::string_view server_name,
                    ConnectionOptions copt, ConnectionOptions sopt) {
  TlsContext cctx = context(Role::client, cp);
  TlsContext sctx = context(Role::server, sp);
  auto listener = tcp_listen("127.0.0.1", 0);
  REQUIRE_MESSAGE(listener.ok(), message_of(listener));
  auto port = local_port(listener->get());
  REQUIRE(port.ok());
  Handshake h;
  std::thread server([&] {
    auto fd = tcp_accept(listener->get(), kTcpTimeout);
    if (!fd) {
      h.server = fd.error();
      return;
    }
    h.server = Connection::accept(std::move(*fd), sctx, sopt);
  });
  auto fd = tcp_connect("127.0.0.1", *port, kTcpTimeout);
  h.client = fd ? Connection::connect(std::move(*fd), cctx, server_name, copt)
                : Result<Connection>(fd.error());
  server.join();
  return h;
}

void transfer(Connection& from, Connection& to, const Bytes& data, const char* direction) {
  INFO(direction << " " << data.size() << " bytes");
  Status written;
  std::thread writer([&] { written = from.write(data); });
  Bytes got(data.size());
  auto n = to.read_full(got);
  writer.join();
  REQUIRE_MESSAGE(written.ok(), message_of(written));
  REQUIRE_MESSAGE(n.ok(), message_of(n));
  REQUIRE(*n == data.size());
  CHECK(got == data);
}

Result<Connection> connect_to(int port, const Policy& cp, const ConnectionOptions& opt) {
  TlsContext cctx = context(Role::client, cp);
  auto fd = tcp_connect("127.0.0.1", static_cast<std::uint16_t>(port), kTcpTimeout);
  if (!fd) return fd.error();
  return Connection::connect(std::move(*fd), cctx, "localhost", opt);
}

ServedClient serve_s_client(const Policy& sp, const std::vector<std::string>& client_args,
                            bool quiet, const ConnectionOptions& opt) {
  TlsContext sctx = context(Role::server, sp);
  auto listener = tcp_listen("127.0.0.1", 0);
  REQUIRE_MESSAGE(listener.ok(), message_of(listener));
  auto port = local_port(listener->get());
  REQUIRE(port.ok());
  ServedClient sc{start_s_client(*port, client_args, quiet), std::nullopt};
  auto fd = tcp_accept(listener->get(), kTcpTimeout);
  REQUIRE_MESSAGE(fd.ok(), message_of(fd));
  sc.conn = Connection::accept(std::move(*fd), sctx, opt);
  return sc;
}

void send_to_peer(Connection& conn, OpensslPeer& peer, const Bytes& data) {
  send_to_peer(peer, data, [&] { return conn.write(data); });
}

void receive_from_peer(Connection& conn, OpensslPeer& peer, const Bytes& data) {
  receive_from_peer(peer, data, [&](Bytes& into) { return conn.read_full(into); });
}

Connection data_right_behind_finished(const Policy& cp, const Policy& sp,
                                      const ConnectionOptions& opt, const Bytes& data) {
  TlsContext cctx = context(Role::client, cp);
  TlsContext sctx = context(Role::server, sp);
  auto listener = tcp_listen("127.0.0.1", 0);
  REQUIRE(listener.ok());
  auto port = local_port(listener->get());
  REQUIRE(port.ok());
  std::optional<Result<Connection>> server;
  Result<std::size_t> got_n = std::size_t{0};
  Bytes got(data.size());
  std::thread t([&] {
    auto fd = tcp_accept(listener->get(), kTcpTimeout);
    if (!fd) {
      server = fd.error();
      return;
    }
    server = Connection::accept(std::move(*fd), sctx, opt);
    if (server->ok()) got_n = (*server)->read_full(got);
  });
  auto fd = tcp_connect("127.0.0.1", *port, kTcpTimeout);
  auto client = fd ? Connection::connect(std::move(*fd), cctx, "localhost", opt)
                   : Result<Connection>(fd.error());
  Status written = client ? client->write(data) : Status(client.error());
  t.join();
  REQUIRE_MESSAGE(client.ok(), message_of(client));
  REQUIRE_MESSAGE(written.ok(), message_of(written));
  REQUIRE_MESSAGE(server->ok(), message_of(*server));
  REQUIRE_MESSAGE(got_n.ok(), message_of(got_n));
  CHECK(*got_n == data.size());
  CHECK(got == data);
  return std::move(**server);
}

}  // namespace wasi_ktls::test
