// The numbers of the TLS wire protocol this project reads and writes (RFC 8446, RFC 5246 and
// the IANA registry), and the RFC names of alerts: one table for the handshake's messages and
// the record layer's alike.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

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

}  // namespace wasi_ktls
