// One TLS (or plain TCP) connection of a system under test, seen as blocking reads and
// writes: the scenarios (bulk transfer, request/response) are written once against it, so
// every system moves the same bytes in the same calls. Each system lives in its own file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace wasi_ktls::bench {

// What every system is configured with: the same certificate, version and suite.
struct TlsSetup {
  std::string pki;                       // tools/make-test-pki directory (ca.pem, server.*)
  std::string cert = "server.pem";       // within pki: the server's chain and key
  std::string key = "server.key";
  std::string version = "1.3";           // "1.2" or "1.3"
  std::string tls13_suite = "TLS_AES_128_GCM_SHA256";
  std::string tls12_cipher = "ECDHE-ECDSA-AES128-GCM-SHA256";
};

class Channel {
 public:
  virtual ~Channel() = default;
  // Writes some of `data` (at least one byte); reads up to buf.size() (0: the peer closed).
  virtual Result<std::size_t> write(std::span<const std::uint8_t> data) = 0;
  virtual Result<std::size_t> read(std::span<std::uint8_t> buf) = 0;
  // What carries the records, e.g. "kernel (kTLS)" or "userspace", and why.
  virtual std::string transport() const = 0;
};

// The systems, by name: "tcp" (no TLS), "openssl" (a blocking SSL_read/SSL_write loop),
// "openssl-ktls" (the same with SSL_OP_ENABLE_KTLS), "ours-kernel" and "ours-userspace"
// (AsyncConnection on io_uring, backend ktls / userspace), "asio" (boost::asio::ssl::stream).
// `fd` is a connected TCP socket; the handshake is done when this returns.
Result<std::unique_ptr<Channel>> open_channel(const std::string& system, bool server, UniqueFd fd,
                                              const TlsSetup& tls);

Result<std::unique_ptr<Channel>> open_tcp(UniqueFd fd);
Result<std::unique_ptr<Channel>> open_openssl(bool server, bool ktls, UniqueFd fd, const TlsSetup& tls);
Result<std::unique_ptr<Channel>> open_ours(bool server, bool kernel, UniqueFd fd, const TlsSetup& tls);
Result<std::unique_ptr<Channel>> open_asio(bool server, UniqueFd fd, const TlsSetup& tls);

}  // namespace wasi_ktls::bench
