// The moment after a handshake: can the kernel carry this connection? One pure decision that
// every connection takes alike (the core calls it), so they all say why alike.
#pragma once

#include <optional>
#include <string>

#include "handshake/session.h"
#include "ktls/probe/probe.h"

namespace wasi_ktls {

// Why the kernel cannot take a connection that negotiated `info` (nullopt: it can).
// `unconsumed_input`: bytes past the handshake were read into userspace (they can't be given
// back to the kernel, whose record numbers would then be off).
std::optional<std::string> kernel_refusal(const HandshakeInfo& info, bool unconsumed_input,
                                          const Probe& probe);

}  // namespace wasi_ktls
