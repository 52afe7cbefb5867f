// One TLS connection as a state machine that never performs I/O (the fizz / rustls shape):
// it owns the handshake Session, the hand-over decision, the kernel or userspace record path
// and the control-record handling, and says what it needs next as a Step (step.h): read
// exactly N handshake bytes, send these bytes, recv into the caller's buffer, recvmsg a
// control record, sendmsg a record of a type, set a key, ... It is told each result and
// decides the rest. Every driver (blocking Connection, the Engine's AsyncConnection, the
// Boost.Asio stream, the wasm streams) is a loop around it, so they behave alike.
//
// Two operations may be in progress at once, one per lane: a read on Lane::read; the
// handshake, a write, a send_file, close or flush on Lane::write. A driver starts one, then
// until step(lane).done(): carries out step(lane) and calls complete(lane, result); then
// take_result(lane). Steps of the two lanes may be carried out concurrently (one reader and
// one writer thread), but calls into the core must not overlap: the blocking driver holds a
// mutex around them, the event-loop drivers are single-threaded.
//
// A read can leave work for the write side (a fatal alert, our KeyUpdate after the peer's
// update_requested, OpenSSL's answers): it goes out ahead of the next write; when the write
// lane is idle, owes_writes() says so and the driver starts flush().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "handshake/policy.h"
#include "handshake/session.h"
#include "handshake/traffic_keys.h"
#include "ktls/conn/backend.h"
#include "ktls/conn/step.h"

namespace wasi_ktls {

struct Probe;

struct ConnectionOptions {
  Backend backend = Backend::auto_;
  std::chrono::milliseconds handshake_timeout{10'000};  // the whole handshake
  std::chrono::milliseconds io_timeout{30'000};         // any one wait of a read or write
  // Records per TX key before the connection closes its write side (kernel transport where
  // the kernel cannot rekey); 0: the AEAD limit of the negotiated cipher.
  std::uint64_t tx_record_limit = 0;
  // What the kernel can take; nullptr: this kernel's, measured once (kernel_probe()).
  const Probe* probe = nullptr;
};

class ConnectionCore {
 public:
  enum class Lane : std::uint8_t { read = 0, write = 1 };

  static Result<ConnectionCore> client(const TlsContext& ctx, std::string_view server_name,
                                       const ConnectionOptions& options);
  static Result<ConnectionCore> server(const TlsContext& ctx, const ConnectionOptions& options);
  // A Session made and configured by the caller (Session::from_context, begun in its role).
  static ConnectionCore with_session(Session session, const ConnectionOptions& options);
  // A TCP connection whose peer agreed `keys` by other means (another TLS library's
  // handshake; the record-layer tests): handshake() installs them in the kernel, after which
  // the connection is a kernel-transport one like any other.
  static ConnectionCore with_keys(const TrafficKeys& keys, Role role,
                                  const ConnectionOptions& options);

  ConnectionCore(ConnectionCore&&) noexcept;
  ConnectionCore& operator=(ConnectionCore&&) noexcept;
  ~ConnectionCore();

  // Start an operation. An error (nothing started) when its lane is busy or the connection
  // is not in a state for it; otherwise step() says what to do, or is already done.
  // The handshake and hand-over (write lane); nothing else may start until it is done.
  Status handshake();
  // Up to buf.size() plaintext bytes; 0 once the peer sent close_notify.
  Status read(std::span<std::uint8_t> buf);
  // `data` from the caller's memory: all of it, or (all = false) as much as one send takes.
  Status write(std::span<const std::uint8_t> data, bool all = true);
  // read() and write(data, false) for a caller whose buffer lives only for the call (a wasm
  // guest's memory): a socket step that would block ends the operation instead of waiting.
  // read_now then fails with ErrorKind::would_block, having read nothing; write_now
  // completes with what the socket took, possibly 0 (userspace: plaintext OpenSSL encrypted
  // counts as taken, and the ciphertext left over is owed: owes_writes()).
  Status read_now(std::span<std::uint8_t> buf);
  Status write_now(std::span<const std::uint8_t> data);
  // `len` bytes of `file` from `offset` (kernel: spliced, never copied to userspace).
  Status send_file(int file, std::uint64_t offset, std::uint64_t len);
  // close_notify, then shutdown(SHUT_WR); reads stay possible.
  Status close();
  // What reads left for the write side (see owes_writes()). `wait` false: stop where the
  // socket is full (a step that gives -EAGAIN ends it) and leave the rest to the next
  // write-side operation, for a driver that must not hold a read back for it.
  Status flush(bool wait = true);

  const Step& step(Lane lane) const;
  void complete(Lane lane, long result);
  // Once step(lane).done(): the operation's result; the lane is free again.
  Result<std::size_t> take_result(Lane lane);

  // Work is waiting for the write side and the write lane is idle: start flush().
  bool owes_writes() const;

  bool established() const;
  // After the handshake.
  Transport transport() const;
  // Why the userspace transport was used (auto fallback or request); empty on the kernel.
  const std::string& transport_reason() const;
  const HandshakeInfo& info() const;
  // OpenSSL's connection while it lives: through the handshake, and after it on the
  // userspace transport; nullptr once the kernel has the keys (OpenSSL's state is freed
  // then) or the connection failed.
  SSL* native_handle() const;
  std::uint64_t bytes_read() const;
  std::uint64_t bytes_written() const;

  struct Impl;

 private:
  explicit ConnectionCore(std::unique_ptr<Impl> impl);
  bool busy(Lane lane) const;
  std::unique_ptr<Impl> impl_;
};

}  // namespace wasi_ktls
