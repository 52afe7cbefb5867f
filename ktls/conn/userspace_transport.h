// The userspace data path: OpenSSL encrypts and decrypts, the socket carries ciphertext.
// Used when the kernel cannot take the connection, or when asked for.
#pragma once

#include <chrono>
#include <vector>

#include "handshake/session.h"
#include "ktls/conn/transport.h"

namespace wasi_ktls {

class UserspaceTransport final : public TransportIo {
 public:
  UserspaceTransport(int fd, Session session, std::chrono::milliseconds io_timeout);

  Result<std::size_t> read(std::span<std::uint8_t> buf) override;
  Status write(std::span<const std::uint8_t> data) override;
  Status close() override;

 private:
  Status flush();

  int fd_;
  Session session_;
  std::chrono::milliseconds io_timeout_;
  bool closed_ = false;
};

}  // namespace wasi_ktls
