#include "handshake/policy.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <utility>

#include "handshake/openssl_error.h"
#include "handshake/openssl_memory.h"
#include "handshake/session.h"

namespace wasi_ktls {

namespace {

// Every byte the string owns: past size() lies what a longer earlier value left, and a short
// string lives inside the std::string object itself, where a move copies it from.
void wipe(std::string& s) noexcept {
  s.resize(s.capacity());  // within capacity: no reallocation
  OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

}  // namespace

PemSource PemSource::file(std::string path) {
  PemSource s;
  s.kind = Kind::file;
  s.value = std::move(path);
  wipe(path);
  return s;
}

PemSource PemSource::data(std::string pem) {
  PemSource s;
  s.kind = Kind::data;
  s.value = std::move(pem);
  wipe(pem);
  return s;
}

PemSource::PemSource(PemSource&& o) noexcept
    : kind(std::exchange(o.kind, Kind::none)), value(std::move(o.value)) {
  wipe(o.value);
}

PemSource& PemSource::operator=(const PemSource& o) {
  if (this != &o) {
    wipe(value);  // a longer text gets a new buffer: ours would be freed, or left inline, as is
    kind = o.kind;
    value = o.value;
  }
  return *this;
}

PemSource& PemSource::operator=(PemSource&& o) noexcept {
  if (this != &o) {
    wipe(value);  // taking over o's buffer leaves ours to `o`, or our inline bytes behind
    kind = std::exchange(o.kind, Kind::none);
    value = std::move(o.value);
    wipe(o.value);
  }
  return *this;
}

PemSource::~PemSource() { wipe(value); }

struct TlsContext::State {
  SSL_CTX* ctx = nullptr;
  Role role = Role::client;
  bool verify = true;
  std::vector<unsigned char> alpn_wire;  // server preference list, length-prefixed
  bool alpn_required = false;
  ~State() { SSL_CTX_free(ctx); }
};

namespace {

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;
struct X509Free {
  void operator()(X509* x) const { X509_free(x); }
};
using X509Ptr = std::unique_ptr<X509, X509Free>;
struct PkeyFree {
  void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

std::string describe(const PemSource& src, std::string_view what) {
  if (src.kind == PemSource::Kind::file) return fmt::format("{} file {}", what, src.value);
  return fmt::format("in-memory {} PEM", what);
}

std::string reason_or(std::string reason, std::string_view fallback) {
  return reason.empty() ? std::string(fallback) : reason;
}

Result<BioPtr> open_pem(const PemSource& src, std::string_view what) {
  ERR_clear_error();
  BIO* b = src.kind == PemSource::Kind::file
               ? BIO_new_file(src.value.c_str(), "r")
               : BIO_new_mem_buf(src.value.data(), static_cast<int>(src.value.size()));
  if (b == nullptr)
    return make_error("cannot read {}: {}", describe(src, what),
                      reason_or(drain_openssl_errors(), "cannot open"));
  return BioPtr(b);
}

// Never prompt on a terminal for a passphrase: encrypted keys are an error.
int no_passphrase(char*, int, int, void*) { return -1; }

// All certificates in a PEM source; an error if there are none or one is malformed.
Result<std::vector<X509Ptr>> read_certificates(const PemSource& src, std::string_view what) {
  auto bio = open_pem(src, what);
  if (!bio) return bio.error();
  std::vector<X509Ptr> certs;
  while (X509* x = PEM_read_bio_X509(bio->get(), nullptr, no_passphrase, nullptr))
    certs.emplace_back(x);
  unsigned long last = ERR_peek_last_error();
  if (ERR_GET_LIB(last) == ERR_LIB_PEM && ERR_GET_REASON(last) == PEM_R_NO_START_LINE &&
      !certs.empty()) {
    ERR_clear_error();  // the normal end of the file
  } else if (last != 0 || certs.empty()) {
    return make_error("cannot read {}: {}", describe(src, what),
                      reason_or(drain_openssl_errors(), "no certificate in it"));
  }
  return certs;
}

Status load_identity(SSL_CTX* ctx, const Policy& p) {
  if (p.certificate_chain.empty() != p.private_key.empty())
    return make_error("a certificate needs its private key and a key needs its certificate");
  if (p.certificate_chain.empty()) return {};
  auto chain = read_certificates(p.certificate_chain, "certificate");
  if (!chain) return chain.error();
  auto bio = open_pem(p.private_key, "private key");
  if (!bio) return bio.error();
  std::unique_ptr<EVP_PKEY, PkeyFree> key(
      PEM_read_bio_PrivateKey(bio->get(), nullptr, no_passphrase, nullptr));
  if (!key)
    return make_error("cannot read {}: {}", describe(p.private_key, "private key"),
                      reason_or(drain_openssl_errors(), "no private key in it"));
  X509* leaf = chain->front().get();
  if (X509_check_private_key(leaf, key.get()) != 1) {
    drain_openssl_errors();
    return make_error("private key ({}) does not match certificate ({})",
                      describe(p.private_key, "private key"),
                      describe(p.certificate_chain, "certificate"));
  }
  if (SSL_CTX_use_certificate(ctx, leaf) != 1 || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1)
    return make_error("cannot use {}: {}", describe(p.certificate_chain, "certificate"),
                      drain_openssl_errors());
  for (std::size_t i = 1; i < chain->size(); ++i)
    if (SSL_CTX_add1_chain_cert(ctx, (*chain)[i].get()) != 1)
      return make_error("cannot add chain certificate {} of {}: {}", i,
                        describe(p.certificate_chain, "certificate"), drain_openssl_errors());
  return {};
}

Status load_trust(SSL_CTX* ctx, const Policy& p, Role role) {
  if (!p.ca.empty()) {
    auto certs = read_certificates(p.ca, "CA");
    if (!certs) return certs.error();
    X509_STORE* store = SSL_CTX_get_cert_store(ctx);
    for (auto& x : *certs) {
      if (X509_STORE_add_cert(store, x.get()) != 1)
        return make_error("cannot add {} to the trust store: {}", describe(p.ca, "CA"),
                          drain_openssl_errors());
      // Tell clients which CAs we accept their certificates from.
      if (role == Role::server && SSL_CTX_add_client_CA(ctx, x.get()) != 1)
        return make_error("cannot use {} as client CA: {}", describe(p.ca, "CA"),
                          drain_openssl_errors());
    }
  }
  if (!p.ca_dir.empty() && SSL_CTX_load_verify_dir(ctx, p.ca_dir.c_str()) != 1)
    return make_error("cannot use CA directory {}: {}", p.ca_dir,
                      reason_or(drain_openssl_errors(), "unusable"));
  if (!p.ca.empty() || !p.ca_dir.empty()) return {};
  // The public web PKI vouches for names, not for who may connect: any certificate a public
  // CA issued to anyone would pass.
  if (role == Role::server)
    return make_error(
        "client_auth {} needs a CA (Policy::ca or ca_dir) to verify client certificates with; "
        "the system trust store is not used for clients",
        p.client_auth == ClientAuth::required ? "required" : "optional");
  if (SSL_CTX_set_default_verify_paths(ctx) != 1)
    return make_error("cannot load the system trust store: {}", drain_openssl_errors());
  return {};
}

Result<std::vector<unsigned char>> alpn_wire(const std::vector<std::string>& names) {
  std::vector<unsigned char> wire;
  for (const auto& n : names) {
    if (n.empty() || n.size() > 255) return make_error("ALPN protocol name '{}' must be 1..255 bytes", n);
    wire.push_back(static_cast<unsigned char>(n.size()));
    wire.insert(wire.end(), n.begin(), n.end());
  }
  return wire;
}

// Server: choose by our preference among what the client offered.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned int inlen, void* arg) {
  auto* st = static_cast<const TlsContext::State*>(arg);
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, st->alpn_wire.data(),
                            static_cast<unsigned int>(st->alpn_wire.size()), in,
                            inlen) == OPENSSL_NPN_NEGOTIATED) {
    *out = chosen;
    return SSL_TLSEXT_ERR_OK;
  }
  return st->alpn_required ? SSL_TLSEXT_ERR_ALERT_FATAL : SSL_TLSEXT_ERR_NOACK;
}

// Server with alpn_required: a ClientHello without ALPN is refused too.
int require_alpn(SSL* ssl, int* alert, void*) {
  const unsigned char* ext = nullptr;
  size_t len = 0;
  if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_application_layer_protocol_negotiation, &ext,
                                &len) == 1)
    return SSL_CLIENT_HELLO_SUCCESS;
  *alert = SSL_AD_NO_APPLICATION_PROTOCOL;
  return SSL_CLIENT_HELLO_ERROR;
}

}  // namespace

Result<TlsContext> TlsContext::create(Role role, const Policy& p) {
  // Also links openssl_memory.o, whose load-time initialiser makes OpenSSL wipe its frees.
  (void)openssl_frees_are_wiped();
  auto st = std::make_shared<State>();
  st->role = role;
  st->ctx = SSL_CTX_new(role == Role::client ? TLS_client_method() : TLS_server_method());
  if (st->ctx == nullptr) return make_error("SSL_CTX_new failed: {}", drain_openssl_errors());
  SSL_CTX* ctx = st->ctx;

  if (p.min_version > p.max_version)
    return make_error("minimum TLS version {} is above the maximum {}", to_string(p.min_version),
                      to_string(p.max_version));
  SSL_CTX_set_min_proto_version(ctx, static_cast<int>(p.min_version));
  SSL_CTX_set_max_proto_version(ctx, static_cast<int>(p.max_version));

  // What the kernel can carry: no compression, no renegotiation; OpenSSL never touches the
  // socket itself (no KTLS option) and never reads past the record it needs (no read-ahead).
  SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_clear_options(ctx, SSL_OP_ENABLE_KTLS);
  SSL_CTX_set_read_ahead(ctx, 0);

  if (SSL_CTX_set_ciphersuites(ctx, p.tls13_suites.c_str()) != 1)
    return make_error("no usable TLS 1.3 suite in '{}': {}", p.tls13_suites, drain_openssl_errors());
  if (SSL_CTX_set_cipher_list(ctx, p.tls12_ciphers.c_str()) != 1)
    return make_error("no usable TLS 1.2 cipher in '{}': {}", p.tls12_ciphers, drain_openssl_errors());

  if (role == Role::server && p.certificate_chain.empty())
    return make_error("a server needs a certificate chain and private key");
  if (auto s = load_identity(ctx, p); !s) return s.error();

  if (role == Role::client) {
    st->verify = !p.insecure_skip_verify_DANGEROUS;
  } else {
    st->verify = p.client_auth != ClientAuth::none;
  }
  if (st->verify) {
    if (auto s = load_trust(ctx, p, role); !s) return s.error();
  }
  int mode = SSL_VERIFY_NONE;
  if (st->verify) mode = SSL_VERIFY_PEER;
  if (role == Role::server && p.client_auth == ClientAuth::required)
    mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, nullptr);

  if (role == Role::server) {
    static constexpr unsigned char kSidCtx[] = "wasi-ktls";
    SSL_CTX_set_session_id_context(ctx, kSidCtx, sizeof kSidCtx - 1);
  }

  auto wire = alpn_wire(p.alpn);
  if (!wire) return wire.error();
  if (!wire->empty()) {
    if (role == Role::client) {
      // Note: returns 0 on success.
      if (SSL_CTX_set_alpn_protos(ctx, wire->data(), static_cast<unsigned>(wire->size())) != 0)
        return make_error("cannot set ALPN: {}", drain_openssl_errors());
    } else {
      st->alpn_wire = std::move(*wire);
      st->alpn_required = p.alpn_required;
      SSL_CTX_set_alpn_select_cb(ctx, select_alpn, st.get());
      if (p.alpn_required) SSL_CTX_set_client_hello_cb(ctx, require_alpn, nullptr);
    }
  }

  if (p.capture_tls13_secrets) SSL_CTX_set_keylog_callback(ctx, detail::keylog_to_session);
  return TlsContext(std::move(st));
}

Role TlsContext::role() const { return state_->role; }
bool TlsContext::verifies_peer() const { return state_->verify; }
SSL_CTX* TlsContext::native() const { return state_->ctx; }

}  // namespace wasi_ktls
