// send_file to a peer that has gone away, in a process that does NOT ignore SIGPIPE: splice and
// sendfile(2) take no MSG_NOSIGNAL, and the engines must not rely on the embedder ignoring
// SIGPIPE. Its own binary, so that nothing else in the process changes SIGPIPE's disposition.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include "ktls/io/engine.h"
#include "ktls/io/loopback_pair.h"
#include "tests/native/engine_scenarios.h"
#include "tests/support/engines.h"

namespace wasi_ktls {
namespace {

using namespace std::chrono_literals;
using test::run_until;

constexpr std::size_t kFileSize = 8u << 20;

// A disposition of SIG_IGN survives exec, so the test runner's could be inherited.
const bool kDefaultSigpipe = [] {
  ::signal(SIGPIPE, SIG_DFL);
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  ::pthread_sigmask(SIG_UNBLOCK, &pipe, nullptr);
  return true;
}();

bool sigpipe_pending() {
  sigset_t pending;
  sigemptyset(&pending);
  REQUIRE(::sigpending(&pending) == 0);
  return sigismember(&pending, SIGPIPE) == 1;
}

sigset_t current_mask() {
  sigset_t mask;
  sigemptyset(&mask);
  REQUIRE(::pthread_sigmask(SIG_SETMASK, nullptr, &mask) == 0);
  return mask;
}

// Waits up to `bound` until poll(2) reports any of `events` on `fd`.
bool wait_for_events(int fd, short events, std::chrono::milliseconds bound) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(bound.count())) == 1 && (p.revents & events) != 0;
}

enum class PeerGone { closed, reset };

// The peer closes (FIN, or RST with SO_LINGER 0) before a file much larger than the socket
// buffers is sent to it: the send fails with -EPIPE or -ECONNRESET, and the process lives on.
int send_file_to_gone_peer(Engine& e, PeerGone how) {
  auto pair = make_loopback_pair();
  REQUIRE(pair.ok());
  if (how == PeerGone::reset) {
    linger lg{1, 0};
    REQUIRE(::setsockopt(pair->server.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg) == 0);
  }
  pair->server.reset();
  const int sock = pair->client.get();
  // Until the FIN or RST has arrived, the first bytes would simply be sent.
  const short seen = how == PeerGone::reset ? POLLERR | POLLHUP : POLLRDHUP;
  REQUIRE(wait_for_events(sock, seen, 5s));

  testing::TempFile file = testing::make_temp_file(kFileSize, 17);
  int result = 1;
  REQUIRE(e.send_file(sock, file.fd.get(), 0, kFileSize, Clock::now() + 30s,
                      [&](int r) { result = r; })
              .ok());
  REQUIRE(run_until(e, [&] { return result != 1; }, 30s));
  return result;
}

void check_gone_peer(PeerGone how) {
  test::on_each_engine([how](Engine& e) {
    const sigset_t mask_before = current_mask();
    int r = send_file_to_gone_peer(e, how);
    std::string what = std::string(e.name()) +
                       (how == PeerGone::reset ? ", peer reset: " : ", peer closed: ") +
                       (r < 0 ? std::strerror(-r) : "bytes sent") + " (" + std::to_string(r) + ")";
    MESSAGE(what);
    CHECK((r == -EPIPE || r == -ECONNRESET));
    CHECK_FALSE(sigpipe_pending());
    const sigset_t mask_after = current_mask();
    CHECK(sigismember(&mask_after, SIGPIPE) == sigismember(&mask_before, SIGPIPE));
  });
}

TEST_CASE("send_file to a closed peer: an error, not SIGPIPE") {
  REQUIRE(kDefaultSigpipe);
  check_gone_peer(PeerGone::closed);
}

TEST_CASE("send_file to a reset peer: an error, not SIGPIPE") {
  check_gone_peer(PeerGone::reset);
}

// An embedder that blocks SIGPIPE and has one pending keeps it: the engine takes away only a
// SIGPIPE that its own call raised.
TEST_CASE("a SIGPIPE pending before send_file is still pending after it") {
  test::on_each_engine([](Engine& e) {
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigset_t old;
    REQUIRE(::pthread_sigmask(SIG_BLOCK, &pipe, &old) == 0);

    // Blocked and not pending: the engine's own SIGPIPE does not stay behind either.
    int r = send_file_to_gone_peer(e, PeerGone::closed);
    CHECK((r == -EPIPE || r == -ECONNRESET));
    CHECK_FALSE(sigpipe_pending());

    REQUIRE(::pthread_kill(::pthread_self(), SIGPIPE) == 0);
    REQUIRE(sigpipe_pending());
    r = send_file_to_gone_peer(e, PeerGone::closed);
    CHECK((r == -EPIPE || r == -ECONNRESET));
    CHECK(sigpipe_pending());
    const sigset_t mask = current_mask();
    CHECK(sigismember(&mask, SIGPIPE) == 1);

    timespec zero{};
    CHECK(::sigtimedwait(&pipe, nullptr, &zero) == SIGPIPE);
    CHECK_FALSE(sigpipe_pending());
    REQUIRE(::pthread_sigmask(SIG_SETMASK, &old, nullptr) == 0);
  });
}

}  // namespace
}  // namespace wasi_ktls
