// A TLS connection driven by an Engine (io_uring, or poll as the fallback): the handshake's
// exact-length reads and its writes are engine operations, then the data path is the
// kernel's (SEND/RECV straight from and into the caller's buffers) or userspace OpenSSL's over
// the same engine. Many connections share one engine and one thread.
//
// Callbacks run from Engine::run_once(), or inline when the answer is already known (an error,
// buffered data). At most one read and one write (write or send_file) are in flight at a
// time; a second one is refused with an error, never interleaved. The connection stays alive
// while operations are in flight (callbacks hold it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "handshake/policy.h"
#include "handshake/session.h"
#include "ktls/conn/backend.h"
#include "ktls/conn/connection.h"
#include "ktls/io/engine.h"

namespace wasi_ktls {

class AsyncConnection : public std::enable_shared_from_this<AsyncConnection> {
 public:
  using Ptr = std::shared_ptr<AsyncConnection>;
  using Established = std::function<void(Result<Ptr>)>;
  using IoDone = std::function<void(Result<std::size_t>)>;
  using Done = std::function<void(Status)>;

  // Handshake on a connected TCP socket (bounded by options.handshake_timeout), then the
  // hand-over; `done` gets the connection or the reason it failed.
  static void connect(Engine& engine, UniqueFd tcp, const TlsContext& ctx,
                      std::string server_name, const ConnectionOptions& options,
                      Established done);
  static void accept(Engine& engine, UniqueFd tcp, const TlsContext& ctx,
                     const ConnectionOptions& options, Established done);

  // Up to buf.size() bytes of plaintext; 0 after the peer's close_notify. Truncation, alerts
  // and timeouts (options.io_timeout) are errors.
  void read(std::span<std::uint8_t> buf, IoDone done);
  // All of `data`; completes with data.size().
  void write(std::span<const std::uint8_t> data, IoDone done);
  // `len` bytes of `file` from `offset`: the kernel transport splices them to the socket
  // without a userspace copy; the userspace transport reads and encrypts them.
  void send_file(int file, std::uint64_t offset, std::uint64_t len, IoDone done);
  // close_notify, then shutdown(SHUT_WR). Reads stay possible.
  void close(Done done);
  // Cancels what is in flight (those callbacks get errors) and closes the socket once they
  // have completed.
  void abort();

  Transport transport() const { return transport_; }
  const std::string& transport_reason() const { return reason_; }
  const HandshakeInfo& info() const { return info_; }
  std::uint64_t bytes_read() const { return bytes_read_; }
  std::uint64_t bytes_written() const { return bytes_written_; }
  int fd() const { return fd_.get(); }

  class DataPath;  // the transport after the hand-over (kernel or userspace)
  AsyncConnection(Engine& engine, UniqueFd fd, ConnectionOptions options);
  ~AsyncConnection();

 private:
  static void start(Ptr self, Result<Session> session, Established done);
  void handshake_step();
  void handshake_flush(std::function<void()> then);
  void handshake_failed(Error e);
  Clock::time_point io_deadline() const;

  Engine& engine_;
  UniqueFd fd_;
  ConnectionOptions options_;
  std::optional<Session> session_;  // until the hand-over (kept by the userspace path)
  Established established_;
  Clock::time_point handshake_deadline_;
  std::vector<std::uint8_t> hs_in_, hs_out_;
  bool hs_done_ = false;

  std::unique_ptr<DataPath> data_;
  Transport transport_ = Transport::userspace;
  std::string reason_;
  HandshakeInfo info_;
  std::uint64_t bytes_read_ = 0;
  std::uint64_t bytes_written_ = 0;
  bool reading_ = false;
  bool writing_ = false;
  bool aborted_ = false;

  friend class KernelDataPath;
  friend class UserspaceDataPath;
};

}  // namespace wasi_ktls
