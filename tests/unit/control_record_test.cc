// Control records after the hand-over: alerts, post-handshake messages, their reassembly.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cerrno>
#include <vector>

#include "ktls/record/control_record.h"

using namespace wasi_ktls;
using Kind = ControlVerdict::Kind;

namespace {

std::vector<std::uint8_t> msg(std::uint8_t type, std::size_t len, std::uint8_t fill = 0x55) {
  std::vector<std::uint8_t> m = {type, static_cast<std::uint8_t>(len >> 16),
                                 static_cast<std::uint8_t>(len >> 8),
                                 static_cast<std::uint8_t>(len)};
  m.resize(4 + len, fill);
  return m;
}

std::vector<std::uint8_t> operator+(std::vector<std::uint8_t> a,
                                    const std::vector<std::uint8_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("alert names") {
  CHECK(alert_name(0) == "close_notify");
  CHECK(alert_name(10) == "unexpected_message");
  CHECK(alert_name(20) == "bad_record_mac");
  CHECK(alert_name(40) == "handshake_failure");
  CHECK(alert_name(42) == "bad_certificate");
  CHECK(alert_name(48) == "unknown_ca");
  CHECK(alert_name(70) == "protocol_version");
  CHECK(alert_name(90) == "user_canceled");
  CHECK(alert_name(100) == "no_renegotiation");
  CHECK(alert_name(109) == "missing_extension");
  CHECK(alert_name(116) == "certificate_required");
  CHECK(alert_name(120) == "no_application_protocol");
  CHECK(alert_name(200).empty());
  CHECK(describe_alert(40) == "handshake_failure (40)");
  CHECK(describe_alert(201) == "unknown alert (201)");
}

TEST_CASE("close_notify at any level is a clean end of stream") {
  for (TlsVersion ver : kAllVersions) {
    ControlRecordParser p(ver, Role::client);
    CHECK(p.on_record(21, std::vector<std::uint8_t>{1, 0}).kind == Kind::end_of_stream);
    ControlRecordParser p2(ver, Role::client);
    CHECK(p2.on_record(21, std::vector<std::uint8_t>{2, 0}).kind == Kind::end_of_stream);
  }
}

TEST_CASE("a fatal alert ends the connection with its name and no alert back") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  auto v = p.on_record(21, std::vector<std::uint8_t>{2, 40});
  CHECK(v.kind == Kind::fatal);
  CHECK(v.error.message == "peer sent fatal alert: handshake_failure (40)");
  CHECK_FALSE(v.alert_to_send.has_value());
}

TEST_CASE("user_canceled: ignored in TLS 1.3 at any level, in TLS 1.2 only as a warning") {
  ControlRecordParser p13(TlsVersion::tls13, Role::client);
  CHECK(p13.on_record(21, std::vector<std::uint8_t>{1, 90}).kind == Kind::keep_reading);
  CHECK(p13.on_record(21, std::vector<std::uint8_t>{2, 90}).kind == Kind::keep_reading);
  ControlRecordParser p12(TlsVersion::tls12, Role::client);
  CHECK(p12.on_record(21, std::vector<std::uint8_t>{1, 90}).kind == Kind::keep_reading);
  CHECK(p12.on_record(21, std::vector<std::uint8_t>{2, 90}).kind == Kind::fatal);
}

TEST_CASE("TLS 1.3: a warning-level alert other than close_notify/user_canceled is fatal") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  auto v = p.on_record(21, std::vector<std::uint8_t>{1, 42});
  CHECK(v.kind == Kind::fatal);
  CHECK(v.error.message == "peer sent warning alert: bad_certificate (42)");
}

TEST_CASE("malformed alert record is decode_error") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  auto v = p.on_record(21, std::vector<std::uint8_t>{2, 40, 1});
  CHECK(v.kind == Kind::fatal);
  CHECK(v.alert_to_send == alert_desc::decode_error);
}

TEST_CASE("NewSessionTicket is consumed; several messages in one record") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  auto rec = msg(4, 200) + msg(4, 17) + msg(4, 0);
  CHECK(p.on_record(22, rec).kind == Kind::keep_reading);
  CHECK_FALSE(p.has_partial_handshake());
  CHECK(p.on_application_data().ok());
}

TEST_CASE("a message spanning records is buffered until complete") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  auto whole = msg(4, 20000, 0x77) + msg(4, 5);
  std::span<const std::uint8_t> s(whole);
  CHECK(p.on_record(22, s.subspan(0, 2)).kind == Kind::keep_reading);  // inside the header
  CHECK(p.has_partial_handshake());
  CHECK_FALSE(p.on_application_data().ok());  // data inside a fragmented message
  CHECK(p.on_record(22, s.subspan(2, 16000)).kind == Kind::keep_reading);
  CHECK(p.has_partial_handshake());
  CHECK(p.on_record(22, s.subspan(16002)).kind == Kind::keep_reading);
  CHECK_FALSE(p.has_partial_handshake());
}

TEST_CASE("a non-handshake record inside a fragmented message is unexpected_message") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  auto m = msg(4, 100);
  CHECK(p.on_record(22, std::span<const std::uint8_t>(m).subspan(0, 50)).kind ==
        Kind::keep_reading);
  auto v = p.on_record(21, std::vector<std::uint8_t>{1, 0});
  CHECK(v.kind == Kind::fatal);
  CHECK(v.alert_to_send == alert_desc::unexpected_message);
}

TEST_CASE("KeyUpdate is detected with its request flag") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  auto v = p.on_record(22, msg(4, 10) + std::vector<std::uint8_t>{24, 0, 0, 1, 1});
  CHECK(v.kind == Kind::key_update);
  CHECK(v.update_requested);
  auto v2 = p.on_record(22, std::vector<std::uint8_t>{24, 0, 0, 1, 0});
  CHECK(v2.kind == Kind::key_update);
  CHECK_FALSE(v2.update_requested);
}

TEST_CASE("KeyUpdate spanning records is reassembled") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  CHECK(p.on_record(22, std::vector<std::uint8_t>{24, 0}).kind == Kind::keep_reading);
  CHECK(p.on_record(22, std::vector<std::uint8_t>{0, 1, 0}).kind == Kind::key_update);
}

TEST_CASE("KeyUpdate followed by more bytes in its record, or malformed, is fatal") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  auto v = p.on_record(22, std::vector<std::uint8_t>{24, 0, 0, 1, 0} + msg(4, 3));
  CHECK(v.kind == Kind::fatal);
  CHECK(v.alert_to_send == alert_desc::unexpected_message);
  ControlRecordParser p2(TlsVersion::tls13, Role::client);
  auto v2 = p2.on_record(22, std::vector<std::uint8_t>{24, 0, 0, 1, 2});
  CHECK(v2.kind == Kind::fatal);
  CHECK(v2.alert_to_send == alert_desc::decode_error);
}

TEST_CASE("TLS 1.2: HelloRequest ignored; NewSessionTicket and KeyUpdate are unexpected") {
  ControlRecordParser p(TlsVersion::tls12, Role::client);
  CHECK(p.on_record(22, msg(0, 0)).kind == Kind::keep_reading);
  auto v = p.on_record(22, msg(4, 10));
  CHECK(v.kind == Kind::fatal);
  CHECK(contains(v.error.message, "unexpected_message"));
  ControlRecordParser p2(TlsVersion::tls12, Role::client);
  CHECK(p2.on_record(22, std::vector<std::uint8_t>{24, 0, 0, 1, 0}).kind == Kind::fatal);
}

TEST_CASE("TLS 1.3: HelloRequest, Finished, CertificateRequest after the handshake are fatal") {
  for (std::uint8_t t : {0, 13, 20, 1}) {
    ControlRecordParser p(TlsVersion::tls13, Role::client);
    auto v = p.on_record(22, msg(t, 4));
    CHECK(v.kind == Kind::fatal);
    CHECK(v.alert_to_send == alert_desc::unexpected_message);
  }
}

TEST_CASE("CCS and unknown record types are unexpected_message") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  auto v = p.on_record(20, std::vector<std::uint8_t>{1});
  CHECK(v.kind == Kind::fatal);
  CHECK(v.alert_to_send == alert_desc::unexpected_message);
  ControlRecordParser p2(TlsVersion::tls12, Role::client);
  auto v2 = p2.on_record(99, std::vector<std::uint8_t>{1, 2, 3});
  CHECK(v2.kind == Kind::fatal);
  CHECK(contains(v2.error.message, "unknown content type 99"));
}

TEST_CASE("empty handshake record and oversized message are refused") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  CHECK(p.on_record(22, std::vector<std::uint8_t>{}).kind == Kind::fatal);
  ControlRecordParser p2(TlsVersion::tls13, Role::client);
  auto v = p2.on_record(22, std::vector<std::uint8_t>{4, 0x10, 0, 0});  // 1 MiB
  CHECK(v.kind == Kind::fatal);
  CHECK(v.alert_to_send == alert_desc::decode_error);
}

TEST_CASE("a flood of ignorable records is cut off; data resets the count") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  for (unsigned i = 0; i < ControlRecordParser::kMaxControlInARow; ++i) {
    REQUIRE(p.on_record(22, msg(4, 8)).kind == Kind::keep_reading);
  }
  CHECK(p.on_application_data().ok());
  CHECK(p.on_record(22, msg(4, 8)).kind == Kind::keep_reading);
  for (unsigned i = 1; i < ControlRecordParser::kMaxControlInARow; ++i) {
    REQUIRE(p.on_record(21, std::vector<std::uint8_t>{1, 90}).kind == Kind::keep_reading);
  }
  CHECK(p.on_record(22, msg(4, 8)).kind == Kind::fatal);
}

TEST_CASE("alternating KeyUpdate and tickets cannot reset the flood count") {
  ControlRecordParser p(TlsVersion::tls13, Role::client);
  const auto key_update = std::vector<std::uint8_t>{24, 0, 0, 1, 0};
  for (unsigned i = 0; i < ControlRecordParser::kMaxControlInARow; ++i) {
    const Kind want = i % 2 == 0 ? Kind::key_update : Kind::keep_reading;
    REQUIRE(p.on_record(22, i % 2 == 0 ? key_update : msg(4, 8)).kind == want);
  }
  auto v = p.on_record(22, key_update);
  CHECK(v.kind == Kind::fatal);
  CHECK(v.alert_to_send == alert_desc::unexpected_message);
  CHECK(contains(v.error.message, "control records in a row"));
}

TEST_CASE("a server refuses what only servers send: NewSessionTicket, HelloRequest") {
  ControlRecordParser p13(TlsVersion::tls13, Role::server);
  auto v = p13.on_record(22, msg(4, 10));
  CHECK(v.kind == Kind::fatal);
  CHECK(v.alert_to_send == alert_desc::unexpected_message);
  CHECK(contains(v.error.message, "we are the server"));
  ControlRecordParser p12(TlsVersion::tls12, Role::server);
  CHECK(p12.on_record(22, msg(0, 0)).kind == Kind::fatal);
  // KeyUpdate comes from either side.
  ControlRecordParser pk(TlsVersion::tls13, Role::server);
  CHECK(pk.on_record(22, std::vector<std::uint8_t>{24, 0, 0, 1, 1}).kind == Kind::key_update);
}

TEST_CASE("record-layer errnos map to their alerts; others are not record-layer") {
  auto bad = record_layer_failure(EBADMSG);
  REQUIRE(bad.has_value());
  CHECK(bad->alert == alert_desc::bad_record_mac);
  CHECK(contains(bad->error.message, "bad_record_mac"));
  CHECK(record_layer_failure(EMSGSIZE)->alert == alert_desc::record_overflow);
  CHECK(record_layer_failure(EINVAL)->alert == alert_desc::protocol_version);
  CHECK_FALSE(record_layer_failure(EAGAIN).has_value());
  CHECK_FALSE(record_layer_failure(EIO).has_value());
}
