// Waiting for one socket to become readable or writable, until a deadline: the blocking
// driver's only wait, so no blocking call it makes can outlive its bound.
#pragma once

#include <chrono>

#include "base/result.h"

namespace wasi_ktls {

using Deadline = std::chrono::steady_clock::time_point;

inline Deadline deadline_after(std::chrono::milliseconds d) {
  return std::chrono::steady_clock::now() + d;
}

// poll(2) for `events` (POLLIN, POLLOUT) on `fd`. Ok once ready (or in error: the next call
// on the socket reports it); ETIMEDOUT once the deadline passes.
Status wait_ready(int fd, short events, Deadline deadline);

}  // namespace wasi_ktls
