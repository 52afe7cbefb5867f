// A TLS connection driven by an Engine (io_uring, or poll as the fallback): the connection
// core's steps become engine operations — the handshake's exact-length reads, SEND/RECV
// straight from and into the caller's buffers on the kernel path, RECVMSG/SENDMSG for control
// records, SPLICE for files — each bounded by a deadline. Many connections share one engine
// and one thread; nothing here ever blocks that thread.
//
// Callbacks run from Engine::run_once(), or inline when the answer is already known (an error,
// buffered data). At most one read and one write-side operation (write, send_file, close) are
// in flight at a time; a second one is refused with an error, never interleaved. What a read
// leaves for the write side (a fatal alert, a KeyUpdate) goes out on its own when no write is
// in flight. The connection stays alive while operations are in flight (callbacks hold it).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"
#include "handshake/policy.h"
#include "handshake/session.h"
#include "ktls/conn/backend.h"
#include "ktls/conn/core.h"
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
  // and timeouts (options.io_timeout for each wait) are errors.
  void read(std::span<std::uint8_t> buf, IoDone done);
  // For a server holding many idle connections: read_now() and wait_readable() read without
  // a buffer per connection. read_now() takes what is there now, up to buf.size() bytes (0
  // after close_notify), or fails with ErrorKind::would_block having read nothing; `buf` is
  // used only during the call, so one buffer per thread serves all its connections.
  // wait_readable() then waits, holding no buffer, until the peer sent something (a whole
  // record on the kernel path) or options.io_timeout passed. Not while a read is in flight.
  Result<std::size_t> read_now(std::span<std::uint8_t> buf);
  void wait_readable(Done done);
  // The same, until `deadline`: a server's own bounds (idle, whole request head) are not
  // per wait.
  void wait_readable(Clock::time_point deadline, Done done);
  // All of `data`; completes with data.size().
  void write(std::span<const std::uint8_t> data, IoDone done);
  // `len` bytes of `file` from `offset`: the kernel transport splices them to the socket
  // without a userspace copy; the userspace transport reads and encrypts them.
  void send_file(int file, std::uint64_t offset, std::uint64_t len, IoDone done);
  // close_notify, then shutdown(SHUT_WR). Reads stay possible.
  void close(Done done);
  // Cancels what is in flight (those callbacks get errors) and fails what starts later.
  void abort();

  Transport transport() const { return core_.transport(); }
  const std::string& transport_reason() const { return core_.transport_reason(); }
  const HandshakeInfo& info() const { return core_.info(); }
  std::uint64_t bytes_read() const { return core_.bytes_read(); }
  std::uint64_t bytes_written() const { return core_.bytes_written(); }
  int fd() const { return fd_.get(); }

  AsyncConnection(Engine& engine, UniqueFd fd, ConnectionCore core,
                  const ConnectionOptions& options);
  ~AsyncConnection();

 private:
  using Lane = ConnectionCore::Lane;
  static void start(Engine& engine, UniqueFd fd, Result<ConnectionCore> core,
                    const ConnectionOptions& options, Established done);
  void begin(Lane lane, const std::function<Status()>& start, IoDone done);
  void drive(Lane lane);
  void flush_owed();

  Engine& engine_;
  UniqueFd fd_;
  ConnectionOptions options_;
  ConnectionCore core_;
  IoDone done_[2];
  Clock::time_point handshake_deadline_ = kNoDeadline;
  bool handshaking_ = false;
  bool flushing_ = false;  // the write lane runs our own flush, not the caller's operation
  std::function<void()> after_flush_;  // the caller's write-side operation, waiting for it
  bool aborted_ = false;
  std::uint8_t peeked_ = 0;  // wait_readable's one-byte MSG_PEEK lands here, and stays queued
};

}  // namespace wasi_ktls
