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
#include "handshake/tls_codes.h"
#include "handshake/tls_params.h"

namespace wasi_ktls {

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
// `role` is our side: only a server sends NewSessionTicket and HelloRequest, so a server
// receiving them from its client is facing a protocol violation.
class ControlRecordParser {
 public:
  ControlRecordParser(TlsVersion version, Role role) : version_(version), role_(role) {}

  // `type` is the record's content type, `payload` its decrypted plaintext.
  ControlVerdict on_record(std::uint8_t type, std::span<const std::uint8_t> payload);

  // RFC 8446 §5.1: handshake messages must not be interleaved with other record types, so
  // application data arriving while a message is incomplete is a protocol violation.
  // Application data is also the only thing that resets the flood counter below.
  Status on_application_data();

  bool has_partial_handshake() const { return !handshake_buf_.empty(); }

  // A buffered post-handshake message may be at most this long (a maximal TLS 1.3
  // NewSessionTicket is ~128 KiB); longer is refused rather than buffered without bound.
  static constexpr std::size_t kMaxHandshakeMessage = 1u << 18;
  // Control records that return nothing to the reader (tickets, HelloRequest, user_canceled,
  // KeyUpdate) in a row without application data before we call it a flood: each costs a
  // decryption (a KeyUpdate also a key derivation and two setsockopt calls). One counter for
  // all of them, so alternating types cannot reset it.
  static constexpr unsigned kMaxControlInARow = 64;

 private:
  ControlVerdict on_alert(std::span<const std::uint8_t> payload);
  ControlVerdict on_handshake(std::span<const std::uint8_t> payload);
  // Counts one more record that returned nothing; the flood verdict past the cap.
  std::optional<ControlVerdict> count_control();

  TlsVersion version_;
  Role role_;
  std::vector<std::uint8_t> handshake_buf_;
  unsigned control_in_a_row_ = 0;
};

}  // namespace wasi_ktls
