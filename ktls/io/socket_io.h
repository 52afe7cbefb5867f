// Blocking socket reads and writes with a deadline: every wait in the blocking transports
// goes through here, so none can hang.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>

#include "base/result.h"

namespace wasi_ktls {

using Deadline = std::chrono::steady_clock::time_point;

inline Deadline deadline_after(std::chrono::milliseconds d) {
  return std::chrono::steady_clock::now() + d;
}

// Sends all of `data` (MSG_NOSIGNAL), waiting for buffer space until `deadline`.
Status send_all(int fd, std::span<const std::uint8_t> data, Deadline deadline);

// Receives up to `buf.size()` bytes once something is readable; 0 means the peer closed
// (FIN). Times out with an error naming `what`.
Result<std::size_t> recv_some(int fd, std::span<std::uint8_t> buf, Deadline deadline,
                              const char* what);

// SO_RCVTIMEO and SO_SNDTIMEO: bounds every blocking call on a socket the kernel TLS
// layer reads and writes itself.
Status set_socket_timeouts(int fd, std::chrono::milliseconds timeout);

}  // namespace wasi_ktls
