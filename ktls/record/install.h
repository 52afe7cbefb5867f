// Moves a finished handshake's keys into the kernel: TCP_ULP "tls", then TLS_RX, then TLS_TX,
// on a connected TCP socket.
//
// Precondition, the caller's to guarantee (the connection layer checks it against its own
// buffers; this layer cannot see them): every handshake byte we produced has been handed to
// the socket, and no byte past the peer's last handshake record has been read into userspace.
// Otherwise the kernel's sequence numbers are off and the first record fails with EBADMSG, or
// our data overtakes Finished.
#pragma once

#include "base/result.h"
#include "handshake/traffic_keys.h"
#include "ktls/record/crypto_info.h"

namespace wasi_ktls {

struct [[nodiscard]] InstallResult {
  enum class Outcome {
    installed,
    // Nothing reached the kernel's record layer (TCP_INFO, TCP_ULP or TLS_RX failed): the
    // socket still carries plain TCP, so the userspace transport can take over. If the ULP
    // was attached it stays attached (irreversible); that only disables SEND_ZC.
    plain_tcp,
    // TLS_RX is installed but TLS_TX failed: the kernel already decrypts what arrives, and
    // userspace can neither take it back nor send in step. Close the connection.
    connection_broken,
  };
  Outcome outcome = Outcome::installed;
  Error error;  // names the step and what its errno means; empty when installed

  bool ok() const { return outcome == Outcome::installed; }
};

InstallResult install_kernel_tls(int fd, const TrafficKeys& keys);

// One direction's key change on a socket that already has kTLS (Linux >= 6.14, TLS 1.3): the
// same setsockopt the first install used; 6.1 answers EBUSY.
Status set_kernel_key(int fd, Direction d, const KernelCryptoInfo& info);

// The kernel's current state of one direction (getsockopt SOL_TLS): its iv and rec_seq have
// advanced with every record. 6.1 returns the key too; the holder wipes it.
Result<KernelCryptoInfo> read_kernel_crypto_info(int fd, Direction d);

}  // namespace wasi_ktls
