#include "ktls/conn/kernel_records.h"

#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include <openssl/crypto.h>

#include "handshake/key_schedule.h"
#include "handshake/tls_codes.h"
#include "ktls/record/install.h"

namespace wasi_ktls {
namespace {

// Bytes one send or splice carries at most: bounds how long one step holds the socket.
constexpr std::size_t kMaxSendChunk = 4u << 20;
// Room for the largest record plaintext, plus one byte so an oversized one is noticed.
constexpr std::size_t kControlBufSize = kMaxRecordPlaintext + 1;

// "6.1" from "6.1.0-18-amd64": for the message only, never to decide anything.
std::string kernel_release_short() {
  utsname u{};
  if (::uname(&u) != 0) return "unknown";
  std::string r = u.release;
  const auto first = r.find('.');
  if (first == std::string::npos) return r;
  const auto second = r.find_first_not_of("0123456789", first + 1);
  return r.substr(0, second);
}

bool would_block(long r) { return r == -EAGAIN || r == -EWOULDBLOCK || r == -EINTR; }

Error truncation() {
  return make_error(ErrorKind::truncated,
                    "peer closed the connection without close_notify (truncation)");
}

}  // namespace

KernelRecords::KernelRecords(KernelRecordsConfig config)
    : cfg_(std::move(config)),
      parser_(cfg_.version, cfg_.role),
      budget_(cfg_.tx_seq, cfg_.tx_record_limit != 0
                               ? cfg_.tx_record_limit
                               : default_record_limit(cfg_.version, cfg_.cipher)) {}

void KernelRecords::start(LaneOp& op) {
  if (!op.reading()) return write_step(op);
  if (rx_dead_) return op.finish(*rx_dead_);
  if (peer_closed_ || op.in.empty()) return op.finish(std::size_t{0});
  if (pending_pos_ < pending_.size()) {
    const std::size_t n = std::min(op.in.size(), pending_.size() - pending_pos_);
    std::memcpy(op.in.data(), pending_.data() + pending_pos_, n);
    pending_pos_ += n;
    if (pending_pos_ == pending_.size()) {
      pending_.clear();
      pending_pos_ = 0;
    }
    return op.finish(n);
  }
  recv_next(op);
}

void KernelRecords::complete(LaneOp& op, long r) {
  if (op.reading()) {
    switch (rx_step_) {
      case RxStep::recv: return on_recv(op, r);
      case RxStep::recvmsg: return on_recvmsg(op, r);
      case RxStep::set_key: return on_rx_key(op, r);
    }
    return;
  }

  if (would_block(r) && tx_step_ != TxStep::seq) {
    // What went is reported; control records not sent stay owed.
    if (!op.wait) op.finish(op.bytes);
    return;  // the driver waits and tries the step again
  }
  switch (tx_step_) {
    case TxStep::take_error:
      socket_error_pending_ = false;
      return write_step(op);
    case TxStep::alert:
      // Best effort: after a record-layer error the kernel may refuse it (sk_err is set).
      if (r > 0) budget_.add(1);
      alert_owed_.reset();
      fatal_sent_ = true;
      return write_step(op);
    case TxStep::key_update: {
      if (r != static_cast<long>(tx_len_))
        return tx_fail(op, r > 0 ? -EIO : r, "sending KeyUpdate");
      budget_.add(1);
      auto next = next_key(Direction::tx);
      if (!next) {
        tx_dead_ = next.error();
        return op.finish(next.error());
      }
      tx_next_.emplace(std::move(*next));
      tx_step_ = TxStep::set_key;
      op.step = Step::set_key(Direction::tx, *tx_next_);
      return;
    }
    case TxStep::set_key:
      tx_next_.reset();
      if (r < 0) {
        // Our KeyUpdate is out but the kernel kept the old key: the peer cannot read what
        // would follow.
        Error e = install_error(InstallStep::tls_tx, static_cast<int>(-r));
        e.message = "TLS 1.3 rekey of TX failed after our KeyUpdate was sent: " + e.message;
        rx_dead_ = e;
        tx_dead_ = e;
        return op.finish(e);
      }
      budget_.new_key();
      seq_exact_ = true;
      key_update_owed_ = false;
      return write_step(op);
    case TxStep::close_notify:
      if (r != static_cast<long>(tx_len_))
        return tx_fail(op, r > 0 ? -EIO : r, "sending close_notify");
      budget_.add(1);
      close_sent_ = true;
      tx_step_ = TxStep::shutdown;
      op.step = Step::of(Step::Kind::shutdown_write);
      return;
    case TxStep::shutdown:
      // ENOTCONN: the peer already reset the connection; there is no write side left.
      if (limit_close_) {
        tx_dead_ = limit_error(r < 0 && r != -ENOTCONN
                                   ? "sent close_notify, but shutdown(SHUT_WR) failed"
                                   : "sent close_notify and shut down the write side");
        return op.finish(*tx_dead_);
      }
      if (r < 0 && r != -ENOTCONN)
        return op.finish(errno_error(static_cast<int>(-r), "shutdown(SHUT_WR)"));
      return op.finish(std::size_t{0});
    case TxStep::seq:
      // Without the kernel's count (an old kernel without getsockopt TLS_TX) the estimate
      // stands; it never undercounts a send.
      if (r >= 0) budget_.resync(static_cast<std::uint64_t>(r));
      seq_exact_ = true;
      seq_stale_ = false;
      return write_step(op);
    case TxStep::data: {
      const bool file = op.kind == LaneOp::Kind::send_file;
      if (r == 0 && file) {
        return op.finish(make_error("file ended at offset {} with {} bytes still to send",
                                    op.offset, op.left));
      }
      if (r <= 0) return tx_fail(op, r == 0 ? -EPIPE : r, file ? "sending a file" : "writing");
      const auto n = static_cast<std::size_t>(r);
      budget_.add(records_for_bytes(n));
      seq_exact_ = false;
      op.bytes += n;
      if (file) {
        op.offset += n;
        op.left -= n;
        seq_stale_ = true;  // a splice frames records its own way
      } else {
        op.out = op.out.subspan(n);
        if (!op.all) return op.finish(op.bytes);
      }
      return write_step(op);
    }
  }
}

// ---- read side ---------------------------------------------------------------------------

void KernelRecords::recv_next(LaneOp& op) {
  rx_step_ = RxStep::recv;
  op.step = Step::recv(op.in);
}

void KernelRecords::on_recv(LaneOp& op, long r) {
  if (r > 0) return deliver(op, static_cast<std::size_t>(r));
  if (r == 0) return rx_fail(op, truncation());
  if (r == -EIO) {
    // The next record is not data: the kernel keeps it queued for a recvmsg with room for
    // its record-type cmsg, and has it whole, so that recvmsg does not wait.
    rx_step_ = RxStep::recvmsg;
    if (!control_buf_) control_buf_.reset(new std::uint8_t[kControlBufSize]);
    op.step = Step::with_msg(Step::Kind::recvmsg,
                             rx_msg_.to_receive(std::span(control_buf_.get(), kControlBufSize)));
    return;
  }
  on_rx_error(op, r, "kTLS recv");
}

void KernelRecords::on_rx_error(LaneOp& op, long r, const char* what) {
  if (would_block(r)) {
    if (!op.wait) op.finish(not_ready());
    return;  // the driver waits and tries the step again
  }
  const int err = static_cast<int>(-r);
  if (auto f = record_layer_failure(err)) {
    socket_error_pending_ = true;
    return fatal(op, std::move(f->error), f->alert);
  }
  if (err == ETIMEDOUT || err == ETIME || err == ECANCELED)
    return op.finish(step_error(r, "reading", cfg_.io_timeout));  // the stream is intact
  rx_fail(op, errno_error(err, what));
}

void KernelRecords::deliver(LaneOp& op, std::size_t n) {
  if (Status s = parser_.on_application_data(); !s)
    return fatal(op, s.error(), alert_desc::unexpected_message);
  op.finish(n);
}

void KernelRecords::on_recvmsg(LaneOp& op, long r) {
  if (r == 0) return rx_fail(op, truncation());
  if (r < 0) return on_rx_error(op, r, "kTLS recvmsg (control record)");
  const auto got_type = rx_msg_.received_type();
  if (!got_type) return fatal(op, got_type.error(), alert_desc::internal_error);
  const std::uint8_t type = *got_type;
  const auto len = static_cast<std::size_t>(r);
  // The buffer goes when this record is dealt with: an idle connection holds none.
  const std::unique_ptr<std::uint8_t[]> record = std::move(control_buf_);

  if (type == content_type::application_data) {
    // Not expected after EIO, but harmless: hand it out like any data.
    const std::size_t now = std::min(len, op.in.size());
    std::memcpy(op.in.data(), record.get(), now);
    pending_.assign(record.get() + now, record.get() + len);
    pending_pos_ = 0;
    return deliver(op, now);
  }
  if (len > kMaxRecordPlaintext || !(rx_msg_.flags() & MSG_EOR)) {
    return fatal(op,
                 make_error(ErrorKind::protocol,
                            "kTLS recvmsg: control record of type {} larger than {} bytes "
                            "(record_overflow)",
                            type, kMaxRecordPlaintext),
                 alert_desc::record_overflow);
  }
  ControlVerdict v = parser_.on_record(type, std::span<const std::uint8_t>(record.get(), len));
  switch (v.kind) {
    case ControlVerdict::Kind::keep_reading:
      return recv_next(op);
    case ControlVerdict::Kind::end_of_stream:
      peer_closed_ = true;
      return op.finish(std::size_t{0});
    case ControlVerdict::Kind::key_update:
      return on_key_update(op, v.update_requested);
    case ControlVerdict::Kind::fatal:
      return fatal(op, std::move(v.error), v.alert_to_send);
  }
}

void KernelRecords::on_key_update(LaneOp& op, bool update_requested) {
  if (!cfg_.secrets) {
    return fatal(op,
                 make_error(ErrorKind::protocol,
                            "peer sent TLS 1.3 KeyUpdate; this kernel ({}) cannot rekey kTLS "
                            "(needs Linux >= 6.14)",
                            kernel_release_short()),
                 alert_desc::internal_error);
  }
  // The kernel holds further records (EKEYEXPIRED) until RX has the next key, so it goes in
  // now; TX follows on the write side, after whatever data is in flight there.
  auto next = next_key(Direction::rx);
  if (!next) return fatal(op, next.error(), alert_desc::internal_error);
  rx_next_.emplace(std::move(*next));
  update_requested_ = update_requested;
  rx_step_ = RxStep::set_key;
  op.step = Step::set_key(Direction::rx, *rx_next_);
}

void KernelRecords::on_rx_key(LaneOp& op, long r) {
  rx_next_.reset();
  if (r < 0) {
    Error e = install_error(InstallStep::tls_rx, static_cast<int>(-r));
    e.message = "TLS 1.3 rekey of RX after the peer's KeyUpdate failed: " + e.message;
    return fatal(op, std::move(e), alert_desc::internal_error);
  }
  // RFC 8446 §4.6.3: answer update_requested with our own KeyUpdate before more data.
  if (update_requested_) key_update_owed_ = true;
  recv_next(op);
}

void KernelRecords::fatal(LaneOp& op, Error e, std::optional<std::uint8_t> alert) {
  rx_dead_ = e;
  if (!tx_dead_) tx_dead_ = e;
  // Nothing may follow our close_notify or an earlier fatal alert.
  if (alert && !close_sent_ && !fatal_sent_) alert_owed_ = alert;
  op.finish(std::move(e));
}

void KernelRecords::rx_fail(LaneOp& op, Error e) {
  rx_dead_ = e;
  op.finish(std::move(e));
}

// ---- write side --------------------------------------------------------------------------

void KernelRecords::send_control(LaneOp& op, TxStep what, std::uint8_t type,
                                 std::initializer_list<std::uint8_t> payload) {
  std::copy(payload.begin(), payload.end(), tx_payload_.begin());
  tx_len_ = payload.size();
  tx_step_ = what;
  op.step = Step::with_msg(Step::Kind::sendmsg,
                           tx_msg_.to_send(type, std::span(tx_payload_.data(), tx_len_)));
}

void KernelRecords::write_step(LaneOp& op) {
  for (;;) {
    if (alert_owed_ && socket_error_pending_) {
      tx_step_ = TxStep::take_error;
      op.step = Step::of(Step::Kind::take_error);
      return;
    }
    if (alert_owed_) {
      return send_control(op, TxStep::alert, content_type::alert,
                          {alert_level::fatal, *alert_owed_});
    }
    if (key_update_owed_ && !tx_dead_) {
      // KeyUpdate(update_not_requested) goes under the old key, in the record the budget
      // keeps back.
      return send_control(op, TxStep::key_update, content_type::handshake,
                          {handshake_type::key_update, 0, 0, 1, 0});
    }
    switch (op.kind) {
      case LaneOp::Kind::flush:
        return op.finish(std::size_t{0});
      case LaneOp::Kind::close:
        if (close_sent_ || fatal_sent_) return op.finish(std::size_t{0});
        if (tx_dead_) return op.finish(*tx_dead_);
        return send_control(op, TxStep::close_notify, content_type::alert,
                            {alert_level::warning, alert_desc::close_notify});
      case LaneOp::Kind::write:
      case LaneOp::Kind::send_file:
        break;
      default:
        return op.finish(make_error(ErrorKind::usage, "not a write-side operation"));
    }
    if (tx_dead_) return op.finish(*tx_dead_);
    if (close_sent_)
      return op.finish(make_error(ErrorKind::closed, "write after close_notify"));
    const bool file = op.kind == LaneOp::Kind::send_file;
    const std::uint64_t left = file ? op.left : op.out.size();
    if (left == 0) return op.finish(op.bytes);
    if (seq_stale_) {
      tx_step_ = TxStep::seq;
      op.step = Step::of(Step::Kind::tx_seq);
      return;
    }
    const auto want = static_cast<std::size_t>(std::min<std::uint64_t>(left, kMaxSendChunk));
    const std::size_t chunk = budget_.sendable_bytes(want);
    if (chunk == 0) {
      if (!seq_exact_) {  // the limit is acted on with the kernel's count only
        tx_step_ = TxStep::seq;
        op.step = Step::of(Step::Kind::tx_seq);
        return;
      }
      if (cfg_.secrets) {
        key_update_owed_ = true;  // a new key starts a new budget
        continue;
      }
      // A write_some reports what went (the next call fails); a write of all of it fails now.
      if (op.bytes > 0 && !op.all) return op.finish(op.bytes);
      limit_close_ = true;
      return send_control(op, TxStep::close_notify, content_type::alert,
                          {alert_level::warning, alert_desc::close_notify});
    }
    tx_step_ = TxStep::data;
    if (file) {
      op.step = Step::splice(op.file, op.offset, chunk);
    } else {
      // Straight from the caller's memory: the kernel encrypts from these pages.
      op.step = Step::send(op.out.first(chunk));
    }
    return;
  }
}

void KernelRecords::tx_fail(LaneOp& op, long r, const char* what) {
  // Part of the step may have reached the kernel: the stream has a gap or a torn record, so
  // nothing more can be sent (reads go on).
  tx_dead_ = r == -ETIMEDOUT || r == -ETIME || r == -ECANCELED
                 ? step_error(r, what, cfg_.io_timeout)
                 : errno_error(static_cast<int>(-r), std::string("kTLS ") + what);
  op.finish(*tx_dead_);
}

Error KernelRecords::limit_error(std::string_view how) const {
  return make_error(ErrorKind::record_limit,
                    "AEAD record limit reached: {} records sent under this TX key (limit {} for "
                    "TLS {} {}) and this kernel cannot rekey kTLS; {}",
                    budget_.used(), budget_.limit(), to_string(cfg_.version),
                    to_string(cfg_.cipher), how);
}

Result<KernelCryptoInfo> KernelRecords::next_key(Direction d) {
  TrafficSecrets& s = *cfg_.secrets;
  auto& current = d == Direction::tx ? s.tx : s.rx;
  std::array<std::uint8_t, 48> next{};
  const auto cur = std::span(current).first(s.len);
  const auto nxt = std::span(next).first(s.len);
  Status st = next_traffic_secret(cfg_.cipher, cur, nxt);
  Result<DirectionKeys> keys = st ? tls13_direction_keys(cfg_.cipher, nxt, 0)
                                  : Result<DirectionKeys>(st.error());
  if (st) std::copy(nxt.begin(), nxt.end(), current.begin());
  OPENSSL_cleanse(next.data(), next.size());
  if (!keys) return keys.error();
  return KernelCryptoInfo::build(cfg_.version, cfg_.cipher, *keys);  // `keys` wipes itself
}

}  // namespace wasi_ktls
