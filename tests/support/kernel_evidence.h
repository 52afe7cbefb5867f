// What the kernel says about our kTLS sockets, for lab tests: the /proc/net/tls_stat counters
// of open kTLS sessions, and the record sequence numbers it holds per direction
// (getsockopt TLS_TX/TLS_RX), which must move with the records we send and receive.
#pragma once

#include <doctest/doctest.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#include "handshake/policy.h"
#include "handshake/tls_params.h"
#include "ktls/conn/backend.h"

namespace wasi_ktls::test {

struct TlsCounters {
  std::uint64_t tx_sw = 0, rx_sw = 0, decrypt_errors = 0;  // TlsCurr{Tx,Rx}Sw, TlsDecryptError
};
TlsCounters tls_counters();
// One /proc/net/tls_stat counter by name (e.g. the cumulative "TlsTxSw"); it must exist.
std::uint64_t tls_stat_counter(const char* name);

// Runs `body`, which opens kTLS sockets and closes them all before it returns; then the kernel's
// count of open kTLS sessions must be back where it was, with no decryption error. Reports
// how long `what` took.
void with_balanced_sessions(const std::string& what,
                            const std::function<void(const TlsCounters& before)>& body);

std::uint64_t kernel_seq(int fd, Direction d);

inline constexpr std::size_t kRecord = 16384;
// Full-size records that carry n bytes.
inline std::uint64_t records(std::size_t n) { return (n + kRecord - 1) / kRecord; }

// One direction's record number moved by the records `n` bytes need: exactly one per 16 KiB
// when one send carried them, more when a send was cut short mid-record or the peer (OpenSSL)
// framed them its own way; never more than one per byte. `extra` are control records known to
// come first (tickets). `seq` becomes the kernel's number.
void check_moved(int fd, Direction d, std::uint64_t& seq, std::size_t n, std::uint64_t extra,
                 const char* what);

// The record numbers we expect the kernel to hold for one of our sockets.
struct Seqs {
  std::uint64_t tx = 0, rx = 0;
  bool tickets_pending = false;  // TLS 1.3 client: the server's tickets not yet read
  std::uint64_t tickets = 0;

  // The tickets, if still pending, come before the first data read; counted once.
  std::uint64_t take_tickets(std::size_t n_read);
};

// Right after the hand-over. TLS 1.2: the Finished was record 0 under the new keys, both ways.
// TLS 1.3: the client starts at 0/0 and meets the server's tickets (records under the server's
// application key) on its first read; the server's TX starts after those tickets.
Seqs initial_seqs(TlsVersion v, Role role, std::uint64_t server_tickets = 2);

// The kernel holds exactly `want` both ways.
void check_seqs(int fd, const Seqs& want, const char* who);

// RX after reading n bytes framed as the peer liked (check_moved, tickets first).
void check_rx_range(int fd, Seqs& s, std::size_t n);

// The connection or stream runs on kTLS (a refusal is a failure in the lab, never a fallback).
template <class TlsEndpoint>
void require_kernel(const TlsEndpoint& e) {
  INFO("transport_reason: " << e.transport_reason());
  REQUIRE(e.transport() == Transport::kernel);
  CHECK(e.transport_reason().empty());
}

}  // namespace wasi_ktls::test
