#include "base/result.h"

#include <cstring>

namespace wasi_ktls {

Error errno_error(int err, std::string what) {
  what += ": ";
  what += std::strerror(err);
  return Error{std::move(what), err};
}

}  // namespace wasi_ktls
