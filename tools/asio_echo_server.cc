// A TLS echo server on the Boost.Asio stream, with coroutines: every byte a client sends comes
// back, until the client's close_notify (answered with ours). One line per connection says
// which transport carried it and why. Its TLS set-up is an ordinary boost::asio::ssl::context's.
// Example of the API more than a tool:
//   asio-echo-server --cert server.pem --key server.key --port 8443 [--backend ktls]
#include <cstdio>
#include <string>

#include <CLI/CLI.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>

#include <boost/asio/ssl/context.hpp>

#include "ktls/asio/stream.h"

namespace net = boost::asio;
using net::ip::tcp;
using namespace wasi_ktls;
using Stream = asio::stream<tcp::socket>;

namespace {

net::awaitable<void> echo(Stream stream) {
  boost::system::error_code ec;
  auto token = net::redirect_error(net::use_awaitable, ec);
  co_await stream.async_handshake(Stream::server, token);
  if (ec) {
    std::printf("handshake failed: %s\n", stream.last_error().c_str());
    co_return;
  }
  std::uint64_t echoed = 0;
  std::vector<char> buf(64 * 1024);
  for (;;) {
    std::size_t n = co_await stream.async_read_some(net::buffer(buf), token);
    if (ec) break;
    co_await net::async_write(stream, net::buffer(buf.data(), n), token);
    if (ec) break;
    echoed += n;
  }
  const bool clean = ec == net::error::eof;
  if (clean) co_await stream.async_shutdown(token);
  std::printf("TLS %s %s transport=%s%s%s echoed=%llu end=%s\n",
              std::string(to_string(stream.info().version)).c_str(), stream.info().suite.c_str(),
              std::string(to_string(stream.transport())).c_str(),
              stream.transport_reason().empty() ? "" : " reason=",
              stream.transport_reason().c_str(), static_cast<unsigned long long>(echoed),
              clean ? "close_notify" : stream.last_error().c_str());
  std::fflush(stdout);
}

net::awaitable<void> serve(tcp::acceptor& acceptor, net::ssl::context& ctx,
                           asio::StreamOptions opts, int max_connections) {
  for (int served = 0; max_connections == 0 || served < max_connections; ++served) {
    tcp::socket socket = co_await acceptor.async_accept(net::use_awaitable);
    net::co_spawn(acceptor.get_executor(), echo(Stream(std::move(socket), ctx, opts)),
                  net::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"TLS echo server on the wasi-ktls Boost.Asio stream"};
  std::string cert, key, backend, bind = "127.0.0.1";
  int port = 0, max_connections = 0;
  app.add_option("--cert", cert, "certificate chain (PEM)")->required();
  app.add_option("--key", key, "private key (PEM)")->required();
  app.add_option("--port", port, "TCP port (0: any; the chosen one is printed)");
  app.add_option("--bind", bind, "address to listen on");
  app.add_option("--backend", backend, "auto | ktls | userspace (default: WASI_KTLS_BACKEND, else auto)");
  app.add_option("--max-connections", max_connections, "exit after serving this many (0: never)");
  CLI11_PARSE(app, argc, argv);

  asio::StreamOptions opts;
  if (!backend.empty()) {
    auto b = parse_backend(backend);
    if (!b) {
      std::fprintf(stderr, "asio-echo-server: %s\n", b.error().message.c_str());
      return 2;
    }
    opts.backend = *b;
  }
  try {
    net::ssl::context ctx(net::ssl::context::tls_server);
    ctx.use_certificate_chain_file(cert);
    ctx.use_private_key_file(key, net::ssl::context::pem);
    net::io_context io;
    tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address(bind),
                                             static_cast<unsigned short>(port)));
    std::printf("listening on %s:%u\n", bind.c_str(), acceptor.local_endpoint().port());
    std::fflush(stdout);
    net::co_spawn(io, serve(acceptor, ctx, opts, max_connections), net::detached);
    io.run();
  } catch (const std::exception& e) {  // Asio reports key, bind and listen failures so
    std::fprintf(stderr, "asio-echo-server: %s\n", e.what());
    return 1;
  }
  return 0;
}
