// OpenSSL's error queue, in words.
#pragma once

#include <string>

namespace wasi_ktls {

// Empties this thread's OpenSSL error queue and returns its reasons joined with "; "
// (oldest first), or "" if it was empty.
std::string drain_openssl_errors();

}  // namespace wasi_ktls
