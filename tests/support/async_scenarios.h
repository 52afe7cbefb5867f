// AsyncConnection scenarios shared by the host test (userspace transport) and the kernel-lab
// test (kTLS), each run on both engines. doctest checks inside.
#pragma once

#include <cstddef>

#include "ktls/conn/backend.h"
#include "ktls/io/engine.h"

namespace wasi_ktls::test {

struct ScenarioExpect {
  Backend backend = Backend::auto_;
  Transport transport = Transport::userspace;
};

// `pairs` client/server connections on one engine, each moving `bytes` both ways at once with
// checksums; every connection on the expected transport.
void many_connections(Engine& engine, const ScenarioExpect& expect, std::size_t pairs,
                      std::size_t bytes);

// A peer that connects and says nothing loses its handshake slot after the timeout.
void silent_peer_times_out(Engine& engine);

// abort() in the middle of a large transfer: every callback completes, nothing leaks.
void abort_mid_transfer(Engine& engine, const ScenarioExpect& expect);

// What a connection owes a peer that never reads, while its socket's send buffer is full.
enum class Stall { close_notify, fatal_alert };

// A peer that never reads stalls only its own connection: with A's send buffer full, A's
// close_notify (or the fatal alert A owes after junk from its peer) waits for room without
// blocking the engine's thread, and connection B on the same engine completes a round trip
// in well under A's I/O timeout.
void stalled_peer_leaves_others_running(Engine& engine, const ScenarioExpect& expect, Stall what);

// send_file of a temp file arrives intact (spliced on the kernel path, encrypted in
// userspace otherwise); close_notify ends the stream cleanly.
void send_file_intact(Engine& engine, const ScenarioExpect& expect, std::size_t size);

}  // namespace wasi_ktls::test
