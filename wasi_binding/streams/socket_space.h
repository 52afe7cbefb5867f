// How much a TCP socket's send buffer can take now, for check-write permits: a write of at
// most this much is taken by one non-blocking send, so guest bytes rarely need a host copy.
#pragma once

#include <cstdint>

namespace wasi_ktls::wasi {

// 0 when the socket is not writable now. `cap` bounds the answer.
std::uint64_t socket_send_space(int fd, std::uint64_t cap);
// poll(2) with no wait: does `fd` report any of `events` (or an error / hang-up)?
bool fd_ready(int fd, short events);

}  // namespace wasi_ktls::wasi
