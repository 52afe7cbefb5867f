#include "ktls/record/install.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/errno_name.h"

#ifndef SOL_TLS
#define SOL_TLS 282
#endif
#ifndef TCP_ULP
#define TCP_ULP 31
#endif

namespace wasi_ktls {
namespace {

enum class Step { tcp_info, ulp, tls_rx, tls_tx };

std::string_view step_name(Step s) {
  switch (s) {
    case Step::tcp_info: return "getsockopt(TCP_INFO)";
    case Step::ulp: return "setsockopt(TCP_ULP, \"tls\")";
    case Step::tls_rx: return "setsockopt(SOL_TLS, TLS_RX)";
    case Step::tls_tx: return "setsockopt(SOL_TLS, TLS_TX)";
  }
  return "?";
}

// What each errno means at each step, from tcp_ulp.c / tls_main.c (6.1).
std::string_view meaning(Step s, int err) {
  switch (err) {
    case ENOENT:
      return s == Step::ulp ? "the tls module is not loaded and this process may not load it "
                              "(needs CAP_NET_ADMIN or `modprobe tls`)"
                            : "the kernel has no AEAD for this cipher (gcm / chacha20poly1305 "
                              "module missing)";
    case EEXIST:
      return "a ULP is already attached to this socket";
    case ENOTCONN:
      return "the socket is not an established TCP connection";
    case EINVAL:
      return s == Step::ulp ? "the socket cannot take a ULP"
                            : "the kernel rejected the crypto_info (version, cipher, size, or "
                              "a mismatch with the other direction)";
    case EBUSY:
      return "keys are already installed in this direction (no rekey before Linux 6.14)";
    case ENOPROTOOPT:
      return s == Step::ulp ? "this kernel has no TCP_ULP" : "no TLS ULP on this socket";
    case ENOMEM:
      return "the kernel is out of memory";
    case EOPNOTSUPP:
      return "not supported on this socket";
  }
  return "unexpected error";
}

Error step_error(Step s, int err) {
  return Error{fmt::format("kTLS install: {} failed: {} ({}: {})", step_name(s), meaning(s, err),
                           errno_name(err), std::strerror(err)),
               err};
}

int sockopt_name(Direction d) { return d == Direction::tx ? TLS_TX : TLS_RX; }

}  // namespace

InstallResult install_kernel_tls(int fd, const TrafficKeys& keys) {
  using O = InstallResult::Outcome;

  // Build both first: a bad key length is caught before the socket is touched.
  auto rx = KernelCryptoInfo::build(keys, Direction::rx);
  if (!rx) return {O::plain_tcp, rx.error()};
  auto tx = KernelCryptoInfo::build(keys, Direction::tx);
  if (!tx) return {O::plain_tcp, tx.error()};

  tcp_info ti{};
  socklen_t tilen = sizeof(ti);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tilen) != 0) {
    return {O::plain_tcp, step_error(Step::tcp_info, errno)};
  }
  if (ti.tcpi_state != TCP_ESTABLISHED) {
    return {O::plain_tcp,
            Error{fmt::format("kTLS install: the socket is not ESTABLISHED (TCP state {}); keys "
                              "go in only after the handshake on a connected socket",
                              static_cast<int>(ti.tcpi_state)),
                  ENOTCONN}};
  }

  static constexpr char kUlp[] = "tls";
  if (::setsockopt(fd, SOL_TCP, TCP_ULP, kUlp, sizeof(kUlp)) != 0) {
    return {O::plain_tcp, step_error(Step::ulp, errno)};
  }
  // RX first: it starts parsing bytes already queued on the socket, which the peer encrypted
  // under its application key. A failure here leaves no record state in the kernel.
  if (::setsockopt(fd, SOL_TLS, TLS_RX, rx->data(), rx->size()) != 0) {
    return {O::plain_tcp, step_error(Step::tls_rx, errno)};
  }
  if (::setsockopt(fd, SOL_TLS, TLS_TX, tx->data(), tx->size()) != 0) {
    Error e = step_error(Step::tls_tx, errno);
    e.message += "; TLS_RX was already installed, so the connection must be closed";
    return {O::connection_broken, std::move(e)};
  }
  return {};  // rx and tx wipe themselves here
}

Status set_kernel_key(int fd, Direction d, const KernelCryptoInfo& info) {
  if (::setsockopt(fd, SOL_TLS, sockopt_name(d), info.data(), info.size()) != 0) {
    return step_error(d == Direction::tx ? Step::tls_tx : Step::tls_rx, errno);
  }
  return {};
}

Result<KernelCryptoInfo> read_kernel_crypto_info(int fd, Direction d) {
  const char* name = d == Direction::tx ? "TLS_TX" : "TLS_RX";
  // The kernel wants optlen to be exactly the header or exactly the cipher's struct, so read
  // the header first to learn which.
  tls_crypto_info header{};
  socklen_t len = sizeof(header);
  if (::getsockopt(fd, SOL_TLS, sockopt_name(d), &header, &len) != 0) {
    return errno_error(errno, fmt::format("getsockopt(SOL_TLS, {}) header", name));
  }
  socklen_t want = 0;
  switch (header.cipher_type) {
    case TLS_CIPHER_AES_GCM_128:
      want = kernel_crypto_info_size(Cipher::aes_128_gcm);
      break;
    case TLS_CIPHER_AES_GCM_256:
      want = kernel_crypto_info_size(Cipher::aes_256_gcm);
      break;
    case TLS_CIPHER_CHACHA20_POLY1305:
      want = kernel_crypto_info_size(Cipher::chacha20_poly1305);
      break;
    default:
      return make_error("getsockopt(SOL_TLS, {}): no key installed or unknown cipher_type {}",
                        name, header.cipher_type);
  }
  alignas(8) std::uint8_t buf[KernelCryptoInfo::kMaxSize] = {};
  len = want;
  if (::getsockopt(fd, SOL_TLS, sockopt_name(d), buf, &len) != 0) {
    const int err = errno;
    OPENSSL_cleanse(buf, sizeof(buf));
    return errno_error(err, fmt::format("getsockopt(SOL_TLS, {})", name));
  }
  auto info = KernelCryptoInfo::from_kernel(std::span<const std::uint8_t>(buf, len));
  OPENSSL_cleanse(buf, sizeof(buf));
  return info;
}

}  // namespace wasi_ktls
