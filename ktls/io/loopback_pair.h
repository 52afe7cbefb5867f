// A connected TCP pair on 127.0.0.1, for probing what the kernel accepts on an established
// socket without any peer: the listening socket is gone once the pair exists.
#pragma once

#include <chrono>

#include "base/result.h"
#include "base/unique_fd.h"

namespace wasi_ktls {

struct LoopbackPair {
  UniqueFd client;  // the connecting end
  UniqueFd server;  // the accepted end
};

// Both ends are blocking and ESTABLISHED on return. `timeout` bounds the connect and the
// accept each, so a wedged loopback can't hang the caller.
Result<LoopbackPair> make_loopback_pair(
    std::chrono::milliseconds timeout = std::chrono::milliseconds(2000));

}  // namespace wasi_ktls
