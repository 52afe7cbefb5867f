// Wall time of a test case, for the MESSAGE lines that show how long the lab took.
#pragma once

#include <chrono>

namespace wasi_ktls::test {

struct Timer {
  std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
  double seconds() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
};

}  // namespace wasi_ktls::test
