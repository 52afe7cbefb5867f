// Both I/O engines against one contract (ktls/engine.h), on real loopback sockets: every case
// runs on io_uring and on poll.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "ktls/io/engine.h"
#include "ktls/io/loopback_pair.h"
#include "ktls/io/uring_engine.h"
#include "tests/native/engine_scenarios.h"

namespace wasi_ktls {
namespace {

using namespace std::chrono_literals;
using testing::run_until;

const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::unique_ptr<Engine> make(EngineKind kind, unsigned depth) {
  auto choice = make_engine(kind, depth);
  if (!choice.ok()) FAIL(choice.error().message);
  return std::move(choice->engine);
}

// Runs `body` on a fresh engine of each kind.
template <class F>
void each_engine(unsigned depth, F body) {
  for (EngineKind kind : {EngineKind::io_uring, EngineKind::poll}) {
    std::unique_ptr<Engine> engine = make(kind, depth);
    INFO("engine: " << engine->name());
    body(*engine);
  }
}

std::span<const std::uint8_t> bytes(const char* s) {
  return {reinterpret_cast<const std::uint8_t*>(s), std::strlen(s)};
}

TEST_CASE("make_engine gives what was asked; the environment picks the kind") {
  CHECK(make(EngineKind::io_uring, 8)->name() == "io_uring");
  CHECK(make(EngineKind::poll, 8)->name() == "poll");
  auto automatic = make_engine(EngineKind::automatic, 8);
  REQUIRE(automatic.ok());
  CHECK(automatic->engine->name() == "io_uring");  // the host has io_uring
  CHECK_FALSE(make_engine(EngineKind::poll, 0).ok());

  ::setenv("WASI_KTLS_ENGINE", "poll", 1);
  CHECK(*engine_kind_from_environment() == EngineKind::poll);
  ::setenv("WASI_KTLS_ENGINE", "io_uring", 1);
  CHECK(*engine_kind_from_environment() == EngineKind::io_uring);
  ::setenv("WASI_KTLS_ENGINE", "auto", 1);
  CHECK(*engine_kind_from_environment() == EngineKind::automatic);
  ::setenv("WASI_KTLS_ENGINE", "epoll-please", 1);
  auto bad = engine_kind_from_environment();
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("'epoll-please'") != std::string::npos);
  ::unsetenv("WASI_KTLS_ENGINE");
  CHECK(*engine_kind_from_environment() == EngineKind::automatic);
}

TEST_CASE("echo: many round trips over a loopback pair") {
  each_engine(64, [](Engine& e) { testing::check_echo(e); });
}

TEST_CASE("back-to-back sends on one fd complete in order and arrive in order") {
  each_engine(256, [](Engine& e) {
    auto pair = make_loopback_pair();
    REQUIRE(pair.ok());
    constexpr int kSends = 200;
    std::vector<std::vector<std::uint8_t>> bufs(kSends);
    std::vector<int> order, results(kSends, 0);
    std::uint64_t seed = 3;
    for (int i = 0; i < kSends; ++i) {
      bufs[i].resize(1000 + static_cast<std::size_t>(i) * 97);
      testing::fill_pattern(bufs[i], seed);
      REQUIRE(e.send(pair->client.get(), bufs[i], 0, kNoDeadline, [&, i](int r) {
                 order.push_back(i);
                 results[i] = r;
               }).ok());
    }
    std::vector<std::uint8_t> got, chunk(65536);
    bool reading = true;
    std::function<void()> read = [&] {
      REQUIRE(e.recv(pair->server.get(), chunk, 0, Clock::now() + 500ms, [&](int r) {
                 if (r <= 0) {
                   reading = false;
                   return;
                 }
                 got.insert(got.end(), chunk.begin(), chunk.begin() + r);
                 read();
               }).ok());
    };
    read();
    REQUIRE(run_until(e, [&] { return !reading; }));
    REQUIRE(order.size() == kSends);
    std::vector<std::uint8_t> expect;
    for (int i = 0; i < kSends; ++i) {
      CHECK(order[i] == i);
      REQUIRE(results[i] > 0);
      expect.insert(expect.end(), bufs[i].begin(), bufs[i].begin() + results[i]);
    }
    CHECK(got == expect);
  });
}

// Each end sends 1 MiB of its own pattern while receiving the other's.
struct Streamer {
  Streamer(Engine& e, int f, std::uint64_t seed, std::size_t n)
      : engine(e), fd(f), send_seed(seed), total(n) {}
  Engine& engine;
  int fd;
  std::uint64_t send_seed;
  std::size_t total;
  std::vector<std::uint8_t> out = std::vector<std::uint8_t>(32768);
  std::vector<std::uint8_t> in = std::vector<std::uint8_t>(32768);
  std::size_t out_len = 0, out_off = 0, sent = 0, received = 0;
  testing::Checksum sent_sum, received_sum;
  int error = 0;

  bool done() const { return error != 0 || (sent == total && received == total); }

  void start() {
    send_next();
    recv_next();
  }
  void send_next() {
    if (out_off == out_len) {
      if (sent == total) return;
      out_len = std::min(out.size(), total - sent);
      out_off = 0;
      testing::fill_pattern(std::span(out).first(out_len), send_seed);
      sent_sum.add(std::span(out).first(out_len));
    }
    auto s = engine.send(fd, std::span(out).subspan(out_off, out_len - out_off), 0,
                         Clock::now() + 60s, [this](int r) {
                           if (r <= 0) {
                             error = r == 0 ? -EPIPE : r;
                             return;
                           }
                           out_off += static_cast<std::size_t>(r);
                           sent += static_cast<std::size_t>(r);
                           send_next();
                         });
    if (!s) error = -EIO;
  }
  void recv_next() {
    if (received == total) return;
    auto s = engine.recv(fd, in, 0, Clock::now() + 60s, [this](int r) {
      if (r <= 0) {
        error = r == 0 ? -ECONNRESET : r;
        return;
      }
      received_sum.add(std::span(in).first(static_cast<std::size_t>(r)));
      received += static_cast<std::size_t>(r);
      recv_next();
    });
    if (!s) error = -EIO;
  }
};

TEST_CASE("256 connection pairs each move 1 MiB both ways on one engine") {
  each_engine(2048, [](Engine& e) {
    constexpr int kPairs = 256;
    constexpr std::size_t kBytes = 1u << 20;
    std::vector<LoopbackPair> pairs;
    std::vector<std::unique_ptr<Streamer>> ends;
    for (int i = 0; i < kPairs; ++i) {
      auto p = make_loopback_pair();
      if (!p.ok()) FAIL(p.error().message);
      pairs.push_back(std::move(*p));
      ends.emplace_back(new Streamer{e, pairs.back().client.get(), 1000u + 2u * i, kBytes});
      ends.emplace_back(new Streamer{e, pairs.back().server.get(), 1001u + 2u * i, kBytes});
    }
    for (auto& s : ends) s->start();
    CHECK(e.in_flight() == 2u * 2u * kPairs);
    REQUIRE(run_until(e, [&] {
      for (auto& s : ends)
        if (!s->done()) return false;
      return true;
    }, 300s));
    for (int i = 0; i < kPairs; ++i) {
      Streamer& a = *ends[2 * i];
      Streamer& b = *ends[2 * i + 1];
      CHECK(a.error == 0);
      CHECK(b.error == 0);
      CHECK((a.sent_sum.h == b.received_sum.h && a.sent_sum.word == b.received_sum.word));
      CHECK((b.sent_sum.h == a.received_sum.h && b.sent_sum.word == a.received_sum.word));
    }
    CHECK(e.in_flight() == 0);
  });
}

TEST_CASE("a recv deadline on a silent peer completes -ETIME on time") {
  each_engine(8, [](Engine& e) {
    auto pair = make_loopback_pair();
    REQUIRE(pair.ok());
    std::vector<std::uint8_t> buf(100);
    int result = 1;
    auto start = Clock::now();
    Clock::time_point finished;
    REQUIRE(e.recv(pair->server.get(), buf, 0, start + 200ms, [&](int r) {
               result = r;
               finished = Clock::now();
             }).ok());
    REQUIRE(run_until(e, [&] { return result != 1; }, 5s));
    CHECK(result == -ETIME);
    CHECK(finished - start >= 195ms);
    CHECK(finished - start < 1500ms);

    // Already past: -ETIME without waiting, and the data stays for the next recv.
    REQUIRE(::send(pair->client.get(), "x", 1, 0) == 1);
    result = -1000;
    REQUIRE(e.recv(pair->server.get(), buf, 0, Clock::now() - 1ms, [&](int r) { result = r; })
                .ok());
    REQUIRE(run_until(e, [&] { return result != -1000; }, 5s));
    CHECK(result == -ETIME);
    result = -1000;
    REQUIRE(e.recv(pair->server.get(), buf, 0, Clock::now() + 5s, [&](int r) { result = r; })
                .ok());
    REQUIRE(run_until(e, [&] { return result != -1000; }, 5s));
    CHECK(result == 1);
  });
}

TEST_CASE("poll: completes with revents once the fd is ready, takes no data, and cancels") {
  each_engine(8, [](Engine& e) {
    auto pair = make_loopback_pair();
    REQUIRE(pair.ok());
    const int fd = pair->server.get();
    int result = -1000;
    REQUIRE(e.poll(fd, POLLIN, kNoDeadline, [&](int r) { result = r; }).ok());
    REQUIRE(e.run_once(50ms).ok());
    CHECK(result == -1000);  // nothing to read yet: still waiting
    REQUIRE(::send(pair->client.get(), "x", 1, 0) == 1);
    REQUIRE(run_until(e, [&] { return result != -1000; }, 5s));
    CHECK((result & POLLIN) != 0);
    char c = 0;
    CHECK(::recv(fd, &c, 1, MSG_DONTWAIT) == 1);  // the byte is still there for a reader

    result = -1000;
    REQUIRE(e.poll(fd, POLLOUT, kNoDeadline, [&](int r) { result = r; }).ok());
    REQUIRE(run_until(e, [&] { return result != -1000; }, 5s));
    CHECK((result & POLLOUT) != 0);

    result = -1000;
    REQUIRE(e.poll(fd, POLLIN, kNoDeadline, [&](int r) { result = r; }).ok());
    e.cancel(fd);
    REQUIRE(run_until(e, [&] { return result != -1000; }, 5s));
    CHECK(result == -ECANCELED);
    CHECK_FALSE(e.poll(fd, POLLIN | POLLOUT, kNoDeadline, [](int) {}).ok());
    CHECK(e.in_flight() == 0);
  });
}

TEST_CASE("timers fire at their time, in time order") {
  each_engine(8, [](Engine& e) {
    auto start = Clock::now();
    std::vector<int> order;
    std::vector<int> results;
    std::vector<Clock::duration> at;
    for (auto [i, delay] : {std::pair{0, 80ms}, std::pair{1, 20ms}, std::pair{2, 50ms}}) {
      REQUIRE(e.timer(start + delay, [&, i](int r) {
                 order.push_back(i);
                 results.push_back(r);
                 at.push_back(Clock::now() - start);
               }).ok());
    }
    REQUIRE(run_until(e, [&] { return order.size() == 3; }, 5s));
    CHECK(order == std::vector<int>{1, 2, 0});
    CHECK(results == std::vector<int>{-ETIME, -ETIME, -ETIME});
    CHECK(at[0] >= 20ms);
    CHECK(at[1] >= 50ms);
    CHECK(at[2] >= 80ms);
    CHECK(at[2] < 1s);
  });
}

TEST_CASE("cancel(fd) completes every op on the fd with -ECANCELED, in order, then nothing") {
  each_engine(16, [](Engine& e) {
    auto pair = make_loopback_pair();
    REQUIRE(pair.ok());
    const int fd = pair->server.get();
    std::vector<std::uint8_t> buf(100);
    std::vector<int> order, results;
    for (int i = 0; i < 4; ++i) {
      auto deadline = i == 3 ? Clock::now() + 10s : kNoDeadline;
      REQUIRE(e.recv(fd, buf, 0, deadline, [&, i](int r) {
                 order.push_back(i);
                 results.push_back(r);
               }).ok());
    }
    // Something on another fd that must not be touched.
    int other = 1;
    REQUIRE(e.recv(pair->client.get(), buf, 0, kNoDeadline, [&](int r) { other = r; }).ok());
    for (int i = 0; i < 3; ++i) REQUIRE(e.run_once(20ms).ok());  // all in the kernel now
    CHECK(order.empty());
    e.cancel(fd);
    REQUIRE(run_until(e, [&] { return order.size() == 4; }, 5s));
    CHECK(order == std::vector<int>{0, 1, 2, 3});
    CHECK(results == std::vector<int>(4, -ECANCELED));
    CHECK(e.in_flight() == 1);
    auto ran = e.run_once(100ms);
    REQUIRE(ran.ok());
    CHECK(*ran == 0);
    CHECK(other == 1);

    // The fd still works, and no cancelled op ate the data.
    REQUIRE(::send(pair->client.get(), "abc", 3, 0) == 3);
    int got = 0;
    REQUIRE(e.recv(fd, buf, 0, Clock::now() + 5s, [&](int r) { got = r; }).ok());
    REQUIRE(run_until(e, [&] { return got != 0; }, 5s));
    CHECK(got == 3);
    e.cancel(pair->client.get());
    REQUIRE(run_until(e, [&] { return other != 1; }, 5s));
    CHECK(other == -ECANCELED);
  });
}

TEST_CASE("accept and connect (blocking sockets), and a refused connect") {
  each_engine(16, [](Engine& e) {
    UniqueFd listener(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    REQUIRE(listener.valid());
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listener.get(), 8) == 0);
    socklen_t alen = sizeof addr;
    REQUIRE(::getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &alen) == 0);

    UniqueFd client(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int accepted = -100, connected = -100;
    REQUIRE(e.accept(listener.get(), Clock::now() + 5s, [&](int r) { accepted = r; }).ok());
    REQUIRE(e.connect(client.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr,
                      Clock::now() + 5s, [&](int r) { connected = r; })
                .ok());
    REQUIRE(run_until(e, [&] { return accepted != -100 && connected != -100; }, 5s));
    REQUIRE(accepted >= 0);
    UniqueFd server(accepted);
    CHECK(connected == 0);
    CHECK((::fcntl(server.get(), F_GETFD) & FD_CLOEXEC) != 0);
    CHECK((::fcntl(client.get(), F_GETFL) & O_NONBLOCK) == 0);  // left as it was
    CHECK((::fcntl(listener.get(), F_GETFL) & O_NONBLOCK) == 0);

    std::vector<std::uint8_t> buf(16);
    int sent = 0, got = 0;
    REQUIRE(e.send(client.get(), bytes("hello"), 0, kNoDeadline, [&](int r) { sent = r; }).ok());
    REQUIRE(e.recv(server.get(), buf, 0, Clock::now() + 5s, [&](int r) { got = r; }).ok());
    REQUIRE(run_until(e, [&] { return sent != 0 && got != 0; }, 5s));
    CHECK(sent == 5);
    CHECK(got == 5);

    // Nobody listens on the old port any more.
    listener.reset();
    server.reset();
    UniqueFd lonely(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    int refused = 1;
    REQUIRE(e.connect(lonely.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr,
                      Clock::now() + 5s, [&](int r) { refused = r; })
                .ok());
    REQUIRE(run_until(e, [&] { return refused != 1; }, 5s));
    CHECK(refused == -ECONNREFUSED);
  });
}

TEST_CASE("send_file: a 16 MiB file arrives intact") {
  each_engine(64, [](Engine& e) { testing::check_send_file(e); });
}

TEST_CASE("sendmsg/recvmsg carry data and an SCM_RIGHTS fd over a unix pair") {
  each_engine(8, [](Engine& e) {
    int sv[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    UniqueFd a(sv[0]), b(sv[1]);
    int p[2];
    REQUIRE(::pipe2(p, O_CLOEXEC) == 0);
    UniqueFd pr(p[0]), pw(p[1]);

    char payload[] = "fd inside";
    iovec siov{payload, sizeof payload};
    alignas(cmsghdr) char sctl[CMSG_SPACE(sizeof(int))] = {};
    msghdr smsg{};
    smsg.msg_iov = &siov;
    smsg.msg_iovlen = 1;
    smsg.msg_control = sctl;
    smsg.msg_controllen = sizeof sctl;
    cmsghdr* c = CMSG_FIRSTHDR(&smsg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    int passed = pw.get();
    std::memcpy(CMSG_DATA(c), &passed, sizeof passed);

    char rbuf[64] = {};
    iovec riov{rbuf, sizeof rbuf};
    alignas(cmsghdr) char rctl[CMSG_SPACE(sizeof(int))] = {};
    msghdr rmsg{};
    rmsg.msg_iov = &riov;
    rmsg.msg_iovlen = 1;
    rmsg.msg_control = rctl;
    rmsg.msg_controllen = sizeof rctl;

    int sent = 0, got = 0;
    REQUIRE(e.recvmsg(b.get(), &rmsg, MSG_CMSG_CLOEXEC, Clock::now() + 5s,
                      [&](int r) { got = r; })
                .ok());
    REQUIRE(e.sendmsg(a.get(), &smsg, 0, Clock::now() + 5s, [&](int r) { sent = r; }).ok());
    REQUIRE(run_until(e, [&] { return sent != 0 && got != 0; }, 5s));
    CHECK(sent == static_cast<int>(sizeof payload));
    REQUIRE(got == static_cast<int>(sizeof payload));
    CHECK(std::string(rbuf) == "fd inside");
    cmsghdr* rc = CMSG_FIRSTHDR(&rmsg);
    REQUIRE(rc != nullptr);
    CHECK(rc->cmsg_type == SCM_RIGHTS);
    int received_fd = -1;
    std::memcpy(&received_fd, CMSG_DATA(rc), sizeof received_fd);
    REQUIRE(received_fd >= 0);
    UniqueFd dup_w(received_fd);
    CHECK((::fcntl(dup_w.get(), F_GETFD) & FD_CLOEXEC) != 0);
    REQUIRE(::write(dup_w.get(), "z", 1) == 1);
    char z = 0;
    REQUIRE(::read(pr.get(), &z, 1) == 1);
    CHECK(z == 'z');
  });
}

TEST_CASE("a full queue refuses new operations with an error, and frees up after") {
  each_engine(4, [](Engine& e) {
    auto pair = make_loopback_pair();
    REQUIRE(pair.ok());
    std::vector<std::uint8_t> buf(10);
    int completed = 0;
    for (int i = 0; i < 4; ++i)
      REQUIRE(e.recv(pair->server.get(), buf, 0, kNoDeadline, [&](int) { ++completed; }).ok());
    auto full = e.recv(pair->client.get(), buf, 0, kNoDeadline, [&](int) { ++completed; });
    REQUIRE_FALSE(full.ok());
    CHECK(full.error().message.find("queue full") != std::string::npos);
    CHECK_FALSE(e.timer(Clock::now(), [&](int) { ++completed; }).ok());
    CHECK(e.in_flight() == 4);
    e.cancel(pair->server.get());
    REQUIRE(run_until(e, [&] { return completed == 4; }, 5s));
    CHECK(e.in_flight() == 0);
    int fired = 0;
    CHECK(e.timer(Clock::now() + 1ms, [&](int r) { fired = r; }).ok());
    REQUIRE(run_until(e, [&] { return fired != 0; }, 5s));
    CHECK(fired == -ETIME);
  });
}

TEST_CASE("no fd leaks: engines, pipes and sockets all come back") {
  int before = testing::open_fd_count();
  each_engine(64, [](Engine& e) {
    testing::check_echo(e);
    testing::check_send_file(e);
  });
  CHECK(testing::open_fd_count() == before);
}

TEST_CASE("destroying an engine with operations in flight completes each exactly once") {
  for (EngineKind kind : {EngineKind::io_uring, EngineKind::poll}) {
    auto pair = make_loopback_pair();
    REQUIRE(pair.ok());
    auto stalled = make_loopback_pair();
    REQUIRE(stalled.ok());
    testing::TempFile file = testing::make_temp_file(16u << 20, 5);
    bool destroying = false;
    std::vector<std::uint8_t> buf(100);
    std::vector<int> calls(5, 0), results(5, 0);
    bool restart_refused = true;
    auto start = Clock::now();
    {
      std::unique_ptr<Engine> e = make(kind, 64);
      INFO("engine: " << e->name());
      Engine* raw = e.get();
      auto note = [&](int i) {
        return [&, i, raw](int r) {
          ++calls[i];
          results[i] = r;
          // Shutting down: nothing new may start.
          if (destroying && raw->timer(Clock::now(), [](int) {}).ok()) restart_refused = false;
        };
      };
      REQUIRE(e->recv(pair->server.get(), buf, 0, kNoDeadline, note(0)).ok());
      REQUIRE(e->recv(pair->server.get(), buf, 0, Clock::now() + 30s, note(1)).ok());
      REQUIRE(e->timer(Clock::now() + 30s, note(2)).ok());
      // Nobody reads the server end: this send_file stalls with the socket full.
      REQUIRE(e->send_file(stalled->client.get(), file.fd.get(), 0, 16u << 20, kNoDeadline,
                           note(3))
                  .ok());
      REQUIRE(e->accept(pair->client.get(), Clock::now() + 30s, note(4)).ok());
      for (int i = 0; i < 5; ++i) REQUIRE(e->run_once(20ms).ok());
      CHECK(calls == std::vector<int>{0, 0, 0, 0, 1});
      destroying = true;
    }
    CHECK(Clock::now() - start < 6s);
    CHECK(calls == std::vector<int>(5, 1));
    CHECK(results[0] == -ECANCELED);
    CHECK(results[1] == -ECANCELED);
    CHECK(results[2] == -ECANCELED);
    CHECK(results[3] == -ECANCELED);
    CHECK(results[4] == -EINVAL);  // accept on a connected socket fails on its own
    CHECK(restart_refused);
  }
}

TEST_CASE("io_uring: ops started together are submitted with one io_uring_enter") {
  auto ring = UringEngine::create(256);
  REQUIRE(ring.ok());
  UringEngine& e = **ring;
  std::vector<LoopbackPair> pairs;
  for (int i = 0; i < 32; ++i) {
    auto p = make_loopback_pair();
    REQUIRE(p.ok());
    pairs.push_back(std::move(*p));
  }
  int done = 0;
  // Started from inside a callback, as a connection layer would.
  REQUIRE(e.timer(Clock::now(), [&](int) {
             for (auto& p : pairs)
               REQUIRE(e.send(p.client.get(), bytes("ping"), 0, kNoDeadline,
                              [&](int r) { done += r == 4; })
                           .ok());
           }).ok());
  REQUIRE(run_until(e, [&] { return done == 0 && e.in_flight() == 32; }, 5s));
  auto before = e.enter_calls();
  REQUIRE(run_until(e, [&] { return done == 32; }, 5s));
  MESSAGE("io_uring_enter calls for 32 sends: " << e.enter_calls() - before);
  CHECK(e.enter_calls() - before <= 2);
}

}  // namespace
}  // namespace wasi_ktls
