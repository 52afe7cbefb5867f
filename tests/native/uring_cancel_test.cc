// io_uring cancel(fd) when the submission queue is full. The cancel needs an SQE, so it has to
// submit what is queued first; if the kernel takes nothing (io_uring_enter fails with -EAGAIN
// when it has no memory for requests, and older kernels fail with -EBUSY while completions
// overflow the CQ), the engine must neither run completions in the middle of cancel(fd) nor
// drop the cancel. This host's kernel always takes the SQEs, so the test stands in for such a
// kernel: the binary is linked with --wrap=io_uring_submit.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <liburing.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "ktls/io/engine.h"
#include "ktls/io/loopback_pair.h"
#include "ktls/io/uring_engine.h"
#include "tests/support/engines.h"

namespace {

bool refuse_submit = false;
int refused = 0;

}  // namespace

extern "C" int __real_io_uring_submit(io_uring* ring);

extern "C" int __wrap_io_uring_submit(io_uring* ring) {
  if (refuse_submit) {
    ++refused;
    return -EAGAIN;  // as the kernel answers: nothing taken, the SQEs stay queued
  }
  return __real_io_uring_submit(ring);
}

namespace wasi_ktls {
namespace {

using namespace std::chrono_literals;
using test::run_until;

// Waits up to `bound` for `done()`, checking every millisecond.
bool wait_for(const std::function<bool()>& done, std::chrono::milliseconds bound) {
  auto until = Clock::now() + bound;
  while (!done()) {
    if (Clock::now() >= until) return false;
    (void)::poll(nullptr, 0, 1);
  }
  return true;
}

int unread_bytes(int fd) {
  int n = -1;
  if (::ioctl(fd, FIONREAD, &n) < 0) return -1;
  return n;
}

std::unique_ptr<UringEngine> make_ring(unsigned depth) {
  auto e = UringEngine::create(depth);
  REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().message));
  return std::move(*e);
}

// One callback's record: how often it ran, and with what.
struct Outcome {
  int calls = 0;
  int result = 1;
  Completion note() {
    return [this](int r) {
      ++calls;
      result = r;
    };
  }
};

// A ring of 4 SQEs: `filler` starts two ops with deadlines (2 SQEs each: op and linked
// timeout) on another pair, queued and not yet submitted, so the SQ is full.
void fill_sq(Engine& e, LoopbackPair& other, std::vector<std::uint8_t>& buf, Outcome& a,
             Outcome& b) {
  REQUIRE(e.recv(other.server.get(), buf, 0, Clock::now() + 30s, a.note()).ok());
  REQUIRE(e.recv(other.client.get(), buf, 0, Clock::now() + 30s, b.note()).ok());
}

void cancel_with_completion_waiting(bool refuse) {
  auto engine = make_ring(4);
  UringEngine& e = *engine;
  auto pair = make_loopback_pair();
  REQUIRE(pair.ok());
  auto other = make_loopback_pair();
  REQUIRE(other.ok());
  const int fd = pair->server.get();
  std::vector<std::uint8_t> buf1(16), buf2(16), buf3(16);

  // first: in the kernel, waiting for data. second: queued behind it on the same fd.
  Outcome first, second, fill_a, fill_b;
  REQUIRE(e.recv(fd, buf1, 0, kNoDeadline, first.note()).ok());
  REQUIRE(e.recv(fd, buf2, 0, Clock::now() + 30s, second.note()).ok());
  REQUIRE(e.run_once(0ms).ok());

  // The byte completes `first` in the kernel (task work on this thread, run on the way back
  // from a syscall); its CQE then waits in the CQ, not yet reaped.
  REQUIRE(::send(pair->client.get(), "x", 1, MSG_NOSIGNAL) == 1);
  REQUIRE(wait_for([&] { return unread_bytes(fd) == 0; }, 5s));
  CHECK(first.calls == 0);

  fill_sq(e, *other, buf3, fill_a, fill_b);
  refused = 0;
  refuse_submit = refuse;
  e.cancel(fd);
  refuse_submit = false;
  if (refuse) MESSAGE("io_uring_submit calls refused during cancel: " << refused);

  REQUIRE(run_until(e, [&] { return first.calls > 0 && second.calls > 0; }, 5s));
  CHECK(first.calls == 1);
  CHECK(first.result == 1);  // it had finished before the cancel
  CHECK(second.calls == 1);
  CHECK(second.result == -ECANCELED);
  CHECK(fill_a.calls == 0);  // another fd's ops are not touched
  CHECK(fill_b.calls == 0);
  CHECK(e.in_flight() == 2);

  e.cancel(other->server.get());
  e.cancel(other->client.get());
  REQUIRE(run_until(e, [&] { return fill_a.calls > 0 && fill_b.calls > 0; }, 5s));
  CHECK(fill_a.result == -ECANCELED);
  CHECK(fill_b.result == -ECANCELED);
  CHECK(first.calls == 1);
  CHECK(second.calls == 1);
  CHECK(e.in_flight() == 0);
}

TEST_CASE("io_uring cancel(fd) with the SQ full and a completion of that fd waiting") {
  cancel_with_completion_waiting(false);
}

TEST_CASE("io_uring cancel(fd) with the SQ full, a completion waiting, the kernel taking nothing") {
  cancel_with_completion_waiting(true);
}

TEST_CASE("io_uring cancel(fd) the kernel cannot take at once is sent later, not dropped") {
  auto engine = make_ring(4);
  UringEngine& e = *engine;
  auto pair = make_loopback_pair();
  REQUIRE(pair.ok());
  auto other = make_loopback_pair();
  REQUIRE(other.ok());
  std::vector<std::uint8_t> buf(16), fill_buf(16);

  // No data ever comes and there is no deadline: only the cancel can complete this recv.
  Outcome waiting, fill_a, fill_b;
  REQUIRE(e.recv(pair->server.get(), buf, 0, kNoDeadline, waiting.note()).ok());
  REQUIRE(e.run_once(0ms).ok());
  fill_sq(e, *other, fill_buf, fill_a, fill_b);
  refused = 0;
  refuse_submit = true;
  e.cancel(pair->server.get());
  refuse_submit = false;
  MESSAGE("io_uring_submit calls refused during cancel: " << refused);

  CHECK(run_until(e, [&] { return waiting.calls > 0; }, 2s));
  CHECK(waiting.calls == 1);
  CHECK(waiting.result == -ECANCELED);
  CHECK(fill_a.calls == 0);
  CHECK(fill_b.calls == 0);

  // The data sent now is the next recv's: the cancelled one did not take it.
  REQUIRE(::send(pair->client.get(), "abc", 3, MSG_NOSIGNAL) == 3);
  Outcome next;
  REQUIRE(e.recv(pair->server.get(), buf, 0, Clock::now() + 5s, next.note()).ok());
  REQUIRE(run_until(e, [&] { return next.calls > 0; }, 5s));
  CHECK(next.result == 3);
  e.cancel(other->server.get());
  e.cancel(other->client.get());
  REQUIRE(run_until(e, [&] { return fill_a.calls > 0 && fill_b.calls > 0; }, 5s));
  CHECK(e.in_flight() == 0);
}

}  // namespace
}  // namespace wasi_ktls
