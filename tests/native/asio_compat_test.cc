// wasi_ktls::asio::stream against Boost's own boost::asio::ssl::stream (as the reference, and
// as the peer): the
// same verify callback calls, the same shutdown results (close_notify answered: success; the
// transport closed instead: stream_truncated), the synchronous API against an Asio server, and
// wasi_ktls::beast::ssl_stream under a Beast WebSocket (teardown) and a beast::tcp_stream
// whose timeout reaches the caller as Beast's own error. Every context is an ordinary
// boost::asio::ssl::context set up with Asio's calls from the test PKI's files.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>

#include <chrono>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_to_string.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket.hpp>

#include "ktls/asio/beast_ssl_stream.h"
#include "ktls/asio/stream.h"
#include "tests/support/tls_contexts.h"

using namespace wasi_ktls;
namespace net = boost::asio;
namespace ssl = net::ssl;
using tcp = net::ip::tcp;
using boost::system::error_code;

namespace {

const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

constexpr auto kBound = std::chrono::seconds(30);

ssl::context client_context() {
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(test::pki().ca);
  ctx.set_verify_mode(ssl::verify_peer);
  return ctx;
}

ssl::context server_context() {
  ssl::context ctx(ssl::context::tls_server);
  ctx.use_certificate_chain_file(test::pki().server_cert);
  ctx.use_private_key_file(test::pki().server_key, ssl::context::pem);
  return ctx;
}

void run(net::io_context& io) {
  io.restart();
  io.run_for(kBound);
  REQUIRE_MESSAGE(io.stopped(), "an operation did not finish in time");
}

// What a server does once its handshake is done and it has read the client's close_notify.
enum class OnClose { answer, drop };

// Boost's own ssl::stream as the server of one connection: handshake, echo what it reads,
// and at the client's close_notify answer with its own or close the TCP connection.
void asio_server(net::io_context& io, tcp::acceptor& acceptor, ssl::context& ctx, OnClose on_close) {
  net::co_spawn(
      io,
      [&, on_close]() -> net::awaitable<void> {
        error_code ec;
        auto token = net::redirect_error(net::use_awaitable, ec);
        ssl::stream<tcp::socket> s(co_await acceptor.async_accept(token), ctx);
        if (ec) co_return;
        co_await s.async_handshake(ssl::stream_base::server, token);
        char buf[4096];
        while (!ec) {
          std::size_t n = co_await s.async_read_some(net::buffer(buf), token);
          if (!ec) co_await net::async_write(s, net::buffer(buf, n), token);
        }
        if (ec != net::error::eof) co_return;
        if (on_close == OnClose::answer)
          co_await s.async_shutdown(token);
        else
          s.lowest_layer().close();
      },
      net::detached);
}

// One client of type Stream: handshake, a round trip, then async_shutdown; its shutdown result.
template <class Stream>
error_code client_shutdown_result(OnClose on_close) {
  net::io_context io;
  ssl::context sctx = server_context(), cctx = client_context();
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  asio_server(io, acceptor, sctx, on_close);
  Stream c(io, cctx);
  error_code result = net::error::would_block;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        error_code ec;
        auto token = net::redirect_error(net::use_awaitable, ec);
        co_await c.next_layer().async_connect(acceptor.local_endpoint(), token);
        co_await c.async_handshake(ssl::stream_base::client, token);
        REQUIRE(!ec);
        char out[] = "ping", in[4];
        co_await net::async_write(c, net::buffer(out, 4), token);
        co_await net::async_read(c, net::buffer(in), token);
        REQUIRE(!ec);
        co_await c.async_shutdown(token);
        result = ec;
      },
      net::detached);
  run(io);
  return result;
}

using Call = std::tuple<bool, int, std::string>;  // preverified, depth, subject

// An Asio server (Boost's ssl::stream) for one connection, on its own thread.
struct ServerThread {
  net::io_context io;
  ssl::context ctx = server_context();
  tcp::acceptor acceptor{io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
  std::thread thread;
  ServerThread() {
    asio_server(io, acceptor, ctx, OnClose::answer);
    thread = std::thread([this] { io.run_for(kBound); });
  }
  ~ServerThread() { thread.join(); }
};

// The verify callback's calls for one handshake of a Stream client against Boost's server,
// and whether the handshake succeeded.
template <class Stream>
std::pair<std::vector<Call>, error_code> verify_calls(bool trust) {
  ServerThread server;
  net::io_context io;
  ssl::context ctx(ssl::context::tls_client);
  ctx.load_verify_file(trust ? test::pki().ca : test::pki().other_ca);
  Stream c(io, ctx);
  std::vector<Call> calls;
  c.set_verify_mode(ssl::verify_peer);
  c.set_verify_callback([&](bool preverified, ssl::verify_context& v) {
    X509* cert = X509_STORE_CTX_get_current_cert(v.native_handle());
    char name[256];
    X509_NAME_oneline(X509_get_subject_name(cert), name, sizeof name);
    calls.emplace_back(preverified, X509_STORE_CTX_get_error_depth(v.native_handle()), name);
    return preverified;
  });
  error_code ec;
  c.next_layer().connect(server.acceptor.local_endpoint());
  c.handshake(ssl::stream_base::client, ec);
  return {calls, ec};
}

}  // namespace

TEST_CASE("shutdown: as ssl::stream, success when answered, stream_truncated when not") {
  using Ours = asio::stream<tcp::socket>;
  using Boosts = ssl::stream<tcp::socket>;
  const error_code boost_answered = client_shutdown_result<Boosts>(OnClose::answer);
  const error_code boost_dropped = client_shutdown_result<Boosts>(OnClose::drop);
  const error_code ours_answered = client_shutdown_result<Ours>(OnClose::answer);
  const error_code ours_dropped = client_shutdown_result<Ours>(OnClose::drop);
  MESSAGE("ssl::stream: " << boost_answered.message() << " / " << boost_dropped.message());
  MESSAGE("ours: " << ours_answered.message() << " / " << ours_dropped.message());
  CHECK(!boost_answered);
  CHECK(boost_dropped == ssl::error::stream_truncated);
  CHECK(ours_answered == boost_answered);
  CHECK(ours_dropped == boost_dropped);
}

TEST_CASE("the verify callback is called as ssl::stream calls it") {
  for (bool trust : {true, false}) {
    INFO((trust ? "trusted chain" : "untrusted chain"));
    auto [boost_calls, boost_ec] = verify_calls<ssl::stream<tcp::socket>>(trust);
    auto [our_calls, our_ec] = verify_calls<asio::stream<tcp::socket>>(trust);
    REQUIRE(!boost_calls.empty());
    CHECK(our_calls == boost_calls);
    CHECK(!boost_ec == trust);
    CHECK(!our_ec == trust);
    for (const auto& [pre, depth, subject] : our_calls)
      MESSAGE("preverified=" << pre << " depth=" << depth << " " << subject);
  }
}

TEST_CASE("synchronous API: handshake, write_some, read_some, shutdown (both overloads)") {
  ServerThread server;
  net::io_context io;
  ssl::context cctx = client_context();
  asio::stream<tcp::socket> c(io, cctx);
  CHECK(c.native_handle() != nullptr);  // before the handshake: SNI, verification go here
  REQUIRE(SSL_set_tlsext_host_name(c.native_handle(), "localhost") == 1);
  c.set_verify_callback(ssl::host_name_verification("localhost"));
  c.lowest_layer().connect(server.acceptor.local_endpoint());
  c.handshake(ssl::stream_base::client);  // throws on failure
  const std::string msg = "synchronous hello";
  net::write(c, net::buffer(msg));
  std::string got(msg.size(), '\0');
  net::read(c, net::buffer(got));
  CHECK(got == msg);
  error_code ec;
  c.shutdown(ec);
  CHECK_MESSAGE(!ec, ec.message() << ": " << c.last_error());
  char b[8];
  CHECK(c.read_some(net::buffer(b), ec) == 0);
  CHECK(ec == net::error::eof);
  CHECK_THROWS_AS(c.write_some(net::buffer(msg)), boost::system::system_error);
}

TEST_CASE("host_name_verification on our stream refuses a certificate for another name") {
  ServerThread server;
  net::io_context io;
  ssl::context ctx = client_context();
  asio::stream<tcp::socket> c(io, ctx);
  c.set_verify_callback(ssl::host_name_verification("not-localhost.example"));
  c.next_layer().connect(server.acceptor.local_endpoint());
  error_code ec;
  c.handshake(ssl::stream_base::client, ec);
  CHECK(ec == asio::errc::handshake_failed);
  MESSAGE(c.last_error());
}

TEST_CASE("Beast: WebSocket over beast::ssl_stream<tcp_stream>, close with teardown") {
  namespace websocket = boost::beast::websocket;
  using Ws = websocket::stream<beast::ssl_stream<boost::beast::tcp_stream>>;
  net::io_context io;
  ssl::context sctx = server_context(), cctx = client_context();
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  std::string server_got, client_got;
  error_code server_ec = net::error::would_block, client_ec = net::error::would_block;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        error_code ec;
        auto token = net::redirect_error(net::use_awaitable, ec);
        Ws ws(co_await acceptor.async_accept(token), sctx);
        co_await ws.next_layer().async_handshake(ssl::stream_base::server, token);
        co_await ws.async_accept(token);
        boost::beast::flat_buffer buf;
        co_await ws.async_read(buf, token);
        server_got = boost::beast::buffers_to_string(buf.data());
        co_await ws.async_write(buf.data(), token);
        buf.clear();
        co_await ws.async_read(buf, token);  // the client's close: teardown follows
        server_ec = ec;
      },
      net::detached);
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        error_code ec;
        auto token = net::redirect_error(net::use_awaitable, ec);
        Ws ws(io, cctx);
        boost::beast::get_lowest_layer(ws).expires_after(kBound);
        co_await boost::beast::get_lowest_layer(ws).async_connect(acceptor.local_endpoint(), token);
        co_await ws.next_layer().async_handshake(ssl::stream_base::client, token);
        co_await ws.async_handshake("localhost", "/", token);
        co_await ws.async_write(net::buffer(std::string("over kTLS's Beast stream")), token);
        boost::beast::flat_buffer buf;
        co_await ws.async_read(buf, token);
        client_got = boost::beast::buffers_to_string(buf.data());
        co_await ws.async_close(websocket::close_code::normal, token);
        client_ec = ec;
      },
      net::detached);
  run(io);
  CHECK(server_got == "over kTLS's Beast stream");
  CHECK(client_got == server_got);
  CHECK_MESSAGE(!client_ec, client_ec.message());
  CHECK(server_ec == websocket::error::closed);
}

TEST_CASE("Beast: a tcp_stream timeout reaches the caller as Beast's error::timeout") {
  net::io_context io;
  ssl::context sctx = server_context(), cctx = client_context();
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  asio_server(io, acceptor, sctx, OnClose::answer);  // handshakes, then waits to be sent data
  beast::ssl_stream<boost::beast::tcp_stream> c(io, cctx);
  error_code read_ec = net::error::would_block;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        error_code ec;
        auto token = net::redirect_error(net::use_awaitable, ec);
        co_await boost::beast::get_lowest_layer(c).async_connect(acceptor.local_endpoint(), token);
        co_await c.async_handshake(ssl::stream_base::client, token);
        REQUIRE(!ec);
        boost::beast::get_lowest_layer(c).expires_after(std::chrono::milliseconds(300));
        char b[16];
        co_await c.async_read_some(net::buffer(b), token);
        read_ec = ec;
      },
      net::detached);
  const auto t0 = std::chrono::steady_clock::now();
  io.restart();
  io.run_for(kBound);
  CHECK(read_ec == boost::beast::error::timeout);
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::seconds(10));
}
