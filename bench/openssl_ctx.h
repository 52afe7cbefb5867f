// OpenSSL configured the way a C programmer writes it by hand (no wasi-ktls code): the
// baseline rows and the harness's own load clients use it, so every system meets the same
// client.
#pragma once

#include <openssl/ssl.h>

#include <memory>
#include <string>

#include "base/result.h"
#include "bench/channel.h"

namespace wasi_ktls::bench {

struct SslCtxFree {
  void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
struct SslFree {
  void operator()(SSL* s) const { SSL_free(s); }
};
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;
using SslPtr = std::unique_ptr<SSL, SslFree>;

// Server: tls.cert/tls.key. Client: verifies against tls.pki/ca.pem (name: localhost).
// Version pinned to tls.version; the suite (1.3) or cipher (1.2) pinned too.
Result<SslCtxPtr> make_ssl_ctx(bool server, const TlsSetup& tls, bool ktls = false);

// The queued OpenSSL errors as one line (and the queue emptied).
std::string openssl_errors(const std::string& what);

}  // namespace wasi_ktls::bench
