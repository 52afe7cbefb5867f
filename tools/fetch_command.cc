#include "tools/fetch_command.h"

#include <charconv>
#include <cstdio>

#include "ktls/io/tcp_socket.h"
#include "tools/http_message.h"
#include "tools/tls_options.h"

namespace wasi_ktls::cli {
namespace {

struct FetchOptions {
  TlsOptions tls;
  std::string url;
  std::string output;  // empty: stdout
  bool verbose = false;
  unsigned timeout_s = 30;
};

struct Url {
  std::string host;
  std::uint16_t port = 443;
  std::string target = "/";
};

Result<Url> parse_url(std::string_view s) {
  if (!s.starts_with("https://"))
    return make_error("URL '{}' must start with https://", s);
  s.remove_prefix(8);
  Url u;
  auto slash = s.find('/');
  std::string_view authority = s.substr(0, slash);
  if (slash != std::string_view::npos) u.target = std::string(s.substr(slash));
  std::string_view port;
  if (authority.starts_with('[')) {  // [v6]:port
    auto close = authority.find(']');
    if (close == std::string_view::npos) return make_error("URL has an unclosed '[' in the host");
    u.host = std::string(authority.substr(1, close - 1));
    if (close + 1 < authority.size()) {
      if (authority[close + 1] != ':') return make_error("URL has junk after ']'");
      port = authority.substr(close + 2);
    }
  } else {
    auto colon = authority.rfind(':');
    u.host = std::string(authority.substr(0, colon));
    if (colon != std::string_view::npos) port = authority.substr(colon + 1);
  }
  if (u.host.empty()) return make_error("URL '{}' has no host", s);
  if (!port.empty()) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(port.data(), port.data() + port.size(), v);
    if (ec != std::errc() || p != port.data() + port.size() || v == 0 || v > 65535)
      return make_error("URL port '{}' is not a number in 1..65535", port);
    u.port = static_cast<std::uint16_t>(v);
  }
  return u;
}

class Output {
 public:
  explicit Output(std::FILE* f) : f_(f) {}
  Status write(std::string_view s) {
    if (!s.empty() && std::fwrite(s.data(), 1, s.size(), f_) != s.size())
      return errno_error(errno, "writing the body");
    written_ += s.size();
    return {};
  }
  std::uint64_t written() const { return written_; }

 private:
  std::FILE* f_;
  std::uint64_t written_ = 0;
};

// Reads the response and writes its body; returns the HTTP status.
Result<int> read_response(Connection& c, Output& out) {
  std::string in;
  std::vector<std::uint8_t> buf(64 * 1024);
  auto more = [&]() -> Result<std::size_t> {
    auto n = c.read(buf);
    if (n && *n > 0) in.append(reinterpret_cast<const char*>(buf.data()), *n);
    return n;
  };
  std::size_t head = 0;
  while (head == 0) {
    auto h = http::head_length(in);
    if (!h) return h.error();
    head = *h;
    if (head > 0) break;
    auto n = more();
    if (!n) return n.error();
    if (*n == 0) return make_error("server closed the connection before a complete response");
  }
  auto resp = http::parse_response(std::string_view(in).substr(0, head));
  if (!resp) return resp.error();
  in.erase(0, head);

  if (resp->chunked) {
    http::ChunkedDecoder d;
    std::string body;
    for (;;) {
      if (auto st = d.feed(in, body); !st) return st.error();
      in.clear();
      if (auto st = out.write(body); !st) return st.error();
      body.clear();
      if (d.done()) return resp->status;
      auto n = more();
      if (!n) return n.error();
      if (*n == 0) return make_error("connection ended inside a chunked body");
    }
  }
  if (resp->content_length) {
    std::uint64_t want = *resp->content_length;
    for (;;) {
      auto take = static_cast<std::size_t>(std::min<std::uint64_t>(in.size(), want - out.written()));
      if (auto st = out.write(std::string_view(in).substr(0, take)); !st) return st.error();
      in.clear();
      if (out.written() == want) return resp->status;
      auto n = more();
      if (!n) return n.error();
      if (*n == 0)
        return make_error("connection ended after {} of {} body bytes", out.written(), want);
    }
  }
  // No length: the body runs to the end of the stream (close_notify).
  for (;;) {
    if (auto st = out.write(in); !st) return st.error();
    in.clear();
    auto n = more();
    if (!n) return n.error();
    if (*n == 0) return resp->status;
  }
}

int run_fetch(const FetchOptions& o) {
  auto fail = [](const std::string& msg, int code = 1) {
    std::fprintf(stderr, "fetch: %s\n", msg.c_str());
    return code;
  };
  auto url = parse_url(o.url);
  if (!url) return fail(url.error().message, 2);
  auto policy = o.tls.policy();
  if (!policy) return fail(policy.error().message, 2);
  if (policy->insecure_skip_verify_DANGEROUS)
    std::fprintf(stderr, "fetch: WARNING: --insecure-skip-verify: the server's certificate and "
                         "name are NOT checked; anyone on the path can impersonate the server\n");
  auto ctx = TlsContext::create(Role::client, *policy);
  if (!ctx) return fail(ctx.error().message, 2);
  auto copts = o.tls.connection_options();
  if (!copts) return fail(copts.error().message, 2);
  copts->io_timeout = std::chrono::seconds(o.timeout_s);
  copts->handshake_timeout = std::chrono::seconds(o.timeout_s);

  std::FILE* f = stdout;
  if (!o.output.empty()) {
    f = std::fopen(o.output.c_str(), "wb");
    if (f == nullptr) return fail(errno_error(errno, "cannot open " + o.output).message, 2);
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> owner(f == stdout ? nullptr : f, std::fclose);

  auto fd = tcp_connect(url->host, url->port, std::chrono::seconds(o.timeout_s));
  if (!fd) return fail(fd.error().message);
  auto conn = Connection::connect(std::move(*fd), *ctx, url->host, *copts);
  if (!conn) return fail(conn.error().message);
  const HandshakeInfo& i = conn->info();
  if (o.verbose)
    std::fprintf(stderr,
                 "* TLS %s %s, ALPN %s, server %s\n* backend %s%s%s\n",
                 std::string(to_string(i.version)).c_str(), i.suite.c_str(),
                 i.alpn.empty() ? "-" : i.alpn.c_str(),
                 i.peer_subject.empty() ? "-" : i.peer_subject.c_str(),
                 std::string(to_string(conn->transport())).c_str(),
                 conn->transport_reason().empty() ? "" : ": ",
                 conn->transport_reason().c_str());

  std::string host_header = url->host.find(':') != std::string::npos
                                ? fmt::format("[{}]:{}", url->host, url->port)
                                : fmt::format("{}:{}", url->host, url->port);
  if (auto st = conn->write(http::get_request(host_header, url->target)); !st)
    return fail(st.error().message);
  Output out(f);
  auto status = read_response(*conn, out);
  (void)conn->close();
  if (std::fflush(f) != 0) return fail("cannot write the body");
  if (!status) return fail(status.error().message);
  if (o.verbose)
    std::fprintf(stderr, "* HTTP %d, %llu body bytes, %llu bytes read over TLS\n", *status,
                 static_cast<unsigned long long>(out.written()),
                 static_cast<unsigned long long>(conn->bytes_read()));
  if (*status >= 400) return fail(fmt::format("server answered HTTP {}", *status), 22);
  return 0;
}

}  // namespace

Command add_fetch_command(CLI::App& parent) {
  auto o = std::make_shared<FetchOptions>();
  CLI::App* app = parent.add_subcommand("fetch", "TLS client: HTTP/1.1 GET of an https:// URL");
  app->add_option("url", o->url, "https://host[:port]/path")->required();
  o->tls.add_to(*app, Role::client);
  app->add_option("-o,--output", o->output, "Write the body to this file instead of stdout");
  app->add_flag("-v,--verbose", o->verbose, "Print TLS parameters and the backend on stderr");
  app->add_option("--timeout", o->timeout_s, "Seconds for connect, handshake and each read")
      ->capture_default_str()
      ->check(CLI::Range(1u, 3600u));
  return Command{app, [o] { return run_fetch(*o); }};
}

}  // namespace wasi_ktls::cli
