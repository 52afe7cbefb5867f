// The io_uring engine (liburing): every operation is one SQE (plus a linked timeout when it
// has a deadline), queued by the starting call and submitted in one batch by run_once, so a
// callback that starts many operations costs one io_uring_enter.
//
// Not thread-safe: one engine per thread, used only from that thread.
//
// Beyond the Engine contract:
//  - Operations on one fd in one direction (in: recv, recvmsg, accept; out: send, sendmsg,
//    send_file, connect) reach the kernel one at a time; io_uring itself does not order two
//    requests parked on the same socket. The next one is submitted when the previous one
//    completes, in the same run_once.
//  - A deadline becomes an absolute IORING_OP_LINK_TIMEOUT; the op's -ECANCELED caused by
//    it is reported as -ETIME. The callback runs once, after both CQEs are reaped.
//  - send/sendmsg add MSG_NOSIGNAL: a reset peer gives -EPIPE, not SIGPIPE.
//  - send_file splices file -> pipe -> socket (pipes come from a small pool, up to 1 MiB
//    each) until `len` bytes or end of file; a failure, timeout or cancel part way reports
//    that error (the bytes already sent are lost to the caller: the stream is broken).
//    SPLICE takes no MSG_NOSIGNAL, but needs no guard: the kernel always runs it in an io-wq
//    worker (iou-wrk), and the SIGPIPE a gone peer raises is left pending on that thread,
//    which blocks every signal but SIGKILL and SIGSTOP; the calling thread never sees it
//    (tests/native/send_file_sigpipe_test runs with SIGPIPE at its default).
//  - Destruction cancels everything and still runs every callback exactly once (with
//    -ECANCELED, or the result if the kernel had finished), from the destructor; starting
//    operations from those callbacks fails. The wait for the kernel is bounded (5 s).
#pragma once

#include <memory>

#include "ktls/io/engine.h"

namespace wasi_ktls {

class UringEngine final : public Engine {
 public:
  // Sets up a ring of `queue_depth` SQ entries (at most 32768); the error carries the
  // io_uring_setup errno.
  static Result<std::unique_ptr<UringEngine>> create(unsigned queue_depth);
  ~UringEngine() override;

  std::string_view name() const override { return "io_uring"; }
  void cancel(int fd) override;
  Result<unsigned> run_once(std::chrono::milliseconds wait) override;
  std::size_t in_flight() const override;

  // io_uring_enter calls made so far (submissions and waits): for tests and benchmarks.
  std::uint64_t enter_calls() const;

  struct Impl;

 private:
  Status start(IoRequest&& req) override;
  explicit UringEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wasi_ktls
