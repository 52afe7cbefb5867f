// How many records one key may protect, and the count of records used so far. The kernel
// enforces no AEAD limit, and before Linux 6.14 it cannot change keys, so the transport counts
// and stops (or rekeys where it can) before the limit.
#pragma once

#include <cstddef>
#include <cstdint>

#include "handshake/tls_params.h"

namespace wasi_ktls {

// The kernel's largest record plaintext: every send makes ceil(bytes / this) records.
inline constexpr std::size_t kMaxRecordPlaintext = 16384;

// Records per key:
//  - AES-GCM, TLS 1.3: 2^24.5 full-size records (RFC 8446 §5.5).
//  - AES-GCM, TLS 1.2: RFC 5246 sets none, but the AEAD's confidentiality bound does not
//    depend on the TLS version, so the same 2^24.5 (as RFC 9325 advises).
//  - ChaCha20-Poly1305: beyond reach (2^62), i.e. until the 64-bit sequence number is near.
std::uint64_t default_record_limit(TlsVersion v, Cipher c);

// Records one send of `bytes` creates without MSG_MORE (0 for an empty send): an estimate of
// what the kernel does (see RecordBudget::resync).
constexpr std::uint64_t records_for_bytes(std::size_t bytes) {
  return (bytes + kMaxRecordPlaintext - 1) / kMaxRecordPlaintext;
}

// Records used under one key in one direction, against its limit. One record is always held
// back for the final close_notify or KeyUpdate, so the connection can end (or rekey) cleanly.
class RecordBudget {
 public:
  RecordBudget(std::uint64_t used, std::uint64_t limit) : used_(used), limit_(limit) {}

  // How many of `want` bytes may be sent now as data records (0: the limit is reached).
  std::size_t sendable_bytes(std::size_t want) const;
  void add(std::uint64_t records) { used_ += records; }
  void new_key() { used_ = 0; }
  // The kernel's own count (its rec_seq): counts made per send are estimates, since a send cut
  // short leaves a record open for the next one and a splice frames records its own way.
  void resync(std::uint64_t used) { used_ = used; }

  std::uint64_t used() const { return used_; }
  std::uint64_t limit() const { return limit_; }

 private:
  std::uint64_t used_;
  std::uint64_t limit_;
};

}  // namespace wasi_ktls
