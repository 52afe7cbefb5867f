// Client and server policies/contexts from the test PKI, pinned to one version and suite, with
// the variations the tests need (mTLS, another certificate). Failures are doctest REQUIREs.
#pragma once

#include <string>

#include "handshake/policy.h"
#include "tests/support/test_pki.h"

namespace wasi_ktls::test {

// One PKI for the whole test process, made on first use.
const TestPki& pki();

// Only version v and suite c offered.
void pin(Policy& p, TlsVersion v, Cipher c);
// Trusts the test CA.
Policy client_policy(TlsVersion v, Cipher c);
// Serves the localhost certificate.
Policy server_policy(TlsVersion v, Cipher c);

// Serve (or present) another certificate, e.g. pki().wronghost_cert / pki().expired_cert.
void use_certificate(Policy& p, const std::string& cert, const std::string& key);
// mTLS, server side: a client certificate from the test CA is required.
void require_client_certificate(Policy& server);
// mTLS, client side: presents the test client certificate.
void present_client_certificate(Policy& client);

TlsContext context(Role role, const Policy& p);

}  // namespace wasi_ktls::test
