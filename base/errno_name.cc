#include "base/errno_name.h"

#include <string.h>

namespace wasi_ktls {

std::string errno_name(int err) {
  if (const char* name = ::strerrorname_np(err)) return name;
  return "errno " + std::to_string(err);
}

}  // namespace wasi_ktls
