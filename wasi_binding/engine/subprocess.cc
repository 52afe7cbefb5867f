#include "wasi_binding/engine/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"

namespace wasi_ktls::wasm {
namespace {

using Clock = std::chrono::steady_clock;

// Enough of a compiler's complaint to act on; the rest is usually the same error repeated.
constexpr std::size_t kTailBytes = 4000;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<long>(left, 1 << 30));
}

std::string tail(const std::string& s) {
  return s.size() <= kTailBytes ? s : "..." + s.substr(s.size() - kTailBytes);
}

// The child side: only async-signal-safe calls between fork and exec.
[[noreturn]] void exec_child(char* const* argv, int devnull, int out, int report) {
  ::setpgid(0, 0);
  ::dup2(devnull, 0);
  ::dup2(out, 1);
  ::dup2(out, 2);
  // Whatever other threads opened without O_CLOEXEC must not leak into the tool.
  ::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  ::execvp(argv[0], argv);
  const int err = errno;
  (void)!::write(report, &err, sizeof err);
  ::_exit(127);
}

}  // namespace

Status run_tool(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  const std::string& tool = argv.at(0);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  UniqueFd devnull(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!devnull) return errno_error(errno, "open /dev/null");
  int out_pipe[2], report_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) return errno_error(errno, "pipe");
  UniqueFd out_r(out_pipe[0]), out_w(out_pipe[1]);
  if (::pipe2(report_pipe, O_CLOEXEC) != 0) return errno_error(errno, "pipe");
  UniqueFd report_r(report_pipe[0]), report_w(report_pipe[1]);

  const pid_t pid = ::fork();
  if (pid < 0) return errno_error(errno, "fork " + tool);
  if (pid == 0) exec_child(args.data(), devnull.get(), out_w.get(), report_w.get());
  ::setpgid(pid, pid);  // also here, so the group exists whichever side runs first
  out_w.reset();
  report_w.reset();

  // Reaps the child on every path out of here; kills its group first unless it exited.
  struct Reaper {
    pid_t pid;
    bool exited = false;
    int status = 0;
    ~Reaper() {
      if (!exited) {
        ::kill(-pid, SIGKILL);
        ::kill(pid, SIGKILL);
        while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
      }
    }
  } reaper{pid};

  // The raw syscall: glibc 2.36's <sys/pidfd.h> declares pidfd_open without C linkage.
  UniqueFd pidfd(static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)));
  if (!pidfd) return errno_error(errno, "pidfd_open for " + tool);

  std::string output;
  bool out_open = true, running = true;
  while (out_open || running) {
    pollfd fds[2] = {{out_r.get(), out_open ? short(POLLIN) : short(0), 0},
                     {pidfd.get(), running ? short(POLLIN) : short(0), 0}};
    const int n = ::poll(fds, 2, remaining_ms(deadline));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, "poll " + tool);
    if (n == 0) {
      auto e =
          make_error(ErrorKind::timeout, "{} ran past its {} ms limit and was killed{}{}", tool,
                     timeout.count(), output.empty() ? "" : "; its output: ", tail(output));
      e.sys_errno = ETIMEDOUT;
      return e;
    }
    if (fds[0].revents != 0) {
      char buf[4096];
      const ssize_t got = ::read(out_r.get(), buf, sizeof buf);
      if (got < 0 && errno != EINTR) return errno_error(errno, "read the output of " + tool);
      if (got == 0) out_open = false;
      if (got > 0) {
        output.append(buf, static_cast<std::size_t>(got));
        if (output.size() > 2 * kTailBytes) output.erase(0, output.size() - kTailBytes);
      }
    }
    if (fds[1].revents != 0) {
      // Nothing the tool started may outlive it. Killed before the reap, while the pid (a
      // zombie's) cannot have been reused for another group.
      ::kill(-pid, SIGKILL);
      while (::waitpid(pid, &reaper.status, 0) < 0 && errno == EINTR) {
      }
      reaper.exited = true;
      running = false;
    }
  }

  int exec_errno = 0;
  if (::read(report_r.get(), &exec_errno, sizeof exec_errno) == sizeof exec_errno)
    return make_error(ErrorKind::config, "cannot run {}: {}", tool, std::strerror(exec_errno));
  const int status = reaper.status;
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return {};
  const std::string how = WIFSIGNALED(status)
                              ? fmt::format("was killed by signal {}", WTERMSIG(status))
                              : fmt::format("exited with status {}", WEXITSTATUS(status));
  return make_error(ErrorKind::config, "{} {}{}{}", tool, how,
                    output.empty() ? "" : "; its output: ", tail(output));
}

}  // namespace wasi_ktls::wasm
