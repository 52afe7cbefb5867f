#include "tests/support/chaos_scenarios.h"

#include <doctest/doctest.h>

#include <cerrno>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

#include "ktls/asio/error.h"
#include "ktls/conn/connection.h"
#include "ktls/io/tcp_socket.h"
#include "tests/support/fd_count.h"
#include "tests/support/message_of.h"
#include "tests/support/tls_contexts.h"
#include "tests/support/tls_matrix.h"
#include "tools/chaos/chaos_proxy.h"

namespace wasi_ktls::test {

using namespace std::chrono_literals;
using chaos::Fault;
using chaos::Flow;

namespace {

constexpr std::size_t kWarmup = 100;
constexpr std::uint8_t kGo = 'g';

struct Scenario {
  Fault fault = Fault::none;
  Flow flow = Flow::s2c;
  std::uint64_t after_records = 0;
  TlsVersion version = TlsVersion::tls13;
  Cipher cipher = Cipher::aes_128_gcm;
  bool write_first = false;    // the client sends its byte before reading the warm-up
  bool server_closes = false;  // close_notify right after the payload
  std::size_t payload = 3000;  // one record
  std::chrono::milliseconds client_io_timeout = 20s;
  std::chrono::milliseconds asio_cancel = 20s;
  // Our client's fatal alert must reach the server before the client goes: closing a socket
  // with unread data sends RST, which the proxy passes on and which may beat the alert.
  bool server_ends_first = false;
};

// What the server saw at its end: its last read's error, or a clean close_notify.
struct ServerEnd {
  std::string accept_error;
  bool clean = false;
  Error error;
};

struct Seen {
  chaos::RelayReport report;
  ServerEnd server;
};

// Reads until `n` bytes or an error; the error (if any) ends it.
Outcome read_exactly(FaultClient& c, Bytes& into, std::size_t n) {
  into.resize(n);
  std::size_t got = 0;
  while (got < n) {
    Outcome o = c.read(std::span(into.data() + got, n - got));
    if (!o.ok || o.bytes == 0) {
      into.resize(got);
      return o;
    }
    got += o.bytes;
  }
  return Outcome::success(got);
}

void serve_one(int listener, const TlsContext& ctx, const Scenario& s, const Bytes& warmup,
               const Bytes& payload, ServerEnd& end, std::promise<void>& ended) {
  struct Signal {
    std::promise<void>& p;
    ~Signal() { p.set_value(); }
  } signal{ended};
  auto fd = tcp_accept(listener, 30s);
  if (!fd) {
    end.accept_error = fd.error().message;
    return;
  }
  ConnectionOptions o;
  o.backend = Backend::auto_;  // our end of the test, not the front end under test
  o.io_timeout = 30s;
  auto c = Connection::accept(std::move(*fd), ctx, o);
  if (!c) {
    end.accept_error = c.error().message;
    return;
  }
  std::uint8_t go = 0;
  if (c->write(warmup).ok()) {
    auto r = c->read_full(std::span(&go, 1));
    if (r.ok() && *r == 1 && c->write(payload).ok() && s.server_closes) (void)c->close();
  }
  std::uint8_t buf[4096];
  for (;;) {
    auto r = c->read(buf);
    if (!r) {
      end.error = r.error();
      return;
    }
    if (*r == 0) {
      end.clean = true;
      return;
    }
  }
}

// The proxy between our client (front end f) and our server; `after_fault` runs once the
// warm-up went through and the proxy was armed.
Seen run(FrontEnd f, Backend b, const Scenario& s,
         const std::function<void(FaultClient&, const Bytes& payload)>& after_fault) {
  INFO(to_string(f) << " on " << to_string(b) << ", fault " << chaos::to_string(s.fault) << " "
                    << chaos::to_string(s.flow) << ", " << combo_name(s.version, s.cipher));
  const Bytes warmup = random_bytes(kWarmup, 1);
  const Bytes payload = random_bytes(s.payload, 2);
  TlsContext sctx = context(Role::server, server_policy(s.version, s.cipher));
  auto listener = tcp_listen("127.0.0.1", 0);
  REQUIRE_MESSAGE(listener.ok(), message_of(listener));
  auto port = local_port(listener->get());
  REQUIRE(port.ok());

  chaos::ProxyConfig pc;
  pc.to_port = *port;
  pc.fault = s.fault;
  pc.flow = s.flow;
  pc.after_records = s.after_records;
  pc.armed = false;
  pc.io_timeout = 30s;
  auto proxy = chaos::ChaosProxy::start(pc);
  REQUIRE_MESSAGE(proxy.ok(), message_of(proxy));

  Seen seen;
  std::promise<void> ended;
  std::future<void> server_ended = ended.get_future();
  std::thread server(
      [&] { serve_one(listener->get(), sctx, s, warmup, payload, seen.server, ended); });
  {
    std::unique_ptr<FaultClient> client = make_fault_client(f, s.asio_cancel);
    ConnectionOptions co;
    co.handshake_timeout = 30s;
    co.io_timeout = s.client_io_timeout;
    const Outcome connected =
        client->connect((*proxy)->port(), client_policy(s.version, s.cipher), b, co);
    if (connected.ok) {
      CHECK(client->transport() ==
            (b == Backend::ktls ? Transport::kernel : Transport::userspace));
      const Bytes go{kGo};
      Outcome w = Outcome::success();
      if (s.write_first) w = client->write(go);
      CHECK_MESSAGE(w.ok, w.error.message);
      Bytes got;
      const Outcome r = read_exactly(*client, got, warmup.size());
      CHECK_MESSAGE(r.ok, r.error.message);
      CHECK(got == warmup);
      (*proxy)->arm();
      if (!s.write_first) w = client->write(go);
      CHECK_MESSAGE(w.ok, w.error.message);
      if (r.ok && w.ok) after_fault(*client, payload);
      if (s.server_ends_first) {
        const auto until = std::chrono::steady_clock::now() + 30s;
        while (server_ended.wait_for(20ms) != std::future_status::ready &&
               std::chrono::steady_clock::now() < until)
          client->pump(20ms);
        CHECK_MESSAGE(server_ended.wait_for(0s) == std::future_status::ready,
                      "the server did not see our alert");
      }
    } else {
      FAIL_CHECK("connect through the proxy: " << connected.error.message);
    }
  }  // the client goes: the server's last read ends
  server.join();
  auto reports = (*proxy)->wait_reports(1, 30s);
  REQUIRE_MESSAGE(reports.ok(), message_of(reports));
  seen.report = reports->front();
  (*proxy)->stop();
  CHECK_MESSAGE(seen.server.accept_error.empty(), seen.server.accept_error);
  MESSAGE(to_string(f) << " on " << to_string(b) << ", " << chaos::to_string(s.fault)
                       << ": relay ended: " << seen.report.end << "; server: "
                       << (seen.server.clean ? "close_notify" : seen.server.error.message));
  return seen;
}

// The Asio error_code for an error of `kind` (what error.cc maps it to).
boost::system::error_code asio_code(ErrorKind kind) {
  Error e;
  e.kind = kind;
  return asio::error_code_of(e);
}

bool has(const std::string& s, std::string_view part) { return s.find(part) != std::string::npos; }

// An fd count around a whole scenario: every socket, pipe, io_uring and timer is gone after.
void without_fd_leak(const std::function<void()>& body) {
  const int before = open_fd_count();
  body();
  CHECK(open_fd_count() == before);
}

// A read's error: kind on the library's front ends, error_code on Asio; message words on all.
void check_error(FrontEnd f, const Outcome& o, ErrorKind kind,
                 boost::system::error_code asio_ec, std::string_view words) {
  INFO(to_string(f) << ": " << o.error.message << " [" << o.ec.message() << "]");
  REQUIRE_FALSE(o.ok);
  if (f == FrontEnd::asio_stream)
    CHECK(o.ec == asio_ec);
  else
    CHECK(o.error.kind == kind);
  CHECK(has(o.error.message, words));
}

}  // namespace

void chaos_none(FrontEnd f, Backend b) {
  without_fd_leak([&] {
    Scenario s;
    const Seen seen = run(f, b, s, [&](FaultClient& c, const Bytes& payload) {
      Bytes got;
      const Outcome o = read_exactly(c, got, payload.size());
      CHECK_MESSAGE(o.ok, o.error.message);
      CHECK(got == payload);
    });
    CHECK_FALSE(seen.report.fault_applied);
  });
}

void chaos_flip_byte(FrontEnd f, Backend b) {
  without_fd_leak([&] {
    Scenario s;
    s.fault = Fault::flip_byte;
    s.server_ends_first = true;
    const Seen seen = run(f, b, s, [&](FaultClient& c, const Bytes&) {
      std::uint8_t buf[4096];
      const Outcome first = c.read(buf);
      const std::string_view words =
          b == Backend::ktls ? "bad_record_mac (20)" : "decryption failed or bad record mac";
      check_error(f, first, ErrorKind::protocol, asio_code(ErrorKind::protocol), words);
      // Never retried: the same answer again.
      const Outcome second = c.read(buf);
      check_error(f, second, ErrorKind::protocol, asio_code(ErrorKind::protocol), words);
    });
    CHECK(seen.report.fault_applied);
    // Our alert reached the sender.
    CHECK(seen.server.error.kind == ErrorKind::peer_alert);
    CHECK(has(seen.server.error.message, "bad_record_mac"));
  });
}

void chaos_truncate_record(FrontEnd f, Backend b) {
  without_fd_leak([&] {
    Scenario s;
    s.fault = Fault::truncate_record;
    const Seen seen = run(f, b, s, [&](FaultClient& c, const Bytes&) {
      std::uint8_t buf[4096];
      const Outcome o = c.read(buf);
      check_error(f, o, ErrorKind::truncated, boost::asio::ssl::error::stream_truncated,
                  "truncation");
    });
    CHECK(seen.report.fault_applied);
  });
}

void chaos_fin(FrontEnd f, Backend b) {
  without_fd_leak([&] {
    Scenario s;
    s.fault = Fault::fin;
    const Seen seen = run(f, b, s, [&](FaultClient& c, const Bytes&) {
      std::uint8_t buf[4096];
      const Outcome o = c.read(buf);
      check_error(f, o, ErrorKind::truncated, boost::asio::ssl::error::stream_truncated,
                  "without close_notify (truncation)");
    });
    CHECK(seen.report.fault_applied);
  });
}

void chaos_rst(FrontEnd f, Backend b) {
  without_fd_leak([&] {
    Scenario s;
    s.fault = Fault::rst;
    const Seen seen = run(f, b, s, [&](FaultClient& c, const Bytes&) {
      std::uint8_t buf[4096];
      const Outcome o = c.read(buf);
      check_error(f, o, ErrorKind::system, boost::asio::error::connection_reset,
                  "Connection reset by peer");
      if (f != FrontEnd::asio_stream) CHECK(o.error.sys_errno == ECONNRESET);
    });
    CHECK(seen.report.fault_applied);
  });
}

void chaos_stall(FrontEnd f, Backend b) {
  without_fd_leak([&] {
    Scenario s;
    s.fault = Fault::stall;
    s.client_io_timeout = 1s;  // the proxy stalls for 3 s
    s.asio_cancel = 1s;
    const Seen seen = run(f, b, s, [&](FaultClient& c, const Bytes& payload) {
      std::uint8_t buf[4096];
      const Outcome o = c.read(buf);
      // The Asio stream has no read timeout: the user's timer cancels the read.
      check_error(f, o, ErrorKind::timeout, boost::asio::error::operation_aborted,
                  f == FrontEnd::asio_stream ? "" : "timed out reading");
      // A timeout leaves the stream intact: the stalled data still comes.
      Bytes got;
      Outcome more;
      for (int i = 0; i < 10 && got.size() < payload.size(); ++i) {
        more = c.read(buf);
        if (more.ok && more.bytes == 0) break;
        if (more.ok) got.insert(got.end(), buf, buf + more.bytes);
      }
      CHECK(got == payload);
    });
    CHECK(seen.report.fault_applied);
  });
}

void chaos_split_coalesce(FrontEnd f, Backend b) {
  // TLS 1.2: the server's Finished shares a segment with its first data (our client's
  // hand-over); TLS 1.3: our client's Finished with its first data (the server's hand-over).
  for (TlsVersion v : {TlsVersion::tls12, TlsVersion::tls13}) {
    without_fd_leak([&] {
      Scenario s;
      s.fault = Fault::split_coalesce;
      s.version = v;
      s.flow = v == TlsVersion::tls12 ? Flow::s2c : Flow::c2s;
      s.write_first = true;
      s.payload = 20000;  // two records, one byte per segment
      const Seen seen = run(f, b, s, [&](FaultClient& c, const Bytes& payload) {
        Bytes got;
        const Outcome o = read_exactly(c, got, payload.size());
        CHECK_MESSAGE(o.ok, o.error.message);
        CHECK(got == payload);
      });
      CHECK(seen.report.fault_applied);
      CHECK(seen.report.coalesced_records == 2);
    });
  }
}

namespace {

// A plaintext record (alert or KeyUpdate) put into the stream after the hand-over.
void injected_plaintext(FrontEnd f, Backend b, Fault fault) {
  without_fd_leak([&] {
    Scenario s;
    s.fault = fault;
    s.server_ends_first = true;
    const Seen seen = run(f, b, s, [&](FaultClient& c, const Bytes&) {
      std::uint8_t buf[4096];
      const Outcome o = c.read(buf);
      // Under the traffic keys a plaintext record is one that fails authentication. The
      // kernel cannot authenticate it; OpenSSL refuses a plaintext record type first.
      check_error(f, o, ErrorKind::protocol, asio_code(ErrorKind::protocol),
                  b == Backend::ktls ? "bad_record_mac (20)" : "bad record type");
    });
    CHECK(seen.report.fault_applied);
    CHECK(seen.server.error.kind == ErrorKind::peer_alert);
    CHECK(has(seen.server.error.message,
              b == Backend::ktls ? "bad_record_mac (20)" : "unexpected_message (10)"));
  });
}

}  // namespace

void chaos_inject_alert(FrontEnd f, Backend b) { injected_plaintext(f, b, Fault::inject_alert); }

void chaos_inject_key_update(FrontEnd f, Backend b) {
  injected_plaintext(f, b, Fault::inject_key_update);
}

void chaos_data_after_close(FrontEnd f, Backend b) {
  without_fd_leak([&] {
    Scenario s;
    s.fault = Fault::data_after_close;
    s.server_closes = true;
    s.after_records = 1;  // the payload's record, then close_notify: the target
    const Seen seen = run(f, b, s, [&](FaultClient& c, const Bytes& payload) {
      Bytes got;
      const Outcome o = read_exactly(c, got, payload.size());
      CHECK_MESSAGE(o.ok, o.error.message);
      CHECK(got == payload);
      std::uint8_t buf[4096];
      for (int i = 0; i < 2; ++i) {
        const Outcome end = c.read(buf);
        INFO("read " << i << " after close_notify: " << end.error.message << " ["
                     << end.ec.message() << "]");
        if (f == FrontEnd::asio_stream) {
          CHECK(end.ec == boost::asio::error::eof);
        } else {
          CHECK(end.ok);
          CHECK(end.bytes == 0);
        }
      }
    });
    CHECK(seen.report.fault_applied);
  });
}

}  // namespace wasi_ktls::test
