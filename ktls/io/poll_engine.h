// The fallback engine, for when io_uring cannot be set up (seccomp, containers, sysctl
// io_uring_disabled, old kernels): same contract, built on epoll and non-blocking syscalls.
// An operation is tried when run_once runs (first without waiting, so a send that fits costs
// one syscall), again whenever epoll says its fd is ready, and completes with the syscall's
// result or -errno.
//
// Not thread-safe: one engine per thread, used only from that thread.
//
// Beyond the Engine contract:
//  - Operations on one fd and direction are tried one at a time, in the order started.
//  - fds may be blocking: recv/send/recvmsg/sendmsg add MSG_DONTWAIT (send/sendmsg also
//    MSG_NOSIGNAL). accept, connect and sendfile(2) take no such flag, so for those the engine
//    sets O_NONBLOCK on the file description for the duration of the call and restores it
//    (visible to other holders of a dup for that moment); non-blocking sockets skip those
//    fcntl calls.
//  - send_file loops sendfile(2) until `len` bytes or end of file; an error, timeout or
//    cancel part way reports that error (the stream is broken). sendfile(2) takes no
//    MSG_NOSIGNAL: around it SIGPIPE is blocked in the calling thread, and one it raised is
//    taken away with sigtimedwait before the mask is restored, so a gone peer is -EPIPE
//    without the embedder having to ignore SIGPIPE.
//  - Destruction completes every operation with -ECANCELED, running the callbacks from the
//    destructor; starting operations from those callbacks fails.
#pragma once

#include <memory>

#include "ktls/io/engine.h"

namespace wasi_ktls {

class PollEngine final : public Engine {
 public:
  static Result<std::unique_ptr<PollEngine>> create(unsigned queue_depth);
  ~PollEngine() override;

  std::string_view name() const override { return "poll"; }
  void cancel(int fd) override;
  Result<unsigned> run_once(std::chrono::milliseconds wait) override;
  std::size_t in_flight() const override;

  struct Impl;

 private:
  Status start(IoRequest&& req) override;
  explicit PollEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wasi_ktls
