#include "base/result.h"

#include <cerrno>
#include <cstring>

namespace wasi_ktls {

std::string_view to_string(ErrorKind k) {
  switch (k) {
    case ErrorKind::unspecified: return "unspecified";
    case ErrorKind::usage: return "usage";
    case ErrorKind::config: return "config";
    case ErrorKind::system: return "system";
    case ErrorKind::timeout: return "timeout";
    case ErrorKind::cancelled: return "cancelled";
    case ErrorKind::handshake: return "handshake";
    case ErrorKind::backend_unavailable: return "backend_unavailable";
    case ErrorKind::kernel_install: return "kernel_install";
    case ErrorKind::truncated: return "truncated";
    case ErrorKind::peer_alert: return "peer_alert";
    case ErrorKind::protocol: return "protocol";
    case ErrorKind::record_limit: return "record_limit";
    case ErrorKind::closed: return "closed";
    case ErrorKind::would_block: return "would_block";
  }
  return "?";
}

Error errno_error(int err, std::string what) {
  what += ": ";
  what += std::strerror(err);
  const ErrorKind kind = err == ETIMEDOUT   ? ErrorKind::timeout
                         : err == ECANCELED ? ErrorKind::cancelled
                                            : ErrorKind::system;
  return Error{std::move(what), err, kind};
}

}  // namespace wasi_ktls
