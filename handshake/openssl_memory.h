// OpenSSL 3 frees a connection's state without wiping it: the SSL object that holds the TLS 1.3
// traffic secrets and IVs goes back to the heap as it is (ssl_lib.c ends with a plain
// OPENSSL_free), so after a kTLS hand-over the keys we wiped would survive in OpenSSL's freed
// memory. This library therefore installs OpenSSL allocation functions that wipe every block
// before it is freed. OpenSSL takes them only before its first allocation, so they are
// installed while this library loads; an embedder that allocated through OpenSSL earlier, or
// installed its own, keeps its own (and this says so).
#pragma once

namespace wasi_ktls {

// Whether OpenSSL wipes what it frees in this process.
bool openssl_frees_are_wiped();

}  // namespace wasi_ktls
