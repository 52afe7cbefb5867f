#include "ktls/conn/userspace_records.h"

#include <algorithm>
#include <cerrno>

namespace wasi_ktls {
namespace {

constexpr std::size_t kRecvChunk = 64 * 1024;    // ciphertext per recv
constexpr std::size_t kWriteChunk = 256 * 1024;  // plaintext encrypted before it is sent
constexpr std::size_t kFileChunk = 256 * 1024;   // file bytes read per pread

bool would_block(long r) { return r == -EAGAIN || r == -EWOULDBLOCK || r == -EINTR; }

}  // namespace

UserspaceRecords::UserspaceRecords(Session session, std::chrono::milliseconds io_timeout)
    : session_(std::move(session)), io_timeout_(io_timeout) {}

void UserspaceRecords::start(LaneOp& op) {
  if (!op.reading()) return write_step(op);
  if (rx_dead_) return op.finish(*rx_dead_);
  if (peer_closed_ || op.in.empty()) return op.finish(std::size_t{0});
  read_step(op);
}

void UserspaceRecords::read_step(LaneOp& op) {
  auto r = session_.read_plaintext(op.in);
  if (!r) {
    rx_dead_ = r.error();  // OpenSSL has failed the session: writes fail too
    return op.finish(r.error());
  }
  switch (r->kind) {
    case ReadResult::Kind::data:
      return op.finish(r->bytes);
    case ReadResult::Kind::eof:
      peer_closed_ = true;
      return op.finish(std::size_t{0});
    case ReadResult::Kind::need_input:
      // Ciphertext lands in the session's own input buffer: OpenSSL reads it from there.
      op.step = Step::recv(session_.input_space(kRecvChunk));
      return;
  }
}

void UserspaceRecords::write_step(LaneOp& op) {
  for (;;) {
    if (sent_ < sending_.size()) {
      tx_step_ = TxStep::send;
      op.step = Step::send(std::span(sending_).subspan(sent_));
      return;
    }
    if (!session_.pending_output().empty() && !tx_dead_) {
      session_.take_output(sending_);  // a swap: OpenSSL may write more meanwhile
      sent_ = 0;
      continue;
    }
    // Everything encrypted so far is on the socket.
    op.bytes += op.unflushed;
    op.unflushed = 0;
    if (tx_dead_) return op.finish(*tx_dead_);
    switch (op.kind) {
      case LaneOp::Kind::flush:
        return op.finish(std::size_t{0});
      case LaneOp::Kind::close:
        if (shut_down_) return op.finish(std::size_t{0});
        if (!close_queued_) {
          close_queued_ = true;
          if (Status s = session_.shutdown(); !s) return op.finish(s.error());
          continue;  // close_notify is now in the output
        }
        tx_step_ = TxStep::shutdown;
        op.step = Step::of(Step::Kind::shutdown_write);
        return;
      case LaneOp::Kind::write: {
        if (close_queued_)
          return op.finish(make_error(ErrorKind::closed, "write after close_notify"));
        if (op.out.empty() || (!op.all && op.bytes > 0)) return op.finish(op.bytes);
        const auto chunk = op.out.first(std::min(op.out.size(), kWriteChunk));
        if (auto w = session_.write_plaintext(chunk); !w) return tx_fail(op, w.error());
        op.out = op.out.subspan(chunk.size());
        op.unflushed = chunk.size();
        continue;
      }
      case LaneOp::Kind::send_file: {
        if (close_queued_)
          return op.finish(make_error(ErrorKind::closed, "write after close_notify"));
        if (op.left == 0) return op.finish(op.bytes);
        // The file is read and encrypted in userspace: the cost the kernel path avoids.
        if (!file_buf_) file_buf_.reset(new std::uint8_t[kFileChunk]);
        const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(op.left, kFileChunk));
        tx_step_ = TxStep::pread;
        op.step = Step::pread(op.file, op.offset, std::span(file_buf_.get(), want));
        return;
      }
      default:
        return op.finish(make_error(ErrorKind::usage, "not a write-side operation"));
    }
  }
}

void UserspaceRecords::complete(LaneOp& op, long r) {
  if (op.reading()) {
    if (r > 0) {
      session_.commit_input(static_cast<std::size_t>(r));
      return read_step(op);
    }
    if (r == 0) {
      rx_dead_ = make_error(ErrorKind::truncated,
                            "peer closed the connection without close_notify (truncation)");
      return op.finish(*rx_dead_);
    }
    if (would_block(r)) {
      if (!op.wait) {
        release_idle_buffers();
        op.finish(not_ready());
      }
      return;
    }
    if (r == -ETIMEDOUT || r == -ETIME || r == -ECANCELED)
      return op.finish(step_error(r, "reading", io_timeout_));  // the stream is intact
    rx_dead_ = errno_error(static_cast<int>(-r), "TLS recv");
    return op.finish(*rx_dead_);
  }

  if (would_block(r)) {
    if (!op.wait) {
      // Plaintext OpenSSL has encrypted counts as written: its ciphertext stays owed.
      op.finish(op.bytes + op.unflushed);
      op.unflushed = 0;
    }
    return;  // the driver waits and tries the step again
  }
  switch (tx_step_) {
    case TxStep::send:
      if (r <= 0) return tx_fail(op, step_error(r == 0 ? -EPIPE : r, "writing", io_timeout_));
      sent_ += static_cast<std::size_t>(r);
      if (sent_ == sending_.size()) {
        sending_.clear();
        sent_ = 0;
      }
      return write_step(op);
    case TxStep::pread: {
      if (r < 0) return op.finish(errno_error(static_cast<int>(-r), "reading the file to send"));
      if (r == 0) {
        return op.finish(make_error("file ended at offset {} with {} bytes still to send",
                                    op.offset, op.left));
      }
      const auto n = static_cast<std::size_t>(r);
      if (auto w = session_.write_plaintext(std::span(file_buf_.get(), n)); !w)
        return tx_fail(op, w.error());
      op.offset += n;
      op.left -= n;
      op.unflushed = n;
      if (op.left == 0) file_buf_.reset();
      return write_step(op);
    }
    case TxStep::shutdown:
      // ENOTCONN: the peer already reset the connection; there is no write side left.
      if (r < 0 && r != -ENOTCONN)
        return op.finish(errno_error(static_cast<int>(-r), "shutdown(SHUT_WR)"));
      shut_down_ = true;
      return op.finish(std::size_t{0});
  }
}

// A read that must not wait found nothing: the connection is idle until its peer sends, and
// an idle connection holds no buffers (a server may hold thousands). A send in flight still
// uses `sending_`: it is freed only when empty.
void UserspaceRecords::release_idle_buffers() {
  if (sending_.empty()) sending_ = std::vector<std::uint8_t>();
  session_.release_idle_buffers();
}

void UserspaceRecords::tx_fail(LaneOp& op, Error e) {
  // Ciphertext may have gone out in part: nothing more can be sent.
  tx_dead_ = std::move(e);
  sending_.clear();
  sent_ = 0;
  op.finish(*tx_dead_);
}

}  // namespace wasi_ktls
