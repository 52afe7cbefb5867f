// What a user configures for TLS, and the OpenSSL context built from it once.
// Secure by default: servers are verified against the system trust store unless told otherwise;
// only AEAD suites the kernel can carry are offered.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "base/result.h"
#include "handshake/tls_params.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace wasi_ktls {

// PEM text, from a file or from memory. The text may be a private key, so every PemSource
// wipes what `value` held when it is destroyed, assigned to or moved from (a copy is a
// PemSource too): freed memory keeps no copy. A string handed to data() by copy stays the
// caller's to wipe; hand it over with std::move.
struct PemSource {
  enum class Kind { none, file, data };
  Kind kind = Kind::none;
  std::string value;  // the path, or the PEM text itself

  static PemSource file(std::string path);
  static PemSource data(std::string pem);
  bool empty() const { return kind == Kind::none; }

  PemSource() = default;
  PemSource(const PemSource&) = default;
  PemSource(PemSource&& o) noexcept;  // `o` is left empty (Kind::none)
  PemSource& operator=(const PemSource& o);
  PemSource& operator=(PemSource&& o) noexcept;
  ~PemSource();
};

enum class ClientAuth {
  none,      // server does not ask for a client certificate
  optional,  // asks; verifies one if presented
  required,  // asks; the handshake fails without a valid one
};

inline constexpr const char* kDefaultTls13Suites =
    "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256";
inline constexpr const char* kDefaultTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

struct Policy {
  // Trust anchors for verifying the peer: CA certificates (file or PEM text) and/or a hashed
  // CA directory. With neither, a client uses the system trust store; a server that asks for
  // client certificates must have one or the other.
  PemSource ca;
  std::string ca_dir;

  // Turns off verification of the server's certificate and name (client). Never in production.
  bool insecure_skip_verify_DANGEROUS = false;

  // Our identity: certificate chain (leaf first) and private key. Required for a server;
  // a client presents it when the server asks (mTLS).
  PemSource certificate_chain;
  PemSource private_key;

  // Server: whether to ask for and verify a client certificate (against `ca`/`ca_dir`, never
  // the system trust store).
  ClientAuth client_auth = ClientAuth::none;

  // ALPN protocol names. Client: offered in order. Server: its preference order.
  std::vector<std::string> alpn;
  // Server: a ClientHello offering no protocol of ours (or no ALPN at all) is refused with
  // no_application_protocol. Off (as in s_server): the handshake continues without ALPN.
  bool alpn_required = false;

  // OpenSSL hands the TLS 1.3 traffic secrets a kernel hand-over needs only to a keylog
  // callback, printed as hex (about 5% of a server handshake's instructions). A program whose
  // connections never go to the kernel (backend userspace, or a kernel without TLS 1.3) turns
  // this off; TLS 1.3 take_keys then fails, saying so. TLS 1.2 keys never need it.
  bool capture_tls13_secrets = true;

  TlsVersion min_version = TlsVersion::tls12;
  TlsVersion max_version = TlsVersion::tls13;
  std::string tls13_suites = kDefaultTls13Suites;   // SSL_CTX_set_ciphersuites syntax
  std::string tls12_ciphers = kDefaultTls12Ciphers;  // SSL_CTX_set_cipher_list syntax
};

// An SSL_CTX built from a Policy for one role. Cheap to copy (shared, immutable once built);
// Sessions keep it alive.
class TlsContext {
 public:
  static Result<TlsContext> create(Role role, const Policy& policy);

  Role role() const;
  // False only with insecure_skip_verify_DANGEROUS (client) or ClientAuth::none (server).
  bool verifies_peer() const;
  SSL_CTX* native() const;  // for Session and for tests that inspect it

  struct State;

 private:
  explicit TlsContext(std::shared_ptr<const State> s) : state_(std::move(s)) {}
  std::shared_ptr<const State> state_;
  friend class Session;
};

}  // namespace wasi_ktls
