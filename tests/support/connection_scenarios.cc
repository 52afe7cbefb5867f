#include "tests/support/connection_scenarios.h"

#include <doctest/doctest.h>

#include "tests/support/connection_pair.h"
#include "tests/support/fd_count.h"
#include "tests/support/message_of.h"
#include "tests/support/tls_contexts.h"
#include "tests/support/tls_matrix.h"

namespace wasi_ktls::test {

void exchange_every_payload(TlsVersion v, Cipher c, const PairExpect& expect) {
  const int fds_before = open_fd_count();
  {
    Handshake h = handshake(client_policy(v, c), server_policy(v, c), "localhost",
                            expect.client_options, expect.server_options);
    REQUIRE_MESSAGE(h.client->ok(), message_of(*h.client));
    REQUIRE_MESSAGE(h.server->ok(), message_of(*h.server));
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

}  // namespace wasi_ktls::test
