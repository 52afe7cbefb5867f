// Just enough HTTP/1.1 for `wasi-ktls serve` and `wasi-ktls fetch`: request and response
// heads, and the body framing a real server uses (Content-Length, chunked, or until close).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace wasi_ktls::http {

// A head larger than this is refused: the peer gets an error, not our memory.
inline constexpr std::size_t kMaxHeadBytes = 16 * 1024;

// Length of the head (through the blank line) if `buf` holds a complete one, 0 if it does
// not yet, an error if it cannot become one within kMaxHeadBytes.
Result<std::size_t> head_length(std::string_view buf);

struct Request {
  std::string method;
  std::string target;
  bool keep_alive = true;  // HTTP/1.1 default unless "Connection: close"
  // Body bytes after the head (Content-Length). A server that answers and keeps the
  // connection must skip them, or they would be read as the next request.
  std::uint64_t content_length = 0;
  // A Transfer-Encoding header was present: the body's end is not known without decoding it.
  bool transfer_encoding = false;
};
// Errors (answered 400, then close) also for framing a server cannot trust: a bad or
// conflicting Content-Length, or Content-Length together with Transfer-Encoding.
Result<Request> parse_request(std::string_view head);

// What `serve` answers: GET or HEAD of / (a short text) and /bytes/N (N pattern bytes).
struct Route {
  int status = 200;
  std::string content_type = "text/plain";
  std::uint64_t body_length = 0;
  std::string text_body;        // for small bodies
  bool pattern_body = false;    // body is pattern_bytes(0, body_length)
  bool head_only = false;       // HEAD: the head as for GET, no body
  // Answer with "Connection: close", then close: the request's body (if any) is not read, so
  // nothing after the head can be trusted to be the next request.
  bool close = false;
};
// GET and HEAD only; any other method gets 405 (with Allow), a request with
// Transfer-Encoding 501: both close.
Route route(const Request& req);

// Byte i of /bytes/N is i % 251, so any client can check what it got.
void fill_pattern(std::uint64_t offset, std::span<std::uint8_t> out);
// The pattern from `offset` on, at most `max` bytes (and at most 64 KiB): one read-only copy
// for the whole process, so a response in flight needs no buffer of its own.
std::span<const std::uint8_t> pattern_bytes(std::uint64_t offset, std::uint64_t max);
bool check_pattern(std::uint64_t offset, std::span<const std::uint8_t> data);

// "Connection: close" unless keep_alive and the route allows it; 405 carries "Allow".
std::string response_head(const Route& r, bool keep_alive);

struct Response {
  int status = 0;
  std::optional<std::uint64_t> content_length;
  bool chunked = false;
  bool close = false;
};
Result<Response> parse_response(std::string_view head);

std::string get_request(std::string_view host, std::string_view target);

// Incremental decoder of a chunked body: feed bytes, collect the payload.
class ChunkedDecoder {
 public:
  // Appends the payload found in `in` to `out`; returns an error on malformed framing.
  Status feed(std::string_view in, std::string& out);
  bool done() const { return state_ == State::done; }

 private:
  enum class State { size, data, data_crlf, trailer, done };
  State state_ = State::size;
  std::string line_;
  std::uint64_t remaining_ = 0;
};

}  // namespace wasi_ktls::http
