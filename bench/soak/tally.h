// What one (transport, engine) group of the soak counted: written by its engine thread,
// read by the main thread for samples and the report (atomics and one locked map).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>

#include "base/result.h"

namespace wasi_ktls::soak {

struct Tally {
  using Counter = std::atomic<std::uint64_t>;
  Counter opened{0};            // client connections that finished their handshake
  Counter accepted{0};          // server connections that finished theirs
  Counter closed_clean{0};      // client: close_notify both ways, then the socket closed
  Counter abrupt_fin{0};        // client: socket closed without close_notify (FIN)
  Counter abrupt_rst{0};        // client: socket closed with SO_LINGER 0 (RST)
  Counter server_clean{0};      // server: saw close_notify between messages, answered it
  Counter server_truncated{0};  // server: truncation between messages (the expected FIN kind)
  Counter server_reset{0};      // server: connection reset between messages (the RST kind)
  Counter server_late{0};       // server (kernel groups): the client closed before our hand-over
                                // (only at the drain), so the kernel refused the keys: userspace
  Counter messages{0};          // requests checked by servers + replies checked by clients
  Counter bytes_checked{0};     // header and payload bytes regenerated and compared
  Counter mismatched_bytes{0};
  Counter mismatched_messages{0};
  Counter corrupted{0};     // bytes inverted on purpose (--corrupt-every)
  Counter live_clients{0};  // client connections established now
  Counter live_servers{0};  // server connections established now
  Counter pending{0};       // handshakes (either side) and connects in progress

  // One message checked: its header and payload bytes, and how many of them differed.
  void message(std::uint64_t bytes, std::uint64_t mismatched) {
    ++messages;
    bytes_checked += bytes;
    if (mismatched > 0) {
      mismatched_bytes += mismatched;
      ++mismatched_messages;
    }
  }

  // Anything not deliberately provoked, by "side phase: kind (errno)", with one example.
  void error(const std::string& where, const Error& e);
  std::uint64_t errors() const;
  std::map<std::string, std::pair<std::uint64_t, std::string>> errors_by_kind() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::pair<std::uint64_t, std::string>> errors_;
};

// "truncated", "system (ECONNRESET)": what a report groups errors by.
std::string kind_of(const Error& e);

}  // namespace wasi_ktls::soak
