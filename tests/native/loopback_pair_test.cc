// The loopback pair the probe (and other tests) stand on: connected both ways, blocking,
// and the listener gone.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cstring>

#include "ktls/io/loopback_pair.h"

namespace wasi_ktls {
namespace {

TEST_CASE("make_loopback_pair gives two established, blocking ends that talk both ways") {
  auto pair = make_loopback_pair();
  REQUIRE(pair.ok());
  for (int fd : {pair->client.get(), pair->server.get()}) {
    CHECK((::fcntl(fd, F_GETFL) & O_NONBLOCK) == 0);
    tcp_info info{};
    socklen_t len = sizeof info;
    REQUIRE(::getsockopt(fd, SOL_TCP, TCP_INFO, &info, &len) == 0);
    CHECK(info.tcpi_state == TCP_ESTABLISHED);
  }
  char buf[8] = {};
  REQUIRE(::send(pair->client.get(), "ping", 4, 0) == 4);
  REQUIRE(::recv(pair->server.get(), buf, sizeof buf, 0) == 4);
  CHECK(std::memcmp(buf, "ping", 4) == 0);
  REQUIRE(::send(pair->server.get(), "pong", 4, 0) == 4);
  REQUIRE(::recv(pair->client.get(), buf, sizeof buf, 0) == 4);
  CHECK(std::memcmp(buf, "pong", 4) == 0);
}

TEST_CASE("pairs are independent: closing one end gives the other EOF") {
  auto a = make_loopback_pair();
  auto b = make_loopback_pair();
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  a->client.reset();
  char c = 0;
  CHECK(::recv(a->server.get(), &c, 1, 0) == 0);
  CHECK(::send(b->client.get(), "x", 1, 0) == 1);
  CHECK(::recv(b->server.get(), &c, 1, 0) == 1);
}

}  // namespace
}  // namespace wasi_ktls
