// Moving keys into the kernel: the socket calls of the hand-over (TCP_INFO, TCP_ULP "tls",
// TLS_RX, then TLS_TX), one thin wrapper each, and what each errno means at each step.
// The connection core decides the order and what a failure leaves behind; these only make
// the calls and name the result.
//
// Order (the core's job, stated here because it is why the steps exist): every handshake byte
// we produced is on the wire and no byte past the peer's last handshake record was read into
// userspace; then RX before TX, because RX starts decrypting bytes already queued, and a
// failure before RX leaves plain TCP that userspace TLS can still carry. A failure after RX
// leaves a connection that can only be closed.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"
#include "handshake/tls_params.h"
#include "ktls/record/crypto_info.h"

namespace wasi_ktls {

enum class InstallStep { tcp_info, ulp, tls_rx, tls_tx };

// "setsockopt(SOL_TLS, TLS_RX)" and so on.
std::string_view install_step_name(InstallStep s);
// What `err` means at step `s`, from tcp_ulp.c / tls_main.c (6.1).
std::string_view install_errno_meaning(InstallStep s, int err);
// "kTLS install: <step> failed: <meaning> (<ERRNO>: <strerror>)", sys_errno = err.
Error install_error(InstallStep s, int err);

// The TCP state (TCP_ESTABLISHED, ...) of `fd`, or -errno.
long tcp_state(int fd);
// setsockopt(SOL_TCP, TCP_ULP, "tls"): 0 or -errno.
long attach_tls_ulp(int fd);
// One direction's key, first install or (Linux >= 6.14, TLS 1.3) a rekey; 6.1 answers a
// second key with EBUSY. 0 or -errno.
long set_kernel_key(int fd, Direction d, const KernelCryptoInfo& info);

// The kernel's current state of one direction (getsockopt SOL_TLS): its iv and rec_seq have
// advanced with every record. 6.1 returns the key too; the holder wipes it.
Result<KernelCryptoInfo> read_kernel_crypto_info(int fd, Direction d);

}  // namespace wasi_ktls
