// A real peer process (openssl s_server, s_client, curl, nginx) for a test: spawned with
// pipes, always reaped, killed if the test leaves early. Every wait is bounded.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace wasi_ktls::test {

class ChildProcess {
 public:
  // argv[0] is looked up in PATH. stdin/stdout are pipes; stderr goes to a pipe merged
  // into `output()` unless `inherit_stderr`.
  static Result<ChildProcess> spawn(const std::vector<std::string>& argv,
                                    bool inherit_stderr = false);

  ChildProcess(ChildProcess&&) noexcept;
  ChildProcess& operator=(ChildProcess&&) = delete;
  ~ChildProcess();

  // Writes all of `data` to the child's stdin (bounded by `timeout`).
  Status write_stdin(std::string_view data, std::chrono::milliseconds timeout);
  void close_stdin() { stdin_.reset(); }

  // Reads stdout until `pred(output so far)` is true, EOF, or the timeout.
  template <class Pred>
  Status read_until(Pred pred, std::chrono::milliseconds timeout);
  // Reads until EOF on stdout (EOF is success here).
  Status read_to_end(std::chrono::milliseconds timeout);
  const std::string& output() const { return out_; }

  // Waits for exit; returns the exit status (128+signal if killed). Kills with SIGKILL
  // after the timeout and reports that as an error.
  Result<int> wait(std::chrono::milliseconds timeout);
  void kill(int sig);
  pid_t pid() const { return pid_; }

 private:
  ChildProcess() = default;
  // One read of whatever stdout has within the deadline; false at EOF or timeout.
  Result<bool> read_some(std::chrono::steady_clock::time_point deadline);

  pid_t pid_ = -1;
  UniqueFd stdin_;
  UniqueFd stdout_;
  std::string out_;
};

template <class Pred>
Status ChildProcess::read_until(Pred pred, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred(out_)) {
    auto more = read_some(deadline);
    if (!more) return more.error();
    if (!*more) return pred(out_) ? Status{} : make_error("child output ended before expected text");
  }
  return {};
}

// A free TCP port on 127.0.0.1 (bound and released; good enough for a test peer).
Result<int> free_port();

}  // namespace wasi_ktls::test
