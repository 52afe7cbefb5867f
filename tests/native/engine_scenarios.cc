#include "tests/native/engine_scenarios.h"

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>

#include <doctest/doctest.h>

#include "ktls/io/loopback_pair.h"

namespace wasi_ktls::testing {

void Checksum::add(std::span<const std::uint8_t> bytes) {
  // Byte-wise FNV-1a is too slow unoptimized for gigabytes; mix 8 bytes at a time instead
  // (pieces may split anywhere, so a partial word is carried over).
  std::size_t i = 0;
  if (fill == 0)
    for (; i + 8 <= bytes.size(); i += 8) {
      std::uint64_t w;
      std::memcpy(&w, bytes.data() + i, 8);
      h = (h ^ w) * 1099511628211ull;
    }
  for (std::uint8_t b : bytes.subspan(i)) {
    word |= std::uint64_t{b} << (8 * fill);
    if (++fill == 8) {
      h = (h ^ word) * 1099511628211ull;
      word = 0;
      fill = 0;
    }
  }
}

void fill_pattern(std::span<std::uint8_t> out, std::uint64_t& state) {
  std::size_t i = 0;
  for (; i + 8 <= out.size(); i += 8) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    std::memcpy(out.data() + i, &state, 8);
  }
  if (i < out.size()) {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    std::memcpy(out.data() + i, &state, out.size() - i);
  }
}

TempFile make_temp_file(std::size_t size, std::uint64_t seed) {
  const char* dir = std::getenv("TEST_TMPDIR");
  std::string path = std::string(dir && *dir ? dir : "/tmp") + "/engine_file_XXXXXX";
  TempFile t;
  t.fd.reset(::mkostemp(path.data(), O_CLOEXEC));
  REQUIRE(t.fd.valid());
  ::unlink(path.c_str());
  t.bytes.resize(size);
  fill_pattern(t.bytes, seed);
  std::size_t off = 0;
  while (off < size) {
    ssize_t n = ::write(t.fd.get(), t.bytes.data() + off, size - off);
    REQUIRE(n > 0);
    off += static_cast<std::size_t>(n);
  }
  return t;
}

namespace {

// Sends all of `data` with as many send ops as short sends need, then calls `then`.
struct SendAll {
  Engine& engine;
  int fd;
  std::span<const std::uint8_t> data;
  std::function<void(int)> then;  // 0 or -errno
  std::size_t off = 0;

  void start() {
    if (off == data.size()) return then(0);
    auto s = engine.send(fd, data.subspan(off), 0, kNoDeadline, [this](int r) {
      if (r <= 0) return then(r == 0 ? -EPIPE : r);
      off += static_cast<std::size_t>(r);
      start();
    });
    if (!s) then(-EIO);
  }
};

// Receives exactly `want` bytes into `out`, then calls `then`.
struct RecvAll {
  Engine& engine;
  int fd;
  std::size_t want;
  std::function<void(int)> then;
  std::vector<std::uint8_t> out;

  void start() {
    if (out.size() == want) return then(0);
    std::size_t have = out.size();
    out.resize(want);
    auto s = engine.recv(fd, std::span(out).subspan(have), 0, kNoDeadline, [this, have](int r) {
      out.resize(have + static_cast<std::size_t>(r > 0 ? r : 0));
      if (r <= 0) return then(r == 0 ? -ECONNRESET : r);
      start();
    });
    if (!s) {
      out.resize(have);
      then(-EIO);
    }
  }
};

}  // namespace

void check_echo(Engine& engine) {
  auto pair = make_loopback_pair();
  REQUIRE(pair.ok());
  const int server = pair->server.get();
  const int client = pair->client.get();
  // Round trips of odd sizes would otherwise wait on Nagle and delayed ACKs (40 ms each).
  int one = 1;
  REQUIRE(::setsockopt(server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);
  REQUIRE(::setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == 0);

  // Server: receive whatever comes, send it back, repeat until end of stream.
  std::vector<std::uint8_t> sbuf(16384);
  std::unique_ptr<SendAll> echo;
  bool server_done = false;
  int server_error = 0;
  std::function<void()> serve = [&] {
    auto s = engine.recv(server, sbuf, 0, kNoDeadline, [&](int r) {
      if (r <= 0) {
        server_done = true;
        server_error = r;
        return;
      }
      echo.reset(new SendAll{engine, server, std::span(sbuf).first(static_cast<std::size_t>(r)),
                             [&](int e) {
                               if (e < 0) {
                                 server_error = e;
                                 server_done = true;
                               } else {
                                 serve();
                               }
                             }});
      echo->start();
    });
    REQUIRE(s.ok());
  };
  serve();

  // Client: messages of varied sizes, one round trip each.
  constexpr int kMessages = 300;
  std::uint64_t seed = 7;
  int round = 0;
  int client_error = 0;
  bool client_done = false;
  std::vector<std::uint8_t> msg;
  std::unique_ptr<SendAll> out;
  std::vector<std::unique_ptr<RecvAll>> ins;  // kept: each is destroyed only at the end
  std::function<void()> next = [&] {
    if (round == kMessages) {
      client_done = true;
      ::shutdown(client, SHUT_WR);
      return;
    }
    msg.resize(1 + (static_cast<std::size_t>(round) * 7919) % 40000);
    fill_pattern(msg, seed);
    ins.emplace_back(new RecvAll{engine, client, msg.size(), [&](int e) {
                           std::vector<std::uint8_t> got = std::move(ins.back()->out);
                           if (e < 0 || got != msg) {
                             client_error = e < 0 ? e : -EBADMSG;
                             client_done = true;
                             return;
                           }
                           ++round;
                           next();
                         }, {}});
    out.reset(new SendAll{engine, client, msg, [&](int e) {
                            if (e < 0) client_error = e;
                          }});
    out->start();
    ins.back()->start();
  };
  next();
  REQUIRE(run_until(engine, [&] { return client_done && server_done; }));
  CHECK(client_error == 0);
  CHECK(round == kMessages);
  CHECK(server_error == 0);
  CHECK(engine.in_flight() == 0);
}

void check_send_file(Engine& engine) {
  constexpr std::size_t kSize = 16u << 20;
  TempFile file = make_temp_file(kSize, 99);
  auto pair = make_loopback_pair();
  REQUIRE(pair.ok());

  struct Case {
    std::uint64_t offset;
    std::size_t len;
    std::size_t expect;  // bytes that exist from offset
  };
  const Case cases[] = {
      {0, kSize, kSize},
      {12345, 100000, 100000},
      {kSize - 10, 100, 10},  // end of file comes first
  };
  for (const Case& c : cases) {
    CAPTURE(c.offset);
    int sent = -1;
    bool sent_done = false;
    auto s = engine.send_file(pair->client.get(), file.fd.get(), c.offset, c.len,
                              Clock::now() + std::chrono::seconds(60), [&](int r) {
                                sent = r;
                                sent_done = true;
                              });
    REQUIRE(s.ok());
    int recv_error = 1;
    RecvAll in{engine, pair->server.get(), c.expect, [&](int e) { recv_error = e; }, {}};
    in.start();
    REQUIRE(run_until(engine, [&] { return sent_done && recv_error != 1; }));
    CHECK(sent == static_cast<int>(c.expect));
    CHECK(recv_error == 0);
    REQUIRE(in.out.size() == c.expect);
    CHECK((c.expect == 0 ||
           std::memcmp(in.out.data(), file.bytes.data() + c.offset, c.expect) == 0));
  }
  CHECK(engine.in_flight() == 0);
}

}  // namespace wasi_ktls::testing
