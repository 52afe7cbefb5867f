#include "ktls/probe/probe.h"

#include <fcntl.h>
#include <linux/capability.h>
#include <linux/tls.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "base/unique_fd.h"
#include "base/errno_name.h"
#include "ktls/io/loopback_pair.h"

// glibc has had these since 2.2x; the fallbacks keep older headers building.
#ifndef SOL_TLS
#define SOL_TLS 282  // include/linux/socket.h
#endif
#ifndef TCP_ULP
#define TCP_ULP 31  // include/uapi/linux/tcp.h
#endif

namespace wasi_ktls {
namespace {

// A crypto_info with all-zero key material: the kernel validates version, cipher and length
// and allocates the AEAD, but never needs a real key for that.
class DummyCryptoInfo {
 public:
  DummyCryptoInfo(TlsVersion v, Cipher c) {
    std::memset(&u_, 0, sizeof u_);
    switch (c) {
      case Cipher::aes_128_gcm:
        u_.info.cipher_type = TLS_CIPHER_AES_GCM_128;
        size_ = sizeof u_.aes128;
        break;
      case Cipher::aes_256_gcm:
        u_.info.cipher_type = TLS_CIPHER_AES_GCM_256;
        size_ = sizeof u_.aes256;
        break;
      case Cipher::chacha20_poly1305:
        u_.info.cipher_type = TLS_CIPHER_CHACHA20_POLY1305;
        size_ = sizeof u_.chacha;
        break;
    }
    u_.info.version = static_cast<std::uint16_t>(v);
  }
  // Zeros are no secret, but every crypto_info is wiped: one rule, no exceptions to audit.
  ~DummyCryptoInfo() { OPENSSL_cleanse(&u_, sizeof u_); }
  DummyCryptoInfo(const DummyCryptoInfo&) = delete;
  DummyCryptoInfo& operator=(const DummyCryptoInfo&) = delete;

  const void* data() const { return &u_; }
  socklen_t size() const { return size_; }

 private:
  union {
    tls_crypto_info info;
    tls12_crypto_info_aes_gcm_128 aes128;
    tls12_crypto_info_aes_gcm_256 aes256;
    tls12_crypto_info_chacha20_poly1305 chacha;
  } u_;
  socklen_t size_ = 0;
};

Verdict accepted(std::string note = "accepted") { return Verdict{true, std::move(note), 0}; }

Verdict refused(int err, std::string_view meaning) {
  return Verdict{false, errno_name(err) + ": " + std::string(meaning), err};
}

Verdict not_probed(std::string why) { return Verdict{false, "not probed: " + why, 0}; }

Verdict setup_failed(const Error& e) {
  std::string reason = e.sys_errno != 0 ? errno_name(e.sys_errno) + ": " : std::string();
  return Verdict{false, reason + "probe setup failed: " + e.message, e.sys_errno};
}

// CAP_NET_ADMIN in the effective set, from /proc/self/status (no libcap needed).
bool has_net_admin() {
  UniqueFd fd(::open("/proc/self/status", O_RDONLY | O_CLOEXEC));
  if (!fd) return false;
  char buf[4096];
  ssize_t n = ::read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return false;
  buf[n] = '\0';
  const char* cap = std::strstr(buf, "CapEff:");
  if (cap == nullptr) return false;
  unsigned long long bits = std::strtoull(cap + 7, nullptr, 16);
  return (bits >> CAP_NET_ADMIN) & 1;
}

Verdict explain_ulp(int err) {
  switch (err) {
    case ENOENT:
      // With CAP_NET_ADMIN the kernel tried to load tcp-ulp-tls itself, so the module is
      // missing; without it, loading it (modprobe tls) may be all that is needed.
      return refused(err, std::string("kernel has no TLS ULP: CONFIG_TLS off or module not loaded") +
                              (has_net_admin() ? "; autoloading tls.ko failed"
                                               : "; this process lacks CAP_NET_ADMIN to "
                                                 "autoload tls.ko"));
    case ENOPROTOOPT:
      return refused(err, "kernel has no TCP_ULP socket option (Linux < 4.13)");
    case EEXIST:
      return refused(err, "a ULP is already attached to this socket");
    case ENOTCONN:
      return refused(err, "the socket is not an established TCP connection");
    default:
      return refused(err, std::strerror(err));
  }
}

Verdict explain_install(int err) {
  switch (err) {
    case EINVAL:
      return refused(err, "kernel rejects this version/cipher");
    case ENOENT:
      return refused(err, "kernel crypto for this cipher unavailable (module not loadable)");
    case ENOPROTOOPT:
      return refused(err, "SOL_TLS not understood: the TLS ULP is not attached");
    case EBUSY:
      return refused(err, "this direction already has keys");
    case ENOMEM:
      return refused(err, "kernel could not allocate the cipher state");
    default:
      return refused(err, std::strerror(err));
  }
}

// Attaches the TLS ULP to `fd`; ok or why not.
Verdict attach_ulp(int fd) {
  static constexpr char kTls[] = "tls";
  if (::setsockopt(fd, SOL_TCP, TCP_ULP, kTls, sizeof kTls) == 0) return accepted();
  return explain_ulp(errno);
}

Verdict install(int fd, TlsVersion v, Cipher c, Direction d) {
  DummyCryptoInfo info(v, c);
  int opt = d == Direction::tx ? TLS_TX : TLS_RX;
  if (::setsockopt(fd, SOL_TLS, opt, info.data(), info.size()) == 0) return accepted();
  return explain_install(errno);
}

// A fresh established socket with the ULP attached and `v`/`c` keys in each of `dirs`.
// The pair is returned so that the peer stays open while the caller probes further.
Result<LoopbackPair> keyed_socket(TlsVersion v, Cipher c, std::initializer_list<Direction> dirs,
                                  Verdict& verdict) {
  auto pair = make_loopback_pair();
  if (!pair) {
    verdict = setup_failed(pair.error());
    return pair.error();
  }
  verdict = attach_ulp(pair->client.get());
  if (!verdict.ok) {
    verdict.reason = "TCP_ULP: " + verdict.reason;
    return Error{verdict.reason, verdict.sys_errno};
  }
  for (Direction d : dirs) {
    verdict = install(pair->client.get(), v, c, d);
    if (!verdict.ok) return Error{verdict.reason, verdict.sys_errno};
  }
  return pair;
}

Verdict probe_ulp() {
  auto pair = make_loopback_pair();
  if (!pair) return setup_failed(pair.error());
  return attach_ulp(pair->client.get());
}

Verdict probe_combo(TlsVersion v, Cipher c, Direction d) {
  Verdict verdict;
  (void)keyed_socket(v, c, {d}, verdict);
  return verdict;
}

const ComboVerdict* first_ok(const Probe& p, std::optional<TlsVersion> v, Direction d) {
  for (const ComboVerdict& cv : p.combos)
    if ((!v || cv.version == *v) && cv.direction == d && cv.verdict.ok) return &cv;
  return nullptr;
}

Verdict probe_rekey(const Probe& p) {
  const ComboVerdict* base = first_ok(p, TlsVersion::tls13, Direction::tx);
  if (base == nullptr) return not_probed("the kernel took no TLS 1.3 TX key");
  Verdict verdict;
  auto pair = keyed_socket(base->version, base->cipher, {Direction::tx}, verdict);
  if (!pair) return verdict;
  Verdict again = install(pair->client.get(), base->version, base->cipher, Direction::tx);
  if (again.ok) return accepted("accepted: a second TLS_TX took new keys (TLS 1.3 rekey)");
  if (again.sys_errno == EBUSY)
    return refused(EBUSY, "kernel has no TLS 1.3 rekey (second TLS_TX gave EBUSY; "
                          "needs Linux >= 6.14)");
  again.reason = "second TLS_TX: " + again.reason;
  return again;
}

// Sets the u32 option `opt` to 1 after installing keys in `d`, on a version/cipher the kernel
// took in that direction. `unknown_hint` explains ENOPROTOOPT (option newer than the kernel).
Verdict probe_option(const Probe& p, std::optional<TlsVersion> v, Direction d, int opt,
                     std::string_view ok_note, std::string_view unknown_hint) {
  const ComboVerdict* base = first_ok(p, v, d);
  if (base == nullptr)
    return not_probed(std::string("the kernel took no ") +
                      (v ? "TLS " + std::string(to_string(*v)) + " " : std::string()) +
                      (d == Direction::tx ? "TX" : "RX") + " key");
  Verdict verdict;
  auto pair = keyed_socket(base->version, base->cipher, {d}, verdict);
  if (!pair) return verdict;
  std::uint32_t one = 1;
  if (::setsockopt(pair->client.get(), SOL_TLS, opt, &one, sizeof one) == 0)
    return accepted(std::string(ok_note));
  int err = errno;
  switch (err) {
    case ENOPROTOOPT: return refused(err, unknown_hint);
    case EINVAL: return refused(err, "kernel refuses this option on this socket");
    default: return refused(err, std::strerror(err));
  }
}

std::string kernel_release() {
  utsname u{};
  if (::uname(&u) != 0) return "unknown";
  return u.release;
}

}  // namespace


const Verdict& Probe::combo(TlsVersion v, Cipher c, Direction d) const {
  for (const ComboVerdict& cv : combos)
    if (cv.version == v && cv.cipher == c && cv.direction == d) return cv.verdict;
  static const Verdict missing{false, "not probed", 0};
  return missing;
}

bool Probe::supports(TlsVersion v, Cipher c) const {
  return combo(v, c, Direction::tx).ok && combo(v, c, Direction::rx).ok;
}

std::optional<std::string> Probe::refusal(TlsVersion v, Cipher c) const {
  const Verdict& tx = combo(v, c, Direction::tx);
  const Verdict& rx = combo(v, c, Direction::rx);
  if (tx.ok && rx.ok) return std::nullopt;
  std::string what = "kernel cannot take TLS " + std::string(to_string(v)) + " " +
                     std::string(to_string(c)) + " ";
  if (!tx.ok && !rx.ok && tx.reason == rx.reason) return what + "tx or rx: " + tx.reason;
  if (!tx.ok && !rx.ok) return what + "tx: " + tx.reason + "; rx: " + rx.reason;
  return what + (tx.ok ? "rx: " + rx.reason : "tx: " + tx.reason);
}

bool Probe::any_supported() const {
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers)
      if (supports(v, c)) return true;
  return false;
}

Probe measure_probe() {
  Probe p;
  p.kernel = kernel_release();
  p.ulp = probe_ulp();
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers)
      for (Direction d : {Direction::tx, Direction::rx}) {
        // Each on its own fresh socket: a direction takes keys once, and the other direction
        // would have to agree on version and cipher.
        Verdict verdict = p.ulp.ok ? probe_combo(v, c, d)
                                   : not_probed("TLS ULP unavailable (" + p.ulp.reason + ")");
        p.combos.push_back({v, c, d, std::move(verdict)});
      }
  if (p.ulp.ok) {
    p.rekey = probe_rekey(p);
    p.rx_expect_no_pad = probe_option(
        p, TlsVersion::tls13, Direction::rx, TLS_RX_EXPECT_NO_PAD, "accepted",
        "kernel doesn't know TLS_RX_EXPECT_NO_PAD (needs Linux >= 6.0)");
    p.tx_zerocopy_ro = probe_option(
        p, std::nullopt, Direction::tx, TLS_TX_ZEROCOPY_RO,
        "accepted (takes effect only with TLS device offload)",
        "kernel doesn't know TLS_TX_ZEROCOPY_RO (needs Linux >= 5.19)");
  } else {
    Verdict no_ulp = not_probed("TLS ULP unavailable (" + p.ulp.reason + ")");
    p.rekey = p.rx_expect_no_pad = p.tx_zerocopy_ro = no_ulp;
  }
  p.io_uring = probe_io_uring();

  // Read last: attaching the ULP may have just loaded tls.ko, which creates the file.
  auto stat = read_tls_stat();
  if (stat) {
    p.tls_stat_read = accepted("present");
    p.tls_stat = std::move(*stat);
  } else if (stat.error().sys_errno == ENOENT) {
    p.tls_stat_read = refused(ENOENT, std::string(kTlsStatPath) + " absent: tls.ko not loaded");
  } else {
    p.tls_stat_read = Verdict{false, stat.error().message, stat.error().sys_errno};
  }
  return p;
}

const Probe& kernel_probe() {
  static const Probe probe = measure_probe();
  return probe;
}

}  // namespace wasi_ktls
