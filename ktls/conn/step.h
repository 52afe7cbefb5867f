// One thing a connection core (core.h) needs done on its socket. The core never performs I/O:
// it hands its driver a Step and is told the result, a byte count or a value >= 0, or -errno.
// Drivers differ only in how they wait: blocking poll(2), an Engine, Boost.Asio, a wasm
// guest's pollables. Steps that never wait are carried out by perform_now() for every driver
// alike (perform.h).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "handshake/tls_params.h"

namespace wasi_ktls {

class KernelCryptoInfo;

struct Step {
  enum class Kind : std::uint8_t {
    // May have to wait for the socket: a driver that gets -EAGAIN waits for readiness
    // (POLLIN for recv/recvmsg, POLLOUT otherwise) and carries out the same step again.
    send,     // send(fd, out, MSG_NOSIGNAL): bytes sent
    recv,     // recv(fd, in): bytes, 0 at the peer's FIN
    recvmsg,  // recvmsg(fd, msg): one control record and its record-type cmsg
    sendmsg,  // sendmsg(fd, msg, MSG_NOSIGNAL): one record whose type is in msg's cmsg
    splice,   // `len` bytes of `file` from `offset` to the socket, no userspace copy: bytes
    // Never wait: perform_now().
    pread,           // pread(file, in, offset): bytes, 0 at end of file
    tcp_state,       // getsockopt(TCP_INFO): tcpi_state
    attach_ulp,      // setsockopt(TCP_ULP, "tls"): 0
    set_key,         // setsockopt(SOL_TLS, TLS_TX/TLS_RX, *key): 0
    tx_seq,          // getsockopt(SOL_TLS, TLS_TX): the next TX record number (rec_seq)
    shutdown_write,  // shutdown(fd, SHUT_WR): 0
    take_error,      // getsockopt(SO_ERROR): the socket's pending error (now cleared), or 0
    done,            // the operation is over: take its result from the core
  };

  Kind kind = Kind::done;
  std::span<const std::uint8_t> out;  // send
  std::span<std::uint8_t> in;         // recv, pread
  msghdr* msg = nullptr;              // recvmsg, sendmsg
  int file = -1;                      // splice, pread
  std::uint64_t offset = 0;           // splice, pread
  std::size_t len = 0;                // splice
  Direction key_direction = Direction::tx;  // set_key
  const KernelCryptoInfo* key = nullptr;    // set_key

  static Step of(Kind k) {  // the steps without arguments
    Step s;
    s.kind = k;
    return s;
  }
  static Step send(std::span<const std::uint8_t> bytes) {
    Step s = of(Kind::send);
    s.out = bytes;
    return s;
  }
  static Step recv(std::span<std::uint8_t> into) {
    Step s = of(Kind::recv);
    s.in = into;
    return s;
  }
  static Step with_msg(Kind k, msghdr* m) {  // recvmsg, sendmsg
    Step s = of(k);
    s.msg = m;
    return s;
  }
  static Step splice(int file, std::uint64_t offset, std::size_t len) {
    Step s = of(Kind::splice);
    s.file = file;
    s.offset = offset;
    s.len = len;
    return s;
  }
  static Step pread(int file, std::uint64_t offset, std::span<std::uint8_t> into) {
    Step s = of(Kind::pread);
    s.file = file;
    s.offset = offset;
    s.in = into;
    return s;
  }
  static Step set_key(Direction d, const KernelCryptoInfo& k) {
    Step s = of(Kind::set_key);
    s.key_direction = d;
    s.key = &k;
    return s;
  }

  bool done() const { return kind == Kind::done; }
  // A socket operation that may wait (send .. splice).
  bool may_wait() const { return kind <= Kind::splice; }
  // What readiness it waits for: POLLIN or POLLOUT.
  short poll_events() const;
};

}  // namespace wasi_ktls
