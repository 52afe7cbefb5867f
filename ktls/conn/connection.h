// One TLS connection over a TCP socket: the handshake in OpenSSL, then the data path in the
// kernel (kTLS) or in userspace OpenSSL, behind one interface. Which one, and why, is always
// reported. Blocking I/O; every call is bounded by the options' timeouts.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"
#include "handshake/policy.h"
#include "handshake/session.h"
#include "ktls/conn/backend.h"

namespace wasi_ktls {

struct ConnectionOptions {
  Backend backend = Backend::auto_;
  std::chrono::milliseconds handshake_timeout{10'000};
  std::chrono::milliseconds io_timeout{30'000};  // any one read or write
  // Records per TX key before the connection closes itself (kernel transport without
  // rekey); 0: the AEAD limit of the negotiated cipher.
  std::uint64_t tx_record_limit = 0;
};

class Connection {
 public:
  // Handshakes on a connected TCP socket, then picks the transport. The fd is closed on
  // failure (after our alert went out).
  static Result<Connection> connect(UniqueFd tcp, const TlsContext& ctx,
                                    std::string_view server_name,
                                    const ConnectionOptions& options = {});
  static Result<Connection> accept(UniqueFd tcp, const TlsContext& ctx,
                                   const ConnectionOptions& options = {});

  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();  // closes the socket; no close_notify unless close() was called

  // Up to buf.size() plaintext bytes; 0 once the peer sent close_notify (a clean end; answer
  // with close()). A peer that closes without close_notify is a truncation error.
  Result<std::size_t> read(std::span<std::uint8_t> buf);
  // All of `data`.
  Status write(std::span<const std::uint8_t> data);
  Status write(std::string_view s) {
    return write(std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size()));
  }
  // Reads exactly buf.size() bytes unless the stream ends first; returns how many it got.
  Result<std::size_t> read_full(std::span<std::uint8_t> buf);
  // close_notify, then shutdown(SHUT_WR); reads stay possible. Idempotent.
  Status close();

  Transport transport() const;
  // Why the userspace transport was used (auto fallback or request); empty on the kernel.
  const std::string& transport_reason() const;
  const HandshakeInfo& info() const;
  std::uint64_t bytes_read() const;
  std::uint64_t bytes_written() const;
  int fd() const;

  struct Impl;

 private:
  explicit Connection(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace wasi_ktls
