// The data path of an established connection: the kernel's (kTLS) or userspace OpenSSL's.
// Connection picks one after the handshake; both honour the same contract.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "base/result.h"

namespace wasi_ktls {

class TransportIo {
 public:
  virtual ~TransportIo() = default;
  // Plaintext into buf; 0 = the peer's close_notify. Truncation and alerts are errors.
  virtual Result<std::size_t> read(std::span<std::uint8_t> buf) = 0;
  virtual Status write(std::span<const std::uint8_t> data) = 0;
  // close_notify then shutdown(SHUT_WR).
  virtual Status close() = 0;
};

}  // namespace wasi_ktls
