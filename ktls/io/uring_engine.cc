#include "ktls/io/uring_engine.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <unordered_map>
#include <vector>

#include "ktls/io/io_request.h"
#include "ktls/io/op_pool.h"

namespace wasi_ktls {
namespace {

using Kind = IoRequest::Kind;
// send_file's steps: file -> pipe, pipe -> socket, wait for the socket to take more.
enum class Step : std::uint8_t { main, fill, drain, wait_out };

constexpr unsigned kMaxEntries = 32768;   // IORING_MAX_ENTRIES
constexpr int kPipeSize = 1 << 20;        // the default /proc/sys/fs/pipe-max-size
constexpr std::size_t kIdlePipes = 16;    // pipes kept for reuse
constexpr auto kShutdownBound = std::chrono::seconds(5);

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
  IoRequest req;
  Step step = Step::main;
  // send_file (req.offset and req.len count the progress).
  std::size_t sent = 0;
  std::size_t in_pipe = 0;
  Pipe pipe{};
  // State.
  bool in_use = false;
  bool finished = false;   // result set, callback pending
  bool active = false;     // head of its fd queue (or a timer): owns SQEs in the kernel
  bool cancelled = false;  // cancel(fd) or shutdown
  bool cancel_due = false;  // its cancel found no room in the SQ: in `cancels_due`
  int pending_cqes = 0;
  int step_res = 0;
  bool step_timed_out = false;
  int result = 0;
  __kernel_timespec ts{};  // read by the kernel at submission
  bool waiting = false;    // queued behind another op, its deadline in `waiting_`
  std::multimap<Clock::time_point, Op*>::iterator wait_it{};
  Op* next_free = nullptr;
};

struct UringEngine::Impl {
  explicit Impl(unsigned depth) : ops("io_uring", depth) {}

  io_uring ring{};
  OpPool<Op> ops;
  std::uint64_t enters = 0;
  // Per fd, its queued ops each way. Vectors, not deques: a queue rarely holds more than one
  // op, and a deque allocates about 600 bytes even empty (massif: 1.1 KiB per idle connection).
  std::unordered_map<int, std::array<std::vector<Op*>, 2>> fds;
  std::multimap<Clock::time_point, Op*> waiting;  // deadlines of queued, not yet submitted ops
  std::vector<Op*> cancels_due;  // ops whose cancel SQE is still to be queued (see cancel_due)
  std::vector<Pipe> idle_pipes;

  ~Impl() {
    for (Pipe& p : idle_pipes) close_pipe(p);
  }

  static void close_pipe(Pipe& p) {
    if (p.r >= 0) ::close(p.r);
    if (p.w >= 0) ::close(p.w);
    p = Pipe{};
  }

  // Queues `op` behind the others on its fd and direction; the head goes to the kernel.
  void enqueue(Op* op) {
    int d = direction(op->req);
    if (d < 0) {
      activate(op);
      return;
    }
    auto& q = fds[op->req.fd][d];
    q.push_back(op);
    if (q.size() == 1) {
      activate(op);
    } else if (op->req.deadline != kNoDeadline) {
      op->waiting = true;
      op->wait_it = waiting.emplace(op->req.deadline, op);
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
    if (op->req.kind == Kind::send_file) {
      if (op->req.len == 0) return finish(op, 0);
      op->step = Step::fill;
    }
    if (op->req.deadline != kNoDeadline && op->req.deadline <= Clock::now())
      return finish(op, -ETIME);
    submit_step(op);
  }

  // Room for `need` SQEs, submitting what is queued if the SQ is full; null if the kernel
  // takes none (-EAGAIN: no memory for requests; older kernels also -EBUSY while completions
  // overflow the CQ, which its size rules out: an op posts at most 3, op, linked timeout and
  // cancel, and the CQ has room for 4). Never reaps: completions would run in the middle of
  // the caller (cancel_fd walking the fd's queues, submit_step of another op), and finish()
  // erases from those queues.
  io_uring_sqe* get_sqe(unsigned need) {
    if (io_uring_sq_space_left(&ring) < need) flush();
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
    IoRequest& r = op->req;
    const bool timed = r.deadline != kNoDeadline && r.kind != Kind::timer;
    io_uring_sqe* sqe = get_sqe(timed ? 2 : 1);
    if (sqe == nullptr) return finish(op, -EBUSY);
    switch (r.kind) {
      case Kind::recv:
        io_uring_prep_recv(sqe, r.fd, r.buf, r.len, r.flags);
        break;
      case Kind::send:
        io_uring_prep_send(sqe, r.fd, r.buf, r.len, r.flags | MSG_NOSIGNAL);
        break;
      case Kind::recvmsg:
        io_uring_prep_recvmsg(sqe, r.fd, r.msg, static_cast<unsigned>(r.flags));
        break;
      case Kind::sendmsg:
        io_uring_prep_sendmsg(sqe, r.fd, r.msg, static_cast<unsigned>(r.flags | MSG_NOSIGNAL));
        break;
      case Kind::accept:
        io_uring_prep_accept(sqe, r.fd, nullptr, nullptr, SOCK_CLOEXEC);
        break;
      case Kind::connect:
        io_uring_prep_connect(sqe, r.fd, reinterpret_cast<sockaddr*>(&r.addr), r.addrlen);
        break;
      case Kind::poll:
        io_uring_prep_poll_add(sqe, r.fd, static_cast<unsigned>(r.flags));
        break;
      case Kind::timer:
        op->ts = to_timespec(r.deadline);
        io_uring_prep_timeout(sqe, &op->ts, 0, IORING_TIMEOUT_ABS);
        break;
      case Kind::send_file:
        if (op->step == Step::fill) {
          std::size_t n = std::min(r.len, op->pipe.size);
          io_uring_prep_splice(sqe, r.file, static_cast<std::int64_t>(r.offset), op->pipe.w, -1,
                               static_cast<unsigned>(n), 0);
        } else if (op->step == Step::drain) {
          io_uring_prep_splice(sqe, op->pipe.r, -1, r.fd, -1, static_cast<unsigned>(op->in_pipe),
                               0);
        } else {
          io_uring_prep_poll_add(sqe, r.fd, POLLOUT);
        }
        break;
    }
    io_uring_sqe_set_data(sqe, op);
    op->pending_cqes = 1;
    op->step_res = 0;
    op->step_timed_out = false;
    if (timed) {
      sqe->flags |= IOSQE_IO_LINK;
      op->ts = to_timespec(r.deadline);
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
    if (op->req.kind != Kind::send_file) return finish(op, res);

    // send_file: the bytes in the pipe must all reach the socket before the next fill.
    switch (op->step) {
      case Step::fill:
        if (res < 0) return finish(op, res);
        if (res == 0) return finish(op, static_cast<int>(op->sent));  // end of file
        op->in_pipe = static_cast<std::size_t>(res);
        op->req.offset += static_cast<std::uint64_t>(res);
        op->req.len -= static_cast<std::size_t>(res);
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
          if (op->req.len == 0) return finish(op, static_cast<int>(op->sent));
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
    if (op->req.deadline != kNoDeadline && op->req.deadline <= Clock::now())
      return finish(op, -ETIME);
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
    op->finished = true;
    op->active = false;
    op->cancel_due = false;
    unwait(op);
    detach_pipe(op);
    ops.ready(op, res);
    int d = direction(op->req);
    if (d < 0) return;
    auto it = fds.find(op->req.fd);
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
    if (sqe == nullptr) {
      // Dropping it would leave an op without a deadline in the kernel for good.
      if (!op->cancel_due) cancels_due.push_back(op);
      op->cancel_due = true;
      return;
    }
    op->cancel_due = false;
    if (op->req.kind == Kind::timer)
      io_uring_prep_timeout_remove(sqe, reinterpret_cast<std::uintptr_t>(op), 0);
    else
      io_uring_prep_cancel64(sqe, reinterpret_cast<std::uintptr_t>(op), 0);
    io_uring_sqe_set_data64(sqe, 0);
  }

  // Walks the queues while queueing cancels: safe because get_sqe runs no completions.
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

  // A record in `cancels_due` may have finished since (finish() clears the flag) and even
  // been reused; only a record that still has the flag set wants its cancel.
  void issue_due_cancels() {
    std::vector<Op*> due;
    due.swap(cancels_due);
    for (Op* op : due) {
      if (!op->cancel_due) continue;
      op->cancel_due = false;
      cancel_in_kernel(op);  // back in the list if there is still no room
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

  Result<unsigned> run_once(std::chrono::milliseconds wait) {
    if (!cancels_due.empty()) issue_due_cancels();
    auto now = Clock::now();
    auto until = now + wait;
    if (!waiting.empty() && waiting.begin()->first < until) until = waiting.begin()->first;
    bool block = !ops.any_ready() && until > now && io_uring_cq_ready(&ring) == 0;
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
    return ops.deliver();
  }

  void shutdown() {
    ops.shutting_down = true;
    for (Op& op : ops.records()) {
      if (!op.in_use || op.cancelled) continue;
      op.cancelled = true;
      if (op.active && op.pending_cqes > 0) cancel_in_kernel(&op);
    }
    auto until = Clock::now() + kShutdownBound;
    while (ops.live() > 0 && Clock::now() < until) {
      // Ops queued behind a cancelled head complete as soon as it does; nothing new starts.
      (void)run_once(std::chrono::milliseconds(100));
    }
    if (ops.live() > 0) {
      // The kernel did not answer in time. Report the rest as cancelled; io_uring_queue_exit
      // then cancels them in the kernel.
      for (Op& op : ops.records())
        if (op.in_use && !op.finished && (op.active || direction(op.req) < 0)) {
          op.pending_cqes = 0;
          finish(&op, -ECANCELED);  // also completes the ops queued behind it
        }
      ops.deliver();
    }
  }
};

Result<std::unique_ptr<UringEngine>> UringEngine::create(unsigned queue_depth) {
  if (queue_depth == 0 || queue_depth > kMaxEntries)
    return Error{fmt::format("io_uring engine: queue depth {} out of range 1..{}", queue_depth,
                             kMaxEntries),
                 EINVAL};
  auto impl = std::make_unique<Impl>(queue_depth);
  io_uring_params params{};
  // Each op posts up to two CQEs (op and linked timeout), cancels one more; a roomy CQ keeps
  // the kernel from backing up.
  params.flags = IORING_SETUP_CQSIZE;
  params.cq_entries = std::min(queue_depth * 4, 2 * kMaxEntries);
  int rc = io_uring_queue_init_params(queue_depth, &impl->ring, &params);
  if (rc < 0) return errno_error(-rc, "io_uring_setup");
  return std::unique_ptr<UringEngine>(new UringEngine(std::move(impl)));
}

UringEngine::UringEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

UringEngine::~UringEngine() {
  impl_->shutdown();
  io_uring_queue_exit(&impl_->ring);
}

Status UringEngine::start(IoRequest&& req) {
  auto op = impl_->ops.acquire(std::move(req));
  if (!op) return op.error();
  if ((*op)->req.kind == Kind::send_file) {
    if (auto s = impl_->attach_pipe(*op); !s) {
      impl_->ops.release(*op);
      return s.error();
    }
  }
  impl_->enqueue(*op);
  return {};
}

void UringEngine::cancel(int fd) { impl_->cancel_fd(fd); }

Result<unsigned> UringEngine::run_once(std::chrono::milliseconds wait) {
  return impl_->run_once(wait);
}

std::size_t UringEngine::in_flight() const { return impl_->ops.live(); }

std::uint64_t UringEngine::enter_calls() const { return impl_->enters; }

}  // namespace wasi_ktls
