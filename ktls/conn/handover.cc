#include "ktls/conn/handover.h"

#include <fmt/format.h>

namespace wasi_ktls {

std::optional<std::string> kernel_refusal(const HandshakeInfo& info, bool unconsumed_input,
                                          const Probe& probe) {
  if (!info.cipher)
    return fmt::format("negotiated suite {} has no kernel TLS cipher", info.suite);
  if (info.max_fragment_length)
    return std::string("peer negotiated max_fragment_length; the kernel sends 16 KiB records");
  if (auto why = probe.refusal(info.version, *info.cipher)) return why;
  if (unconsumed_input) return std::string("bytes past the handshake are buffered in userspace");
  return std::nullopt;
}

}  // namespace wasi_ktls
