#include "tests/support/async_scenarios.h"

#include <stdlib.h>
#include <unistd.h>

#include <doctest/doctest.h>
#include <openssl/rand.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "ktls/conn/async_connection.h"
#include "ktls/io/loopback_pair.h"
#include "tests/support/engines.h"
#include "tests/support/fd_count.h"
#include "tests/support/raw_records.h"
#include "tests/support/send_buffer.h"
#include "tests/support/test_pki.h"

namespace wasi_ktls::test {
namespace {

std::uint64_t fnv(std::span<const std::uint8_t> b, std::uint64_t h = 1469598103934665603ull) {
  for (auto x : b) h = (h ^ x) * 1099511628211ull;
  return h;
}

struct Contexts {
  TestPki pki;
  TlsContext client, server;
};

std::unique_ptr<Contexts> contexts() {
  auto pki = make_test_pki();
  REQUIRE_MESSAGE(pki.ok(), (pki.ok() ? "" : pki.error().message));
  Policy cp;
  cp.ca = PemSource::file(pki->ca);
  Policy sp;
  sp.certificate_chain = PemSource::file(pki->server_cert);
  sp.private_key = PemSource::file(pki->server_key);
  auto c = TlsContext::create(Role::client, cp);
  auto s = TlsContext::create(Role::server, sp);
  REQUIRE(c.ok());
  REQUIRE(s.ok());
  return std::make_unique<Contexts>(Contexts{std::move(*pki), *c, *s});
}

// One side of a transfer: writes `out` and reads `expect_bytes`, checksumming them.
struct Side {
  AsyncConnection::Ptr conn;
  std::span<const std::uint8_t> out;
  std::vector<std::uint8_t> buf = std::vector<std::uint8_t>(64 * 1024);
  std::size_t received = 0;
  std::uint64_t sum = 1469598103934665603ull;
  bool wrote = false, read_done = false;
  std::optional<Error> error;

  void start(std::size_t expect_bytes) {
    conn->write(out, [this](Result<std::size_t> w) {
      if (!w) error = w.error();
      wrote = true;
    });
    read_more(expect_bytes);
  }
  void read_more(std::size_t expect_bytes) {
    if (received == expect_bytes) {
      read_done = true;
      return;
    }
    conn->read(buf, [this, expect_bytes](Result<std::size_t> n) {
      if (!n || *n == 0) {
        if (!n) error = n.error();
        else error = make_error("stream ended after {} bytes", received);
        read_done = true;
        return;
      }
      sum = fnv(std::span(buf.data(), *n), sum);
      received += *n;
      read_more(expect_bytes);
    });
  }
};

// Establishes `pairs` connected client/server AsyncConnections on the engine.
std::vector<std::pair<AsyncConnection::Ptr, AsyncConnection::Ptr>> establish(
    Engine& engine, Contexts& ctx, std::size_t pairs, const ConnectionOptions& opts) {
  std::vector<std::pair<AsyncConnection::Ptr, AsyncConnection::Ptr>> out(pairs);
  std::size_t done = 0, failed = 0;
  for (std::size_t i = 0; i < pairs; ++i) {
    auto lp = make_loopback_pair();
    REQUIRE_MESSAGE(lp.ok(), (lp.ok() ? "" : lp.error().message));
    auto record = [&, i](bool client) {
      return [&, i, client](Result<AsyncConnection::Ptr> c) {
        ++done;
        if (!c) {
          ++failed;
          FAIL_CHECK((client ? "client " : "server ") << i << ": " << c.error().message);
          return;
        }
        (client ? out[i].first : out[i].second) = *c;
      };
    };
    AsyncConnection::accept(engine, std::move(lp->server), ctx.server, opts, record(false));
    AsyncConnection::connect(engine, std::move(lp->client), ctx.client, "localhost", opts,
                             record(true));
  }
  REQUIRE(run_until(engine, [&] { return done == 2 * pairs; }, std::chrono::seconds(120)));
  REQUIRE(failed == 0);
  return out;
}

}  // namespace

void many_connections(Engine& engine, const ScenarioExpect& expect, std::size_t pairs,
                      std::size_t bytes) {
  auto ctx = contexts();
  ConnectionOptions opts;
  opts.backend = expect.backend;
  opts.io_timeout = std::chrono::seconds(120);
  const int fds_before = open_fd_count();
  {
    auto conns = establish(engine, *ctx, pairs, opts);
    // One random block; connection i sends the `bytes` starting at i * 4099 of it, twice
    // over so every slice is contiguous.
    std::vector<std::uint8_t> block(2 * bytes);
    REQUIRE(RAND_bytes(block.data(), static_cast<int>(bytes)) == 1);
    std::copy(block.begin(), block.begin() + static_cast<std::ptrdiff_t>(bytes),
              block.begin() + static_cast<std::ptrdiff_t>(bytes));
    std::vector<std::unique_ptr<Side>> sides;
    for (std::size_t i = 0; i < pairs; ++i) {
      CHECK(conns[i].first->transport() == expect.transport);
      CHECK(conns[i].second->transport() == expect.transport);
      std::size_t off = (i * 4099) % bytes;
      for (auto* c : {&conns[i].first, &conns[i].second}) {
        auto s = std::make_unique<Side>();
        s->conn = *c;
        s->out = std::span<const std::uint8_t>(block).subspan(off, bytes);
        sides.push_back(std::move(s));
      }
    }
    for (auto& s : sides) s->start(bytes);
    REQUIRE(run_until(engine,
                      [&] {
                        for (auto& s : sides)
                          if (!s->wrote || !s->read_done) return false;
                        return true;
                      },
                      std::chrono::seconds(600)));
    for (std::size_t i = 0; i < sides.size(); ++i) {
      auto& s = *sides[i];
      // Side 2k is pair k's client, 2k+1 its server: each receives the other's slice.
      auto& peer = *sides[i ^ 1];
      INFO("connection " << i / 2 << (i % 2 ? " server" : " client"));
      CHECK_MESSAGE(!s.error, (s.error ? s.error->message : ""));
      CHECK(s.received == bytes);
      CHECK(s.sum == fnv(peer.out));
    }
    std::size_t closed = 0;
    for (auto& s : sides) s->conn->close([&](Status st) {
        CHECK_MESSAGE(st.ok(), (st.ok() ? "" : st.error().message));
        ++closed;
      });
    REQUIRE(run_until(engine, [&] { return closed == sides.size(); }, std::chrono::seconds(30)));
  }
  REQUIRE(run_until(engine, [&] { return engine.in_flight() == 0; }, std::chrono::seconds(10)));
  CHECK(open_fd_count() == fds_before);
}

void silent_peer_times_out(Engine& engine) {
  auto ctx = contexts();
  auto lp = make_loopback_pair();
  REQUIRE(lp.ok());
  ConnectionOptions opts;
  opts.handshake_timeout = std::chrono::milliseconds(300);
  std::optional<Result<AsyncConnection::Ptr>> got;
  auto start = Clock::now();
  AsyncConnection::accept(engine, std::move(lp->server), ctx->server, opts,
                          [&](Result<AsyncConnection::Ptr> c) { got = std::move(c); });
  REQUIRE(run_until(engine, [&] { return got.has_value(); }, std::chrono::seconds(10)));
  auto took = Clock::now() - start;
  REQUIRE_FALSE(got->ok());
  CHECK(got->error().message.find("timed out") != std::string::npos);
  CHECK(took < std::chrono::seconds(3));
  CHECK(engine.in_flight() == 0);
}

void abort_mid_transfer(Engine& engine, const ScenarioExpect& expect) {
  auto ctx = contexts();
  ConnectionOptions opts;
  opts.backend = expect.backend;
  const int fds_before = open_fd_count();
  {
    auto conns = establish(engine, *ctx, 1, opts);
    auto client = conns[0].first;
    auto server = conns[0].second;
    std::vector<std::uint8_t> big(32u << 20, 0x5a);
    std::vector<std::uint8_t> buf(64 * 1024);
    std::optional<Result<std::size_t>> write_result, read_result;
    client->write(big, [&](Result<std::size_t> r) { write_result = std::move(r); });
    // The server reads one piece, then the client gives up mid-transfer.
    std::size_t got = 0;
    std::function<void(Result<std::size_t>)> drain = [&](Result<std::size_t> r) {
      if (!r || *r == 0) {
        read_result = std::move(r);
        return;
      }
      server->read(buf, drain);
    };
    server->read(buf, [&](Result<std::size_t> r) {
      REQUIRE(r.ok());
      got = *r;
      // Give up mid-transfer and let go: the connection lives until its cancelled
      // operations complete, then closes its socket.
      client->abort();
      client.reset();
      conns.clear();
      server->read(buf, drain);
    });
    REQUIRE(run_until(engine, [&] { return write_result && read_result; },
                      std::chrono::seconds(60)));
    CHECK(got > 0);
    INFO("client write: " << (write_result->ok() ? "ok" : write_result->error().message));
    CHECK_FALSE(write_result->ok());  // cancelled before 32 MiB went out
    // The server sees the stream end without close_notify: truncation, or a reset when the
    // client's socket closed with our data unread.
    REQUIRE_FALSE(read_result->ok());
    const std::string& why = read_result->error().message;
    INFO("server read: " << why);
    CHECK((why.find("truncation") != std::string::npos ||
           read_result->error().sys_errno == ECONNRESET));
    server.reset();
    REQUIRE(run_until(engine, [&] { return engine.in_flight() == 0; }, std::chrono::seconds(10)));
  }
  CHECK(open_fd_count() == fds_before);
}

namespace {

// Something the peer must answer with a fatal alert: a record of a type no RFC defines (on
// kTLS, through the record-type cmsg; in userspace, as raw bytes on the wire).
void send_junk(int fd, Transport t) {
  const std::uint8_t junk[3] = {1, 2, 3};
  if (t == Transport::kernel) return send_record(fd, 99, junk);
  const std::uint8_t raw[] = {99, 3, 3, 0, 3, 1, 2, 3};
  REQUIRE(::send(fd, raw, sizeof raw, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof raw));
}

}  // namespace

void stalled_peer_leaves_others_running(Engine& engine, const ScenarioExpect& expect, Stall what) {
  auto ctx = contexts();
  ConnectionOptions opts;
  opts.backend = expect.backend;
  constexpr auto kStalledFor = std::chrono::seconds(20);
  opts.io_timeout = kStalledFor;
  const int fds_before = open_fd_count();
  {
    auto conns = establish(engine, *ctx, 2, opts);
    auto [a_client, a_server] = conns[0];
    auto [b_client, b_server] = conns[1];
    REQUIRE(a_server->transport() == expect.transport);
    fill_until_stalled(a_server->fd());

    const auto t0 = Clock::now();
    std::optional<Status> a_closed;
    std::optional<Result<std::size_t>> a_read;
    std::vector<std::uint8_t> a_buf(1024);
    if (what == Stall::close_notify) {
      a_server->close([&](Status st) { a_closed = std::move(st); });
    } else {
      send_junk(a_client->fd(), expect.transport);
      a_server->read(a_buf, [&](Result<std::size_t> r) { a_read = std::move(r); });
    }

    // B: one round trip on the same engine and thread.
    const std::string msg = "ping over B";
    std::vector<std::uint8_t> b_buf(64);
    std::optional<Result<std::size_t>> b_back;
    b_client->write(std::span(reinterpret_cast<const std::uint8_t*>(msg.data()), msg.size()),
                    [](Result<std::size_t> w) { REQUIRE(w.ok()); });
    b_server->read(b_buf, [&](Result<std::size_t> r) {
      REQUIRE(r.ok());
      b_server->write(std::span(b_buf.data(), *r), [&](Result<std::size_t> w) {
        REQUIRE(w.ok());
        b_client->read(b_buf, [&](Result<std::size_t> back) { b_back = std::move(back); });
      });
    });
    REQUIRE(run_until(engine, [&] { return b_back.has_value(); }, std::chrono::seconds(5)));
    const auto took = Clock::now() - t0;
    REQUIRE(b_back->ok());
    CHECK(**b_back == msg.size());
    MESSAGE("B's round trip took " << std::chrono::duration<double>(took).count()
                                   << " s while A was stalled");
    CHECK(took < kStalledFor / 4);
    if (what == Stall::close_notify) {
      CHECK_FALSE(a_closed.has_value());  // still waiting for room, not failed
    } else {
      REQUIRE(run_until(engine, [&] { return a_read.has_value(); }, std::chrono::seconds(5)));
      CHECK_FALSE(a_read->ok());  // the junk ended A; its alert waits for room
    }
    a_server->abort();
    a_client->abort();
    if (what == Stall::close_notify) {
      REQUIRE(run_until(engine, [&] { return a_closed.has_value(); }, std::chrono::seconds(5)));
      CHECK_FALSE(a_closed->ok());
    }
    conns.clear();
    a_client.reset();
    a_server.reset();
    b_client.reset();
    b_server.reset();
  }
  REQUIRE(run_until(engine, [&] { return engine.in_flight() == 0; }, std::chrono::seconds(10)));
  CHECK(open_fd_count() == fds_before);
}

void send_file_intact(Engine& engine, const ScenarioExpect& expect, std::size_t size) {
  auto ctx = contexts();
  ConnectionOptions opts;
  opts.backend = expect.backend;
  auto conns = establish(engine, *ctx, 1, opts);
  char path[] = "/tmp/wasi-ktls-sendfile-XXXXXX";
  UniqueFd file(::mkstemp(path));
  REQUIRE(file.valid());
  ::unlink(path);
  std::vector<std::uint8_t> data(size);
  REQUIRE(RAND_bytes(data.data(), static_cast<int>(data.size())) == 1);
  REQUIRE(::write(file.get(), data.data(), data.size()) == static_cast<ssize_t>(data.size()));

  auto server = conns[0].second;
  auto client = conns[0].first;
  std::optional<Result<std::size_t>> sent;
  server->send_file(file.get(), 0, size, [&](Result<std::size_t> r) {
    sent = std::move(r);
    server->close([](Status) {});
  });
  std::vector<std::uint8_t> got;
  std::vector<std::uint8_t> buf(256 * 1024);
  bool eof = false;
  std::optional<Error> err;
  std::function<void()> read_more = [&] {
    client->read(buf, [&](Result<std::size_t> n) {
      if (!n) {
        err = n.error();
        return;
      }
      if (*n == 0) {
        eof = true;
        return;
      }
      got.insert(got.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(*n));
      read_more();
    });
  };
  read_more();
  REQUIRE(run_until(engine, [&] { return (sent && (eof || err)); }, std::chrono::seconds(300)));
  REQUIRE_MESSAGE(sent->ok(), (sent->ok() ? "" : sent->error().message));
  CHECK(**sent == size);
  REQUIRE_MESSAGE(!err, (err ? err->message : ""));
  CHECK(got.size() == size);
  CHECK(got == data);
  CHECK(server->transport() == expect.transport);
}

}  // namespace wasi_ktls::test
