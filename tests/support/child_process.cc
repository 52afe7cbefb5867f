#include "tests/support/child_process.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace wasi_ktls::test {
namespace {

using Clock = std::chrono::steady_clock;

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(left.count());
}

}  // namespace

Result<ChildProcess> ChildProcess::spawn(const std::vector<std::string>& argv,
                                         bool inherit_stderr) {
  if (argv.empty()) return make_error("spawn: empty argv");
  int in[2], out[2];
  if (::pipe2(in, O_CLOEXEC) != 0) return errno_error(errno, "pipe");
  if (::pipe2(out, O_CLOEXEC) != 0) {
    ::close(in[0]);
    ::close(in[1]);
    return errno_error(errno, "pipe");
  }
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);

  pid_t pid = ::fork();
  if (pid < 0) return errno_error(errno, "fork");
  if (pid == 0) {
    ::dup2(in[0], 0);
    ::dup2(out[1], 1);
    if (!inherit_stderr) ::dup2(out[1], 2);
    ::setpgid(0, 0);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
  ::close(in[0]);
  ::close(out[1]);
  ChildProcess c;
  c.pid_ = pid;
  // Our end never blocks: write_stdin waits with poll, so its timeout holds even when the
  // child stops reading mid-write.
  ::fcntl(in[1], F_SETFL, ::fcntl(in[1], F_GETFL) | O_NONBLOCK);
  c.stdin_.reset(in[1]);
  c.stdout_.reset(out[0]);
  return c;
}

ChildProcess::ChildProcess(ChildProcess&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)),
      stdin_(std::move(o.stdin_)),
      stdout_(std::move(o.stdout_)),
      out_(std::move(o.out_)) {}

ChildProcess::~ChildProcess() {
  if (pid_ > 0) {
    ::kill(-pid_, SIGKILL);
    ::kill(pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
}

Status ChildProcess::write_stdin(std::string_view data, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (!data.empty()) {
    pollfd p{stdin_.get(), POLLOUT, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return make_error("timed out writing to child stdin");
    ssize_t n = ::write(stdin_.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR || errno == EAGAIN) continue;
      return errno_error(errno, "write to child stdin");
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
  return {};
}

Result<bool> ChildProcess::read_some(Clock::time_point deadline) {
  if (!stdout_) return false;
  pollfd p{stdout_.get(), POLLIN, 0};
  int r;
  do r = ::poll(&p, 1, remaining_ms(deadline));
  while (r < 0 && errno == EINTR);
  if (r == 0) return make_error("timed out waiting for child output (so far: '{}')",
                                out_.substr(out_.size() > 300 ? out_.size() - 300 : 0));
  if (r < 0) return errno_error(errno, "poll child stdout");
  char buf[65536];
  ssize_t n = ::read(stdout_.get(), buf, sizeof buf);
  if (n < 0) return errno_error(errno, "read child stdout");
  if (n == 0) {
    stdout_.reset();
    return false;
  }
  out_.append(buf, static_cast<std::size_t>(n));
  return true;
}

Status ChildProcess::read_to_end(std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  for (;;) {
    auto more = read_some(deadline);
    if (!more) return more.error();
    if (!*more) return {};
  }
}

Result<int> ChildProcess::wait(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return make_error("no child to wait for");
  auto deadline = Clock::now() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      pid_ = -1;
      return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    }
    if (r < 0) return errno_error(errno, "waitpid");
    if (Clock::now() >= deadline) {
      kill(SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
      return make_error("child did not exit within {} ms; killed", timeout.count());
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

void ChildProcess::kill(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

Result<int> free_port() {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) return errno_error(errno, "socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0)
    return errno_error(errno, "bind");
  socklen_t len = sizeof a;
  if (::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0)
    return errno_error(errno, "getsockname");
  return static_cast<int>(ntohs(a.sin_port));
}

}  // namespace wasi_ktls::test
