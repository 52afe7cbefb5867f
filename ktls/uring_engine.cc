#include "ktls/uring_engine.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <deque>
#include <map>
#include <unordered_map>
#include <vector>

namespace wasi_ktls {
namespace {

enum class Kind : std::uint8_t { recv, send, recvmsg, sendmsg, send_file, accept, connect, timer };
// send_file's steps: file -> pipe, pipe -> socket, wait for the socket to take more.
enum class Step : std::uint8_t { main, fill, drain, wait_out };

constexpr int kIn = 0;
constexpr int kOut = 1;
constexpr unsigned kMaxEntries = 32768;   // IORING_MAX_ENTRIES
constexpr int kPipeSize = 1 << 20;        // the default /proc/sys/fs/pipe-max-size
constexpr std::size_t kIdlePipes = 16;    // pipes kept for reuse
constexpr auto kShutdownBound = std::chrono::seconds(5);

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

struct Pipe {
  int r = -1;
  int w = -1;
  std::size_t size = 0;
};

__kernel_timespec to_timespec(Clock::time_point t) {
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  if (ns < 0) ns = 0;
  __kernel_timespec ts{};
  ts.tv_sec = ns / 1'000'000'000;
  ts.tv_nsec = ns % 1'000'000'000;
  return ts;
}

}  // namespace

// One started operation. Records live in a fixed pool (queue_depth of them); user_data is the
// record's address, with bit 0 set on the CQE of its linked timeout.
struct Op {
  Kind kind = Kind::recv;
  Step step = Step::main;
  int fd = -1;
  Completion done;
  Clock::time_point deadline = kNoDeadline;
  // Arguments.
  void* buf = nullptr;
  std::size_t len = 0;
  int flags = 0;
  msghdr* msg = nullptr;
  sockaddr_storage addr{};
  socklen_t addrlen = 0;
  // send_file.
  int file = -1;
  std::uint64_t offset = 0;
  std::size_t remaining = 0;
  std::size_t sent = 0;
  std::size_t in_pipe = 0;
  Pipe pipe;
  // State.
  bool in_use = false;
  bool finished = false;   // result set, callback pending
  bool active = false;     // head of its fd queue (or a timer): owns SQEs in the kernel
  bool cancelled = false;  // cancel(fd) or shutdown
  int pending_cqes = 0;
  int step_res = 0;
  bool step_timed_out = false;
  int result = 0;
  __kernel_timespec ts{};  // read by the kernel at submission
  bool waiting = false;    // queued behind another op, its deadline in `waiting_`
  std::multimap<Clock::time_point, Op*>::iterator wait_it;
  Op* next_free = nullptr;
};

struct UringEngine::Impl {
  io_uring ring{};
  unsigned depth = 0;
  std::vector<Op> pool;
  Op* free_list = nullptr;
  std::size_t live = 0;
  bool shutting_down = false;
  std::uint64_t enters = 0;
  std::unordered_map<int, std::array<std::deque<Op*>, 2>> fds;
  std::multimap<Clock::time_point, Op*> waiting;  // deadlines of queued, not yet submitted ops
  std::vector<Op*> ready;                         // finished, callback not yet run
  std::vector<Pipe> idle_pipes;

  ~Impl() {
    for (Pipe& p : idle_pipes) close_pipe(p);
  }

  static void close_pipe(Pipe& p) {
    if (p.r >= 0) ::close(p.r);
    if (p.w >= 0) ::close(p.w);
    p = Pipe{};
  }

  Result<Op*> allocate(Kind kind, int fd, Clock::time_point deadline, Completion&& done) {
    if (shutting_down) return make_error("io_uring engine: shutting down");
    if (free_list == nullptr)
      return Error{fmt::format("io_uring engine: queue full ({} operations in flight)", depth),
                   EBUSY};
    Op* op = free_list;
    free_list = op->next_free;
    Op fresh;
    *op = std::move(fresh);
    op->in_use = true;
    op->kind = kind;
    op->fd = fd;
    op->deadline = deadline;
    op->done = std::move(done);
    ++live;
    return op;
  }

  void release(Op* op) {
    op->in_use = false;
    op->done = nullptr;
    op->next_free = free_list;
    free_list = op;
    --live;
  }

  // Queues `op` behind the others on its fd and direction; the head goes to the kernel.
  void enqueue(Op* op) {
    int d = direction(op->kind);
    if (d < 0) {
      activate(op);
      return;
    }
    auto& q = fds[op->fd][d];
    q.push_back(op);
    if (q.size() == 1) {
      activate(op);
    } else if (op->deadline != kNoDeadline) {
      op->waiting = true;
      op->wait_it = waiting.emplace(op->deadline, op);
    }
  }

  void unwait(Op* op) {
    if (!op->waiting) return;
    waiting.erase(op->wait_it);
    op->waiting = false;
  }

  void activate(Op* op) {
    unwait(op);
    op->active = true;
    if (op->cancelled) return finish(op, -ECANCELED);
    if (op->kind == Kind::send_file) {
      if (op->remaining == 0) return finish(op, 0);
      op->step = Step::fill;
    }
    if (op->deadline != kNoDeadline && op->deadline <= Clock::now()) return finish(op, -ETIME);
    submit_step(op);
  }

  // Room for `need` SQEs, submitting what is queued if the SQ is full; null only if the
  // kernel refuses to take them (its CQ backed up even after reaping).
  io_uring_sqe* get_sqe(unsigned need) {
    if (io_uring_sq_space_left(&ring) < need) flush();
    if (io_uring_sq_space_left(&ring) < need) {
      reap();
      flush();
    }
    if (io_uring_sq_space_left(&ring) < need) return nullptr;
    return io_uring_get_sqe(&ring);
  }

  void flush() {
    if (io_uring_sq_ready(&ring) == 0) return;
    ++enters;
    int rc = io_uring_submit(&ring);
    // -EBUSY/-EAGAIN: the CQ is backed up; the SQEs stay queued and go with the next enter.
    (void)rc;
  }

  void submit_step(Op* op) {
    const bool timed = op->deadline != kNoDeadline && op->kind != Kind::timer;
    io_uring_sqe* sqe = get_sqe(timed ? 2 : 1);
    if (sqe == nullptr) return finish(op, -EBUSY);
    switch (op->kind) {
      case Kind::recv:
        io_uring_prep_recv(sqe, op->fd, op->buf, op->len, op->flags);
        break;
      case Kind::send:
        io_uring_prep_send(sqe, op->fd, op->buf, op->len, op->flags | MSG_NOSIGNAL);
        break;
      case Kind::recvmsg:
        io_uring_prep_recvmsg(sqe, op->fd, op->msg, static_cast<unsigned>(op->flags));
        break;
      case Kind::sendmsg:
        io_uring_prep_sendmsg(sqe, op->fd, op->msg,
                              static_cast<unsigned>(op->flags | MSG_NOSIGNAL));
        break;
      case Kind::accept:
        io_uring_prep_accept(sqe, op->fd, nullptr, nullptr, SOCK_CLOEXEC);
        break;
      case Kind::connect:
        io_uring_prep_connect(sqe, op->fd, reinterpret_cast<sockaddr*>(&op->addr), op->addrlen);
        break;
      case Kind::timer:
        op->ts = to_timespec(op->deadline);
        io_uring_prep_timeout(sqe, &op->ts, 0, IORING_TIMEOUT_ABS);
        break;
      case Kind::send_file:
        if (op->step == Step::fill) {
          std::size_t n = std::min(op->remaining, op->pipe.size);
          io_uring_prep_splice(sqe, op->file, static_cast<std::int64_t>(op->offset), op->pipe.w,
                               -1, static_cast<unsigned>(n), 0);
        } else if (op->step == Step::drain) {
          io_uring_prep_splice(sqe, op->pipe.r, -1, op->fd, -1,
                               static_cast<unsigned>(op->in_pipe), 0);
        } else {
          io_uring_prep_poll_add(sqe, op->fd, POLLOUT);
        }
        break;
    }
    io_uring_sqe_set_data(sqe, op);
    op->pending_cqes = 1;
    op->step_res = 0;
    op->step_timed_out = false;
    if (timed) {
      sqe->flags |= IOSQE_IO_LINK;
      op->ts = to_timespec(op->deadline);
      io_uring_sqe* t = io_uring_get_sqe(&ring);  // get_sqe(2) left room
      io_uring_prep_link_timeout(t, &op->ts, IORING_TIMEOUT_ABS);
      io_uring_sqe_set_data64(t, reinterpret_cast<std::uintptr_t>(op) | 1u);
      op->pending_cqes = 2;
    }
  }

  void on_cqe(std::uint64_t user_data, int res) {
    // A cancel request's own answer, or liburing's internal wait timeout.
    if (user_data == 0 || user_data == LIBURING_UDATA_TIMEOUT) return;
    Op* op = reinterpret_cast<Op*>(user_data & ~std::uint64_t{1});
    if (user_data & 1) {
      if (res == -ETIME) op->step_timed_out = true;
    } else {
      op->step_res = res;
    }
    if (--op->pending_cqes == 0) step_done(op);
  }

  void step_done(Op* op) {
    int res = op->step_res;
    if (op->step_timed_out && (res == -ECANCELED || res == -EINTR)) res = -ETIME;
    else if (op->cancelled && res == -EINTR) res = -ECANCELED;
    if (op->kind != Kind::send_file) return finish(op, res);

    // send_file: the bytes in the pipe must all reach the socket before the next fill.
    switch (op->step) {
      case Step::fill:
        if (res < 0) return finish(op, res);
        if (res == 0) return finish(op, static_cast<int>(op->sent));  // end of file
        op->in_pipe = static_cast<std::size_t>(res);
        op->offset += static_cast<std::uint64_t>(res);
        op->remaining -= static_cast<std::size_t>(res);
        op->step = Step::drain;
        break;
      case Step::drain:
        if (res == -EAGAIN) {  // a non-blocking socket is full: wait until it takes more
          op->step = Step::wait_out;
          break;
        }
        if (res <= 0) return finish(op, res == 0 ? -EIO : res);
        op->sent += static_cast<std::size_t>(res);
        op->in_pipe -= static_cast<std::size_t>(res);
        if (op->in_pipe == 0) {
          if (op->remaining == 0) return finish(op, static_cast<int>(op->sent));
          op->step = Step::fill;
        }
        break;
      case Step::wait_out:
        if (res < 0) return finish(op, res);
        op->step = Step::drain;
        break;
      case Step::main:
        return finish(op, res);
    }
    if (op->cancelled) return finish(op, -ECANCELED);
    if (op->deadline != kNoDeadline && op->deadline <= Clock::now()) return finish(op, -ETIME);
    submit_step(op);
  }

  Status attach_pipe(Op* op) {
    if (!idle_pipes.empty()) {
      op->pipe = idle_pipes.back();
      idle_pipes.pop_back();
      return {};
    }
    int p[2];
    if (::pipe2(p, O_CLOEXEC) < 0) return errno_error(errno, "pipe2");
    op->pipe.r = p[0];
    op->pipe.w = p[1];
    // Larger pipes mean fewer splices; an unprivileged process over its pipe quota keeps
    // the default size.
    (void)::fcntl(p[1], F_SETPIPE_SZ, kPipeSize);
    int size = ::fcntl(p[1], F_GETPIPE_SZ);
    op->pipe.size = size > 0 ? static_cast<std::size_t>(size) : 65536;
    return {};
  }

  void detach_pipe(Op* op) {
    if (op->pipe.r < 0) return;
    // Bytes left in a pipe would be sent to the next connection: such a pipe is closed.
    if (op->in_pipe == 0 && idle_pipes.size() < kIdlePipes) idle_pipes.push_back(op->pipe);
    else close_pipe(op->pipe);
    op->pipe = Pipe{};
  }

  // The op leaves the kernel's hands: the next one on its fd and direction may go.
  void finish(Op* op, int res) {
    op->result = res;
    op->finished = true;
    op->active = false;
    unwait(op);
    detach_pipe(op);
    ready.push_back(op);
    int d = direction(op->kind);
    if (d < 0) return;
    auto it = fds.find(op->fd);
    if (it == fds.end()) return;
    auto& q = it->second[d];
    Op* next = nullptr;
    for (auto qi = q.begin(); qi != q.end(); ++qi) {
      if (*qi != op) continue;
      bool was_head = qi == q.begin();
      q.erase(qi);
      if (was_head && !q.empty()) next = q.front();
      break;
    }
    if (it->second[kIn].empty() && it->second[kOut].empty()) fds.erase(it);
    // Last: activating may finish `next` too, which changes `fds`.
    if (next != nullptr) activate(next);
  }

  void cancel_in_kernel(Op* op) {
    io_uring_sqe* sqe = get_sqe(1);
    if (sqe == nullptr) return;  // the op still completes on its own or at shutdown
    if (op->kind == Kind::timer)
      io_uring_prep_timeout_remove(sqe, reinterpret_cast<std::uintptr_t>(op), 0);
    else
      io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(op), 0);
    io_uring_sqe_set_data64(sqe, 0);
  }

  void cancel_fd(int fd) {
    auto it = fds.find(fd);
    if (it == fds.end()) return;
    for (auto& q : it->second) {
      for (Op* op : q) {
        if (op->cancelled) continue;
        op->cancelled = true;
        if (op->active && op->pending_cqes > 0) cancel_in_kernel(op);
      }
    }
  }

  // Ops whose deadline passed while they waited behind another op on their fd.
  void expire_waiting() {
    auto now = Clock::now();
    while (!waiting.empty() && waiting.begin()->first <= now) {
      Op* op = waiting.begin()->second;
      finish(op, op->cancelled ? -ECANCELED : -ETIME);
    }
  }

  unsigned reap() {
    unsigned n = 0;
    for (;;) {
      io_uring_cqe* cqes[64];
      unsigned got = io_uring_peek_batch_cqe(&ring, cqes, 64);
      if (got == 0) break;
      // Copied out first: handling one may queue SQEs (and so enter the kernel).
      std::array<std::pair<std::uint64_t, int>, 64> batch;
      for (unsigned i = 0; i < got; ++i) batch[i] = {cqes[i]->user_data, cqes[i]->res};
      io_uring_cq_advance(&ring, got);
      for (unsigned i = 0; i < got; ++i) on_cqe(batch[i].first, batch[i].second);
      n += got;
    }
    return n;
  }

  unsigned deliver() {
    std::vector<Op*> batch;
    batch.swap(ready);
    for (Op* op : batch) {
      Completion cb = std::move(op->done);
      int res = op->result;
      release(op);
      if (cb) cb(res);
    }
    return static_cast<unsigned>(batch.size());
  }

  Result<unsigned> run_once(std::chrono::milliseconds wait) {
    auto now = Clock::now();
    auto until = now + wait;
    if (!waiting.empty() && waiting.begin()->first < until) until = waiting.begin()->first;
    bool block = ready.empty() && until > now && io_uring_cq_ready(&ring) == 0;
    if (block) {
      auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(until - now).count();
      __kernel_timespec ts{};
      ts.tv_sec = ns / 1'000'000'000;
      ts.tv_nsec = ns % 1'000'000'000;
      io_uring_cqe* cqe = nullptr;
      ++enters;
      int rc = io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, nullptr);
      if (rc < 0 && rc != -ETIME && rc != -EINTR && rc != -EBUSY && rc != -EAGAIN)
        return errno_error(-rc, "io_uring_submit_and_wait_timeout");
    } else {
      flush();
    }
    reap();
    expire_waiting();
    return deliver();
  }

  void shutdown() {
    shutting_down = true;
    for (Op& op : pool) {
      if (!op.in_use || op.cancelled) continue;
      op.cancelled = true;
      if (op.active && op.pending_cqes > 0) cancel_in_kernel(&op);
    }
    auto until = Clock::now() + kShutdownBound;
    while (live > 0 && Clock::now() < until) {
      // Ops queued behind a cancelled head complete as soon as it does; nothing new starts.
      (void)run_once(std::chrono::milliseconds(100));
    }
    if (live > 0) {
      // The kernel did not answer in time. Report the rest as cancelled; io_uring_queue_exit
      // then cancels them in the kernel.
      for (Op& op : pool)
        if (op.in_use && !op.finished && (op.active || direction(op.kind) < 0)) {
          op.pending_cqes = 0;
          finish(&op, -ECANCELED);  // also completes the ops queued behind it
        }
      deliver();
    }
  }
};

Result<std::unique_ptr<UringEngine>> UringEngine::create(unsigned queue_depth) {
  if (queue_depth == 0 || queue_depth > kMaxEntries)
    return Error{fmt::format("io_uring engine: queue depth {} out of range 1..{}", queue_depth,
                             kMaxEntries),
                 EINVAL};
  auto impl = std::make_unique<Impl>();
  io_uring_params params{};
  // Each op posts up to two CQEs (op and linked timeout), cancels one more; a roomy CQ keeps
  // the kernel from backing up.
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = std::min(queue_depth * 4, 2 * kMaxEntries);
  int rc = io_uring_queue_init_params(queue_depth, &impl->ring, &params);
  if (rc < 0) return errno_error(-rc, "io_uring_setup");
  impl->depth = queue_depth;
  impl->pool.resize(queue_depth);
  for (Op& op : impl->pool) {
    op.next_free = impl->free_list;
    impl->free_list = &op;
  }
  return std::unique_ptr<UringEngine>(new UringEngine(std::move(impl)));
}

UringEngine::UringEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UringEngine::~UringEngine() {
  impl_->shutdown();
  io_uring_queue_exit(&impl_->ring);
}

Status UringEngine::recv(int fd, std::span<std::uint8_t> buf, int flags,
                         Clock::time_point deadline, Completion done) {
  auto op = impl_->allocate(Kind::recv, fd, deadline, std::move(done));
  if (!op) return op.error();
  (*op)->buf = buf.data();
  (*op)->len = buf.size();
  (*op)->flags = flags;
  impl_->enqueue(*op);
  return {};
}

Status UringEngine::send(int fd, std::span<const std::uint8_t> buf, int flags,
                         Clock::time_point deadline, Completion done) {
  auto op = impl_->allocate(Kind::send, fd, deadline, std::move(done));
  if (!op) return op.error();
  (*op)->buf = const_cast<std::uint8_t*>(buf.data());
  (*op)->len = buf.size();
  (*op)->flags = flags;
  impl_->enqueue(*op);
  return {};
}

Status UringEngine::recvmsg(int fd, msghdr* msg, int flags, Clock::time_point deadline,
                            Completion done) {
  auto op = impl_->allocate(Kind::recvmsg, fd, deadline, std::move(done));
  if (!op) return op.error();
  (*op)->msg = msg;
  (*op)->flags = flags;
  impl_->enqueue(*op);
  return {};
}

Status UringEngine::sendmsg(int fd, const msghdr* msg, int flags, Clock::time_point deadline,
                            Completion done) {
  auto op = impl_->allocate(Kind::sendmsg, fd, deadline, std::move(done));
  if (!op) return op.error();
  (*op)->msg = const_cast<msghdr*>(msg);
  (*op)->flags = flags;
  impl_->enqueue(*op);
  return {};
}

Status UringEngine::send_file(int sock, int file, std::uint64_t offset, std::size_t len,
                              Clock::time_point deadline, Completion done) {
  if (offset > static_cast<std::uint64_t>(INT64_MAX) || len > static_cast<std::size_t>(INT32_MAX))
    return Error{"send_file: offset or length out of range (length at most 2 GiB - 1)", EINVAL};
  auto op = impl_->allocate(Kind::send_file, sock, deadline, std::move(done));
  if (!op) return op.error();
  Op* o = *op;
  if (auto s = impl_->attach_pipe(o); !s) {
    impl_->release(o);
    return s.error();
  }
  o->file = file;
  o->offset = offset;
  o->remaining = len;
  impl_->enqueue(o);
  return {};
}

Status UringEngine::accept(int listen_fd, Clock::time_point deadline, Completion done) {
  auto op = impl_->allocate(Kind::accept, listen_fd, deadline, std::move(done));
  if (!op) return op.error();
  impl_->enqueue(*op);
  return {};
}

Status UringEngine::connect(int fd, const sockaddr* addr, socklen_t len,
                            Clock::time_point deadline, Completion done) {
  if (len > sizeof(sockaddr_storage)) return Error{"connect: address too long", EINVAL};
  auto op = impl_->allocate(Kind::connect, fd, deadline, std::move(done));
  if (!op) return op.error();
  std::memcpy(&(*op)->addr, addr, len);
  (*op)->addrlen = len;
  impl_->enqueue(*op);
  return {};
}

Status UringEngine::timer(Clock::time_point when, Completion done) {
  auto op = impl_->allocate(Kind::timer, -1, when, std::move(done));
  if (!op) return op.error();
  impl_->enqueue(*op);
  return {};
}

void UringEngine::cancel(int fd) { impl_->cancel_fd(fd); }

Result<unsigned> UringEngine::run_once(std::chrono::milliseconds wait) {
  return impl_->run_once(wait);
}

std::size_t UringEngine::in_flight() const { return impl_->live; }

std::uint64_t UringEngine::enter_calls() const { return impl_->enters; }

}  // namespace wasi_ktls
