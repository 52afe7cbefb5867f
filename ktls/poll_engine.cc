#include "ktls/poll_engine.h"

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/sendfile.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <deque>
#include <map>
#include <optional>
#include <unordered_map>
#include <vector>

#include "base/unique_fd.h"

namespace wasi_ktls {
namespace {

enum class Kind : std::uint8_t { recv, send, recvmsg, sendmsg, send_file, accept, connect, timer };

constexpr int kIn = 0;
constexpr int kOut = 1;
constexpr std::size_t kSendfileChunk = std::size_t{1} << 30;

int direction(Kind k) {
  switch (k) {
    case Kind::recv:
    case Kind::recvmsg:
    case Kind::accept:
      return kIn;
    case Kind::timer:
      return -1;
    default:
      return kOut;
  }
}

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

}  // namespace

struct PollOp {
  Kind kind = Kind::recv;
  int fd = -1;
  Completion done;
  Clock::time_point deadline = kNoDeadline;
  void* buf = nullptr;
  std::size_t len = 0;
  int flags = 0;
  msghdr* msg = nullptr;
  sockaddr_storage addr{};
  socklen_t addrlen = 0;
  bool connecting = false;
  int file = -1;
  off_t offset = 0;
  std::size_t remaining = 0;
  std::size_t sent = 0;
  bool in_use = false;
  int result = 0;
  bool timed = false;
  std::multimap<Clock::time_point, PollOp*>::iterator deadline_it;
  PollOp* next_free = nullptr;
};

struct PollEngine::Impl {
  struct FdState {
    std::array<std::deque<PollOp*>, 2> q;
    std::uint32_t registered = 0;  // events epoll watches for this fd
    bool in_epoll = false;
  };

  UniqueFd epfd;
  unsigned depth = 0;
  std::vector<PollOp> pool;
  PollOp* free_list = nullptr;
  std::size_t live = 0;
  bool shutting_down = false;
  std::unordered_map<int, FdState> fds;
  std::multimap<Clock::time_point, PollOp*> deadlines;
  std::vector<int> dirty;  // fds with ops not yet tried
  std::vector<PollOp*> ready;

  Result<PollOp*> allocate(Kind kind, int fd, Clock::time_point deadline, Completion&& done) {
    if (shutting_down) return make_error("poll engine: shutting down");
    if (free_list == nullptr)
      return Error{fmt::format("poll engine: queue full ({} operations in flight)", depth), EBUSY};
    PollOp* op = free_list;
    free_list = op->next_free;
    *op = PollOp{};
    op->in_use = true;
    op->kind = kind;
    op->fd = fd;
    op->deadline = deadline;
    op->done = std::move(done);
    ++live;
    return op;
  }

  void release(PollOp* op) {
    op->in_use = false;
    op->done = nullptr;
    op->next_free = free_list;
    free_list = op;
    --live;
  }

  void enqueue(PollOp* op) {
    if (op->deadline != kNoDeadline) {
      op->timed = true;
      op->deadline_it = deadlines.emplace(op->deadline, op);
    }
    int d = direction(op->kind);
    if (d < 0) return;  // a timer: only its deadline matters
    fds[op->fd].q[d].push_back(op);
    dirty.push_back(op->fd);
  }

  // Completes `op`, wherever it is in its queue.
  void finish(PollOp* op, int res) {
    op->result = res;
    if (op->timed) {
      deadlines.erase(op->deadline_it);
      op->timed = false;
    }
    ready.push_back(op);
    int d = direction(op->kind);
    if (d < 0) return;
    auto it = fds.find(op->fd);
    if (it == fds.end()) return;
    auto& q = it->second.q[d];
    auto qi = std::find(q.begin(), q.end(), op);
    if (qi == q.end()) return;
    if (qi == q.begin()) dirty.push_back(op->fd);  // the next one may go now
    q.erase(qi);
  }

  // One try of the syscall behind `op`: its result, or nothing if it would block.
  std::optional<int> attempt(PollOp* op) {
    for (;;) {
      ssize_t n = -1;
      switch (op->kind) {
        case Kind::recv:
          n = ::recv(op->fd, op->buf, op->len, op->flags | MSG_DONTWAIT);
          break;
        case Kind::send:
          n = ::send(op->fd, op->buf, op->len, op->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
          break;
        case Kind::recvmsg:
          n = ::recvmsg(op->fd, op->msg, op->flags | MSG_DONTWAIT);
          break;
        case Kind::sendmsg:
          n = ::sendmsg(op->fd, op->msg, op->flags | MSG_DONTWAIT | MSG_NOSIGNAL);
          break;
        case Kind::accept: {
          NonBlocking nb(op->fd);
          if (nb.error() != 0) return -nb.error();
          n = ::accept4(op->fd, nullptr, nullptr, SOCK_CLOEXEC);
          break;
        }
        case Kind::connect:
          return attempt_connect(op);
        case Kind::send_file:
          return attempt_send_file(op);
        case Kind::timer:
          return std::nullopt;
      }
      if (n >= 0) return static_cast<int>(n);
      if (errno == EINTR) continue;
      if (would_block(errno)) return std::nullopt;
      return -errno;
    }
  }

  std::optional<int> attempt_connect(PollOp* op) {
    if (!op->connecting) {
      NonBlocking nb(op->fd);
      if (nb.error() != 0) return -nb.error();
      if (::connect(op->fd, reinterpret_cast<sockaddr*>(&op->addr), op->addrlen) == 0) return 0;
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
    if (::getpeername(op->fd, reinterpret_cast<sockaddr*>(&peer), &plen) == 0) return 0;
    int err = 0;
    socklen_t elen = sizeof err;
    if (::getsockopt(op->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0) return -errno;
    if (err != 0) return -err;
    return std::nullopt;
  }

  std::optional<int> attempt_send_file(PollOp* op) {
    NonBlocking nb(op->fd);
    if (nb.error() != 0) return -nb.error();
    while (op->remaining > 0) {
      ssize_t n = ::sendfile(op->fd, op->file, &op->offset, std::min(op->remaining, kSendfileChunk));
      if (n > 0) {
        op->sent += static_cast<std::size_t>(n);
        op->remaining -= static_cast<std::size_t>(n);
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

  unsigned deliver() {
    std::vector<PollOp*> batch;
    batch.swap(ready);
    for (PollOp* op : batch) {
      Completion cb = std::move(op->done);
      int res = op->result;
      release(op);
      if (cb) cb(res);
    }
    return static_cast<unsigned>(batch.size());
  }

  Result<unsigned> run_once(std::chrono::milliseconds wait) {
    expire();  // a deadline already past wins over trying the op
    drive_dirty();
    auto now = Clock::now();
    auto until = now + wait;
    if (!deadlines.empty() && deadlines.begin()->first < until) until = deadlines.begin()->first;
    int timeout_ms = 0;
    if (ready.empty() && until > now) {
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
    return deliver();
  }

  void shutdown() {
    shutting_down = true;
    std::vector<int> all;
    for (auto& [fd, st] : fds) all.push_back(fd);
    for (int fd : all) cancel_fd(fd);
    while (!deadlines.empty()) finish(deadlines.begin()->second, -ECANCELED);
    for (auto& [fd, st] : fds)
      if (st.in_epoll) (void)::epoll_ctl(epfd.get(), EPOLL_CTL_DEL, fd, nullptr);
    fds.clear();
    dirty.clear();
    while (!ready.empty()) deliver();
  }
};

Result<std::unique_ptr<PollEngine>> PollEngine::create(unsigned queue_depth) {
  if (queue_depth == 0)
    return Error{"poll engine: queue depth must be at least 1", EINVAL};
  auto impl = std::make_unique<Impl>();
  impl->epfd.reset(::epoll_create1(EPOLL_CLOEXEC));
  if (!impl->epfd) return errno_error(errno, "epoll_create1");
  impl->depth = queue_depth;
  impl->pool.resize(queue_depth);
  for (PollOp& op : impl->pool) {
    op.next_free = impl->free_list;
    impl->free_list = &op;
  }
  return std::unique_ptr<PollEngine>(new PollEngine(std::move(impl)));
}

PollEngine::PollEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

PollEngine::~PollEngine() { impl_->shutdown(); }

Status PollEngine::recv(int fd, std::span<std::uint8_t> buf, int flags,
                        Clock::time_point deadline, Completion done) {
  auto op = impl_->allocate(Kind::recv, fd, deadline, std::move(done));
  if (!op) return op.error();
  (*op)->buf = buf.data();
  (*op)->len = buf.size();
  (*op)->flags = flags;
  impl_->enqueue(*op);
  return {};
}

Status PollEngine::send(int fd, std::span<const std::uint8_t> buf, int flags,
                        Clock::time_point deadline, Completion done) {
  auto op = impl_->allocate(Kind::send, fd, deadline, std::move(done));
  if (!op) return op.error();
  (*op)->buf = const_cast<std::uint8_t*>(buf.data());
  (*op)->len = buf.size();
  (*op)->flags = flags;
  impl_->enqueue(*op);
  return {};
}

Status PollEngine::recvmsg(int fd, msghdr* msg, int flags, Clock::time_point deadline,
                           Completion done) {
  auto op = impl_->allocate(Kind::recvmsg, fd, deadline, std::move(done));
  if (!op) return op.error();
  (*op)->msg = msg;
  (*op)->flags = flags;
  impl_->enqueue(*op);
  return {};
}

Status PollEngine::sendmsg(int fd, const msghdr* msg, int flags, Clock::time_point deadline,
                           Completion done) {
  auto op = impl_->allocate(Kind::sendmsg, fd, deadline, std::move(done));
  if (!op) return op.error();
  (*op)->msg = const_cast<msghdr*>(msg);
  (*op)->flags = flags;
  impl_->enqueue(*op);
  return {};
}

Status PollEngine::send_file(int sock, int file, std::uint64_t offset, std::size_t len,
                             Clock::time_point deadline, Completion done) {
  if (offset > static_cast<std::uint64_t>(INT64_MAX) || len > static_cast<std::size_t>(INT32_MAX))
    return Error{"send_file: offset or length out of range (length at most 2 GiB - 1)", EINVAL};
  auto op = impl_->allocate(Kind::send_file, sock, deadline, std::move(done));
  if (!op) return op.error();
  (*op)->file = file;
  (*op)->offset = static_cast<off_t>(offset);
  (*op)->remaining = len;
  impl_->enqueue(*op);
  return {};
}

Status PollEngine::accept(int listen_fd, Clock::time_point deadline, Completion done) {
  auto op = impl_->allocate(Kind::accept, listen_fd, deadline, std::move(done));
  if (!op) return op.error();
  impl_->enqueue(*op);
  return {};
}

Status PollEngine::connect(int fd, const sockaddr* addr, socklen_t len,
                           Clock::time_point deadline, Completion done) {
  if (len > sizeof(sockaddr_storage)) return Error{"connect: address too long", EINVAL};
  auto op = impl_->allocate(Kind::connect, fd, deadline, std::move(done));
  if (!op) return op.error();
  std::memcpy(&(*op)->addr, addr, len);
  (*op)->addrlen = len;
  impl_->enqueue(*op);
  return {};
}

Status PollEngine::timer(Clock::time_point when, Completion done) {
  auto op = impl_->allocate(Kind::timer, -1, when, std::move(done));
  if (!op) return op.error();
  impl_->enqueue(*op);
  return {};
}

void PollEngine::cancel(int fd) { impl_->cancel_fd(fd); }

Result<unsigned> PollEngine::run_once(std::chrono::milliseconds wait) {
  return impl_->run_once(wait);
}

std::size_t PollEngine::in_flight() const { return impl_->live; }

}  // namespace wasi_ktls
