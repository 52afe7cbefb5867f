#include "tools/tls_options.h"

#include <sys/stat.h>

namespace wasi_ktls::cli {

void TlsOptions::add_to(CLI::App& app, Role role) {
  bool server = role == Role::server;
  app.add_option("--ca", ca,
                 server ? "CA file or directory that client certificates must chain to"
                        : "CA file or directory to verify the server with (default: system store)");
  auto* c = app.add_option("--cert", cert, server ? "Certificate chain (PEM), leaf first"
                                                  : "Client certificate chain (PEM) for mTLS");
  auto* k = app.add_option("--key", key, "Private key (PEM) of --cert");
  if (server) {
    c->required();
    k->required();
  } else {
    c->needs(k);
    k->needs(c);
  }
  app.add_option("--alpn", alpn, "ALPN protocols, in preference order (repeat or comma-separate)")
      ->delimiter(',');
  app.add_option("--min-version", min_version, "Lowest TLS version: 1.2 or 1.3")
      ->check(CLI::IsMember({"1.2", "1.3"}));
  app.add_option("--max-version", max_version, "Highest TLS version: 1.2 or 1.3")
      ->check(CLI::IsMember({"1.2", "1.3"}));
  app.add_option("--tls13-suites", tls13_suites,
                 "TLS 1.3 suites, OpenSSL syntax (e.g. TLS_AES_256_GCM_SHA384)");
  app.add_option("--tls12-ciphers", tls12_ciphers,
                 "TLS 1.2 ciphers, OpenSSL syntax (e.g. ECDHE-ECDSA-CHACHA20-POLY1305)");
  app.add_option("--backend", backend,
                 "Data path after the handshake: auto, ktls or userspace "
                 "(default: $WASI_KTLS_BACKEND, else auto)")
      ->check(CLI::IsMember({"auto", "ktls", "userspace"}));
  if (!server)
    app.add_flag("--insecure-skip-verify", insecure,
                 "DANGEROUS: accept any server certificate and name");
}

Result<Policy> TlsOptions::policy() const {
  Policy p;
  if (!ca.empty()) {
    struct stat st{};
    if (::stat(ca.c_str(), &st) != 0) return errno_error(errno, "--ca " + ca);
    if (S_ISDIR(st.st_mode))
      p.ca_dir = ca;
    else
      p.ca = PemSource::file(ca);
  }
  if (!cert.empty()) p.certificate_chain = PemSource::file(cert);
  if (!key.empty()) p.private_key = PemSource::file(key);
  p.alpn = alpn;
  p.min_version = *parse_version(min_version);
  p.max_version = *parse_version(max_version);
  if (p.min_version > p.max_version)
    return make_error("--min-version {} is above --max-version {}", min_version, max_version);
  if (!tls13_suites.empty()) p.tls13_suites = tls13_suites;
  if (!tls12_ciphers.empty()) p.tls12_ciphers = tls12_ciphers;
  p.insecure_skip_verify_DANGEROUS = insecure;
  return p;
}

Result<ConnectionOptions> TlsOptions::connection_options() const {
  ConnectionOptions o;
  auto b = backend.empty() ? backend_from_environment() : parse_backend(backend);
  if (!b) return b.error();
  o.backend = *b;
  return o;
}

}  // namespace wasi_ktls::cli
