// The harness's view of other processes: its own workers and the servers it measures
// (serve, s_server, nginx). A child is spawned without a shell, with stdout on a pipe the
// harness reads line by line and stderr in a log file; every wait has a deadline, and a
// child still running when its owner goes away is killed (SIGKILL to its process group).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace wasi_ktls::bench {

using Clock = std::chrono::steady_clock;

struct Exit {
  int status = 0;       // exit status, or 128 + signal
  double user_s = 0;    // CPU of the child and everything it waited for
  double sys_s = 0;
};

class Child {
 public:
  // argv[0] is looked up in PATH. `pass_fd` (if >= 0) becomes the child's fd 3.
  static Result<Child> spawn(const std::vector<std::string>& argv, const std::string& stderr_log,
                             int pass_fd = -1);
  Child(Child&&) noexcept;
  Child& operator=(Child&&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  // The next line of its stdout (without the newline); an error at EOF or the deadline.
  Result<std::string> read_line(Clock::time_point deadline);
  // Writes to its stdin (a pipe); closing it is its signal to finish (close_stdin).
  void close_stdin() { in_.reset(); }
  // Waits for it to exit; at the deadline it is killed and the wait fails (kind timeout).
  Result<Exit> wait(Clock::time_point deadline);
  void kill();  // SIGTERM now, SIGKILL if still there after a bounded grace
  const std::string& log_path() const { return log_; }
  // The last lines of its stderr log, for an error message.
  std::string log_tail() const;

 private:
  Child(pid_t pid, UniqueFd out, UniqueFd in, std::string log)
      : pid_(pid), out_(std::move(out)), in_(std::move(in)), log_(std::move(log)) {}
  pid_t pid_ = -1;
  UniqueFd out_, in_;
  std::string log_;
  std::string pending_;  // bytes read past the last line
};

// CPU seconds the process has used so far, all its threads: the total exact (the sum of
// /proc/PID/task/*/schedstat), split into user and system as /proc/PID/stat's tick counts are.
struct Cpu {
  double total = 0;                 // seconds, exact
  double user_ticks = 0, sys_ticks = 0;
  double user() const { return total * user_share(); }
  double sys() const { return total - user(); }
  double user_share() const { return user_ticks + sys_ticks > 0 ? user_ticks / (user_ticks + sys_ticks) : 1.0; }
};
Result<Cpu> process_cpu(pid_t pid);
Cpu operator-(const Cpu& a, const Cpu& b);
// Its resident set in bytes (/proc/PID/status VmRSS).
Result<std::uint64_t> process_rss(pid_t pid);
// How many file descriptors it has open (/proc/PID/fd).
Result<std::uint64_t> process_fds(pid_t pid);

// Waits until something accepts TCP connections on 127.0.0.1:port (bounded).
Status wait_listening(std::uint16_t port, std::chrono::milliseconds timeout);
// A port nothing listens on now (bound and released: good enough for a test server).
Result<std::uint16_t> free_port();

// Runs argv to completion (bounded), its output to `log`. Ok when it exits 0.
Status run_to_end(const std::vector<std::string>& argv, const std::string& log,
                  std::chrono::milliseconds timeout);

}  // namespace wasi_ktls::bench
