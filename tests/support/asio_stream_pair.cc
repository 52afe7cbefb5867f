#include "tests/support/asio_stream_pair.h"

#include <doctest/doctest.h>

#include <openssl/ssl.h>

#include <cstring>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include "tests/support/tls_contexts.h"

namespace wasi_ktls::test {

namespace net = boost::asio;
using tcp = net::ip::tcp;

StreamSetup stream_options(Backend b, std::string server_name) {
  StreamSetup o;
  o.backend = b;
  o.server_name = std::move(server_name);
  return o;
}

namespace {

SSL_CTX* shared(const TlsContext& tls) {
  SSL_CTX_up_ref(tls.native());
  return tls.native();
}

}  // namespace

AsioContext::AsioContext(Role role, const Policy& policy)
    : tls(context(role, policy)), ssl(shared(tls)) {}

void set_server_name(SSL* ssl, const std::string& name) {
  if (name.empty()) return;
  REQUIRE(SSL_set_tlsext_host_name(ssl, name.c_str()) == 1);
  REQUIRE(SSL_set1_host(ssl, name.c_str()) == 1);
}

void run(net::io_context& io) {
  io.restart();
  io.run_for(kAsioTimeout);
  REQUIRE_MESSAGE(io.stopped(), "an operation did not finish in time");
}

StreamPair our_pair(net::io_context& io, const Policy& cp, const Policy& sp, StreamSetup copt,
                    StreamSetup sopt) {
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  const auto endpoint = acceptor.local_endpoint();
  StreamPair p;
  p.client_ctx = std::make_unique<AsioContext>(Role::client, cp);
  p.server_ctx = std::make_unique<AsioContext>(Role::server, sp);
  p.client = make_stream(io, *p.client_ctx, copt);
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        error_code ec;
        tcp::socket sock =
            co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, ec));
        if (ec) {
          p.server_ec = ec;
          co_return;
        }
        p.server = make_stream(std::move(sock), *p.server_ctx, sopt);
        co_await p.server->async_handshake(Stream::server,
                                           net::redirect_error(net::use_awaitable, p.server_ec));
      },
      net::detached);
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        error_code ec;
        co_await p.client->next_layer().async_connect(endpoint,
                                                       net::redirect_error(net::use_awaitable, ec));
        if (ec) {
          p.client_ec = ec;
          co_return;
        }
        co_await p.client->async_handshake(Stream::client,
                                           net::redirect_error(net::use_awaitable, p.client_ec));
      },
      net::detached);
  run(io);
  return p;
}

void transfer(net::io_context& io, Stream& from, Stream& to, const Bytes& data) {
  INFO(data.size() << " bytes");
  error_code wec, rec;
  std::size_t wn = 0, rn = 0;
  Bytes got(data.size());
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        wn = co_await net::async_write(from, net::buffer(data),
                                       net::redirect_error(net::use_awaitable, wec));
      },
      net::detached);
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        rn = co_await net::async_read(to, net::buffer(got),
                                      net::redirect_error(net::use_awaitable, rec));
      },
      net::detached);
  run(io);
  REQUIRE_MESSAGE(!wec, wec.message() << ": " << from.last_error());
  REQUIRE_MESSAGE(!rec, rec.message() << ": " << to.last_error());
  CHECK(wn == data.size());
  REQUIRE(rn == data.size());
  CHECK(got == data);
}

std::pair<error_code, std::size_t> read_once(net::io_context& io, Stream& s) {
  std::pair<error_code, std::size_t> r{net::error::would_block, 0};
  static std::uint8_t buf[256];
  s.async_read_some(net::buffer(buf), [&](error_code ec, std::size_t n) { r = {ec, n}; });
  run(io);
  return r;
}

error_code shutdown(net::io_context& io, Stream& s) {
  error_code r = net::error::would_block;
  s.async_shutdown([&](error_code ec) { r = ec; });
  run(io);
  return r;
}

void close_both(net::io_context& io, Stream& first, Stream& second) {
  error_code first_ec = net::error::would_block, read_ec, second_ec = net::error::would_block;
  first.async_shutdown([&](error_code ec) { first_ec = ec; });
  static std::uint8_t buf[64];
  second.async_read_some(net::buffer(buf), [&](error_code ec, std::size_t) {
    read_ec = ec;
    second.async_shutdown([&](error_code ec) { second_ec = ec; });
  });
  run(io);
  CHECK_MESSAGE(!first_ec, first_ec.message() << ": " << first.last_error());
  CHECK(read_ec == net::error::eof);
  CHECK_MESSAGE(!second_ec, second_ec.message() << ": " << second.last_error());
}

ConnectedStream connect_to(net::io_context& io, int port, const Policy& cp, StreamSetup o) {
  auto ctx = std::make_unique<AsioContext>(Role::client, cp);
  auto s = make_stream(io, *ctx, o);
  error_code ec = net::error::would_block;
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        co_await s->next_layer().async_connect(
            tcp::endpoint(net::ip::make_address("127.0.0.1"), static_cast<unsigned short>(port)),
            net::redirect_error(net::use_awaitable, ec));
        if (ec) co_return;
        co_await s->async_handshake(Stream::client, net::redirect_error(net::use_awaitable, ec));
      },
      net::detached);
  run(io);
  return {std::move(ctx), std::move(s), ec};
}

ServedStream serve_s_client(net::io_context& io, const Policy& sp,
                            const std::vector<std::string>& extra, StreamSetup sopt) {
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
  ServedStream s{start_s_client(acceptor.local_endpoint().port(), extra),
                 std::make_unique<AsioContext>(Role::server, sp), nullptr,
                 net::error::would_block};
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        tcp::socket sock =
            co_await acceptor.async_accept(net::redirect_error(net::use_awaitable, s.ec));
        if (s.ec) co_return;
        s.server = make_stream(std::move(sock), *s.ctx, sopt);
        co_await s.server->async_handshake(Stream::server,
                                           net::redirect_error(net::use_awaitable, s.ec));
      },
      net::detached);
  run(io);
  return s;
}

namespace {

// Runs io until its work is done, on the peer helpers' thread.
void run_on_thread(net::io_context& io) {
  io.restart();
  io.run_for(kAsioTimeout);
}

Status as_status(const error_code& ec, const Stream& s) {
  if (!ec) return {};
  return make_error("{}: {}", ec.message(), s.last_error());
}

}  // namespace

void send_to_peer(net::io_context& io, Stream& s, OpensslPeer& peer, const Bytes& data) {
  send_to_peer(peer, data, [&]() -> Status {
    error_code wec = net::error::would_block;
    net::async_write(s, net::buffer(data), [&](error_code ec, std::size_t) { wec = ec; });
    run_on_thread(io);
    return as_status(wec, s);
  });
}

void receive_from_peer(net::io_context& io, Stream& s, OpensslPeer& peer, const Bytes& data) {
  receive_from_peer(peer, data, [&](Bytes& into) -> Result<std::size_t> {
    error_code rec = net::error::would_block;
    std::size_t rn = 0;
    net::async_read(s, net::buffer(into), [&](error_code ec, std::size_t n) {
      rec = ec;
      rn = n;
    });
    run_on_thread(io);
    if (Status st = as_status(rec, s); !st) return st.error();
    return rn;
  });
}

}  // namespace wasi_ktls::test
