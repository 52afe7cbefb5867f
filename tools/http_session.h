// One `serve` connection on an engine: HTTP/1.1 requests answered in turn (keep-alive), or
// --echo. Files from --root go out with send_file (spliced on the kernel path).
#pragma once

#include <functional>
#include <memory>
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
    // How the connection ended (ok, or why not); called once, after close.
    std::function<void(const HttpSession&, const Status&)> on_end;
  };

  static void start(AsyncConnection::Ptr conn, std::string peer, const Config& config);

  const AsyncConnection& connection() const { return *conn_; }
  const std::string& peer() const { return peer_; }

  HttpSession(AsyncConnection::Ptr conn, std::string peer, const Config& config);

 private:
  void next_request();
  void respond(Result<http::Request> req);
  void send_pattern(std::uint64_t offset, std::uint64_t length, bool keep_alive);
  void after_response(bool keep_alive);
  void echo();
  void finish(Status st);

  AsyncConnection::Ptr conn_;
  std::string peer_;
  const Config& config_;
  std::string in_;
  std::vector<std::uint8_t> buf_;
  std::string head_;
  StaticFiles::File file_;
  bool finished_ = false;
};

}  // namespace wasi_ktls
