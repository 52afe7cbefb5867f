#include "tools/http_message.h"

#include <strings.h>

#include <algorithm>
#include <charconv>
#include <vector>

#include <fmt/format.h>

namespace wasi_ktls::http {
namespace {

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && ::strncasecmp(a.data(), b.data(), a.size()) == 0;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

std::optional<std::uint64_t> parse_u64(std::string_view s, int base = 10) {
  std::uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v, base);
  if (ec != std::errc() || p != s.data() + s.size() || s.empty()) return std::nullopt;
  return v;
}

// Splits a head into its first line and header fields; calls on_field(name, value).
template <class F>
Result<std::string_view> split_head(std::string_view head, F on_field) {
  auto eol = head.find("\r\n");
  if (eol == std::string_view::npos) return make_error("HTTP head has no line end");
  std::string_view first = head.substr(0, eol);
  head.remove_prefix(eol + 2);
  while (!head.empty()) {
    eol = head.find("\r\n");
    if (eol == std::string_view::npos) return make_error("HTTP header line has no line end");
    std::string_view line = head.substr(0, eol);
    head.remove_prefix(eol + 2);
    if (line.empty()) break;
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0)
      return make_error("malformed HTTP header line '{}'", line.substr(0, 80));
    on_field(line.substr(0, colon), trim(line.substr(colon + 1)));
  }
  return first;
}

const char* reason_phrase(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    default: return "Unknown";
  }
}

}  // namespace

Result<std::size_t> head_length(std::string_view buf) {
  auto end = buf.find("\r\n\r\n");
  if (end != std::string_view::npos && end + 4 <= kMaxHeadBytes) return end + 4;
  if (buf.size() >= kMaxHeadBytes)
    return make_error("HTTP head longer than {} bytes", kMaxHeadBytes);
  return std::size_t{0};
}

Result<Request> parse_request(std::string_view head) {
  Request req;
  bool close = false;
  std::optional<std::uint64_t> length;
  std::optional<Error> bad;
  auto first = split_head(head, [&](std::string_view name, std::string_view value) {
    if (iequals(name, "Connection") && iequals(value, "close")) {
      close = true;
    } else if (iequals(name, "Content-Length")) {
      // Repeated with the same value is allowed (RFC 9112 6.3); any other disagreement about
      // where the body ends is how requests get smuggled.
      auto n = parse_u64(value);
      if (!n)
        bad = make_error("bad Content-Length '{}'", value.substr(0, 32));
      else if (length && *length != *n)
        bad = make_error("conflicting Content-Length headers");
      length = n;
    } else if (iequals(name, "Transfer-Encoding")) {
      req.transfer_encoding = true;
    }
  });
  if (!first) return first.error();
  if (bad) return *bad;
  if (length && req.transfer_encoding)
    return make_error("both Content-Length and Transfer-Encoding");
  req.content_length = length.value_or(0);
  std::string_view line = *first;
  auto sp1 = line.find(' ');
  auto sp2 = line.rfind(' ');
  if (sp1 == std::string_view::npos || sp2 == sp1)
    return make_error("malformed HTTP request line '{}'", line.substr(0, 80));
  req.method = std::string(line.substr(0, sp1));
  req.target = std::string(line.substr(sp1 + 1, sp2 - sp1 - 1));
  std::string_view version = line.substr(sp2 + 1);
  if (version != "HTTP/1.1" && version != "HTTP/1.0")
    return make_error("unsupported HTTP version '{}'", version.substr(0, 16));
  req.keep_alive = version == "HTTP/1.1" && !close;
  return req;
}

Route route(const Request& req) {
  Route r;
  r.head_only = req.method == "HEAD";
  if (req.method != "GET" && req.method != "HEAD") {
    r.status = 405;
    r.text_body = "only GET and HEAD are served\n";
    r.close = true;
    r.head_only = false;
  } else if (req.transfer_encoding) {
    r.status = 501;
    r.text_body = "request bodies with Transfer-Encoding are not supported\n";
    r.close = true;
  } else if (req.target == "/") {
    r.text_body = "wasi-ktls serve: GET /bytes/N returns N bytes, byte i = i % 251\n";
  } else if (req.target.starts_with("/bytes/")) {
    auto n = parse_u64(std::string_view(req.target).substr(7));
    if (n) {
      r.content_type = "application/octet-stream";
      r.pattern_body = true;
      r.body_length = *n;
      return r;
    }
    r.status = 400;
    r.text_body = "N in /bytes/N must be a decimal byte count\n";
  } else {
    r.status = 404;
    r.text_body = "not found\n";
  }
  r.body_length = r.text_body.size();
  return r;
}

void fill_pattern(std::uint64_t offset, std::span<std::uint8_t> out) {
  auto v = static_cast<std::uint8_t>(offset % 251);
  for (auto& b : out) {
    b = v;
    v = v == 250 ? 0 : v + 1;
  }
}

std::span<const std::uint8_t> pattern_bytes(std::uint64_t offset, std::uint64_t max) {
  constexpr std::size_t kWindow = 64 * 1024;
  // kWindow bytes from any of the 251 starting values.
  static const std::vector<std::uint8_t> pattern = [] {
    std::vector<std::uint8_t> p(kWindow + 250);
    fill_pattern(0, p);
    return p;
  }();
  return std::span(pattern).subspan(static_cast<std::size_t>(offset % 251),
                                    static_cast<std::size_t>(std::min<std::uint64_t>(max, kWindow)));
}

bool check_pattern(std::uint64_t offset, std::span<const std::uint8_t> data) {
  auto v = static_cast<std::uint8_t>(offset % 251);
  for (auto b : data) {
    if (b != v) return false;
    v = v == 250 ? 0 : v + 1;
  }
  return true;
}

std::string response_head(const Route& r, bool keep_alive) {
  return fmt::format("HTTP/1.1 {} {}\r\nServer: wasi-ktls\r\nContent-Type: {}\r\n"
                     "Content-Length: {}\r\n{}Connection: {}\r\n\r\n",
                     r.status, reason_phrase(r.status), r.content_type, r.body_length,
                     r.status == 405 ? "Allow: GET, HEAD\r\n" : "",
                     keep_alive && !r.close ? "keep-alive" : "close");
}

Result<Response> parse_response(std::string_view head) {
  Response resp;
  std::optional<Error> bad;
  auto first = split_head(head, [&](std::string_view name, std::string_view value) {
    if (iequals(name, "Content-Length")) {
      auto n = parse_u64(value);
      if (!n) bad = make_error("bad Content-Length '{}'", value.substr(0, 32));
      resp.content_length = n;
    } else if (iequals(name, "Transfer-Encoding") && iequals(value, "chunked")) {
      resp.chunked = true;
    } else if (iequals(name, "Connection") && iequals(value, "close")) {
      resp.close = true;
    }
  });
  if (!first) return first.error();
  if (bad) return *bad;
  std::string_view line = *first;
  if (!line.starts_with("HTTP/1.") || line.size() < 12 || line[8] != ' ')
    return make_error("malformed HTTP status line '{}'", line.substr(0, 80));
  auto code = parse_u64(line.substr(9, 3));
  if (!code) return make_error("malformed HTTP status code in '{}'", line.substr(0, 80));
  resp.status = static_cast<int>(*code);
  if (line.starts_with("HTTP/1.0")) resp.close = true;
  return resp;
}

std::string get_request(std::string_view host, std::string_view target) {
  return fmt::format("GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: wasi-ktls\r\nAccept: */*\r\n"
                     "Connection: close\r\n\r\n",
                     target, host);
}

Status ChunkedDecoder::feed(std::string_view in, std::string& out) {
  while (!in.empty() && state_ != State::done) {
    if (state_ == State::data) {
      auto n = static_cast<std::size_t>(std::min<std::uint64_t>(remaining_, in.size()));
      out.append(in.substr(0, n));
      in.remove_prefix(n);
      remaining_ -= n;
      if (remaining_ == 0) state_ = State::data_crlf;
      continue;
    }
    // size, data_crlf and trailer states consume whole lines.
    auto eol = in.find('\n');
    line_.append(in.substr(0, eol == std::string_view::npos ? in.size() : eol + 1));
    if (line_.size() > 1024) return make_error("chunked encoding line longer than 1024 bytes");
    if (eol == std::string_view::npos) return {};
    in.remove_prefix(eol + 1);
    std::string_view line = trim(std::string_view(line_).substr(0, line_.size() - 1));
    if (state_ == State::size) {
      auto semi = line.find(';');
      auto size = parse_u64(trim(line.substr(0, semi)), 16);
      if (!size) return make_error("bad chunk size line '{}'", line.substr(0, 32));
      remaining_ = *size;
      state_ = *size == 0 ? State::trailer : State::data;
    } else if (state_ == State::data_crlf) {
      if (!line.empty()) return make_error("chunk data not followed by CRLF");
      state_ = State::size;
    } else if (line.empty()) {
      state_ = State::done;
    }
    line_.clear();
  }
  return {};
}

}  // namespace wasi_ktls::http
