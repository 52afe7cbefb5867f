// `wasi-ktls serve` run as a user runs it, on the host (no kTLS here: the userspace transport),
// with our blocking Connection as the client: the accept loop under a connection cap and under
// EMFILE, HTTP framing (methods, request bodies, HEAD, Transfer-Encoding), --root entries that
// are not regular files, and the kernel probe before the workers.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <future>
#include <optional>
#include <string>
#include <vector>

#include "ktls/conn/connection.h"
#include "ktls/io/tcp_socket.h"
#include "tests/support/child_process.h"
#include "tests/support/fd_count.h"
#include "tests/support/message_of.h"
#include "tests/support/serve_process.h"
#include "tests/support/tls_contexts.h"
#include "tools/http_message.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;
using namespace std::chrono_literals;

namespace {

std::size_t count_of(std::string_view haystack, std::string_view needle) {
  std::size_t n = 0;
  for (auto at = haystack.find(needle); at != std::string_view::npos;
       at = haystack.find(needle, at + needle.size()))
    ++n;
  return n;
}

std::string tail(const std::string& log) { return log_tail(log, 1500); }

// A running `serve --port 0`: its log (stdout and stderr merged) and the port it reported.
struct Serve : ServeProcess {
  // utime + stime of the whole process so far, in seconds.
  double cpu_seconds() const {
    std::ifstream f("/proc/" + std::to_string(child->pid()) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    auto after_comm = stat.rfind(')');
    if (after_comm == std::string::npos) return -1;
    std::vector<std::string> fields;  // fields[0] is the state, field 3 of proc_pid_stat(5)
    std::string rest = stat.substr(after_comm + 2);
    for (std::size_t at = 0; at < rest.size();) {
      auto sp = rest.find(' ', at);
      fields.push_back(rest.substr(at, sp == std::string::npos ? sp : sp - at));
      if (sp == std::string::npos) break;
      at = sp + 1;
    }
    if (fields.size() < 13) return -1;
    double ticks = std::stod(fields[11]) + std::stod(fields[12]);  // utime, stime
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
};

// Starts serve with the test PKI and `args`; with `nofile`, under that RLIMIT_NOFILE.
Serve start_serve(const std::vector<std::string>& args, int nofile = 0) {
  auto s = start_serve_process(pki().server_cert, pki().server_key, args, nofile);
  REQUIRE_MESSAGE(s.ok(), message_of(s));
  return Serve{std::move(*s)};
}

const TlsContext& client_context() {
  static const TlsContext ctx = [] {
    Policy p;
    p.ca = PemSource::file(pki().ca);
    return context(Role::client, p);
  }();
  return ctx;
}

ConnectionOptions client_options(std::chrono::milliseconds handshake_timeout) {
  ConnectionOptions o;
  o.backend = Backend::userspace;
  o.handshake_timeout = handshake_timeout;
  o.io_timeout = 5s;  // longer than any answer takes; a hung serve fails the test in 5 s
  return o;
}

Result<Connection> tls_client(UniqueFd tcp, std::chrono::milliseconds handshake_timeout = 10s) {
  return Connection::connect(std::move(tcp), client_context(), "localhost",
                             client_options(handshake_timeout));
}

Result<Connection> tls_client(std::uint16_t port,
                              std::chrono::milliseconds handshake_timeout = 10s) {
  auto tcp = tcp_connect("127.0.0.1", port, 5s);
  if (!tcp) return tcp.error();
  return tls_client(std::move(*tcp), handshake_timeout);
}

// Everything until the server's close_notify; `error` says why reading stopped otherwise.
struct Received {
  std::string data;
  std::string error;
  bool closed = false;  // close_notify arrived
};

Received read_until_close(Connection& c) {
  Received r;
  std::vector<std::uint8_t> buf(65536);
  for (;;) {
    auto n = c.read(buf);
    if (!n) {
      r.error = n.error().message;
      return r;
    }
    if (*n == 0) {
      r.closed = true;
      return r;
    }
    r.data.append(reinterpret_cast<const char*>(buf.data()), *n);
  }
}

struct Reply {
  http::Response response;
  std::string head;
  std::string body;
};

// One response from `pending` (bytes already read) and further reads; no body after HEAD.
Result<Reply> read_reply(Connection& c, std::string& pending, bool head_request = false) {
  std::vector<std::uint8_t> buf(65536);
  auto more = [&]() -> Status {
    auto n = c.read(buf);
    if (!n) return n.error();
    if (*n == 0) return make_error("server closed the connection mid-response");
    pending.append(reinterpret_cast<const char*>(buf.data()), *n);
    return {};
  };
  std::size_t head_len = 0;
  for (;;) {
    auto h = http::head_length(pending);
    if (!h) return h.error();
    if (*h > 0) {
      head_len = *h;
      break;
    }
    if (auto st = more(); !st) return st.error();
  }
  Reply r;
  r.head = pending.substr(0, head_len);
  pending.erase(0, head_len);
  auto resp = http::parse_response(r.head);
  if (!resp) return resp.error();
  r.response = *resp;
  std::uint64_t want = head_request ? 0 : resp->content_length.value_or(0);
  while (pending.size() < want)
    if (auto st = more(); !st) return st.error();
  r.body = pending.substr(0, want);
  pending.erase(0, want);
  return r;
}

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i % 251);
  return s;
}

// A fresh directory, removed with everything in it however the test ends.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "serve-test.XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// The engines serve can run on; the accept loop differs between them.
const std::string kEngines[] = {"io_uring", "poll"};

}  // namespace

TEST_CASE("serve probes the kernel once, before any worker starts, and logs what it found") {
  Serve s = start_serve({"--threads", "2"});
  auto probe = s.log().find("kernel probe: ");
  auto worker = s.log().find("worker ");
  INFO("log:\n" << tail(s.log()));
  REQUIRE(probe != std::string::npos);
  CHECK(probe < worker);
  CHECK(count_of(s.log(), "kernel probe: ") == 1);
}

TEST_CASE("serve: a connection past --max-connections-per-worker waits in the backlog until "
          "one ends") {
  for (const std::string& engine : kEngines) {
    INFO("engine " << engine);
    int fds_before = open_fd_count();
    {
      constexpr int kCap = 3;
      Serve s = start_serve({"--threads", "1", "--engine", engine, "--max-connections-per-worker",
                             std::to_string(kCap)});
      std::vector<Connection> idle;
      for (int i = 0; i < kCap; ++i) {
        auto c = tls_client(s.port);
        REQUIRE_MESSAGE(c.ok(), message_of(c) << "\nlog:\n" << tail(s.log()));
        idle.push_back(std::move(*c));
      }
      Status paused = s.wait_log("accepting paused");
      CHECK_MESSAGE(paused.ok(), message_of(paused) << "\nlog:\n" << tail(s.log()));

      // The kernel completes the TCP handshake from the listen backlog; serve must not take it.
      auto tcp = tcp_connect("127.0.0.1", s.port, 5s);
      REQUIRE_MESSAGE(tcp.ok(), message_of(tcp));
      auto extra = std::async(std::launch::async, [fd = std::move(*tcp)]() mutable {
        return tls_client(std::move(fd), 30s);
      });
      CHECK_MESSAGE(extra.wait_for(1500ms) == std::future_status::timeout,
                    "connection " << kCap + 1 << " was served while " << kCap
                                  << " were open\nlog:\n" << tail(s.log()));

      REQUIRE(idle.front().close().ok());
      idle.erase(idle.begin());
      REQUIRE_MESSAGE(extra.wait_for(20s) == std::future_status::ready,
                      "not served after one of the others ended\nlog:\n" << tail(s.log()));
      auto c = extra.get();
      REQUIRE_MESSAGE(c.ok(), message_of(c) << "\nlog:\n" << tail(s.log()));
      REQUIRE(c->write("GET /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok());
      std::string pending;
      auto reply = read_reply(*c, pending);
      REQUIRE_MESSAGE(reply.ok(), message_of(reply));
      CHECK(reply->response.status == 200);
      CHECK(reply->body == pattern(10));
    }
    CHECK(open_fd_count() == fds_before);
  }
}

TEST_CASE("serve backs off on EMFILE (no spin, no log flood) and serves once fds are free") {
  for (const std::string& engine : kEngines) {
    INFO("engine " << engine);
    Serve s = start_serve({"--threads", "1", "--engine", engine}, /*nofile=*/32);
    std::vector<Connection> held;
    bool refused = false;
    // serve needs a handful of fds of its own: 32 is exhausted well before 40 connections.
    for (int i = 0; i < 40 && !refused; ++i) {
      auto c = tls_client(s.port, 3s);
      if (c)
        held.push_back(std::move(*c));
      else
        refused = true;  // it stayed in the backlog: serve is out of fds
    }
    INFO("held " << held.size() << " connections");
    REQUIRE(refused);
    REQUIRE(held.size() >= 10);
    Status emfile = s.wait_log("Too many open files");
    REQUIRE_MESSAGE(emfile.ok(), message_of(emfile) << "\nlog:\n" << tail(s.log()));

    // Out of fds, a spinning accept loop logs a line per attempt and burns a core.
    std::size_t lines_before = count_of(s.log(), "\n");
    double cpu_before = s.cpu_seconds();
    auto t0 = std::chrono::steady_clock::now();
    (void)s.child->read_until(
        [&](const std::string& out) { return count_of(out, "\n") > lines_before + 20; }, 2s);
    double wall = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    double cpu = s.cpu_seconds() - cpu_before;
    std::size_t new_lines = count_of(s.log(), "\n") - lines_before;
    MESSAGE(engine << ": out of fds for " << wall << " s: " << new_lines << " log lines, " << cpu
                   << " s CPU");
    CHECK_MESSAGE(new_lines <= 2, "log:\n" << tail(s.log()));
    CHECK(cpu < 0.25 * wall);

    for (auto& c : held) (void)c.close();
    held.clear();
    auto c = tls_client(s.port, 15s);
    REQUIRE_MESSAGE(c.ok(), message_of(c) << "\nlog:\n" << tail(s.log()));
    REQUIRE(c->write("GET /bytes/10 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok());
    std::string pending;
    auto reply = read_reply(*c, pending);
    REQUIRE_MESSAGE(reply.ok(), message_of(reply) << "\nlog:\n" << tail(s.log()));
    CHECK(reply->response.status == 200);
    CHECK(reply->body == pattern(10));
    CHECK_MESSAGE(count_of(s.log(), "Too many open files") == 1,
                  "one line per backoff episode\nlog:\n" << tail(s.log()));
  }
}

TEST_CASE("serve --root: a FIFO is refused at once (403) and the worker keeps serving") {
  TempDir root;
  const std::filesystem::path& dir = root.path;
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0644) == 0);
  std::ofstream(dir / "a.txt") << "hello from a file\n";
  {
    Serve s = start_serve({"--threads", "1", "--root", dir.string()});
    auto c = tls_client(s.port);
    REQUIRE_MESSAGE(c.ok(), message_of(c));
    REQUIRE(c->write("GET /fifo HTTP/1.1\r\nHost: x\r\n\r\n").ok());
    std::string pending;
    auto fifo = read_reply(*c, pending);
    REQUIRE_MESSAGE(fifo.ok(),
                    "GET of a FIFO: " << message_of(fifo) << "\nlog:\n" << tail(s.log()));
    CHECK(fifo->response.status == 403);
    REQUIRE(c->write("GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok());
    auto file = read_reply(*c, pending);
    REQUIRE_MESSAGE(file.ok(), message_of(file));
    CHECK(file->response.status == 200);
    CHECK(file->body == "hello from a file\n");

    auto other = tls_client(s.port);
    REQUIRE_MESSAGE(other.ok(), "a new connection after the FIFO: " << message_of(other));
    REQUIRE(other->write("GET /bytes/3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok());
    std::string p2;
    auto bytes = read_reply(*other, p2);
    REQUIRE_MESSAGE(bytes.ok(), message_of(bytes));
    CHECK(bytes->body == pattern(3));
  }
}

TEST_CASE("serve: a POST whose body is a request gets exactly one answer, 405, then close") {
  Serve s = start_serve({"--threads", "1"});
  auto c = tls_client(s.port);
  REQUIRE_MESSAGE(c.ok(), message_of(c));
  const std::string body = "GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(c->write(fmt::format("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}",
                               body.size(), body))
              .ok());
  Received r = read_until_close(*c);
  INFO("received:\n" << r.data << "\nread stopped by: " << r.error);
  CHECK(r.closed);
  CHECK(count_of(r.data, "HTTP/1.1 ") == 1);
  CHECK(r.data.starts_with("HTTP/1.1 405 "));
  CHECK(r.data.find("\r\nAllow: GET, HEAD\r\n") != std::string::npos);
  CHECK(r.data.find("\r\nConnection: close\r\n") != std::string::npos);
}

TEST_CASE("serve: a GET's Content-Length body is skipped; the next request is answered") {
  Serve s = start_serve({"--threads", "1"});
  auto c = tls_client(s.port);
  REQUIRE_MESSAGE(c.ok(), message_of(c));
  const std::string body = "GET /bytes/7 HTTP/1.1\r\n\r\n";  // not a request: body bytes
  REQUIRE(c->write(fmt::format("GET /bytes/10 HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n{}"
                               "GET /bytes/20 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                               body.size(), body))
              .ok());
  Received r = read_until_close(*c);
  INFO("received:\n" << r.data << "\nread stopped by: " << r.error);
  CHECK(r.closed);
  REQUIRE(count_of(r.data, "HTTP/1.1 ") == 2);
  std::string pending = r.data;
  for (std::size_t n : {10, 20}) {
    auto head = http::head_length(pending);
    REQUIRE((head.ok() && *head > 0));
    auto resp = http::parse_response(pending.substr(0, *head));
    REQUIRE(resp.ok());
    CHECK(resp->status == 200);
    CHECK(resp->content_length == n);
    CHECK(pending.substr(*head, n) == pattern(n));
    pending.erase(0, *head + n);
  }
  CHECK(pending.empty());
}

TEST_CASE("serve: HEAD gets the GET's head and no body; the connection goes on") {
  Serve s = start_serve({"--threads", "1"});
  auto c = tls_client(s.port);
  REQUIRE_MESSAGE(c.ok(), message_of(c));
  REQUIRE(c->write("HEAD /bytes/100 HTTP/1.1\r\nHost: x\r\n\r\n"
                   "GET /bytes/5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
              .ok());
  std::string pending;
  auto head = read_reply(*c, pending, /*head_request=*/true);
  REQUIRE_MESSAGE(head.ok(), message_of(head));
  CHECK(head->response.status == 200);
  CHECK(head->response.content_length == 100u);
  auto get = read_reply(*c, pending);
  REQUIRE_MESSAGE(get.ok(), message_of(get) << "\nafter HEAD: " << head->head);
  CHECK(get->response.status == 200);
  CHECK(get->body == pattern(5));
  Received rest = read_until_close(*c);
  CHECK(rest.closed);
  CHECK((pending + rest.data).empty());
}

TEST_CASE("serve: a request with Transfer-Encoding is refused (501) and the connection closed") {
  Serve s = start_serve({"--threads", "1"});
  auto c = tls_client(s.port);
  REQUIRE_MESSAGE(c.ok(), message_of(c));
  // The chunk is a request: parsed as one, it would get a second answer.
  const std::string chunk = "GET /bytes/10 HTTP/1.1\r\nHost: x\r\n\r\n";
  REQUIRE(c->write(fmt::format("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                               "{:x}\r\n{}\r\n0\r\n\r\n",
                               chunk.size(), chunk))
              .ok());
  Received r = read_until_close(*c);
  INFO("received:\n" << r.data << "\nread stopped by: " << r.error);
  CHECK(r.closed);
  CHECK(count_of(r.data, "HTTP/1.1 ") == 1);
  CHECK(r.data.starts_with("HTTP/1.1 501 "));
  CHECK(r.data.find("\r\nConnection: close\r\n") != std::string::npos);
}

// What an idle keep-alive connection costs serve (userspace TLS here): no read buffer of its
// own, none of OpenSSL's record buffers and nothing left from a large answer. Each held a 64
// KiB read buffer, OpenSSL's two record buffers and the last answer's ciphertext buffer
// (about 200 KiB after this test's answer); now about 17 KiB, most of it OpenSSL's SSL
// object. The bound is a generous regression guard.
TEST_CASE("serve: 200 idle keep-alive connections cost under 32 KiB of RSS each") {
  constexpr int kConnections = 200;
  constexpr long kMaxKiBPerConnection = 32;
  auto rss_kib = [](int pid) {
    std::ifstream f("/proc/" + std::to_string(pid) + "/status");
    for (std::string line; std::getline(f, line);)
      if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
    return -1L;
  };
  for (const std::string& engine : kEngines) {
    INFO("engine " << engine);
    Serve s = start_serve({"--threads", "1", "--engine", engine, "--max-connections-per-worker",
                           std::to_string(kConnections + 8)});
    // One request each: a 100 KB answer, after which the connection stays open and idle.
    auto one_request = [&](Connection& c) {
      REQUIRE(c.write("GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n").ok());
      std::string pending;
      auto reply = read_reply(c, pending);
      REQUIRE_MESSAGE(reply.ok(), message_of(reply) << "\nlog:\n" << tail(s.log()));
      REQUIRE(reply->body == pattern(100000));
    };
    {  // what the first connections allocate once (the pattern, OpenSSL's caches) is not counted
      auto warm = tls_client(s.port);
      REQUIRE_MESSAGE(warm.ok(), message_of(warm));
      one_request(*warm);
    }
    const long before = rss_kib(s.child->pid());
    std::vector<Connection> idle;
    for (int i = 0; i < kConnections; ++i) {
      auto c = tls_client(s.port);
      REQUIRE_MESSAGE(c.ok(), message_of(c) << "\nlog:\n" << tail(s.log()));
      one_request(*c);
      idle.push_back(std::move(*c));
    }
    // Every answer was read in full, so serve has finished each one and is waiting.
    const long after = rss_kib(s.child->pid());
    REQUIRE(before > 0);
    const long per_connection = (after - before) / kConnections;
    MESSAGE("RSS " << before << " KiB -> " << after << " KiB: " << per_connection
                   << " KiB per idle connection");
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
    // Under ASan (serve is built the same way) freed blocks sit in its quarantine and every
    // block carries redzones; under TSan every block has its shadow: RSS says nothing about
    // what serve keeps. The connections above still had to be answered and kept.
    MESSAGE("sanitizer build: the bound of " << kMaxKiBPerConnection << " KiB is not checked");
#else
    CHECK(per_connection < kMaxKiBPerConnection);
#endif
  }
}
