// Feeds ControlRecordParser (ktls/record/control_record.h) what a hostile peer can put in the
// non-data records of a kTLS connection: a sequence of records of any content type and payload
// (alerts, handshake fragments that split or coalesce NewSessionTicket, KeyUpdate and
// HelloRequest messages across record boundaries), interleaved with application data, for
// either TLS version and role. A record may be fed many times in a row, so that short inputs
// reach the parser's bounds (the 256 KiB message limit, the 64-records flood limit); memory
// stays bounded by them, which the -malloc_limit_mb below enforces. The oracles are the
// verdicts' own contract: end_of_stream only for close_notify, key_update only for a TLS 1.3
// KeyUpdate that ends its record (with update_requested as sent), a fatal verdict always with
// a reason, and no alert owed to a peer whose own alert ended the connection.
//
// Input: byte 0 bit 0 = TLS 1.3, bit 1 = we are the server; then records, each an op byte
// (bits 0-1: 0 alert, 1 handshake, 2 the content type in the next byte, 3 application data;
// bit 2: fed 1 + the next byte times), a big-endian u16 length (at most 2^14) and the payload.
// fuzz-sources: ktls/record/control_record.cc handshake/tls_codes.cc handshake/tls_params.cc base/result.cc
// fuzz-libs: -lfmt
// fuzz-flags: -malloc_limit_mb=16 -max_len=8192
#include <cstdint>
#include <vector>

#include "fuzz/fuzz_input.h"
#include "ktls/record/control_record.h"

using namespace wasi_ktls;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::uint8_t flags = in.u8();
  const auto version = flags & 1 ? TlsVersion::tls13 : TlsVersion::tls12;
  const auto role = flags & 2 ? Role::server : Role::client;
  ControlRecordParser parser(version, role);
  // The last 5 handshake bytes fed: a KeyUpdate (type 24, length 1, one byte) may arrive split
  // across records, so its verdict is checked against the reassembled stream.
  std::vector<std::uint8_t> handshake_tail;

  while (!in.empty()) {
    const std::uint8_t op = in.u8();
    if ((op & 3) == 3) {  // a data record between control records
      const bool partial = parser.has_partial_handshake();
      const Status st = parser.on_application_data();
      FUZZ_CHECK(st.ok() != partial, "on_application_data must fail exactly inside a partial message");
      if (!st.ok()) return 0;  // the transport ends the connection
      continue;
    }
    const std::uint8_t type = (op & 3) == 0   ? content_type::alert
                              : (op & 3) == 1 ? content_type::handshake
                                              : in.u8();
    const unsigned repeat = op & 4 ? 1u + in.u8() : 1u;
    const std::size_t len = std::min<std::size_t>(in.u16(), 1u << 14);  // TLSPlaintext max
    const auto bytes = in.bytes(len);
    const std::vector<std::uint8_t> payload(bytes.begin(), bytes.end());

    for (unsigned i = 0; i < repeat; ++i) {
      if (type == content_type::handshake) {
        handshake_tail.insert(handshake_tail.end(), payload.begin(), payload.end());
        if (handshake_tail.size() > 5)
          handshake_tail.erase(handshake_tail.begin(), handshake_tail.end() - 5);
      }
      const ControlVerdict v = parser.on_record(type, payload);
      switch (v.kind) {
        case ControlVerdict::Kind::keep_reading:
          FUZZ_CHECK(!v.update_requested, "update_requested without key_update");
          break;
        case ControlVerdict::Kind::end_of_stream:
          FUZZ_CHECK(type == content_type::alert && payload.size() == 2 &&
                         payload[1] == alert_desc::close_notify,
                     "end_of_stream from something other than close_notify");
          return 0;
        case ControlVerdict::Kind::key_update: {
          FUZZ_CHECK(version == TlsVersion::tls13, "KeyUpdate accepted in TLS 1.2");
          FUZZ_CHECK(type == content_type::handshake && !payload.empty() &&
                         handshake_tail.size() == 5,
                     "key_update from a record that cannot end with a KeyUpdate");
          const std::uint8_t* t = handshake_tail.data();
          FUZZ_CHECK(t[0] == 24 && t[1] == 0 && t[2] == 0 && t[3] == 1 && t[4] <= 1,
                     "key_update from a record that does not end with a KeyUpdate message");
          FUZZ_CHECK(v.update_requested == (t[4] == 1), "update_requested differs from the message");
          FUZZ_CHECK(!parser.has_partial_handshake(), "bytes buffered past a KeyUpdate");
          handshake_tail.clear();
          break;
        }
        case ControlVerdict::Kind::fatal:
          FUZZ_CHECK(!v.error.message.empty(), "fatal verdict without a reason");
          FUZZ_CHECK(v.alert_to_send.has_value() || type == content_type::alert,
                     "no alert owed although the peer sent none");
          return 0;  // the connection is over; the transport calls no more
      }
    }
  }
  return 0;
}
