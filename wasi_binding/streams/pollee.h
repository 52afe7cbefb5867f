// What a wasi:io pollable watches. Every source of readiness (a stream, a TCP connect, a TLS
// handshake, a clock) says whether it is ready now, possibly moving its own state machine on
// without waiting, and otherwise what to wait for; the host's poll loop (host/poll_loop.h)
// waits for all of a guest's pollables at once on the project's I/O engine.
#pragma once

#include <chrono>

#include "ktls/io/engine.h"

namespace wasi_ktls::wasi {

struct Wait {
  int fd = -1;          // a socket to wait on, with `events` (POLLIN or POLLOUT), or -1
  short events = 0;
  Clock::time_point deadline = kNoDeadline;  // ready at this time at the latest
  bool now = false;     // ready already: do not wait

  static Wait ready() { Wait w; w.now = true; return w; }
  static Wait on(int fd, short events) { Wait w; w.fd = fd; w.events = events; return w; }
  static Wait until(Clock::time_point t) { Wait w; w.deadline = t; return w; }
  static Wait never() { return Wait{}; }
  bool can_happen() const { return now || fd >= 0 || deadline != kNoDeadline; }
};

class Pollee {
 public:
  virtual ~Pollee() = default;
  virtual bool ready() = 0;
  // Only asked when !ready().
  virtual Wait wait() = 0;
};

}  // namespace wasi_ktls::wasi
