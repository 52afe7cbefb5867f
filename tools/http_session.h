// One `serve` connection on an engine: HTTP/1.1 requests answered in turn (keep-alive), or
// --echo. Files from --root go out with send_file (spliced on the kernel path). A request's
// Content-Length body is skipped before the answer; a request serve refuses (405, 501, 400,
// 431) is answered with "Connection: close" and ends the connection, its body never parsed.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "ktls/conn/async_connection.h"
#include "tools/http_message.h"
#include "tools/static_files.h"

namespace wasi_ktls {

class HttpSession : public std::enable_shared_from_this<HttpSession> {
 public:
  struct Config {
    const StaticFiles* files = nullptr;  // --root, or none
    bool echo = false;
    // The worker's read buffer, shared by its sessions: each reads into it only without
    // waiting (AsyncConnection::read_now) and takes what it keeps before returning, so an
    // idle session holds no read buffer of its own.
    std::span<std::uint8_t> read_buffer;
    // How the connection ended (ok, or why not); called once, after close.
    std::function<void(const HttpSession&, const Status&)> on_end;
    // From the handshake's end or the last answer to a request's first byte (--idle-timeout),
    // then from that byte to the whole request, head and any body skipped (--header-timeout).
    // Fixed deadlines, not per wait: a peer that trickles (bytes of a TLS record that never
    // completes, a head one byte a second) is dropped as surely as a silent one. The wait of
    // each write is the connection's io_timeout (--send-timeout).
    std::chrono::milliseconds idle_timeout{60'000};
    std::chrono::milliseconds header_timeout{60'000};
  };

  static void start(AsyncConnection::Ptr conn, std::string peer, const Config& config);

  const AsyncConnection& connection() const { return *conn_; }
  const std::string& peer() const { return peer_; }

  HttpSession(AsyncConnection::Ptr conn, std::string peer, const Config& config);

 private:
  // What the peer sent, in config_.read_buffer until this session returns; an error of kind
  // would_block when nothing has come yet: then wait_then().
  Result<std::span<const std::uint8_t>> read_now();
  // Waits for the peer without a buffer until deadline_, then `resume`; the wait's failure
  // ends the session.
  void wait_then(std::function<void()> resume);
  // A new request may come: the idle bound starts.
  void await_request();
  // Bytes of the next request arrived: the bound for the whole request starts.
  void request_started();
  void next_request();
  void skip_body();
  void respond(Result<http::Request> req);
  void send_pattern(std::uint64_t offset, std::uint64_t length, bool keep_alive);
  void after_response(bool keep_alive);
  void echo();
  // close_notify and the end; with `drain`, what the peer still sends is read and dropped
  // first (bounded), so that our last answer is not lost to a reset.
  void finish(Status st, bool drain = false);
  // After a write failed (the peer stopped reading, or is gone): no close_notify, which
  // would wait behind the same full socket; the end, and the socket's close.
  void finish_after_write_error(const Error& e);
  void drain(std::uint64_t dropped, Status result);
  void end(const Status& result);  // config_.on_end

  AsyncConnection::Ptr conn_;
  std::string peer_;
  const Config& config_;
  std::string in_;
  std::string head_;
  std::vector<std::uint8_t> echo_;  // --echo: the bytes being sent back
  http::Request pending_;       // answered once its body is skipped
  std::uint64_t body_left_ = 0;
  Clock::time_point deadline_;   // of the wait for the peer: idle, or the request's
  bool in_request_ = false;      // bytes of a request came: deadline_ is the request's
  StaticFiles::File file_;
  bool finished_ = false;
};

}  // namespace wasi_ktls
