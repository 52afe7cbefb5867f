// A throw-away PKI for a test (made by tools/make-test-pki in a fresh temp dir, removed when
// the TestPki is destroyed). Finds the script through Bazel runfiles (TEST_SRCDIR) or, in the
// kernel lab and by hand, relative to the current directory (the repo root) or WASI_KTLS_ROOT.
#pragma once

#include <string>

#include "base/result.h"

namespace wasi_ktls::test {

struct TestPki {
  std::string dir;
  std::string ca, ca_key;             // the test CA
  std::string server_cert, server_key;  // localhost, 127.0.0.1
  std::string client_cert, client_key;  // for mTLS
  std::string expired_cert, expired_key;
  std::string wronghost_cert, wronghost_key;  // not-localhost.example
  std::string other_ca;                       // unrelated CA

  TestPki() = default;
  TestPki(TestPki&&) noexcept;
  TestPki& operator=(TestPki&&) = delete;
  TestPki(const TestPki&) = delete;
  ~TestPki();
};

Result<TestPki> make_test_pki();

// The whole content of a file (for in-memory PEM tests).
Result<std::string> read_file(const std::string& path);

}  // namespace wasi_ktls::test
