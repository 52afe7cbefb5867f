#include "ktls/record/install.h"

#include <openssl/crypto.h>

#include <cerrno>
#include <cstring>

#include "base/errno_name.h"
#include "ktls/record/tls_uapi.h"

namespace wasi_ktls {
namespace {

int sockopt_name(Direction d) { return d == Direction::tx ? TLS_TX : TLS_RX; }

}  // namespace

std::string_view install_step_name(InstallStep s) {
  switch (s) {
    case InstallStep::tcp_info: return "getsockopt(TCP_INFO)";
    case InstallStep::ulp: return "setsockopt(TCP_ULP, \"tls\")";
    case InstallStep::tls_rx: return "setsockopt(SOL_TLS, TLS_RX)";
    case InstallStep::tls_tx: return "setsockopt(SOL_TLS, TLS_TX)";
  }
  return "?";
}

std::string_view install_errno_meaning(InstallStep s, int err) {
  switch (err) {
    case ENOENT:
      return s == InstallStep::ulp
                 ? "the tls module is not loaded and this process may not load it "
                   "(needs CAP_NET_ADMIN or `modprobe tls`)"
                 : "the kernel has no AEAD for this cipher (gcm / chacha20poly1305 module "
                   "missing)";
    case EEXIST:
      return "a ULP is already attached to this socket";
    case ENOTCONN:
      return "the socket is not an established TCP connection";
    case EINVAL:
      return s == InstallStep::ulp ? "the socket cannot take a ULP"
                                   : "the kernel rejected the crypto_info (version, cipher, "
                                     "size, or a mismatch with the other direction)";
    case EBUSY:
      return "keys are already installed in this direction (no rekey before Linux 6.14)";
    case ENOPROTOOPT:
      return s == InstallStep::ulp ? "this kernel has no TCP_ULP" : "no TLS ULP on this socket";
    case ENOMEM:
      return "the kernel is out of memory";
    case EOPNOTSUPP:
      return "not supported on this socket";
  }
  return "unexpected error";
}

Error install_error(InstallStep s, int err) {
  return Error{fmt::format("kTLS install: {} failed: {} ({}: {})", install_step_name(s),
                           install_errno_meaning(s, err), errno_name(err), std::strerror(err)),
               err, ErrorKind::system};
}

long tcp_state(int fd) {
  tcp_info ti{};
  socklen_t len = sizeof(ti);
  if (::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return -errno;
  return ti.tcpi_state;
}

long attach_tls_ulp(int fd) {
  static constexpr char kUlp[] = "tls";
  return ::setsockopt(fd, SOL_TCP, TCP_ULP, kUlp, sizeof(kUlp)) == 0 ? 0 : -errno;
}

long set_kernel_key(int fd, Direction d, const KernelCryptoInfo& info) {
  return ::setsockopt(fd, SOL_TLS, sockopt_name(d), info.data(), info.size()) == 0 ? 0 : -errno;
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
  for (Cipher c : kAllCiphers)
    if (header.cipher_type == kernel_cipher_type(c)) want = kernel_crypto_info_size(c);
  if (want == 0) {
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
