#include "ktls/conn/record_path.h"

#include <cerrno>

namespace wasi_ktls {

Error step_error(long result, const char* what, std::chrono::milliseconds timeout) {
  const int err = static_cast<int>(-result);
  if (err == ETIMEDOUT || err == ETIME)
    return Error{fmt::format("timed out {} (after {} ms)", what, timeout.count()), ETIMEDOUT,
                 ErrorKind::timeout};
  if (err == ECANCELED)
    return Error{fmt::format("cancelled while {}", what), ECANCELED, ErrorKind::cancelled};
  return errno_error(err, what);
}

Error not_ready() {
  return Error{"the socket has nothing to read yet", EAGAIN, ErrorKind::would_block};
}

}  // namespace wasi_ktls
