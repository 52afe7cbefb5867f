// What a non-data TLS record received after the hand-over means, decided without syscalls so
// that the blocking record I/O and the io_uring engine share one interpretation: alerts (with
// their RFC names), post-handshake messages reassembled across records, and the verdict the
// transport must act on.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "handshake/tls_params.h"

namespace wasi_ktls {

namespace content_type {
inline constexpr std::uint8_t change_cipher_spec = 20;
inline constexpr std::uint8_t alert = 21;
inline constexpr std::uint8_t handshake = 22;
inline constexpr std::uint8_t application_data = 23;
}  // namespace content_type

namespace alert_level {
inline constexpr std::uint8_t warning = 1;
inline constexpr std::uint8_t fatal = 2;
}  // namespace alert_level

// The alert descriptions this code sends or treats specially (the full table is alert_name).
namespace alert_desc {
inline constexpr std::uint8_t close_notify = 0;
inline constexpr std::uint8_t unexpected_message = 10;
inline constexpr std::uint8_t bad_record_mac = 20;
inline constexpr std::uint8_t record_overflow = 22;
inline constexpr std::uint8_t handshake_failure = 40;
inline constexpr std::uint8_t decode_error = 50;
inline constexpr std::uint8_t protocol_version = 70;
inline constexpr std::uint8_t internal_error = 80;
inline constexpr std::uint8_t user_canceled = 90;
}  // namespace alert_desc

namespace handshake_type {
inline constexpr std::uint8_t hello_request = 0;
inline constexpr std::uint8_t new_session_ticket = 4;
inline constexpr std::uint8_t key_update = 24;
}  // namespace handshake_type

// RFC 8446 / RFC 5246 (and registry) name of an alert description: "handshake_failure";
// empty for a value no RFC assigns.
std::string_view alert_name(std::uint8_t description);
// "handshake_failure (40)", or "unknown alert (201)".
std::string describe_alert(std::uint8_t description);

// A receive errno by which the kernel's record layer ends the connection (tls_err_abort: the
// bad record stays queued and sk_err is set, so it is never retried), with the alert it maps
// to: EBADMSG bad_record_mac, EMSGSIZE record_overflow, EINVAL protocol_version. nullopt for
// any other errno.
struct RecordLayerFailure {
  std::uint8_t alert;
  Error error;
};
std::optional<RecordLayerFailure> record_layer_failure(int err);

// What the transport does after one control record.
struct ControlVerdict {
  enum class Kind {
    keep_reading,  // consumed (ticket, HelloRequest, user_canceled); read the next record
    end_of_stream,  // close_notify: clean end; answer with our own close_notify
    key_update,     // TLS 1.3 KeyUpdate: rekey RX (and TX too if update_requested)
    fatal,          // the connection is over; `error` says why
  };
  Kind kind = Kind::keep_reading;
  bool update_requested = false;  // key_update only
  Error error;                    // fatal only
  // fatal only: the alert we owe the peer, if any (none when the peer's own alert ended it).
  std::optional<std::uint8_t> alert_to_send;
};

// Interprets the control records of one connection, in order. Keeps partial handshake
// messages between records (a message may span records, and one record may hold several).
class ControlRecordParser {
 public:
  explicit ControlRecordParser(TlsVersion version) : version_(version) {}

  // `type` is the record's content type, `payload` its decrypted plaintext.
  ControlVerdict on_record(std::uint8_t type, std::span<const std::uint8_t> payload);

  // RFC 8446 §5.1: handshake messages must not be interleaved with other record types, so
  // application data arriving while a message is incomplete is a protocol violation.
  // Also resets the flood counter below.
  Status on_application_data();

  bool has_partial_handshake() const { return !handshake_buf_.empty(); }

  // A buffered post-handshake message may be at most this long (a maximal TLS 1.3
  // NewSessionTicket is ~128 KiB); longer is refused rather than buffered without bound.
  static constexpr std::size_t kMaxHandshakeMessage = 1u << 18;
  // Ignorable records (tickets, HelloRequest, user_canceled) in a row without application data
  // before we call it a flood: each costs a decryption and returns nothing to the reader.
  static constexpr unsigned kMaxIgnoredInARow = 64;

 private:
  ControlVerdict on_alert(std::span<const std::uint8_t> payload);
  ControlVerdict on_handshake(std::span<const std::uint8_t> payload);
  ControlVerdict ignored();

  TlsVersion version_;
  std::vector<std::uint8_t> handshake_buf_;
  unsigned ignored_in_a_row_ = 0;
};

}  // namespace wasi_ktls
