// A blocking SSL_read/SSL_write loop on the socket: what most C programs do. With `ktls`,
// OpenSSL's own kernel TLS (SSL_OP_ENABLE_KTLS), which it engages per direction where it
// can; OpenSSL 3.0 cannot receive TLS 1.3 in the kernel, so that row says so.
#include <openssl/bio.h>

#include "bench/channel.h"
#include "bench/openssl_ctx.h"

namespace wasi_ktls::bench {
namespace {

class OpenSslChannel : public Channel {
 public:
  OpenSslChannel(UniqueFd fd, SslCtxPtr ctx, SslPtr ssl, std::string transport)
      : fd_(std::move(fd)), ctx_(std::move(ctx)), ssl_(std::move(ssl)), transport_(std::move(transport)) {}
  Result<std::size_t> write(std::span<const std::uint8_t> data) override {
    std::size_t n = 0;
    if (SSL_write_ex(ssl_.get(), data.data(), data.size(), &n) != 1)
      return make_error("{}", openssl_errors("SSL_write"));
    return n;
  }
  Result<std::size_t> read(std::span<std::uint8_t> buf) override {
    std::size_t n = 0;
    if (SSL_read_ex(ssl_.get(), buf.data(), buf.size(), &n) == 1) return n;
    if (SSL_get_error(ssl_.get(), 0) == SSL_ERROR_ZERO_RETURN) return std::size_t{0};
    return make_error("{}", openssl_errors("SSL_read"));
  }
  std::string transport() const override { return transport_; }

 private:
  UniqueFd fd_;
  SslCtxPtr ctx_;
  SslPtr ssl_;
  std::string transport_;
};

}  // namespace

Result<std::unique_ptr<Channel>> open_openssl(bool server, bool ktls, UniqueFd fd,
                                              const TlsSetup& tls) {
  auto ctx = make_ssl_ctx(server, tls, ktls);
  if (!ctx) return ctx.error();
  SslPtr ssl(SSL_new(ctx->get()));
  if (!ssl || SSL_set_fd(ssl.get(), fd.get()) != 1) return make_error("{}", openssl_errors("SSL_new"));
  if (!server) SSL_set1_host(ssl.get(), "localhost");
  if ((server ? SSL_accept(ssl.get()) : SSL_connect(ssl.get())) != 1)
    return make_error(ErrorKind::handshake, "{}", openssl_errors("handshake"));
  std::string transport = "userspace (OpenSSL)";
  if (ktls) {
    const bool tx = BIO_get_ktls_send(SSL_get_wbio(ssl.get()));
    const bool rx = BIO_get_ktls_recv(SSL_get_rbio(ssl.get()));
    if (!tx && !rx)
      return make_error(ErrorKind::backend_unavailable,
                        "OpenSSL did not enable kTLS in either direction (kernel without kTLS?)");
    transport = tx && rx ? "kernel both ways (OpenSSL kTLS)"
                         : tx ? "kernel TX only (OpenSSL kTLS; RX in userspace: OpenSSL 3.0 "
                                "cannot receive TLS 1.3 in the kernel)"
                              : "kernel RX only (OpenSSL kTLS)";
  }
  return std::unique_ptr<Channel>(
      std::make_unique<OpenSslChannel>(std::move(fd), std::move(*ctx), std::move(ssl), transport));
}

}  // namespace wasi_ktls::bench
