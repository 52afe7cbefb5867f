// What an Asio user has today: boost::asio::ssl::stream<tcp::socket>, synchronous calls.
// Asio's stream runs OpenSSL over a memory BIO pair, so its records are always encrypted in
// userspace and copied once more through Asio's buffers.
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>

#include "bench/channel.h"
#include "bench/openssl_ctx.h"

namespace wasi_ktls::bench {
namespace {

namespace net = boost::asio;

class AsioChannel : public Channel {
 public:
  AsioChannel(SslCtxPtr ctx) : ssl_ctx_(ctx.release()), stream_(io_, ssl_ctx_) {}
  net::ssl::stream<net::ip::tcp::socket>& stream() { return stream_; }
  Result<std::size_t> write(std::span<const std::uint8_t> data) override {
    boost::system::error_code ec;
    std::size_t n = stream_.write_some(net::buffer(data.data(), data.size()), ec);
    if (ec) return make_error("asio write_some: {}", ec.message());
    return n;
  }
  Result<std::size_t> read(std::span<std::uint8_t> buf) override {
    boost::system::error_code ec;
    std::size_t n = stream_.read_some(net::buffer(buf.data(), buf.size()), ec);
    if (ec == net::error::eof) return std::size_t{0};
    if (ec) return make_error("asio read_some: {}", ec.message());
    return n;
  }
  std::string transport() const override { return "userspace (Asio ssl::stream, memory BIO)"; }

 private:
  net::io_context io_;
  net::ssl::context ssl_ctx_;  // adopts the SSL_CTX
  net::ssl::stream<net::ip::tcp::socket> stream_;
};

}  // namespace

Result<std::unique_ptr<Channel>> open_asio(bool server, UniqueFd fd, const TlsSetup& tls) {
  auto ctx = make_ssl_ctx(server, tls);
  if (!ctx) return ctx.error();
  auto ch = std::make_unique<AsioChannel>(std::move(*ctx));
  boost::system::error_code ec;
  ch->stream().next_layer().assign(net::ip::tcp::v4(), fd.get(), ec);
  if (ec) return make_error("asio assign: {}", ec.message());
  (void)fd.release();  // the socket owns it now
  if (!server) SSL_set1_host(ch->stream().native_handle(), "localhost");
  ch->stream().handshake(server ? net::ssl::stream_base::server : net::ssl::stream_base::client, ec);
  if (ec) return make_error(ErrorKind::handshake, "asio handshake: {}", ec.message());
  return std::unique_ptr<Channel>(std::move(ch));
}

}  // namespace wasi_ktls::bench
