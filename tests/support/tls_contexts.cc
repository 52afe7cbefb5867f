#include "tests/support/tls_contexts.h"

#include <doctest/doctest.h>

#include "tests/support/message_of.h"
#include "tests/support/tls_matrix.h"

namespace wasi_ktls::test {

const TestPki& pki() {
  static Result<TestPki> p = make_test_pki();
  REQUIRE_MESSAGE(p.ok(), message_of(p));
  return *p;
}

void pin(Policy& p, TlsVersion v, Cipher c) {
  p.min_version = p.max_version = v;
  p.tls13_suites = tls13_suite(c);
  p.tls12_ciphers = tls12_cipher(c);
}

Policy client_policy(TlsVersion v, Cipher c) {
  Policy p;
  p.ca = PemSource::file(pki().ca);
  pin(p, v, c);
  return p;
}

Policy server_policy(TlsVersion v, Cipher c) {
  Policy p;
  use_certificate(p, pki().server_cert, pki().server_key);
  pin(p, v, c);
  return p;
}

void use_certificate(Policy& p, const std::string& cert, const std::string& key) {
  p.certificate_chain = PemSource::file(cert);
  p.private_key = PemSource::file(key);
}

void require_client_certificate(Policy& server) {
  server.ca = PemSource::file(pki().ca);
  server.client_auth = ClientAuth::required;
}

void present_client_certificate(Policy& client) {
  use_certificate(client, pki().client_cert, pki().client_key);
}

TlsContext context(Role role, const Policy& p) {
  auto ctx = TlsContext::create(role, p);
  REQUIRE_MESSAGE(ctx.ok(), message_of(ctx));
  return *ctx;
}

}  // namespace wasi_ktls::test
