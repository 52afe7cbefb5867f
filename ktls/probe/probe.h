// What this kernel's TLS offload can take, measured once per process on loopback TCP pairs
// with dummy zero keys (no TLS peer needed). Every later backend decision reads it, and every
// "no" carries the errno and what it means, so the user sees why kTLS wasn't used.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "handshake/tls_params.h"
#include "ktls/probe/tls_stat.h"
#include "ktls/io/uring_probe.h"

namespace wasi_ktls {


// One yes/no answer with its reason: "accepted" when ok, else "<ERRNO NAME>: <meaning>"
// (or "not probed: <why>" when a prerequisite already failed; sys_errno is then 0).
struct Verdict {
  bool ok = false;
  std::string reason;
  int sys_errno = 0;
};

struct ComboVerdict {
  TlsVersion version;
  Cipher cipher;
  Direction direction;
  Verdict verdict;
};

struct Probe {
  std::string kernel;  // uname -r
  Verdict ulp;         // setsockopt(SOL_TCP, TCP_ULP, "tls")
  // All 2 versions x 3 ciphers x 2 directions, in kAllVersions x kAllCiphers x {tx, rx} order.
  std::vector<ComboVerdict> combos;
  Verdict rekey;             // TLS 1.3: a second TLS_TX on the same socket (Linux >= 6.14)
  Verdict rx_expect_no_pad;  // TLS_RX_EXPECT_NO_PAD after a TLS 1.3 TLS_RX
  Verdict tx_zerocopy_ro;    // TLS_TX_ZEROCOPY_RO after a TLS_TX
  UringProbe io_uring;
  Verdict tls_stat_read;            // whether /proc/net/tls_stat could be read (after probing)
  std::optional<TlsStat> tls_stat;  // its counters when it could

  const Verdict& combo(TlsVersion v, Cipher c, Direction d) const;
  // The kernel accepted both TLS_TX and TLS_RX for this version and cipher.
  bool supports(TlsVersion v, Cipher c) const;
  // Why not (naming the refused direction(s)); nullopt when supports(v, c).
  std::optional<std::string> refusal(TlsVersion v, Cipher c) const;
  // At least one version+cipher works both ways.
  bool any_supported() const;
};

// Measures now (about 15 loopback pairs and one io_uring; milliseconds). Every wait is bounded.
Probe measure_probe();

// measure_probe() once per process, on first use; thread-safe.
const Probe& kernel_probe();

}  // namespace wasi_ktls
