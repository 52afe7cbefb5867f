#include "bench/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "ktls/io/tcp_socket.h"

extern char** environ;

namespace wasi_ktls::bench {
namespace {

int ms_until(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left < 0 ? 0 : static_cast<int>(std::min<long>(left, 1 << 30));
}

double seconds(const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; }

}  // namespace

Result<Child> Child::spawn(const std::vector<std::string>& argv, const std::string& stderr_log,
                           int pass_fd) {
  int out[2], in[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return errno_error(errno, "pipe");
  UniqueFd out_r(out[0]), out_w(out[1]);
  if (::pipe2(in, O_CLOEXEC) != 0) return errno_error(errno, "pipe");
  UniqueFd in_r(in[0]), in_w(in[1]);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in_r.get(), 0);
  posix_spawn_file_actions_adddup2(&fa, out_w.get(), 1);
  posix_spawn_file_actions_addopen(&fa, 2, stderr_log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (pass_fd >= 0) posix_spawn_file_actions_adddup2(&fa, pass_fd, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);  // its own group: kill() takes all
  posix_spawnattr_setpgroup(&attr, 0);

  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) return errno_error(rc, "start " + argv[0]);
  return Child(pid, std::move(out_r), std::move(in_w), stderr_log);
}

Child::Child(Child&& o) noexcept
    : pid_(std::exchange(o.pid_, -1)), out_(std::move(o.out_)), in_(std::move(o.in_)),
      log_(std::move(o.log_)), pending_(std::move(o.pending_)) {}

Child::~Child() { kill(); }

Result<std::string> Child::read_line(Clock::time_point deadline) {
  for (;;) {
    if (auto nl = pending_.find('\n'); nl != std::string::npos) {
      std::string line = pending_.substr(0, nl);
      pending_.erase(0, nl + 1);
      return line;
    }
    if (!out_) return make_error("no more output");
    pollfd p{out_.get(), POLLIN, 0};
    int r = ::poll(&p, 1, ms_until(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_error(errno, "poll");
    if (r == 0) return make_error(ErrorKind::timeout, "no answer in time");
    char buf[4096];
    ssize_t n = ::read(out_.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      out_.reset();
      return make_error("it ended without answering");
    }
    pending_.append(buf, static_cast<std::size_t>(n));
  }
}

Result<Exit> Child::wait(Clock::time_point deadline) {
  if (pid_ < 0) return make_error("already waited for");
  for (;;) {
    int status = 0;
    rusage ru{};
    pid_t r = ::wait4(pid_, &status, WNOHANG, &ru);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_error(errno, "wait4");
    if (r == pid_) {
      pid_ = -1;
      Exit e;
      e.status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      e.user_s = seconds(ru.ru_utime);
      e.sys_s = seconds(ru.ru_stime);
      return e;
    }
    if (Clock::now() >= deadline) {
      kill();
      return make_error(ErrorKind::timeout, "did not finish in time (killed)");
    }
    // No pidfd here (posix_spawn gives none): poll its exit at 5 ms granularity.
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void Child::kill() {
  if (pid_ < 0) return;
  ::kill(-pid_, SIGTERM);
  auto deadline = Clock::now() + std::chrono::seconds(3);
  int status;
  while (::waitpid(pid_, &status, WNOHANG) == 0) {
    if (Clock::now() >= deadline) {
      ::kill(-pid_, SIGKILL);
      ::waitpid(pid_, &status, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
}

std::string Child::log_tail() const {
  std::ifstream f(log_);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string s = ss.str();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  if (s.size() > 600) s = "..." + s.substr(s.size() - 600);
  for (char& c : s)
    if (c == '\n') c = ' ';
  return s;
}

Result<Cpu> process_cpu(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::ifstream f(proc + "/stat");
  std::string line;
  if (!std::getline(f, line)) return make_error("cannot read {}/stat", proc);
  // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
  auto close = line.rfind(')');
  if (close == std::string::npos) return make_error("odd {}/stat", proc);
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  double utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stod(field);
    if (i == 15) stime = std::stod(field);
  }
  double ns = 0;
  std::error_code ec;
  for (const auto& task : std::filesystem::directory_iterator(proc + "/task", ec)) {
    std::ifstream t(task.path() / "schedstat");
    double on_cpu = 0;
    if (t >> on_cpu) ns += on_cpu;
  }
  if (ec) return make_error("cannot list {}/task: {}", proc, ec.message());
  return Cpu{ns / 1e9, utime, stime};
}

Cpu operator-(const Cpu& a, const Cpu& b) {
  return {a.total - b.total, a.user_ticks - b.user_ticks, a.sys_ticks - b.sys_ticks};
}

Result<std::uint64_t> process_rss(pid_t pid) {
  std::ifstream f("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return make_error("no VmRSS for process {}", pid);
}

Result<std::uint64_t> process_fds(pid_t pid) {
  std::error_code ec;
  std::uint64_t n = 0;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  if (ec) return make_error("cannot list /proc/{}/fd: {}", pid, ec.message());
  return n;
}

Status wait_listening(std::uint16_t port, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    if (auto c = tcp_connect("127.0.0.1", port, std::chrono::milliseconds(500))) return {};
    if (Clock::now() >= deadline)
      return make_error(ErrorKind::timeout, "nothing listening on port {} after {} ms", port,
                        timeout.count());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<std::uint16_t> free_port() {
  auto l = tcp_listen("127.0.0.1", 0);
  if (!l) return l.error();
  return local_port(l->get());
}

Status run_to_end(const std::vector<std::string>& argv, const std::string& log,
                  std::chrono::milliseconds timeout) {
  auto c = Child::spawn(argv, log);
  if (!c) return c.error();
  c->close_stdin();
  auto e = c->wait(Clock::now() + timeout);
  if (!e) return make_error("{}: {}", argv[0], e.error().message);
  if (e->status != 0) return make_error("{} exited {}: {}", argv[0], e->status, c->log_tail());
  return {};
}

}  // namespace wasi_ktls::bench
