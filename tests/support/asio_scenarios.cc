#include "tests/support/asio_scenarios.h"

#include <doctest/doctest.h>

#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include "tests/support/raw_records.h"
#include "tests/support/send_buffer.h"
#include "tests/support/tls_contexts.h"

namespace wasi_ktls::test {

namespace net = boost::asio;
using tcp = net::ip::tcp;

void pair_every_payload(TlsVersion v, Cipher c, const StreamPairExpect& expect) {
  net::io_context io;
  StreamPair p = our_pair(io, client_policy(v, c), server_policy(v, c),
                          stream_options(expect.backend, "localhost"),
                          stream_options(expect.backend));
  REQUIRE_MESSAGE(!p.client_ec, p.client_ec.message() << ": " << p.client->last_error());
  REQUIRE(p.server);
  REQUIRE_MESSAGE(!p.server_ec, p.server_ec.message() << ": " << p.server->last_error());
  Stream& client = *p.client;
  Stream& server = *p.server;
  for (Stream* s : {&client, &server}) {
    CHECK(s->info().version == v);
    CHECK(s->info().cipher == c);
  }
  if (expect.established) expect.established(client, server);
  CHECK(client.info().peer_subject.find("CN=localhost") != std::string::npos);

  std::uint64_t seed = 1, total = 0;
  for (std::size_t n : kPayloads) {
    transfer(io, client, server, random_bytes(n, seed++));
    if (expect.transferred) expect.transferred(client, server, n);
    transfer(io, server, client, random_bytes(n, seed++));
    if (expect.transferred) expect.transferred(server, client, n);
    total += n;
  }
  CHECK(client.bytes_written() == total);
  CHECK(client.bytes_read() == total);
  CHECK(server.bytes_written() == total);
  CHECK(server.bytes_read() == total);

  // close_notify: the client's shutdown waits for the server's answer, which it sends after
  // reading eof.
  close_both(io, client, server);
  CHECK(!shutdown(io, client));  // idempotent
  auto r = read_once(io, client);
  CHECK(r.first == net::error::eof);
  CHECK(r.second == 0);
  CHECK(read_once(io, client).first == net::error::eof);  // stays at eof
  CHECK(read_once(io, server).first == net::error::eof);
  if (expect.closed) expect.closed(client, server);
  // Writing after our own close_notify is refused, not dropped.
  error_code wec;
  client.async_write_some(net::buffer("late", 4), [&](error_code e, std::size_t) { wec = e; });
  run(io);
  CHECK(wec == asio::errc::shut_down);
  CHECK(wec.category().name() == std::string("wasi_ktls"));
  CHECK(client.last_error().find("close_notify") != std::string::npos);
}

void truncated_by_fin(TlsVersion v, bool server_drops, const StreamPairExpect& expect) {
  net::io_context io;
  StreamPair p = our_pair(io, client_policy(v, Cipher::aes_256_gcm),
                          server_policy(v, Cipher::aes_256_gcm),
                          stream_options(expect.backend, "localhost"),
                          stream_options(expect.backend));
  REQUIRE(!p.client_ec);
  REQUIRE(!p.server_ec);
  if (expect.established) expect.established(*p.client, *p.server);
  transfer(io, *p.server, *p.client, random_bytes(5000, 3));
  transfer(io, *p.client, *p.server, random_bytes(5000, 4));
  Stream& dropped = server_drops ? *p.server : *p.client;
  Stream& survivor = server_drops ? *p.client : *p.server;
  dropped.next_layer().close();
  auto r = read_once(io, survivor);
  CHECK(r.first == net::ssl::error::stream_truncated);
  MESSAGE(r.first.message() << ": " << survivor.last_error());
  CHECK(survivor.last_error().find("truncation") != std::string::npos);
}

void client_against_s_server(TlsVersion v, Cipher c, const StreamPeerExpect& expect) {
  net::io_context io;
  const int port = port_or_fail();
  OpensslPeer peer = start_s_server(port, openssl_pin(v, c));
  auto [ctx, client, ec] =
      connect_to(io, port, client_policy(v, c), stream_options(expect.backend, "localhost"));
  INFO("s_server stderr: " << peer.stderr_text());
  REQUIRE_MESSAGE(!ec, ec.message() << ": " << client->last_error());
  CHECK(client->info().cipher == c);
  if (expect.established) expect.established(*client);
  std::uint64_t seed = 100;
  for (std::size_t n : kPayloads) {
    send_to_peer(io, *client, peer, random_bytes(n, seed++));
    if (expect.sent) expect.sent(*client, n);
    receive_from_peer(io, *client, peer, random_bytes(n, seed++));
    if (expect.received) expect.received(*client, n);
  }
  ec = shutdown(io, *client);
  REQUIRE_MESSAGE(!ec, client->last_error());
  auto r = read_once(io, *client);  // s_server answers close_notify with its own
  CHECK(r.first == net::error::eof);
  if (expect.closed) expect.closed(*client);
  auto status = peer.proc->wait(kPeerTimeout);
  REQUIRE(status.ok());
  CHECK(*status == 0);
}

void server_against_s_client(TlsVersion v, Cipher c, const StreamPeerExpect& expect) {
  net::io_context io;
  ServedStream s =
      serve_s_client(io, server_policy(v, c), openssl_pin(v, c), stream_options(expect.backend));
  INFO("s_client stderr: " << s.peer.stderr_text());
  REQUIRE(s.server);
  REQUIRE_MESSAGE(!s.ec, s.ec.message() << ": " << s.server->last_error());
  Stream& server = *s.server;
  CHECK(server.info().cipher == c);
  if (expect.established) expect.established(server);
  std::uint64_t seed = 200;
  for (std::size_t n : kPayloads) {
    receive_from_peer(io, server, s.peer, random_bytes(n, seed++));
    if (expect.received) expect.received(server, n);
    send_to_peer(io, server, s.peer, random_bytes(n, seed++));
    if (expect.sent) expect.sent(server, n);
  }
  error_code ec = shutdown(io, server);
  REQUIRE_MESSAGE(!ec, server.last_error());
  auto r = read_once(io, server);  // s_client answers close_notify with its own
  CHECK(r.first == net::error::eof);
  if (expect.closed) expect.closed(server);
  auto status = s.peer.proc->wait(kPeerTimeout);
  REQUIRE(status.ok());
  CHECK(*status == 0);
}

}  // namespace wasi_ktls::test

namespace wasi_ktls::test {
namespace {

using Clock = std::chrono::steady_clock;

// Runs io one handler at a time until `done()`, for at most `bound`; false if it did not get
// there.
bool run_until(net::io_context& io, const std::function<bool()>& done,
               std::chrono::milliseconds bound) {
  io.restart();
  const auto until = Clock::now() + bound;
  while (!done()) {
    if (Clock::now() >= until) return false;
    io.run_one_for(std::chrono::milliseconds(50));
    if (io.stopped()) io.restart();
  }
  return true;
}

StreamPair established_pair(net::io_context& io, Backend backend) {
  const TlsVersion v = TlsVersion::tls13;
  const Cipher c = Cipher::aes_128_gcm;
  StreamPair p = our_pair(io, client_policy(v, c), server_policy(v, c),
                          stream_options(backend, "localhost"), stream_options(backend));
  REQUIRE_MESSAGE(!p.client_ec, p.client_ec.message() << ": " << p.client->last_error());
  REQUIRE(p.server);
  REQUIRE_MESSAGE(!p.server_ec, p.server_ec.message() << ": " << p.server->last_error());
  return p;
}

}  // namespace

void asio_stalled_peer_leaves_others_running(Backend backend, bool junk_first) {
  net::io_context io;
  StreamPair a = established_pair(io, backend);
  StreamPair b = established_pair(io, backend);
  fill_until_stalled(a.server->next_layer().native_handle());
  const auto t0 = Clock::now();
  std::optional<error_code> a_done;
  std::uint8_t a_buf[64];
  if (junk_first) {
    // A record of a type no RFC defines: A's server answers with a fatal alert it cannot send.
    const int fd = a.client->next_layer().native_handle();
    const std::uint8_t junk[3] = {1, 2, 3};
    if (a.client->transport() == Transport::kernel) {
      send_record(fd, 99, junk);
    } else {
      const std::uint8_t raw[] = {99, 3, 3, 0, 3, 1, 2, 3};
      REQUIRE(::send(fd, raw, sizeof raw, MSG_NOSIGNAL) == static_cast<ssize_t>(sizeof raw));
    }
    a.server->async_read_some(net::buffer(a_buf), [&](error_code ec, std::size_t) { a_done = ec; });
  } else {
    a.server->async_shutdown([&](error_code ec) { a_done = ec; });
  }
  std::uint8_t b_buf[64];
  std::optional<error_code> b_back;
  const std::string msg = "ping over B";
  net::async_write(*b.client, net::buffer(msg), [](error_code ec, std::size_t) { REQUIRE(!ec); });
  b.server->async_read_some(net::buffer(b_buf), [&](error_code ec, std::size_t n) {
    REQUIRE(!ec);
    net::async_write(*b.server, net::buffer(b_buf, n), [&](error_code wec, std::size_t) {
      REQUIRE(!wec);
      net::async_read(*b.client, net::buffer(b_buf, msg.size()),
                      [&](error_code rec, std::size_t) { b_back = rec; });
    });
  });
  REQUIRE(run_until(io, [&] { return b_back.has_value(); }, std::chrono::seconds(5)));
  CHECK(!*b_back);
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  MESSAGE("B's round trip took " << took << " s while A was stalled");
  CHECK(took < 2.0);
  if (junk_first) {
    // The read that met the junk completes at once; the alert it owes waits for room.
    REQUIRE(run_until(io, [&] { return a_done.has_value(); }, std::chrono::seconds(5)));
    CHECK(*a_done);
  } else {
    CHECK_FALSE(a_done.has_value());  // close_notify still waits for room, nothing failed
    a.server->next_layer().close();   // the caller's bound: close the socket
    REQUIRE(run_until(io, [&] { return a_done.has_value(); }, std::chrono::seconds(5)));
    CHECK(*a_done == net::error::operation_aborted);
  }
}

namespace {

// The operation whose handler sets `got` is waiting; the terminal signal ends it promptly.
void expect_cancelled(net::io_context& io, net::cancellation_signal& sig,
                      const std::optional<error_code>& got) {
  REQUIRE_FALSE(run_until(io, [&] { return got.has_value(); }, std::chrono::milliseconds(200)));
  sig.emit(net::cancellation_type::terminal);
  REQUIRE(run_until(io, [&] { return got.has_value(); }, std::chrono::seconds(2)));
  CHECK(*got == net::error::operation_aborted);
}

}  // namespace

void asio_per_operation_cancellation(Backend backend) {
  net::io_context io;
  {
    INFO("handshake with a server that never answers");
    tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    AsioContext ctx(Role::client, client_policy(TlsVersion::tls13, Cipher::aes_128_gcm));
    auto owned = make_stream(io, ctx, stream_options(backend, "localhost"));
    Stream& client = *owned;
    error_code cec;
    client.next_layer().connect(acceptor.local_endpoint(), cec);
    REQUIRE(!cec);
    tcp::socket silent = acceptor.accept();
    net::cancellation_signal sig;
    std::optional<error_code> got;
    client.async_handshake(Stream::client, net::bind_cancellation_slot(
                                               sig.slot(), [&](error_code ec) { got = ec; }));
    expect_cancelled(io, sig, got);
  }
  StreamPair p = established_pair(io, backend);
  {
    INFO("read with nothing to read; the stream reads on afterwards");
    net::cancellation_signal sig;
    std::optional<error_code> got;
    std::uint8_t buf[64];
    p.server->async_read_some(net::buffer(buf),
                              net::bind_cancellation_slot(
                                  sig.slot(), [&](error_code ec, std::size_t) { got = ec; }));
    expect_cancelled(io, sig, got);
    transfer(io, *p.client, *p.server, random_bytes(5000, 42));
  }
  {
    INFO("write to a peer that does not read");
    fill_until_stalled(p.client->next_layer().native_handle());
    net::cancellation_signal sig;
    std::optional<error_code> got;
    const Bytes data = random_bytes(1 << 20, 7);
    p.client->async_write_some(net::buffer(data),
                               net::bind_cancellation_slot(
                                   sig.slot(), [&](error_code ec, std::size_t) { got = ec; }));
    expect_cancelled(io, sig, got);
  }
}

void asio_associated_executor_and_one_op_per_lane(Backend backend) {
  net::io_context io;
  StreamPair p = established_pair(io, backend);
  auto strand = net::make_strand(io);
  std::atomic<int> on_strand{0}, handlers{0};
  auto check = [&] {
    ++handlers;
    if (strand.running_in_this_thread()) ++on_strand;
  };
  std::uint8_t buf[64];
  std::optional<error_code> second;
  // The first read waits for data; a second one at the same time is refused.
  p.server->async_read_some(net::buffer(buf), net::bind_executor(strand, [&](error_code ec, std::size_t) {
                              CHECK(!ec);
                              check();
                            }));
  p.server->async_read_some(net::buffer(buf), [&](error_code ec, std::size_t) { second = ec; });
  const std::string msg = "hello";
  net::async_write(*p.client, net::buffer(msg), net::bind_executor(strand, [&](error_code ec, std::size_t) {
                     CHECK(!ec);
                     check();
                   }));
  io.restart();
  std::thread other([&] { io.run_for(std::chrono::seconds(10)); });
  io.run_for(std::chrono::seconds(10));
  other.join();
  REQUIRE(second.has_value());
  CHECK(*second == asio::errc::operation_in_progress);
  CHECK(handlers == 2);
  CHECK(on_strand == 2);
  handlers = on_strand = 0;
  io.restart();
  p.client->async_shutdown(net::bind_executor(strand, [&](error_code ec) {
    CHECK(!ec);
    check();
  }));
  // The shutdown waits for the server's close_notify, sent once it read the client's.
  p.server->async_read_some(net::buffer(buf), [&](error_code ec, std::size_t) {
    CHECK(ec == net::error::eof);
    p.server->async_shutdown([](error_code ec) { CHECK(!ec); });
  });
  std::thread other2([&] { io.run_for(std::chrono::seconds(10)); });
  io.run_for(std::chrono::seconds(10));
  other2.join();
  CHECK(handlers == 1);
  CHECK(on_strand == 1);
}

}  // namespace wasi_ktls::test
