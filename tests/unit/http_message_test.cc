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

TEST_CASE("request bodies: Content-Length is framed, conflicts and Transfer-Encoding are not") {
  auto get = parse_request("GET /bytes/1 HTTP/1.1\r\nContent-Length: 26\r\n\r\n");
  REQUIRE(get.ok());
  CHECK(get->content_length == 26);
  CHECK_FALSE(get->transfer_encoding);
  CHECK_FALSE(route(*get).close);  // served; the session skips the 26 bytes

  auto none = parse_request("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(none.ok());
  CHECK(none->content_length == 0);

  auto same = parse_request("GET / HTTP/1.1\r\nContent-Length: 5\r\ncontent-length: 5\r\n\r\n");
  REQUIRE(same.ok());
  CHECK(same->content_length == 5);
  CHECK_FALSE(
      parse_request("GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n").ok());
  CHECK_FALSE(parse_request("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n").ok());
  CHECK_FALSE(parse_request("GET / HTTP/1.1\r\nContent-Length: 1x\r\n\r\n").ok());
  CHECK_FALSE(parse_request("GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n").ok());
  CHECK_FALSE(parse_request(
                  "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n")
                  .ok());

  auto te = parse_request("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n");
  REQUIRE(te.ok());
  CHECK(te->transfer_encoding);
  Route r = route(*te);
  CHECK(r.status == 501);
  CHECK(r.close);
  std::string head = response_head(r, /*keep_alive=*/true);
  CHECK(head.starts_with("HTTP/1.1 501 Not Implemented\r\n"));
  CHECK(head.find("Connection: close\r\n") != std::string::npos);
}

TEST_CASE("methods: GET and HEAD are served, anything else is 405 with Allow, then close") {
  for (const char* m : {"POST", "PUT", "DELETE", "OPTIONS", "get"}) {
    INFO(m);
    auto req = parse_request(std::string(m) + " / HTTP/1.1\r\nContent-Length: 3\r\n\r\n");
    REQUIRE(req.ok());
    Route r = route(*req);
    CHECK(r.status == 405);
    CHECK(r.close);
    CHECK_FALSE(r.head_only);
    std::string head = response_head(r, /*keep_alive=*/true);
    CHECK(head.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
    CHECK(head.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
    CHECK(head.find("\r\nConnection: close\r\n") != std::string::npos);
  }
  auto head_req = parse_request("HEAD /bytes/100 HTTP/1.1\r\n\r\n");
  REQUIRE(head_req.ok());
  Route h = route(*head_req);
  CHECK(h.status == 200);
  CHECK(h.head_only);
  CHECK_FALSE(h.close);
  CHECK(h.body_length == 100);  // the GET's length; the session sends no body
  CHECK(response_head(h, true).find("Content-Length: 100\r\nConnection: keep-alive\r\n") !=
        std::string::npos);
  Route get = route({"GET", "/bytes/100"});
  CHECK_FALSE(get.head_only);
  CHECK(response_head(get, true).find("Allow:") == std::string::npos);
}
