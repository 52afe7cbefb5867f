// What every connection of one (transport, engine) group shares: its engine and thread, the
// TLS contexts and options (the transport is forced by options.backend, both sides), the
// traffic settings, its tally, and the stop signal of the soak's end.
#pragma once

#include <netinet/in.h>

#include <atomic>
#include <chrono>
#include <cstdint>

#include "bench/soak/tally.h"
#include "handshake/policy.h"
#include "ktls/conn/backend.h"
#include "ktls/conn/core.h"
#include "ktls/io/engine.h"

namespace wasi_ktls::soak {

struct Traffic {
  std::uint32_t max_length = 1u << 20;           // messages are 1 B to this, log-uniform
  std::chrono::milliseconds think_mean{2000};    // pause between a client's exchanges, 0-2x
  double close_probability = 0.05;  // after each exchange the client closes and reconnects
  double abrupt_share = 0.25;       // of those closes: no close_notify (half FIN, half RST)
  std::uint64_t seed = 1;
  // Every Nth reply of a group goes out with one byte inverted (0: never): a self-test that
  // must make the soak fail with exactly that many mismatched bytes.
  std::uint64_t corrupt_every = 0;
};

inline constexpr std::size_t kChunk = 16 * 1024;  // each side's buffer per connection

struct GroupContext {
  Engine& engine;
  Transport transport;
  TlsContext client_tls, server_tls;
  ConnectionOptions client_options, server_options;
  Traffic traffic;
  sockaddr_in server_addr{};
  Tally tally;
  std::atomic<bool> stopping{false};
  std::atomic<unsigned> running_clients{0};  // slots that have not closed for good
  std::uint64_t replies = 0;                  // sent by the server side (its thread only)  // clients close cleanly at their next step, for good
};

}  // namespace wasi_ktls::soak
