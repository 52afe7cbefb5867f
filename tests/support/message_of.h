// The error text of a Result/Status, or "" when it succeeded: for REQUIRE_MESSAGE.
#pragma once

#include <string>

#include "base/result.h"

namespace wasi_ktls::test {

inline std::string message_of(const Status& s) { return s.ok() ? "" : s.error().message; }

template <class T>
std::string message_of(const Result<T>& r) {
  return r.ok() ? "" : r.error().message;
}

}  // namespace wasi_ktls::test
