// AsyncConnection in the kernel lab: kTLS on both engines, 256 connections on one ring.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "ktls/engine.h"
#include "ktls/probe.h"
#include "ktls/tls_stat.h"
#include "tests/support/async_scenarios.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;

namespace {

std::unique_ptr<Engine> engine_of(EngineKind kind) {
  auto e = make_engine(kind);
  REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().message));
  return std::move(e->engine);
}

std::uint64_t stat(const char* name) {
  auto s = read_tls_stat();
  REQUIRE_MESSAGE(s.ok(), (s.ok() ? "" : s.error().message));
  auto v = s->get(name);
  REQUIRE(v.has_value());
  return *v;
}

const ScenarioExpect kKernel{Backend::ktls, Transport::kernel};

}  // namespace

TEST_CASE("256 connections on one io_uring, 1 MiB both ways each, all on kTLS") {
  auto e = engine_of(EngineKind::io_uring);
  (void)kernel_probe();  // its own test sessions are not the connections' ones
  auto tx0 = stat("TlsTxSw"), rx0 = stat("TlsRxSw"), err0 = stat("TlsDecryptError");
  many_connections(*e, kKernel, 256, 1 << 20);
  // Every one of the 512 endpoints opened a kernel TX and RX session.
  CHECK(stat("TlsTxSw") - tx0 == 512);
  CHECK(stat("TlsRxSw") - rx0 == 512);
  CHECK(stat("TlsDecryptError") == err0);
}

TEST_CASE("the poll engine carries kTLS connections too") {
  auto e = engine_of(EngineKind::poll);
  auto tx0 = stat("TlsTxSw");
  many_connections(*e, kKernel, 16, 1 << 20);
  CHECK(stat("TlsTxSw") - tx0 == 32);
}

TEST_CASE("a silent peer times out of its handshake") {
  for (EngineKind k : {EngineKind::io_uring, EngineKind::poll}) {
    auto e = engine_of(k);
    INFO("engine " << e->name());
    silent_peer_times_out(*e);
  }
}

TEST_CASE("abort mid-transfer cancels cleanly (kTLS)") {
  for (EngineKind k : {EngineKind::io_uring, EngineKind::poll}) {
    auto e = engine_of(k);
    INFO("engine " << e->name());
    abort_mid_transfer(*e, kKernel);
  }
}

TEST_CASE("send_file splices a file into kTLS intact") {
  for (EngineKind k : {EngineKind::io_uring, EngineKind::poll}) {
    auto e = engine_of(k);
    INFO("engine " << e->name());
    send_file_intact(*e, kKernel, 16u << 20);
  }
}
