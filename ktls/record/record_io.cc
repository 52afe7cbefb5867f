#include "ktls/record/record_io.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/utsname.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

#include "ktls/record/install.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif

namespace wasi_ktls {
namespace {

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

}  // namespace

KernelRecordIo::KernelRecordIo(int fd, RecordIoConfig config)
    : fd_(fd),
      config_(std::move(config)),
      parser_(config_.version),
      tx_budget_(config_.tx_seq, config_.tx_record_limit != 0
                                     ? config_.tx_record_limit
                                     : default_record_limit(config_.version, config_.cipher)),
      rx_records_(config_.rx_seq),
      control_buf_(kControlBufSize) {}

Error KernelRecordIo::fail(Error e, std::optional<std::uint8_t> alert) {
  if (alert) send_alert(alert_level::fatal, *alert);
  dead_ = e;
  return e;
}

Error KernelRecordIo::limit_reached() {
  const std::uint64_t used = tx_budget_.used();
  const Status closed = close_notify();
  Error e = make_error(
      "AEAD record limit reached: {} records sent under this TX key (limit {} for TLS {} {}) "
      "and this kernel cannot rekey kTLS; {}",
      used, tx_budget_.limit(), to_string(config_.version), to_string(config_.cipher),
      closed ? "sent close_notify and shut down the write side"
             : "sending close_notify failed too: " + closed.error().message);
  dead_ = e;
  return e;
}

Status KernelRecordIo::at_record_limit() {
  if (config_.kernel_can_rekey && config_.next_keys && config_.version == TlsVersion::tls13) {
    if (Status s = rekey_tx(); !s) return fail(s.error(), alert_desc::internal_error);
    return {};
  }
  return limit_reached();
}

Result<std::size_t> KernelRecordIo::send(std::span<const std::uint8_t> data) {
  if (dead_) return *dead_;
  if (close_sent_) return make_error("send after close_notify");
  std::size_t total = 0;
  while (total < data.size()) {
    std::size_t chunk = tx_budget_.sendable_bytes(data.size() - total);
    if (chunk == 0) {
      if (total > 0) return total;  // report what went; the next call hits the limit
      if (Status s = at_record_limit(); !s) return s.error();
      continue;
    }
    // Never MSG_WAITALL or MSG_EOR: 6.1 refuses every flag but MORE/DONTWAIT/NOSIGNAL.
    const ssize_t n = ::send(fd_, data.data() + total, chunk, MSG_NOSIGNAL);
    if (n > 0) {
      tx_budget_.add(records_for_bytes(static_cast<std::size_t>(n)));
      total += static_cast<std::size_t>(n);
      continue;
    }
    const int err = n < 0 ? errno : EIO;
    if (err == EINTR) continue;
    if (total > 0) return total;
    if (err == EAGAIN || err == EWOULDBLOCK) return errno_error(err, "kTLS send");
    dead_ = errno_error(err, "kTLS send");
    return *dead_;
  }
  return total;
}

std::size_t KernelRecordIo::take_pending(std::span<std::uint8_t> buf) {
  if (pending_pos_ >= pending_.size()) return 0;
  const std::size_t n = std::min(buf.size(), pending_.size() - pending_pos_);
  std::memcpy(buf.data(), pending_.data() + pending_pos_, n);
  pending_pos_ += n;
  if (pending_pos_ == pending_.size()) {
    pending_.clear();
    pending_pos_ = 0;
  }
  return n;
}

Result<RecvResult> KernelRecordIo::recv(std::span<std::uint8_t> buf) {
  if (dead_) return *dead_;
  if (peer_closed_) return RecvResult::end_of_stream();
  if (buf.empty()) return RecvResult::data(0);
  if (std::size_t n = take_pending(buf); n > 0) return RecvResult::data(n);
  for (;;) {
    const ssize_t n = ::recv(fd_, buf.data(), buf.size(), 0);
    if (n < 0 && errno == EINTR) continue;
    auto r = complete_recv(n < 0 ? -errno : n, buf);
    if (!r) return r.error();
    if (*r) return **r;
  }
}

Result<std::optional<RecvResult>> KernelRecordIo::complete_recv(long result,
                                                                std::span<std::uint8_t> buf) {
  if (dead_) return *dead_;
  if (result > 0) {
    const auto n = static_cast<std::size_t>(result);
    rx_records_ += records_for_bytes(n);
    if (Status s = parser_.on_application_data(); !s) {
      return fail(s.error(), alert_desc::unexpected_message);
    }
    return std::optional<RecvResult>(RecvResult::data(n));
  }
  if (result == 0) {
    return fail(make_error("peer closed the connection without close_notify (truncation)"),
                std::nullopt);
  }
  const int err = static_cast<int>(-result);
  // The next record is not data: the kernel keeps it queued for a recvmsg with room for the
  // record-type cmsg.
  if (err == EIO) return read_control_record(buf);
  if (auto f = record_layer_failure(err)) return fail(std::move(f->error), f->alert);
  if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ETIME || err == ECANCELED)
    return errno_error(err, "kTLS recv");
  return fail(errno_error(err, "kTLS recv"), std::nullopt);
}

msghdr* KernelRecordIo::control_msghdr() {
  std::memset(control_cmsg_, 0, sizeof(control_cmsg_));
  control_iov_ = iovec{control_buf_.data(), control_buf_.size()};
  control_msg_ = msghdr{};
  control_msg_.msg_iov = &control_iov_;
  control_msg_.msg_iovlen = 1;
  control_msg_.msg_control = control_cmsg_;
  control_msg_.msg_controllen = sizeof(control_cmsg_);
  return &control_msg_;
}

// Reads one record with recvmsg. Returns a RecvResult when the caller gets something (data,
// end of stream), nullopt when the record was consumed and reading goes on.
Result<std::optional<RecvResult>> KernelRecordIo::read_control_record(
    std::span<std::uint8_t> buf) {
  ssize_t n;
  do n = ::recvmsg(fd_, control_msghdr(), MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return complete_control_recv(n < 0 ? -errno : n, buf);
}

Result<std::optional<RecvResult>> KernelRecordIo::complete_control_recv(
    long result, std::span<std::uint8_t> buf) {
  if (dead_) return *dead_;
  const msghdr& msg = control_msg_;
  const long n = result;
  if (n == 0) {
    return fail(make_error("peer closed the connection without close_notify (truncation)"),
                std::nullopt);
  }
  if (n < 0) {
    const int err = static_cast<int>(-n);
    if (auto f = record_layer_failure(err)) return fail(std::move(f->error), f->alert);
    if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ETIME || err == ECANCELED)
      return errno_error(err, "kTLS recvmsg");
    return fail(errno_error(err, "kTLS recvmsg (control record)"), std::nullopt);
  }
  if (msg.msg_flags & MSG_CTRUNC) {
    return fail(make_error("kTLS recvmsg: the record-type cmsg was truncated (MSG_CTRUNC)"),
                alert_desc::internal_error);
  }
  std::uint8_t type = content_type::application_data;  // the kernel adds no cmsg for data
  for (cmsghdr* c = CMSG_FIRSTHDR(&control_msg_); c != nullptr;
       c = CMSG_NXTHDR(&control_msg_, c)) {
    if (c->cmsg_level == SOL_TLS && c->cmsg_type == TLS_GET_RECORD_TYPE &&
        c->cmsg_len == CMSG_LEN(1)) {
      type = *CMSG_DATA(c);
    } else {
      return fail(make_error("kTLS recvmsg: unexpected cmsg level {} type {}", c->cmsg_level,
                             c->cmsg_type),
                  alert_desc::internal_error);
    }
  }
  const auto len = static_cast<std::size_t>(n);
  const std::span<const std::uint8_t> payload(control_buf_.data(), len);

  if (type == content_type::application_data) {
    // Not expected after EIO, but harmless: hand it out like any data.
    rx_records_ += records_for_bytes(len);
    if (Status s = parser_.on_application_data(); !s) {
      return fail(s.error(), alert_desc::unexpected_message);
    }
    const std::size_t now = std::min(len, buf.size());
    std::memcpy(buf.data(), control_buf_.data(), now);
    pending_.assign(control_buf_.begin() + static_cast<std::ptrdiff_t>(now),
                    control_buf_.begin() + static_cast<std::ptrdiff_t>(len));
    pending_pos_ = 0;
    return std::optional<RecvResult>(RecvResult::data(now));
  }
  if (len > kMaxRecordPlaintext || !(msg.msg_flags & MSG_EOR)) {
    return fail(make_error("kTLS recvmsg: control record of type {} larger than {} bytes "
                           "(record_overflow)",
                           type, kMaxRecordPlaintext),
                alert_desc::record_overflow);
  }
  ++rx_records_;

  ControlVerdict v = parser_.on_record(type, payload);
  switch (v.kind) {
    case ControlVerdict::Kind::keep_reading:
      return std::optional<RecvResult>();
    case ControlVerdict::Kind::end_of_stream:
      peer_closed_ = true;
      return std::optional<RecvResult>(RecvResult::end_of_stream());
    case ControlVerdict::Kind::key_update:
      if (Status s = on_key_update(v.update_requested); !s) {
        return fail(s.error(), alert_desc::internal_error);
      }
      return std::optional<RecvResult>();
    case ControlVerdict::Kind::fatal:
      break;
  }
  return fail(std::move(v.error), v.alert_to_send);
}

Status KernelRecordIo::on_key_update(bool update_requested) {
  if (!config_.kernel_can_rekey) {
    return make_error(
        "peer sent TLS 1.3 KeyUpdate; this kernel ({}) cannot rekey kTLS (needs Linux >= 6.14)",
        kernel_release_short());
  }
  if (!config_.next_keys) {
    return make_error(
        "peer sent TLS 1.3 KeyUpdate; the kernel can rekey but this connection has no "
        "key-derivation hook (RecordIoConfig::next_keys)");
  }
  // From here the kernel holds RX (EKEYEXPIRED) until the new key arrives.
  auto next = config_.next_keys(Direction::rx);
  if (!next) return next.error();
  auto info = KernelCryptoInfo::build(config_.version, config_.cipher, *next);
  if (!info) return info.error();
  if (Status s = set_kernel_key(fd_, Direction::rx, *info); !s) return s;
  rx_records_ = next->seq;
  // RFC 8446 §4.6.3: answer update_requested with our own KeyUpdate before more data.
  if (update_requested) return rekey_tx();
  return {};
}

Status KernelRecordIo::rekey_tx() {
  if (!config_.kernel_can_rekey || !config_.next_keys) {
    return make_error("cannot rekey TX: the kernel or this connection has no rekey support");
  }
  // KeyUpdate(update_not_requested) goes out under the old key, which the reserved last
  // record of the budget allows.
  static constexpr std::uint8_t kKeyUpdate[] = {handshake_type::key_update, 0, 0, 1, 0};
  if (Status s = send_control_record(content_type::handshake, kKeyUpdate); !s) return s;
  auto next = config_.next_keys(Direction::tx);
  if (!next) return next.error();
  auto info = KernelCryptoInfo::build(config_.version, config_.cipher, *next);
  if (!info) return info.error();
  if (Status s = set_kernel_key(fd_, Direction::tx, *info); !s) return s;
  tx_budget_.new_key();
  tx_budget_.add(next->seq);
  return {};
}

Status KernelRecordIo::send_control_record(std::uint8_t type,
                                           std::span<const std::uint8_t> payload) {
  if (payload.size() > kMaxRecordPlaintext) {
    return make_error("control record of {} bytes exceeds one record", payload.size());
  }
  alignas(cmsghdr) unsigned char cbuf[CMSG_SPACE(1)] = {};
  iovec iov{const_cast<std::uint8_t*>(payload.data()), payload.size()};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = cbuf;
  msg.msg_controllen = sizeof(cbuf);
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_TLS;
  c->cmsg_type = TLS_SET_RECORD_TYPE;
  c->cmsg_len = CMSG_LEN(1);
  *CMSG_DATA(c) = type;
  ssize_t n;
  do {
    n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno_error(errno, fmt::format("kTLS sendmsg (record type {})", type));
  // A blocking control send pushes the whole record or fails.
  tx_budget_.add(1);
  if (static_cast<std::size_t>(n) != payload.size()) {
    return make_error("kTLS sendmsg (record type {}): sent {} of {} bytes", type, n,
                      payload.size());
  }
  return {};
}

void KernelRecordIo::send_alert(std::uint8_t level, std::uint8_t description) {
  if (close_sent_) return;
  const std::uint8_t alert[2] = {level, description};
  (void)send_control_record(content_type::alert, alert);
  if (level == alert_level::fatal) close_sent_ = true;  // nothing may follow a fatal alert
}

Status KernelRecordIo::close_notify() {
  if (close_sent_) return {};
  if (dead_) return *dead_;
  // The budget kept one record for this, so it never exceeds the limit.
  static constexpr std::uint8_t kCloseNotify[2] = {alert_level::warning,
                                                   alert_desc::close_notify};
  close_sent_ = true;
  if (Status s = send_control_record(content_type::alert, kCloseNotify); !s) return s;
  // ENOTCONN: the peer has already reset the connection; there is no write side left.
  if (::shutdown(fd_, SHUT_WR) != 0 && errno != ENOTCONN)
    return errno_error(errno, "shutdown(SHUT_WR)");
  return {};
}

}  // namespace wasi_ktls
