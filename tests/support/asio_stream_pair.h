// Our Boost.Asio stream in tests: bounded io_context runs, our client and server over loopback
// (coroutines), one of ours against an openssl peer, and data moved between them. Streams take
// a boost::asio::ssl::context sharing the SSL_CTX of a test Policy's TlsContext (pinned
// versions and suites), and a client is given its server name as an Asio user does: SNI and
// the name to verify, set on native_handle(). Failures are doctest REQUIREs.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

#include "ktls/asio/stream.h"
#include "tests/support/openssl_peer.h"
#include "tests/support/tls_matrix.h"

namespace wasi_ktls::test {

using Stream = asio::stream<boost::asio::ip::tcp::socket>;
using boost::system::error_code;

inline constexpr std::chrono::seconds kAsioTimeout{60};

// What a test sets on one of its streams.
struct StreamSetup {
  std::optional<Backend> backend;  // nullopt: WASI_KTLS_BACKEND, else auto
  std::string server_name;         // client: sent as SNI and verified
};
StreamSetup stream_options(Backend b, std::string server_name = "");

// An ssl::context on the SSL_CTX of context(role, policy), which it keeps alive.
struct AsioContext {
  AsioContext(Role role, const Policy& policy);
  TlsContext tls;
  boost::asio::ssl::context ssl;
};

// A stream on `arg` (an io_context or a socket) set up as `setup` says.
template <class Arg>
std::unique_ptr<Stream> make_stream(Arg&& arg, AsioContext& ctx, const StreamSetup& setup);
// SNI and the name the certificate must match ("" : neither).
void set_server_name(SSL* ssl, const std::string& name);

// Runs the io_context until it has no more work, bounded.
void run(boost::asio::io_context& io);

struct StreamPair {
  std::unique_ptr<AsioContext> client_ctx, server_ctx;  // outlive the streams
  std::unique_ptr<Stream> client, server;
  error_code client_ec, server_ec;
};

// Both handshakes as coroutines over loopback.
StreamPair our_pair(boost::asio::io_context& io, const Policy& cp, const Policy& sp,
                    StreamSetup copt, StreamSetup sopt);

// `from` writes all of data (async_write) while `to` reads exactly that much (async_read),
// both as coroutines.
void transfer(boost::asio::io_context& io, Stream& from, Stream& to, const Bytes& data);

// One read_some; its error and byte count.
std::pair<error_code, std::size_t> read_once(boost::asio::io_context& io, Stream& s);

error_code shutdown(boost::asio::io_context& io, Stream& s);

// close_notify both ways, as Asio programs do it: `first` shuts down (and waits for the
// answer) while `second` reads eof and then shuts down. Both must succeed.
void close_both(boost::asio::io_context& io, Stream& first, Stream& second);

// Our client stream connected (plain TCP) to 127.0.0.1:port, handshaken.
struct ConnectedStream {
  std::unique_ptr<AsioContext> ctx;  // outlives the stream
  std::unique_ptr<Stream> stream;
  error_code ec;
};
ConnectedStream connect_to(boost::asio::io_context& io, int port, const Policy& cp, StreamSetup o);

// Our server for one s_client (its `extra` flags, quiet): listens, starts the client, accepts
// and handshakes. `server` is null if the accept failed.
struct ServedStream {
  OpensslPeer peer;
  std::unique_ptr<AsioContext> ctx;
  std::unique_ptr<Stream> server;
  error_code ec;
};
ServedStream serve_s_client(boost::asio::io_context& io, const Policy& sp,
                            const std::vector<std::string>& extra, StreamSetup sopt);

// Data to and from an openssl peer through one of ours, the io_context on a thread.
void send_to_peer(boost::asio::io_context& io, Stream& s, OpensslPeer& peer, const Bytes& data);
void receive_from_peer(boost::asio::io_context& io, Stream& s, OpensslPeer& peer,
                       const Bytes& data);

template <class Arg>
std::unique_ptr<Stream> make_stream(Arg&& arg, AsioContext& ctx, const StreamSetup& setup) {
  asio::StreamOptions o;
  o.backend = setup.backend;
  auto s = std::make_unique<Stream>(std::forward<Arg>(arg), ctx.ssl, o);
  set_server_name(s->native_handle(), setup.server_name);
  return s;
}

}  // namespace wasi_ktls::test
