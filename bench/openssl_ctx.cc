#include "bench/openssl_ctx.h"

#include <openssl/err.h>

namespace wasi_ktls::bench {

std::string openssl_errors(const std::string& what) {
  std::string s = what;
  const char* sep = ": ";
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    s += sep;
    s += buf;
    sep = "; ";
  }
  return s;
}

Result<SslCtxPtr> make_ssl_ctx(bool server, const TlsSetup& tls, bool ktls) {
  SslCtxPtr ctx(SSL_CTX_new(server ? TLS_server_method() : TLS_client_method()));
  if (!ctx) return make_error("{}", openssl_errors("SSL_CTX_new"));
  const int v = tls.version == "1.2" ? TLS1_2_VERSION : TLS1_3_VERSION;
  SSL_CTX_set_min_proto_version(ctx.get(), v);
  SSL_CTX_set_max_proto_version(ctx.get(), v);
  if (SSL_CTX_set_ciphersuites(ctx.get(), tls.tls13_suite.c_str()) != 1 ||
      SSL_CTX_set_cipher_list(ctx.get(), tls.tls12_cipher.c_str()) != 1)
    return make_error("{}", openssl_errors("cipher " + tls.tls13_suite + " / " + tls.tls12_cipher));
  if (ktls) SSL_CTX_set_options(ctx.get(), SSL_OP_ENABLE_KTLS);
  if (server) {
    const std::string cert = tls.pki + "/" + tls.cert, key = tls.pki + "/" + tls.key;
    if (SSL_CTX_use_certificate_chain_file(ctx.get(), cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx.get(), key.c_str(), SSL_FILETYPE_PEM) != 1)
      return make_error("{}", openssl_errors("load " + cert));
  } else {
    const std::string ca = tls.pki + "/ca.pem";
    if (SSL_CTX_load_verify_locations(ctx.get(), ca.c_str(), nullptr) != 1)
      return make_error("{}", openssl_errors("load " + ca));
    SSL_CTX_set_verify(ctx.get(), SSL_VERIFY_PEER, nullptr);
  }
  return ctx;
}

}  // namespace wasi_ktls::bench
