// One TLS connection over a TCP socket with blocking calls: the connection core (core.h)
// driven by non-blocking socket calls and poll(2), so every wait has the options' bound. The
// handshake in OpenSSL, then the data path in the kernel (kTLS) or in userspace OpenSSL; which
// one, and why, is always reported.
//
// Threads: one reader thread and one writer thread (write, close) may use a Connection at the
// same time, the usual pattern for a blocking socket; more readers (or writers) take turns.
#pragma once

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
#include "handshake/traffic_keys.h"
#include "ktls/conn/backend.h"
#include "ktls/conn/core.h"

namespace wasi_ktls {

class Connection {
 public:
  // Handshakes on a connected TCP socket, then picks the transport. The fd is closed on
  // failure (after our alert went out).
  static Result<Connection> connect(UniqueFd tcp, const TlsContext& ctx,
                                    std::string_view server_name,
                                    const ConnectionOptions& options = {});
  static Result<Connection> accept(UniqueFd tcp, const TlsContext& ctx,
                                   const ConnectionOptions& options = {});
  // A TCP connection whose peer agreed `keys` by other means: installs them in the kernel
  // (ConnectionCore::with_keys); an error if the kernel refuses them.
  static Result<Connection> with_keys(UniqueFd tcp, const TrafficKeys& keys, Role role,
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
