// Runs a Session's handshake over a connected socket with blocking, deadline-bounded I/O,
// reading exactly what the session asks for, so that no byte past the peer's last handshake
// record leaves the kernel's receive queue. The io_uring engine drives the same Session with
// the same rule.
#pragma once

#include "base/result.h"
#include "handshake/session.h"
#include "ktls/io/socket_io.h"

namespace wasi_ktls {

// On return (ok or not) every byte the session produced has been sent, best effort on error,
// so the peer sees our alert.
Status run_handshake(int fd, Session& session, Deadline deadline);

}  // namespace wasi_ktls
