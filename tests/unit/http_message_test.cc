#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <vector>

#include "tools/http_message.h"

using namespace wasi_ktls;
using namespace wasi_ktls::http;

TEST_CASE("request heads are framed, parsed and routed") {
  std::string buf = "GET /bytes/1000 HTTP/1.1\r\nHost: x\r\n";
  auto n = head_length(buf);
  REQUIRE(n.ok());
  CHECK(*n == 0);
  buf += "\r\nextra";
  n = head_length(buf);
  REQUIRE(n.ok());
  CHECK(*n == buf.size() - 5);
  auto req = parse_request(std::string_view(buf).substr(0, *n));
  REQUIRE(req.ok());
  CHECK(req->method == "GET");
  CHECK(req->target == "/bytes/1000");
  CHECK(req->keep_alive);
  auto r = route(*req);
  CHECK(r.status == 200);
  CHECK(r.pattern_body);
  CHECK(r.body_length == 1000);
  CHECK(response_head(r, true).find("Content-Length: 1000\r\n") != std::string::npos);
}

TEST_CASE("bad requests get named errors or error statuses") {
  CHECK_FALSE(head_length(std::string(kMaxHeadBytes, 'a')).ok());
  CHECK_FALSE(parse_request("GARBAGE\r\n\r\n").ok());
  CHECK_FALSE(parse_request("GET / SPDY/3\r\n\r\n").ok());
  auto close = parse_request("GET / HTTP/1.1\r\nconnection: Close\r\n\r\n");
  REQUIRE(close.ok());
  CHECK_FALSE(close->keep_alive);
  CHECK(route({"GET", "/bytes/12x", true}).status == 400);
  CHECK(route({"GET", "/nope", true}).status == 404);
  CHECK(route({"POST", "/", true}).status == 405);
}

TEST_CASE("pattern bytes are i % 251 from any offset") {
  std::vector<std::uint8_t> a(600);
  fill_pattern(0, a);
  CHECK(a[0] == 0);
  CHECK(a[250] == 250);
  CHECK(a[251] == 0);
  CHECK(a[599] == 599 % 251);
  std::vector<std::uint8_t> b(100);
  fill_pattern(500, b);
  CHECK(check_pattern(500, b));
  CHECK_FALSE(check_pattern(501, b));
  b[7] ^= 1;
  CHECK_FALSE(check_pattern(500, b));
}

TEST_CASE("responses: status, length, chunked") {
  auto r = parse_response("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n");
  REQUIRE(r.ok());
  CHECK(r->status == 200);
  CHECK(r->content_length == 42u);
  auto r10 = parse_response("HTTP/1.0 200 ok\r\nContent-type: text/html\r\n\r\n");
  REQUIRE(r10.ok());
  CHECK(r10->close);
  CHECK_FALSE(r10->content_length);
  CHECK_FALSE(parse_response("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n").ok());
  CHECK_FALSE(parse_response("ICY 200 OK\r\n\r\n").ok());

  ChunkedDecoder d;
  std::string out;
  std::string wire = "5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n";
  for (char c : wire) REQUIRE(d.feed(std::string_view(&c, 1), out).ok());
  CHECK(d.done());
  CHECK(out == "hello world");
  ChunkedDecoder bad;
  CHECK_FALSE(bad.feed("zz\r\n", out).ok());
}
