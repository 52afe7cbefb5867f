// Our client on each front end behind one interface, for tests that watch what a user of that
// front end sees when the wire misbehaves: the blocking Connection, the AsyncConnection on an
// io_uring Engine, and the Boost.Asio stream. Every call is bounded.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <boost/system/error_code.hpp>

#include "base/result.h"
#include "handshake/policy.h"
#include "ktls/conn/backend.h"
#include "ktls/conn/core.h"

namespace wasi_ktls::test {

enum class FrontEnd { connection, async_connection, asio_stream };
std::string_view to_string(FrontEnd f);
inline constexpr FrontEnd kAllFrontEnds[] = {FrontEnd::connection, FrontEnd::async_connection,
                                             FrontEnd::asio_stream};

// What one call gave: bytes, or the error as the front end reports it. `error` is the
// library's Error (the Asio stream: last_error() as its message, kind unspecified); `ec` is
// the Asio error_code (empty for the others).
struct Outcome {
  bool ok = false;
  std::size_t bytes = 0;
  Error error;
  boost::system::error_code ec;

  static Outcome success(std::size_t n = 0) {
    Outcome o;
    o.ok = true;
    o.bytes = n;
    return o;
  }
  static Outcome failure(Error e) {
    Outcome o;
    o.error = std::move(e);
    return o;
  }
};

class FaultClient {
 public:
  virtual ~FaultClient() = default;
  // TLS to "localhost" at 127.0.0.1:port on `backend`; options.io_timeout bounds each read
  // (the Asio stream has no read timeout of its own: its read() cancels after `asio_cancel`).
  virtual Outcome connect(std::uint16_t port, const Policy& policy, Backend backend,
                          const ConnectionOptions& options) = 0;
  virtual Outcome read(std::span<std::uint8_t> buf) = 0;
  virtual Outcome write(std::span<const std::uint8_t> data) = 0;
  virtual Transport transport() const = 0;
  // Runs the front end's event loop for `d` (an Engine's, an io_context's), so that what a
  // failed read left for the write side (our alert) goes out as it would in a running
  // program; the blocking Connection sends it within the read itself.
  virtual void pump(std::chrono::milliseconds d) = 0;
};

std::unique_ptr<FaultClient> make_fault_client(
    FrontEnd f, std::chrono::milliseconds asio_cancel = std::chrono::seconds(60));

}  // namespace wasi_ktls::test
