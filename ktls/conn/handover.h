// The moment after a handshake: does the kernel take this connection, and if so, its keys go
// in. Every connection type (blocking, io_uring, Boost.Asio) calls this one function, so they
// decide alike and say why alike.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "handshake/session.h"
#include "handshake/traffic_keys.h"
#include "ktls/conn/backend.h"

namespace wasi_ktls {

struct Handover {
  Transport transport = Transport::userspace;
  std::string reason;               // why userspace (auto fallback or request); empty for kernel
  std::optional<TrafficKeys> keys;  // installed on the socket (kernel only); secrets kept for rekey
};

// Precondition: the handshake is done and every byte it produced is on the wire. Returns the
// kernel transport with its installed keys, or userspace with the reason; an error when
// `requested` is ktls and the kernel cannot take the connection, or when the install failed
// after the first key (the connection must then be closed).
Result<Handover> hand_over(int fd, Session& session, Backend requested);

}  // namespace wasi_ktls
