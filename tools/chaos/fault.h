// The faults the chaos proxy puts on the wire, and which way they go. Their names are the CLI's
// (--fault flip-byte, --direction s2c).
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace wasi_ktls::chaos {

enum class Fault : std::uint8_t {
  none,               // relay untouched
  flip_byte,          // the target record's last byte (in the AEAD tag) flipped
  truncate_record,    // half of the target record, then FIN
  fin,                // FIN instead of the target record: no close_notify
  rst,                // RST (SO_LINGER 0) instead of the target record
  stall,              // nothing more this way for ProxyConfig::stall, then the rest
  split_coalesce,     // every record in 1-byte segments, but the record after the sender's
                      // ChangeCipherSpec (its Finished) goes in one segment with the next one
  inject_alert,       // a plaintext fatal alert record just before the target record
  inject_key_update,  // a plaintext KeyUpdate record just before the target record
  data_after_close,   // a made-up application_data record right after the target record
};

// Which way the fault goes: client to server, or server to client.
enum class Flow : std::uint8_t { c2s = 0, s2c = 1 };

std::string_view to_string(Fault f);
std::optional<Fault> parse_fault(std::string_view name);
std::string_view to_string(Flow f);
std::optional<Flow> parse_flow(std::string_view name);

}  // namespace wasi_ktls::chaos
