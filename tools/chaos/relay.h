// One proxied TCP connection, relayed record by record (the 5-byte TLS record header gives
// each record's length), with at most one fault applied (fault.h). Which record is hit: in the
// fault's flow, application_data records (type 23) are counted once the relay is armed; the
// first `after_records` pass untouched and the next one is the target. Under TLS 1.3 the
// encrypted handshake messages, tickets and close_notify are type 23 on the wire too, so a
// caller that wants "after the hand-over" arms once its own side has seen the hand-over (the
// tests do), or counts those records in.
//
// Every wait is bounded: the relay ends when nothing moves for `io_timeout`, or at `stop_fd`.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "tools/chaos/fault.h"

namespace wasi_ktls::chaos {

struct ProxyConfig {
  std::string to_host = "127.0.0.1";
  std::uint16_t to_port = 0;
  std::uint16_t listen_port = 0;  // 0: any free port
  Fault fault = Fault::none;
  Flow flow = Flow::s2c;
  std::uint64_t after_records = 0;
  bool armed = true;  // false: application_data records count only from ChaosProxy::arm()
  std::chrono::milliseconds stall{3000};
  // How long split-coalesce holds a Finished for the record to go with it.
  std::chrono::milliseconds coalesce_hold{2000};
  std::chrono::milliseconds io_timeout{60000};
};

struct RelayReport {
  std::uint64_t records[2] = {0, 0};  // whole records relayed, by Flow
  bool fault_applied = false;
  std::uint64_t coalesced_records = 0;  // split-coalesce: records sent in one segment
  std::string end;                      // how the relay ended, in words
};

// Relays between `client` (accepted) and `server` (connected) until both ends closed, the
// fault ended the connection, `io_timeout` of silence, or `stop_fd` became readable. Takes
// ownership of both fds. `armed` may be set from another thread.
RelayReport relay(int client, int server, const ProxyConfig& config,
                  const std::atomic<bool>& armed, int stop_fd);

}  // namespace wasi_ktls::chaos
