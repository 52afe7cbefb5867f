// Connection scenarios shared by the host test (userspace transport) and the kernel-lab test
// (kTLS): the same exchange, checked the same way, plus what each transport must show.
#pragma once

#include <cstddef>
#include <functional>

#include "ktls/conn/connection.h"

namespace wasi_ktls::test {

// What one transport must show along the exchange. Unset hooks check nothing more.
struct PairExpect {
  ConnectionOptions client_options, server_options;
  std::function<void(const Connection& client, const Connection& server)> established;
  // After n bytes each way (client -> server first).
  std::function<void(const Connection& client, const Connection& server, std::size_t n)> exchanged;
  // After close_notify both ways (the client's first).
  std::function<void(const Connection& client, const Connection& server)> closed;
};

// Our client <-> our server pinned to (v, c): every payload of kPayloads both ways with exact
// byte counts, close_notify both ways (idempotent; a write after it refused), no fd leaked.
void exchange_every_payload(TlsVersion v, Cipher c, const PairExpect& expect);

// One reader thread and one writer thread on each end at once (full duplex, `bytes` each way,
// checked), then the peer ends the stream badly while a writer is blocked on a full socket:
// every call returns an error or its data, nothing crashes or hangs. Run under TSan too.
void reader_and_writer_threads(const PairExpect& expect, std::size_t bytes);

}  // namespace wasi_ktls::test
