// `wasi-ktls serve` as its users run it, a child process of a test: a port the kernel picks
// (read back from its log), ready once its first worker has its engine. Every wait is bounded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "tests/support/child_process.h"

namespace wasi_ktls::test {

struct ServeProcess {
  std::optional<ChildProcess> child;
  std::uint16_t port = 0;

  pid_t pid() const { return child->pid(); }
  const std::string& log() const { return child->output(); }  // stdout and stderr merged
  // Waits (bounded) for `text` in the log.
  Status wait_log(std::string_view text,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10));
};

// The wasi-ktls binary: the test's runfiles, else bazel-bin (by hand, from the repo root).
std::string wasi_ktls_binary();

// `serve --cert CERT --key KEY --port 0 ARGS...`; under RLIMIT_NOFILE `nofile` if above 0.
Result<ServeProcess> start_serve_process(const std::string& cert, const std::string& key,
                                         const std::vector<std::string>& args, int nofile = 0);

// The end of a log, for failure messages that stay readable when a log floods.
std::string log_tail(const std::string& log, std::size_t n = 2000);

}  // namespace wasi_ktls::test
