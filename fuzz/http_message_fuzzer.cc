// Feeds the HTTP/1.1 code of `serve` and `fetch` (tools/http_message.h) what a hostile client
// or server can send: the bytes after a 2-byte split point are a request stream for serve's
// head_length / parse_request / route / response_head, a response head for fetch's
// parse_response, and a chunked body for ChunkedDecoder. Oracles: a complete head is the
// bytes through the first blank line, within kMaxHeadBytes, and no shorter prefix of it is
// complete (serve reads it in pieces); the head serve answers with parses back, with fetch's
// parser, to the status and Content-Length it was made from; the chunked decoder gives the
// same payload and verdict whether the body arrives in one piece or in two at the split point;
// the pattern window serve sends /bytes/N from holds the bytes check_pattern expects.
// fuzz-sources: tools/http_message.cc base/result.cc
// fuzz-libs: -lfmt
// fuzz-flags: -max_len=20000
#include <algorithm>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_input.h"
#include "tools/http_message.h"

using namespace wasi_ktls;

namespace {

void check_request(std::string_view stream, std::size_t split) {
  const Result<std::size_t> len = http::head_length(stream);
  if (!len) {
    FUZZ_CHECK(stream.size() >= http::kMaxHeadBytes, "head refused before it reached the limit");
    return;
  }
  if (*len == 0) {
    FUZZ_CHECK(stream.find("\r\n\r\n") == std::string_view::npos ||
                   stream.find("\r\n\r\n") + 4 > http::kMaxHeadBytes,
               "a complete head not found");
    return;
  }
  FUZZ_CHECK(*len <= stream.size() && *len <= http::kMaxHeadBytes, "head longer than its input");
  const std::string_view head = stream.substr(0, *len);
  FUZZ_CHECK(head.ends_with("\r\n\r\n") && head.find("\r\n\r\n") == *len - 4,
             "head does not end at the first blank line");
  if (split < *len) {
    const auto partial = http::head_length(stream.substr(0, split));
    FUZZ_CHECK(partial && *partial == 0, "a prefix of a complete head is not 'need more'");
  }

  const Result<http::Request> req = http::parse_request(head);
  if (!req) return;  // serve answers 400
  const http::Route route = http::route(*req);
  const std::string answer = http::response_head(route, req->keep_alive);
  const auto answer_len = http::head_length(answer);
  FUZZ_CHECK(answer_len && *answer_len == answer.size(), "serve's answer is not one head");
  const Result<http::Response> resp = http::parse_response(answer);
  FUZZ_CHECK(resp.ok(), "fetch cannot parse serve's answer");
  FUZZ_CHECK(resp->status == route.status, "status changed on the way");
  FUZZ_CHECK(resp->content_length == route.body_length, "Content-Length changed on the way");
  FUZZ_CHECK(resp->close == (route.close || !req->keep_alive), "Connection changed on the way");
}

struct Decoded {
  bool ok = true;
  bool done = false;
  std::string payload;
};

Decoded decode(std::string_view body, std::size_t split) {
  Decoded d;
  http::ChunkedDecoder dec;
  for (std::string_view piece : {body.substr(0, split), body.substr(split)}) {
    if (!dec.feed(piece, d.payload).ok()) {
      d.ok = false;
      return d;
    }
  }
  d.done = dec.done();
  return d;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::size_t split_at = in.u16();
  const std::string_view text = in.text(in.remaining());
  const std::size_t split = std::min(split_at, text.size());

  check_request(text, split);
  // Not only heads: the parsers also take arbitrary text (fetch's reader hands over whatever
  // the server sent before a blank line).
  (void)http::parse_request(text);
  if (const auto resp = http::parse_response(text); resp.ok())
    FUZZ_CHECK(resp->status >= 0 && resp->status <= 999, "a status code of more than 3 digits");

  // The /bytes/N body serve sends: the shared pattern window, from offsets and lengths the
  // split point and the input's size make up (past the 64 KiB window too).
  const std::uint64_t offset = std::uint64_t{split_at} * 65537;
  const std::uint64_t max = std::uint64_t{text.size()} << 5;
  const auto pattern = http::pattern_bytes(offset, max);
  // Its ends only: checking all of up to 64 KiB would cost ten times the rest of the target.
  const std::size_t n = std::min<std::size_t>(pattern.size(), 256);
  FUZZ_CHECK(pattern.size() == std::min<std::uint64_t>(max, 64 * 1024) &&
                 http::check_pattern(offset, pattern.first(n)) &&
                 http::check_pattern(offset + pattern.size() - n, pattern.last(n)),
             "pattern_bytes gives other bytes than /bytes/N has");

  const Decoded whole = decode(text, text.size());
  const Decoded pieces = decode(text, split);
  FUZZ_CHECK(whole.ok == pieces.ok, "chunked verdict depends on how the body was split");
  if (whole.ok) {
    FUZZ_CHECK(whole.done == pieces.done, "chunked end depends on how the body was split");
    FUZZ_CHECK(whole.payload == pieces.payload, "chunked payload depends on how the body was split");
  }
  return 0;
}
