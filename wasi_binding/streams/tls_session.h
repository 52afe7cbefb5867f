// One wasi:tls client connection: a driver of the project's connection core (ktls/conn/
// core.h) for a single-threaded guest that must never block inside a call. Every operation
// carries out the core's steps without waiting (perform_now, or the guest-visible streams);
// where a step would block it stops, and the guest's pollables say what to wait for.
//
// Transport: the TCP socket itself when the guest handed over its socket's streams with
// nothing buffered in the host (then `auto` may put the keys in the kernel, and reads and writes go between the
// guest's memory and the kTLS socket); otherwise the two streams, with TLS in userspace.
//
// Write side: guest bytes go to the socket from guest memory (write_now); what the socket
// does not take at once is copied to `pending_` and sent as the socket drains, before a
// close_notify. Read side: a 1-byte probe (readable()) tells whether plaintext is here
// before the guest's buffer is allocated, so the guest never gets an allocation it must
// free with nothing in it; the probed byte is handed out first.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "base/byte_queue.h"
#include "handshake/policy.h"
#include "ktls/conn/core.h"
#include "wasi_binding/streams/stream.h"
#include "wasi_binding/streams/tcp_streams.h"

namespace wasi_ktls::wasi {

class TlsSession {
 public:
  // On the socket `fd` (the streams' own).
  static Result<std::shared_ptr<TlsSession>> on_socket(const TlsContext& ctx,
                                                      std::string server_name, SharedFd fd,
                                                      const ConnectionOptions& options);
  // Over streams of any other origin: userspace TLS, `why` says why not the socket.
  static Result<std::shared_ptr<TlsSession>> on_streams(const TlsContext& ctx,
                                                       std::string server_name,
                                                       std::unique_ptr<InputStream> in,
                                                       std::unique_ptr<OutputStream> out,
                                                       const ConnectionOptions& options,
                                                       std::string why);
  ~TlsSession();

  // The handshake, moved on as far as it goes without waiting. True once it is over
  // (handshake_error() says how).
  bool handshake_done();
  Wait handshake_wait() const;
  const std::optional<Error>& handshake_error() const { return hs_error_; }
  // "server=... version=... suite=... alpn=... backend=... (why)" for -v.
  std::string describe() const;
  const std::string& server_name() const { return server_name_; }

  // Plaintext input.
  StreamResult read(std::span<std::uint8_t> into);
  bool readable();
  Wait read_wait() const;

  // Plaintext output.
  StreamResult check_write();
  StreamResult write(std::span<const std::uint8_t> data);
  bool write_idle();  // nothing buffered or owed: a flush is complete
  Wait write_wait() const;
  // close_notify after what is buffered; input stays readable.
  void close_output();

  // Moves buffered and owed writes on; true while work remains (then write_wait()).
  bool progress_writes();

 private:
  struct Transport;
  TlsSession(ConnectionCore core, std::unique_ptr<Transport> t, std::string server_name,
             const ConnectionOptions& options, std::string forced_reason);

  using Lane = ConnectionCore::Lane;
  long perform(const Step& s);
  // Carries out the lane's steps until its operation is over (true) or a step would block.
  bool drive(Lane lane);
  Wait step_wait(Lane lane) const;
  StreamResult write_failure() const;
  void fail_writes(const Error& e);

  ConnectionCore core_;
  std::unique_ptr<Transport> transport_;
  std::string server_name_;
  ConnectionOptions options_;
  std::string forced_reason_;  // why userspace, when we chose it (streams of other origin)

  Clock::time_point hs_deadline_;
  bool hs_over_ = false;
  std::optional<Error> hs_error_;

  // Read side.
  std::uint8_t probe_byte_ = 0;
  bool probed_ = false;
  bool eof_ = false;
  std::optional<std::string> read_error_;

  // Write side.
  ByteQueue pending_;
  bool lane_busy_ = false;  // a close (or flush) waits on the socket
  bool close_requested_ = false;
  bool close_started_ = false;
  bool close_done_ = false;
  Clock::time_point write_deadline_ = kNoDeadline;
  std::optional<std::string> write_error_;
};

}  // namespace wasi_ktls::wasi
