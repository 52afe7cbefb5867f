// One point of the soak's time series: the process's RSS and open fds, with the traffic
// counters at that moment, taken every --sample-interval seconds and once after the drain.
#pragma once

#include <cstdint>
#include <string>

namespace wasi_ktls::soak {

struct Sample {
  double t_s = 0;                // since the connections started
  std::string phase;             // "baseline" (before any connection), "run", "drained"
  std::uint64_t rss_bytes = 0;
  std::uint64_t fds = 0;
  std::uint64_t open_connections = 0;  // established, both sides
  std::uint64_t messages = 0;          // cumulative
  std::uint64_t bytes_checked = 0;     // cumulative
  // Sockets the kernel holds kTLS state for now (/proc/net/tls_stat TlsCurrTxSw/RxSw): the
  // kernel groups' connections, and after the drain the proof that the kernel let go of them.
  std::uint64_t ktls_tx = 0, ktls_rx = 0;
};

}  // namespace wasi_ktls::soak
