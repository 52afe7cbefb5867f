// What both engines keep per operation in flight: a fixed pool of records (the bounded queue
// of the Engine contract), and the finished ones whose callbacks are due. `Op` is the engine's
// own record: an aggregate with at least `IoRequest req`, `int result`, `bool in_use` and
// `Op* next_free`.
#pragma once

#include <cerrno>
#include <cstddef>
#include <memory>
#include <new>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "ktls/io/io_request.h"

namespace wasi_ktls {

template <class Op>
class OpPool {
 public:
  // Records never move: engines (and io_uring's user_data) hold their addresses.
  OpPool(std::string_view engine, unsigned depth) : engine_(engine), records_(depth) {
    for (Op& op : records_) release_record(&op);
  }

  // A fresh record holding `req`. Fails, leaving `req` as it was, once shutting down or full.
  Result<Op*> acquire(IoRequest&& req) {
    if (shutting_down) return make_error("{} engine: shutting down", engine_);
    if (free_ == nullptr)
      return Error{fmt::format("{} engine: queue full ({} operations in flight)", engine_,
                               records_.size()),
                   EBUSY};
    Op* op = free_;
    free_ = op->next_free;
    // A new record in place (not assigned from a temporary: one copy of the request fewer).
    std::destroy_at(op);
    ::new (static_cast<void*>(op)) Op{.req = std::move(req)};
    op->in_use = true;
    ++live_;
    return op;
  }

  // Back to the pool, its callback dropped: taken by deliver(), or starting failed after acquire.
  void release(Op* op) {
    op->req.done = nullptr;
    release_record(op);
    --live_;
  }

  // `op` finished with `res`; its callback runs at the next deliver().
  void ready(Op* op, int res) {
    op->result = res;
    ready_.push_back(op);
  }
  bool any_ready() const { return !ready_.empty(); }

  // Runs the due callbacks (which may start operations, and so acquire). Returns how many ran.
  unsigned deliver() {
    std::vector<Op*> batch;
    batch.swap(ready_);
    for (Op* op : batch) {
      Completion cb = std::move(op->req.done);
      int res = op->result;
      release(op);
      if (cb) cb(res);
    }
    return static_cast<unsigned>(batch.size());
  }

  std::size_t live() const { return live_; }
  std::vector<Op>& records() { return records_; }

  bool shutting_down = false;

 private:
  void release_record(Op* op) {
    op->in_use = false;
    op->next_free = free_;
    free_ = op;
  }

  std::string_view engine_;
  std::vector<Op> records_;
  Op* free_ = nullptr;
  std::size_t live_ = 0;
  std::vector<Op*> ready_;
};

}  // namespace wasi_ktls
