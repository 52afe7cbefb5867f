#include "tests/support/asio_scenarios.h"

#include <doctest/doctest.h>

#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ssl/error.hpp>

#include "tests/support/tls_contexts.h"

namespace wasi_ktls::test {

namespace net = boost::asio;

void pair_every_payload(TlsVersion v, Cipher c, const StreamPairExpect& expect) {
  net::io_context io;
  StreamPair p = our_pair(io, client_policy(v, c), server_policy(v, c),
                          stream_options(expect.backend, "localhost"),
                          stream_options(expect.backend));
  REQUIRE_MESSAGE(!p.client_ec, p.client_ec.message() << ": " << p.client->last_error());
  REQUIRE(p.server);
  REQUIRE_MESSAGE(!p.server_ec, p.server_ec.message() << ": " << p.server->last_error());
  Stream& client = *p.client;
  Stream& server = *p.server;
  for (Stream* s : {&client, &server}) {
    CHECK(s->info().version == v);
    CHECK(s->info().cipher == c);
  }
  if (expect.established) expect.established(client, server);
  CHECK(client.info().peer_subject.find("CN=localhost") != std::string::npos);

  std::uint64_t seed = 1, total = 0;
  for (std::size_t n : kPayloads) {
    transfer(io, client, server, random_bytes(n, seed++));
    if (expect.transferred) expect.transferred(client, server, n);
    transfer(io, server, client, random_bytes(n, seed++));
    if (expect.transferred) expect.transferred(server, client, n);
    total += n;
  }
  CHECK(client.bytes_written() == total);
  CHECK(client.bytes_read() == total);
  CHECK(server.bytes_written() == total);
  CHECK(server.bytes_read() == total);

  // close_notify: the client ends, the server reads eof and answers, the client reads eof.
  error_code ec = shutdown(io, client);
  REQUIRE_MESSAGE(!ec, ec.message() << ": " << client.last_error());
  CHECK(!shutdown(io, client));  // idempotent
  auto r = read_once(io, server);
  CHECK(r.first == net::error::eof);
  CHECK(r.second == 0);
  REQUIRE(!shutdown(io, server));
  r = read_once(io, client);
  CHECK(r.first == net::error::eof);
  CHECK(read_once(io, client).first == net::error::eof);  // stays at eof
  if (expect.closed) expect.closed(client, server);
  // Writing after our own close_notify is refused, not dropped.
  error_code wec;
  client.async_write_some(net::buffer("late", 4), [&](error_code e, std::size_t) { wec = e; });
  run(io);
  CHECK(wec == asio::errc::shut_down);
  CHECK(wec.category().name() == std::string("wasi_ktls"));
  CHECK(client.last_error().find("close_notify") != std::string::npos);
}

void truncated_by_fin(TlsVersion v, bool server_drops, const StreamPairExpect& expect) {
  net::io_context io;
  StreamPair p = our_pair(io, client_policy(v, Cipher::aes_256_gcm),
                          server_policy(v, Cipher::aes_256_gcm),
                          stream_options(expect.backend, "localhost"),
                          stream_options(expect.backend));
  REQUIRE(!p.client_ec);
  REQUIRE(!p.server_ec);
  if (expect.established) expect.established(*p.client, *p.server);
  transfer(io, *p.server, *p.client, random_bytes(5000, 3));
  transfer(io, *p.client, *p.server, random_bytes(5000, 4));
  Stream& dropped = server_drops ? *p.server : *p.client;
  Stream& survivor = server_drops ? *p.client : *p.server;
  dropped.next_layer().close();
  auto r = read_once(io, survivor);
  CHECK(r.first == net::ssl::error::stream_truncated);
  MESSAGE(r.first.message() << ": " << survivor.last_error());
  CHECK(survivor.last_error().find("truncation") != std::string::npos);
}

void client_against_s_server(TlsVersion v, Cipher c, const StreamPeerExpect& expect) {
  net::io_context io;
  const int port = port_or_fail();
  OpensslPeer peer = start_s_server(port, openssl_pin(v, c));
  auto [client, ec] =
      connect_to(io, port, client_policy(v, c), stream_options(expect.backend, "localhost"));
  INFO("s_server stderr: " << peer.stderr_text());
  REQUIRE_MESSAGE(!ec, ec.message() << ": " << client->last_error());
  CHECK(client->info().cipher == c);
  if (expect.established) expect.established(*client);
  std::uint64_t seed = 100;
  for (std::size_t n : kPayloads) {
    send_to_peer(io, *client, peer, random_bytes(n, seed++));
    if (expect.sent) expect.sent(*client, n);
    receive_from_peer(io, *client, peer, random_bytes(n, seed++));
    if (expect.received) expect.received(*client, n);
  }
  ec = shutdown(io, *client);
  REQUIRE_MESSAGE(!ec, client->last_error());
  auto r = read_once(io, *client);  // s_server answers close_notify with its own
  CHECK(r.first == net::error::eof);
  if (expect.closed) expect.closed(*client);
  auto status = peer.proc->wait(kPeerTimeout);
  REQUIRE(status.ok());
  CHECK(*status == 0);
}

void server_against_s_client(TlsVersion v, Cipher c, const StreamPeerExpect& expect) {
  net::io_context io;
  ServedStream s =
      serve_s_client(io, server_policy(v, c), openssl_pin(v, c), stream_options(expect.backend));
  INFO("s_client stderr: " << s.peer.stderr_text());
  REQUIRE(s.server);
  REQUIRE_MESSAGE(!s.ec, s.ec.message() << ": " << s.server->last_error());
  Stream& server = *s.server;
  CHECK(server.info().cipher == c);
  if (expect.established) expect.established(server);
  std::uint64_t seed = 200;
  for (std::size_t n : kPayloads) {
    receive_from_peer(io, server, s.peer, random_bytes(n, seed++));
    if (expect.received) expect.received(server, n);
    send_to_peer(io, server, s.peer, random_bytes(n, seed++));
    if (expect.sent) expect.sent(server, n);
  }
  error_code ec = shutdown(io, server);
  REQUIRE_MESSAGE(!ec, server.last_error());
  auto r = read_once(io, server);  // s_client answers close_notify with its own
  CHECK(r.first == net::error::eof);
  if (expect.closed) expect.closed(server);
  auto status = s.peer.proc->wait(kPeerTimeout);
  REQUIRE(status.ok());
  CHECK(*status == 0);
}

}  // namespace wasi_ktls::test
