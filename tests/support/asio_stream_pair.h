// Our Boost.Asio Stream in tests: bounded io_context runs, our client and server over loopback
// (coroutines), one of ours against an openssl peer, and data moved between them. Failures are
// doctest REQUIREs.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "ktls/asio/stream.h"
#include "tests/support/openssl_peer.h"
#include "tests/support/tls_matrix.h"

namespace wasi_ktls::test {

using asio::Stream;
using asio::StreamOptions;
using boost::system::error_code;

inline constexpr std::chrono::seconds kAsioTimeout{60};

StreamOptions stream_options(Backend b, std::string server_name = "");

// Runs the io_context until it has no more work, bounded.
void run(boost::asio::io_context& io);

struct StreamPair {
  std::unique_ptr<Stream> client, server;
  error_code client_ec, server_ec;
};

// Both handshakes as coroutines over loopback.
StreamPair our_pair(boost::asio::io_context& io, const Policy& cp, const Policy& sp,
                    StreamOptions copt, StreamOptions sopt);

// `from` writes all of data (async_write) while `to` reads exactly that much (async_read),
// both as coroutines.
void transfer(boost::asio::io_context& io, Stream& from, Stream& to, const Bytes& data);

// One read_some; its error and byte count.
std::pair<error_code, std::size_t> read_once(boost::asio::io_context& io, Stream& s);

error_code shutdown(boost::asio::io_context& io, Stream& s);

// Our client stream connected (plain TCP) to 127.0.0.1:port, handshaken.
std::pair<std::unique_ptr<Stream>, error_code> connect_to(boost::asio::io_context& io, int port,
                                                           const Policy& cp, StreamOptions o);

// Our server for one s_client (its `extra` flags, quiet): listens, starts the client, accepts
// and handshakes. `server` is null if the accept failed.
struct ServedStream {
  OpensslPeer peer;
  std::unique_ptr<Stream> server;
  error_code ec;
};
ServedStream serve_s_client(boost::asio::io_context& io, const Policy& sp,
                            const std::vector<std::string>& extra, StreamOptions sopt);

// Data to and from an openssl peer through one of ours, the io_context on a thread.
void send_to_peer(boost::asio::io_context& io, Stream& s, OpensslPeer& peer, const Bytes& data);
void receive_from_peer(boost::asio::io_context& io, Stream& s, OpensslPeer& peer,
                       const Bytes& data);

}  // namespace wasi_ktls::test
