// The symbolic name of an errno ("ENOENT"), which reports show next to what it means: names
// are what people grep the kernel source and man pages for.
#pragma once

#include <string>

namespace wasi_ktls {

// "ENOENT", or "errno 1234" for a value glibc has no name for.
std::string errno_name(int err);

}  // namespace wasi_ktls
