// The I/O engine under every asynchronous connection: one per thread, it starts socket and
// file operations and runs their completion callbacks. Two implementations with the same
// contract: io_uring (liburing) and, when io_uring cannot be set up, a poll-based engine that
// performs the same operations with ordinary syscalls when the fd is ready.
//
// Contract, for both engines:
//  - Every started operation completes exactly once, from run_once(), with the result
//    io_uring would give: bytes (or a new fd) >= 0, or -errno. Timed out: -ETIME.
//    Cancelled: -ECANCELED. Callbacks may start new operations.
//  - Buffers, msghdrs and anything they point to stay valid until the completion runs.
//  - Operations on one fd in one direction complete in the order they were started; a
//    caller that needs one-at-a-time (sends on a kTLS socket) starts the next from the
//    previous one's completion.
//  - Starting fails (an error value, nothing queued, the callback never runs) only when the
//    engine is shutting down, its bounded queue is full, or it cannot take the arguments
//    (out of range; io_uring send_file: no pipe).
#pragma once

#include <sys/socket.h>
#include <sys/types.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"

namespace wasi_ktls {

using Completion = std::function<void(int result)>;
using Clock = std::chrono::steady_clock;
struct IoRequest;  // ktls/io_request.h

// No deadline: the operation waits as long as it takes (until cancelled).
inline constexpr Clock::time_point kNoDeadline = Clock::time_point::max();

class Engine {
 public:
  virtual ~Engine() = default;

  // "io_uring" or "poll".
  virtual std::string_view name() const = 0;

  // recv(2)/send(2) flags as given (never MSG_WAITALL on a kTLS socket: the kernel refuses).
  Status recv(int fd, std::span<std::uint8_t> buf, int flags, Clock::time_point deadline,
              Completion done);
  Status send(int fd, std::span<const std::uint8_t> buf, int flags, Clock::time_point deadline,
              Completion done);
  Status recvmsg(int fd, msghdr* msg, int flags, Clock::time_point deadline, Completion done);
  Status sendmsg(int fd, const msghdr* msg, int flags, Clock::time_point deadline,
                 Completion done);
  // Up to `len` bytes of `file` from `offset` to socket `sock`, without passing through
  // userspace (io_uring: SPLICE file->pipe->socket; poll: sendfile(2)). Result: bytes sent.
  // `offset` must fit an off_t and `len` an int (the result).
  Status send_file(int sock, int file, std::uint64_t offset, std::size_t len,
                   Clock::time_point deadline, Completion done);
  // Result: the accepted fd (close-on-exec), owned by the callback.
  Status accept(int listen_fd, Clock::time_point deadline, Completion done);
  // `addr` is copied: it need not outlive the call.
  Status connect(int fd, const sockaddr* addr, socklen_t len, Clock::time_point deadline,
                 Completion done);
  // Completes with -ETIME at `when` (or -ECANCELED).
  Status timer(Clock::time_point when, Completion done);
  // Completes when `fd` is ready for `events` (POLLIN or POLLOUT, one of them): the poll(2)
  // revents, which may include POLLERR or POLLHUP. For waiting on readiness without taking
  // data (the wasm guests' pollables).
  Status poll(int fd, short events, Clock::time_point deadline, Completion done);

  // Cancels every operation in flight on `fd`; each still completes (-ECANCELED, or its
  // result if it had already finished). Call before closing an fd with operations in flight.
  virtual void cancel(int fd) = 0;

  // Waits up to `wait` for completions and runs their callbacks. Returns how many ran.
  virtual Result<unsigned> run_once(std::chrono::milliseconds wait) = 0;

  // Operations started and not yet completed.
  virtual std::size_t in_flight() const = 0;

 private:
  // Each public operation above, checked and described once (engine.cc); the engine queues it.
  virtual Status start(IoRequest&& req) = 0;
};

enum class EngineKind { automatic, io_uring, poll };

struct EngineChoice {
  std::unique_ptr<Engine> engine;
  std::string reason;  // why poll under automatic (io_uring setup failed: errno and meaning)
};

// "auto" (or "automatic"), "io_uring" or "poll"; anything else is an error naming the value.
Result<EngineKind> parse_engine_kind(std::string_view text);

// WASI_KTLS_ENGINE=io_uring|poll|auto; automatic when unset or empty.
Result<EngineKind> engine_kind_from_environment();

// automatic: io_uring if it can be set up, else poll with the reason. io_uring: an error if it
// cannot be set up. `queue_depth` bounds operations in flight.
Result<EngineChoice> make_engine(EngineKind kind = EngineKind::automatic,
                                 unsigned queue_depth = 1024);

}  // namespace wasi_ktls
