#include "ktls/conn/handover.h"

#include "ktls/record/install.h"
#include "ktls/probe/probe.h"

namespace wasi_ktls {
namespace {

// Why the kernel cannot carry this connection, or nullopt if it can.
std::optional<std::string> kernel_refusal(const Session& session) {
  const HandshakeInfo& info = session.info();
  if (!info.cipher)
    return fmt::format("negotiated suite {} has no kernel TLS cipher", info.suite);
  if (info.max_fragment_length)
    return std::string("peer negotiated max_fragment_length; the kernel sends 16 KiB records");
  if (auto why = kernel_probe().refusal(info.version, *info.cipher)) return why;
  if (session.has_unconsumed_input())
    return std::string("bytes past the handshake are buffered in userspace");
  if (!session.pending_output().empty()) return std::string("handshake output not yet sent");
  return std::nullopt;
}

}  // namespace

Result<Handover> hand_over(int fd, Session& session, Backend requested) {
  auto decision = decide_backend(requested, kernel_refusal(session));
  if (!decision) return decision.error();
  if (decision->transport == Transport::userspace)
    return Handover{Transport::userspace, decision->reason, std::nullopt};

  auto keys = session.take_keys();
  std::string refused;
  if (!keys) {
    refused = "cannot extract keys for the kernel: " + keys.error().message;
  } else {
    InstallResult installed = install_kernel_tls(fd, *keys);
    if (installed.ok()) return Handover{Transport::kernel, "", std::move(*keys)};
    if (installed.outcome == InstallResult::Outcome::connection_broken)
      return Error{"kernel TLS install failed half-way, connection closed: " +
                       installed.error.message,
                   installed.error.sys_errno};
    refused = "kernel refused the keys: " + installed.error.message;
  }
  // Nothing reached the kernel's record layer: the socket still carries plain TCP.
  auto fallback = decide_backend(requested, refused);
  if (!fallback) return fallback.error();
  return Handover{Transport::userspace, fallback->reason, std::nullopt};
}

}  // namespace wasi_ktls
