// Boost.Asio Stream scenarios shared by the host test (userspace transport) and the kernel-lab
// test (kTLS): the same exchanges, checked the same way, plus what each transport must show.
#pragma once

#include <cstddef>
#include <functional>

#include "tests/support/asio_stream_pair.h"

namespace wasi_ktls::test {

// What one transport must show along a client <-> server exchange. Unset hooks check nothing.
struct StreamPairExpect {
  Backend backend = Backend::auto_;
  std::function<void(Stream& client, Stream& server)> established;
  // After `from` sent n bytes that `to` read.
  std::function<void(Stream& from, Stream& to, std::size_t n)> transferred;
  // After close_notify both ways (the client's first).
  std::function<void(Stream& client, Stream& server)> closed;
};

// Our client <-> our server pinned to (v, c), coroutines: every payload of kPayloads both ways
// with exact byte counts, close_notify both ways (idempotent, eof stays, a write after it is
// refused in words).
void pair_every_payload(TlsVersion v, Cipher c, const StreamPairExpect& expect);

// After some data both ways, one side closes TCP without close_notify: the other reads
// stream_truncated, with "truncation" in last_error().
void truncated_by_fin(TlsVersion v, bool server_drops, const StreamPairExpect& expect);

// What one transport must show for one of ours against an openssl peer.
struct StreamPeerExpect {
  Backend backend = Backend::auto_;
  std::function<void(Stream& ours)> established;
  std::function<void(Stream& ours, std::size_t n)> sent, received;
  std::function<void(Stream& ours)> closed;  // after close_notify both ways
};

// Our client <-> openssl s_server pinned to (v, c): every payload both ways, close_notify
// answered, s_server exits 0.
void client_against_s_server(TlsVersion v, Cipher c, const StreamPeerExpect& expect);

// openssl s_client <-> our server pinned to (v, c): the same from the other side.
void server_against_s_client(TlsVersion v, Cipher c, const StreamPeerExpect& expect);

// A peer that never reads stalls only its own stream: with A's send buffer full, A's
// async_shutdown (or the fatal alert A owes after junk from its peer) does not block the
// thread, and stream pair B on the same io_context completes a round trip meanwhile.
// `junk_first`: the fatal-alert case, else close_notify.
void asio_stalled_peer_leaves_others_running(Backend backend, bool junk_first);

// Terminal per-operation cancellation (bind_cancellation_slot + emit) of a handshake waiting
// for a silent server, a read waiting for data, and a write waiting for room: each completes
// promptly with operation_aborted; a cancelled read leaves the stream readable.
void asio_per_operation_cancellation(Backend backend);

// Handlers of handshake, read, write and shutdown run on their associated executor (a
// strand), with the io_context run by two threads; a second read while one is outstanding is
// refused with operation_in_progress, never interleaved.
void asio_associated_executor_and_one_op_per_lane(Backend backend);

}  // namespace wasi_ktls::test
