#include "ktls/probe/probe.h"

#include <fcntl.h>
#include <linux/capability.h>
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
#include "ktls/record/crypto_info.h"
#include "ktls/record/install.h"
#include "ktls/record/tls_uapi.h"

namespace wasi_ktls {
namespace {

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
  if (err == ENOENT) {
    // With CAP_NET_ADMIN the kernel tried to load tcp-ulp-tls itself, so the module is
    // missing; without it, loading it (modprobe tls) may be all that is needed.
    return refused(err, std::string("kernel has no TLS ULP: CONFIG_TLS off or module not loaded") +
                            (has_net_admin() ? "; autoloading tls.ko failed"
                                             : "; this process lacks CAP_NET_ADMIN to "
                                               "autoload tls.ko"));
  }
  return refused(err, install_errno_meaning(InstallStep::ulp, err));
}

// Attaches the TLS ULP to `fd`; ok or why not.
Verdict attach_ulp(int fd) {
  const long r = attach_tls_ulp(fd);
  return r == 0 ? accepted() : explain_ulp(static_cast<int>(-r));
}

Verdict install(int fd, TlsVersion v, Cipher c, Direction d) {
  const long r = set_kernel_key(fd, d, KernelCryptoInfo::zeroed(v, c));
  if (r == 0) return accepted();
  const int err = static_cast<int>(-r);
  return refused(err, install_errno_meaning(d == Direction::tx ? InstallStep::tls_tx
                                                               : InstallStep::tls_rx,
                                            err));
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
