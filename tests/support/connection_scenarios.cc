#include "tests/support/connection_scenarios.h"

#include <doctest/doctest.h>

#include <sys/socket.h>

#include <thread>

#include "tests/support/connection_pair.h"
#include "tests/support/fd_count.h"
#include "tests/support/message_of.h"
#include "tests/support/tls_contexts.h"
#include "tests/support/tls_matrix.h"

namespace wasi_ktls::test {
namespace {

// Our client and server pinned to (v, c), both established.
Handshake established(TlsVersion v, Cipher c, const PairExpect& expect) {
  Handshake h = handshake(client_policy(v, c), server_policy(v, c), "localhost",
                          expect.client_options, expect.server_options);
  REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
  REQUIRE_MESSAGE(h.server->ok(), message_of(*h.server));
  return h;
}

}  // namespace

void exchange_every_payload(TlsVersion v, Cipher c, const PairExpect& expect) {
  const int fds_before = open_fd_count();
  {
    Handshake h = established(v, c, expect);
    Connection& client = **h.client;
    Connection& server = **h.server;
    for (Connection* conn : {&client, &server}) {
      CHECK(conn->info().version == v);
      REQUIRE(conn->info().cipher.has_value());
      CHECK(*conn->info().cipher == c);
    }
    if (expect.established) expect.established(client, server);
    CHECK(client.info().peer_subject.find("CN=localhost") != std::string::npos);

    std::uint64_t seed = 1;
    std::uint64_t total = 0;
    for (std::size_t n : kPayloads) {
      INFO(n << " bytes");
      transfer(client, server, random_bytes(n, seed++), "client -> server");
      transfer(server, client, random_bytes(n, seed++), "server -> client");
      total += n;
      if (expect.exchanged) expect.exchanged(client, server, n);
    }
    CHECK(client.bytes_written() == total);
    CHECK(client.bytes_read() == total);
    CHECK(server.bytes_written() == total);
    CHECK(server.bytes_read() == total);

    // close_notify both ways: the client ends, the server sees a clean end and answers.
    Status closed = client.close();
    REQUIRE_MESSAGE(closed.ok(), message_of(closed));
    CHECK(client.close().ok());  // idempotent
    std::uint8_t buf[64];
    auto r = server.read(buf);
    REQUIRE_MESSAGE(r.ok(), message_of(r));
    CHECK(*r == 0);
    closed = server.close();
    REQUIRE_MESSAGE(closed.ok(), message_of(closed));
    r = client.read(buf);
    REQUIRE_MESSAGE(r.ok(), message_of(r));
    CHECK(*r == 0);
    if (expect.closed) expect.closed(client, server);
    // Writing after our own close_notify is refused, not silently dropped.
    CHECK_FALSE(client.write("late").ok());
  }
  CHECK(open_fd_count() == fds_before);
}

void reader_and_writer_threads(const PairExpect& expect, std::size_t bytes) {
  const TlsVersion v = TlsVersion::tls13;
  const Cipher c = Cipher::aes_256_gcm;
  const int fds_before = open_fd_count();
  {
    Handshake h = established(v, c, expect);
    Connection& client = **h.client;
    Connection& server = **h.server;
    if (expect.established) expect.established(client, server);

    const Bytes to_server = random_bytes(bytes, 11), to_client = random_bytes(bytes, 12);
    Status cw, sw;
    Result<std::size_t> cr = std::size_t{0}, sr = std::size_t{0};
    Bytes client_got(bytes), server_got(bytes);
    {
      // Four threads, two per connection: each reads and writes at the same time.
      std::jthread a([&] { cw = client.write(to_server); });
      std::jthread b([&] { sw = server.write(to_client); });
      std::jthread c1([&] { cr = client.read_full(client_got); });
      std::jthread d([&] { sr = server.read_full(server_got); });
    }
    REQUIRE_MESSAGE(cw.ok(), message_of(cw));
    REQUIRE_MESSAGE(sw.ok(), message_of(sw));
    REQUIRE_MESSAGE(cr.ok(), message_of(cr));
    REQUIRE_MESSAGE(sr.ok(), message_of(sr));
    CHECK(client_got == to_client);
    CHECK(server_got == to_server);

    // The server writes more than the sockets hold while the client does not read; the
    // client's socket is then shut down: the server's reader sees the end, its blocked
    // writer fails, in either order, both bounded.
    Status blocked;
    Result<std::size_t> ended = std::size_t{0};
    {
      std::jthread writer([&] { blocked = server.write(random_bytes(64u << 20, 13)); });
      std::jthread reader([&] {
        std::uint8_t buf[256];
        ended = server.read(buf);
      });
      REQUIRE(::shutdown(client.fd(), SHUT_RDWR) == 0);
    }
    CHECK_FALSE(blocked.ok());
    INFO("reader: " << (ended.ok() ? "ok" : ended.error().message));
    CHECK_FALSE(ended.ok());  // truncation or reset: the client sent no close_notify
  }
  CHECK(open_fd_count() == fds_before);
}

}  // namespace wasi_ktls::test
