#include "ktls/io/poll_engine.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/unique_fd.h"
#include "ktls/io/io_request.h"
#include "ktls/io/op_pool.h"

namespace wasi_ktls {
namespace {

using Kind = IoRequest::Kind;

constexpr std::size_t kSendfileChunk = std::size_t{1} << 30;

// Sets O_NONBLOCK on `fd` for this object's life if it wasn't set, then puts the flags back.
class NonBlocking {
 public:
  explicit NonBlocking(int fd) : fd_(fd) {
    flags_ = ::fcntl(fd, F_GETFL);
    if (flags_ < 0) {
      err_ = errno;
      return;
    }
    if ((flags_ & O_NONBLOCK) == 0 && ::fcntl(fd, F_SETFL, flags_ | O_NONBLOCK) < 0) {
      err_ = errno;
      return;
    }
  }
  ~NonBlocking() {
    if (err_ == 0 && (flags_ & O_NONBLOCK) == 0) (void)::fcntl(fd_, F_SETFL, flags_);
  }
  NonBlocking(const NonBlocking&) = delete;
  NonBlocking& operator=(const NonBlocking&) = delete;
  int error() const { return err_; }

 private:
  int fd_;
  int flags_ = 0;
  int err_ = 0;
};

bool would_block(int err) { return err == EAGAIN || err == EWOULDBLOCK; }

// sendfile(2) to a socket whose peer has gone raises SIGPIPE in the calling thread (it takes
// no MSG_NOSIGNAL), which by default ends the process. For this object's life SIGPIPE is
// blocked in this thread only (no process-wide disposition changes); one that became pending
// meanwhile is this thread's own doing and is taken away before the mask is restored. If one
// was pending already (the embedder blocks SIGPIPE and has one waiting), nothing is touched:
// a SIGPIPE of ours could not be told apart from it.
class SigpipeSuppressed {
 public:
  SigpipeSuppressed() {
    sigemptyset(&pipe_);
    sigaddset(&pipe_, SIGPIPE);
    sigset_t pending;
    if (::sigpending(&pending) < 0 || sigismember(&pending, SIGPIPE) == 1) return;
    blocked_ = ::pthread_sigmask(SIG_BLOCK, &pipe_, &old_) == 0;
  }
  ~SigpipeSuppressed() {
    if (!blocked_) return;
    const int saved_errno = errno;
    sigset_t pending;
    if (::sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE) == 1) {
      const timespec zero{};
      while (::sigtimedwait(&pipe_, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    (void)::pthread_sigmask(SIG_SETMASK, &old_, nullptr);
    errno = saved_errno;
  }
  SigpipeSuppressed(const SigpipeSuppressed&) = delete;
  SigpipeSuppressed& operator=(const SigpipeSuppressed&) = delete;

 private:
  sigset_t pipe_;
  sigset_t old_;
  bool blocked_ = false;
};

}  // namespace

struct PollOp {
  IoRequest req;
  bool connecting = false;
  std::size_t sent = 0;  // send_file
  bool in_use = false;
  int result = 0;
  bool timed = false;
  std::multimap<Clock::time_point, PollOp*>::iterator deadline_it{};
  PollOp* next_free = nullptr;
};

struct PollEngine::Impl {
  struct FdState {
    std::array<std::vector<PollOp*>, 2> q;  // vectors: see UringEngine's queues
    std::uint32_t registered = 0;  // events epoll watches for this fd
    bool in_epoll = false;
  };

  explicit Impl(unsigned depth) : ops("poll", depth) {}

  UniqueFd epfd;
  OpPool<PollOp> ops;
  std::unordered_map<int, FdState> fds;
  std::multimap<Clock::time_point, PollOp*> deadlines;
  std::vector<int> dirty;  // fds with ops not yet tried

  void enqueue(PollOp* op) {
    const IoRequest& r = op->req;
    if (r.deadline != kNoDeadline) {
      op->timed = true;
      op->deadline_it = deadlines.emplace(r.deadline, op);
    }
    int d = direction(r);
    if (d < 0) return;  // a timer: only its deadline matters
    fds[r.fd].q[d].push_back(op);
    dirty.push_back(r.fd);
  }

  // Completes `op`, wherever it is in its queue.
  void finish(PollOp* op, int res) {
    if (op->timed) {
      deadlines.erase(op->deadline_it);
      op->timed = false;
    }
    ops.ready(op, res);
    int d = direction(op->req);
    if (d < 0) return;
    auto it = fds.find(op->req.fd);
    if (it == fds.end()) return;
    auto& q = it->second.q[d];
    auto qi = std::find(q.begin(), q.end(), op);
    if (qi == q.end()) return;
    if (qi == q.begin()) dirty.push_back(op->req.fd);  // the next one may go now
    q.erase(qi);
  }

  // One try of the syscall behind `op`: its result, or nothing if it would block.
  std::optional<int> attempt(PollOp* op) {
    const IoRequest& r = op->req;
    for (;;) {
      ssize_t n = -1;
      switch (r.kind) {
        case Kind::recv:
          n = ::recv(r.fd, r.buf, r.len, r.flags | MSG_DONTWAIT);
          break;
        case Kind::send:
          n = ::send(r.fd, r.buf, r.len, r.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
          break;
        case Kind::recvmsg:
          n = ::recvmsg(r.fd, r.msg, r.flags | MSG_DONTWAIT);
          break;
        case Kind::sendmsg:
          n = ::sendmsg(r.fd, r.msg, r.flags | MSG_DONTWAIT | MSG_NOSIGNAL);
          break;
        case Kind::accept: {
          NonBlocking nb(r.fd);
          if (nb.error() != 0) return -nb.error();
          n = ::accept4(r.fd, nullptr, nullptr, SOCK_CLOEXEC);
          break;
        }
        case Kind::connect:
          return attempt_connect(op);
        case Kind::send_file:
          return attempt_send_file(op);
        case Kind::timer:
          return std::nullopt;
        case Kind::poll: {
          pollfd p{r.fd, static_cast<short>(r.flags), 0};
          const int rc = ::poll(&p, 1, 0);
          if (rc < 0 && errno == EINTR) continue;
          if (rc < 0) return -errno;
          if (rc == 0) return std::nullopt;
          return static_cast<int>(p.revents);
        }
      }
      if (n >= 0) return static_cast<int>(n);
      if (errno == EINTR) continue;
      if (would_block(errno)) return std::nullopt;
      return -errno;
    }
  }

  std::optional<int> attempt_connect(PollOp* op) {
    const IoRequest& r = op->req;
    if (!op->connecting) {
      NonBlocking nb(r.fd);
      if (nb.error() != 0) return -nb.error();
      if (::connect(r.fd, reinterpret_cast<const sockaddr*>(&r.addr), r.addrlen) == 0) return 0;
      int err = errno;
      if (err != EINPROGRESS && err != EINTR && err != EALREADY) {
        if (would_block(err)) return std::nullopt;  // AF_UNIX backlog full: try again later
        return -err;
      }
      op->connecting = true;
    }
    // Connected once the socket has a peer; a failed attempt leaves its errno in SO_ERROR.
    sockaddr_storage peer{};
    socklen_t plen = sizeof peer;
    if (::getpeername(r.fd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0) return 0;
    int err = 0;
    socklen_t elen = sizeof err;
    if (::getsockopt(r.fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) return -errno;
    if (err != 0) return -err;
    return std::nullopt;
  }

  std::optional<int> attempt_send_file(PollOp* op) {
    IoRequest& r = op->req;
    NonBlocking nb(r.fd);
    if (nb.error() != 0) return -nb.error();
    SigpipeSuppressed quiet;
    while (r.len > 0) {
      off_t at = static_cast<off_t>(r.offset);  // the front end checked it fits
      ssize_t n = ::sendfile(r.fd, r.file, &at, std::min(r.len, kSendfileChunk));
      if (n > 0) {
        r.offset += static_cast<std::uint64_t>(n);
        r.len -= static_cast<std::size_t>(n);
        op->sent += static_cast<std::size_t>(n);
        continue;
      }
      if (n == 0) break;  // end of file
      if (errno == EINTR) continue;
      if (would_block(errno)) return std::nullopt;
      return -errno;
    }
    return static_cast<int>(op->sent);
  }

  // Tries the head ops of `fd` until one would block, then tells epoll what to wait for.
  void drive(int fd) {
    auto it = fds.find(fd);
    if (it == fds.end()) return;
    FdState& st = it->second;
    for (auto& q : st.q) {
      while (!q.empty()) {
        PollOp* op = q.front();
        std::optional<int> r = attempt(op);
        if (!r) break;
        finish(op, *r);
      }
    }
    update_epoll(fd, st);
    if (st.q[kIn].empty() && st.q[kOut].empty() && !st.in_epoll) fds.erase(fd);
  }

  void update_epoll(int fd, FdState& st) {
    std::uint32_t want = (st.q[kIn].empty() ? 0u : std::uint32_t{EPOLLIN}) |
                         (st.q[kOut].empty() ? 0u : std::uint32_t{EPOLLOUT});
    if (want == 0) {
      // Not left registered: a closed fd's number may come back as another file.
      if (st.in_epoll) (void)::epoll_ctl(epfd.get(), EPOLL_CTL_DEL, fd, nullptr);
      st.in_epoll = false;
      st.registered = 0;
      return;
    }
    if (st.in_epoll && want == st.registered) return;
    epoll_event ev{};
    ev.events = want;
    ev.data.fd = fd;
    int rc = ::epoll_ctl(epfd.get(), st.in_epoll ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev);
    if (rc < 0 && errno == ENOENT) rc = ::epoll_ctl(epfd.get(), EPOLL_CTL_ADD, fd, &ev);
    if (rc < 0 && errno == EEXIST) rc = ::epoll_ctl(epfd.get(), EPOLL_CTL_MOD, fd, &ev);
    if (rc < 0) {
      // Nothing to wait on (a closed fd, or a file epoll refuses): the ops fail with why.
      int err = errno;
      st.in_epoll = false;
      st.registered = 0;
      for (auto& q : st.q)
        while (!q.empty()) finish(q.front(), -err);
      return;
    }
    st.in_epoll = true;
    st.registered = want;
  }

  void drive_dirty() {
    while (!dirty.empty()) {
      std::vector<int> batch;
      batch.swap(dirty);
      std::sort(batch.begin(), batch.end());
      batch.erase(std::unique(batch.begin(), batch.end()), batch.end());
      for (int fd : batch) drive(fd);
    }
  }

  void expire() {
    auto now = Clock::now();
    while (!deadlines.empty() && deadlines.begin()->first <= now)
      finish(deadlines.begin()->second, -ETIME);
  }

  void cancel_fd(int fd) {
    auto it = fds.find(fd);
    if (it == fds.end()) return;
    for (auto& q : it->second.q)
      while (!q.empty()) finish(q.front(), -ECANCELED);
    dirty.push_back(fd);  // drops the epoll registration
  }

  Result<unsigned> run_once(std::chrono::milliseconds wait) {
    expire();  // a deadline already past wins over trying the op
    drive_dirty();
    auto now = Clock::now();
    auto until = now + wait;
    if (!deadlines.empty() && deadlines.begin()->first < until) until = deadlines.begin()->first;
    int timeout_ms = 0;
    if (!ops.any_ready() && until > now) {
      // Rounded up: waking a little late beats spinning until the deadline.
      auto us = std::chrono::duration_cast<std::chrono::microseconds>(until - now).count();
      timeout_ms = static_cast<int>(std::min<long long>((us + 999) / 1000, 1 << 30));
    }
    std::array<epoll_event, 256> events;
    int n = ::epoll_wait(epfd.get(), events.data(), static_cast<int>(events.size()), timeout_ms);
    if (n < 0 && errno != EINTR) return errno_error(errno, "epoll_wait");
    for (int i = 0; i < n; ++i) dirty.push_back(events[i].data.fd);
    drive_dirty();
    expire();
    drive_dirty();
    return ops.deliver();
  }

  void shutdown() {
    ops.shutting_down = true;
    std::vector<int> all;
    for (auto& [fd, st] : fds) all.push_back(fd);
    for (int fd : all) cancel_fd(fd);
    while (!deadlines.empty()) finish(deadlines.begin()->second, -ECANCELED);
    for (auto& [fd, st] : fds)
      if (st.in_epoll) (void)::epoll_ctl(epfd.get(), EPOLL_CTL_DEL, fd, nullptr);
    fds.clear();
    dirty.clear();
    while (ops.any_ready()) ops.deliver();
  }
};

Result<std::unique_ptr<PollEngine>> PollEngine::create(unsigned queue_depth) {
  if (queue_depth == 0)
    return Error{"poll engine: queue depth must be at least 1", EINVAL};
  auto impl = std::make_unique<Impl>(queue_depth);
  impl->epfd.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!impl->epfd) return errno_error(errno, "epoll_create1");
  return std::unique_ptr<PollEngine>(new PollEngine(std::move(impl)));
}

PollEngine::PollEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PollEngine::~PollEngine() { impl_->shutdown(); }

Status PollEngine::start(IoRequest&& req) {
  auto op = impl_->ops.acquire(std::move(req));
  if (!op) return op.error();
  impl_->enqueue(*op);
  return {};
}

void PollEngine::cancel(int fd) { impl_->cancel_fd(fd); }

Result<unsigned> PollEngine::run_once(std::chrono::milliseconds wait) {
  return impl_->run_once(wait);
}

std::size_t PollEngine::in_flight() const { return impl_->ops.live(); }

}  // namespace wasi_ktls
