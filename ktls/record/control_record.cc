#include "ktls/record/control_record.h"

#include <fmt/format.h>

#include <cerrno>

namespace wasi_ktls {

std::optional<RecordLayerFailure> record_layer_failure(int err) {
  switch (err) {
    case EBADMSG:
      return RecordLayerFailure{
          alert_desc::bad_record_mac,
          Error{"bad_record_mac (20): the kernel could not authenticate a received record "
                "(EBADMSG: wrong key, wrong sequence number, or tampering); the connection "
                "is dead",
                err, ErrorKind::protocol}};
    case EMSGSIZE:
      return RecordLayerFailure{
          alert_desc::record_overflow,
          Error{"record_overflow (22): the peer sent a record longer than TLS allows "
                "(EMSGSIZE); the connection is dead",
                err, ErrorKind::protocol}};
    case EINVAL:
      return RecordLayerFailure{
          alert_desc::protocol_version,
          Error{"protocol_version (70): the peer sent a record with a bad header version "
                "(EINVAL); the connection is dead",
                err, ErrorKind::protocol}};
  }
  return std::nullopt;
}

namespace {

ControlVerdict fatal(std::optional<std::uint8_t> alert, Error e) {
  ControlVerdict v;
  v.kind = ControlVerdict::Kind::fatal;
  v.error = std::move(e);
  v.alert_to_send = alert;
  return v;
}

std::string_view level_word(std::uint8_t level) {
  switch (level) {
    case alert_level::warning: return "warning";
    case alert_level::fatal: return "fatal";
  }
  return "invalid-level";
}

}  // namespace

std::optional<ControlVerdict> ControlRecordParser::count_control() {
  if (++control_in_a_row_ <= kMaxControlInARow) return std::nullopt;
  handshake_buf_.clear();
  return fatal(alert_desc::unexpected_message,
               make_error(ErrorKind::protocol,
                          "peer sent more than {} control records in a row (tickets, "
                          "HelloRequest, user_canceled, KeyUpdate) without data",
                          kMaxControlInARow));
}

Status ControlRecordParser::on_application_data() {
  control_in_a_row_ = 0;
  if (!handshake_buf_.empty()) {
    return make_error(
        ErrorKind::protocol,
        "peer sent application data inside a fragmented handshake message "
        "({} bytes buffered): unexpected_message",
        handshake_buf_.size());
  }
  return {};
}

ControlVerdict ControlRecordParser::on_record(std::uint8_t type,
                                              std::span<const std::uint8_t> payload) {
  // Handshake messages must not be interleaved with other record types (RFC 8446 §5.1).
  if (type != content_type::handshake && !handshake_buf_.empty()) {
    return fatal(alert_desc::unexpected_message,
                 make_error(ErrorKind::protocol, "peer sent a record of type {} inside a fragmented handshake "
                            "message: unexpected_message",
                            type));
  }
  switch (type) {
    case content_type::alert:
      return on_alert(payload);
    case content_type::handshake:
      return on_handshake(payload);
    case content_type::change_cipher_spec:
      return fatal(alert_desc::unexpected_message,
                   make_error(ErrorKind::protocol, "peer sent a change_cipher_spec record after the handshake: "
                              "unexpected_message"));
    case content_type::application_data:
      // The transport reads data itself; a data record here means its dispatch is wrong.
      return fatal(alert_desc::internal_error,
                   make_error("application data passed to the control-record parser"));
  }
  return fatal(alert_desc::unexpected_message,
               make_error(ErrorKind::protocol, "peer sent a record of unknown content type {}: unexpected_message",
                          type));
}

ControlVerdict ControlRecordParser::on_alert(std::span<const std::uint8_t> p) {
  // Alerts are never fragmented or coalesced (RFC 8446 §5.1; every TLS 1.2 stack we meet
  // sends one per record).
  if (p.size() != 2) {
    return fatal(alert_desc::decode_error,
                 make_error(ErrorKind::protocol, "peer sent an alert record of {} bytes (expected 2): decode_error",
                            p.size()));
  }
  const std::uint8_t level = p[0];
  const std::uint8_t desc = p[1];
  if (desc == alert_desc::close_notify) {
    ControlVerdict v;
    v.kind = ControlVerdict::Kind::end_of_stream;
    return v;
  }
  // user_canceled is a warning in TLS 1.3 whatever its level field says (RFC 8446 §6.1); in
  // TLS 1.2 only at warning level. The peer is expected to follow it with close_notify.
  if (desc == alert_desc::user_canceled &&
      (version_ == TlsVersion::tls13 || level == alert_level::warning)) {
    if (auto flood = count_control()) return *flood;
    return {};
  }
  // TLS 1.3: every other alert is fatal regardless of level. TLS 1.2: other warning alerts
  // (no_certificate, no_renegotiation, ...) can only concern a handshake or renegotiation we
  // don't run after the hand-over, so they end the connection too.
  return fatal(std::nullopt, make_error(ErrorKind::peer_alert, "peer sent {} alert: {}", level_word(level),
                                        describe_alert(desc)));
}

ControlVerdict ControlRecordParser::on_handshake(std::span<const std::uint8_t> p) {
  if (p.empty()) {
    // RFC 8446 §5.1: zero-length handshake fragments are forbidden.
    return fatal(alert_desc::unexpected_message,
                 make_error(ErrorKind::protocol, "peer sent an empty handshake record: unexpected_message"));
  }
  handshake_buf_.insert(handshake_buf_.end(), p.begin(), p.end());

  std::size_t pos = 0;
  ControlVerdict verdict;  // keep_reading unless a message says otherwise
  bool consumed_any = false;
  while (handshake_buf_.size() - pos >= 4) {
    const std::uint8_t* h = handshake_buf_.data() + pos;
    const std::uint8_t msg_type = h[0];
    const std::size_t len = (std::size_t{h[1]} << 16) | (std::size_t{h[2]} << 8) | h[3];
    if (len > kMaxHandshakeMessage) {
      handshake_buf_.clear();
      return fatal(alert_desc::decode_error,
                   make_error(ErrorKind::protocol, "peer sent a post-handshake message of type {} with length {} "
                              "(limit {}): decode_error",
                              msg_type, len, kMaxHandshakeMessage));
    }
    if (handshake_buf_.size() - pos - 4 < len) break;  // the rest comes in later records
    const std::span<const std::uint8_t> body(h + 4, len);
    pos += 4 + len;

    switch (msg_type) {
      case handshake_type::new_session_ticket:
        // Only a TLS 1.3 server sends tickets after the handshake (TLS 1.2's ticket is part
        // of it).
        if (version_ != TlsVersion::tls13 || role_ != Role::client) break;
        // Consumed and dropped: the kTLS path does no resumption, so the client session
        // cache is not fed from here.
        consumed_any = true;
        continue;
      case handshake_type::hello_request:
        // TLS 1.2 renegotiation request: RFC 5246 §7.4.1.1 lets the client ignore it, and we
        // never renegotiate with keys in the kernel. TLS 1.3 has no such message, and only a
        // server sends it.
        if (version_ != TlsVersion::tls12 || role_ != Role::client || len != 0) break;
        consumed_any = true;
        continue;
      case handshake_type::key_update: {
        if (version_ != TlsVersion::tls13) break;
        if (len != 1 || body[0] > 1) {
          handshake_buf_.clear();
          return fatal(alert_desc::decode_error,
                       make_error(ErrorKind::protocol, "peer sent a malformed KeyUpdate: decode_error"));
        }
        // The new key applies from the next record, so nothing may follow KeyUpdate in its
        // record (RFC 8446 §5.1: handshake messages must not span key changes).
        if (pos != handshake_buf_.size()) {
          handshake_buf_.clear();
          return fatal(alert_desc::unexpected_message,
                       make_error(ErrorKind::protocol, "peer sent KeyUpdate not at the end of its record: "
                                  "unexpected_message"));
        }
        handshake_buf_.clear();
        if (auto flood = count_control()) return *flood;
        verdict.kind = ControlVerdict::Kind::key_update;
        verdict.update_requested = body[0] == 1;
        return verdict;
      }
      default:
        break;
    }
    handshake_buf_.clear();
    return fatal(alert_desc::unexpected_message,
                 make_error(ErrorKind::protocol,
                            "peer sent handshake message type {} after the handshake "
                            "(TLS {}, we are the {}): unexpected_message",
                            msg_type, to_string(version_),
                            role_ == Role::client ? "client" : "server"));
  }
  handshake_buf_.erase(handshake_buf_.begin(), handshake_buf_.begin() + pos);
  if (consumed_any || !handshake_buf_.empty()) {
    if (auto flood = count_control()) return *flood;
  }
  return verdict;
}

}  // namespace wasi_ktls
