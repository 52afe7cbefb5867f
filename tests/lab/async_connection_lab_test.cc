// AsyncConnection in the kernel lab: kTLS on both engines, 256 connections on one ring.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "ktls/io/engine.h"
#include "ktls/probe/probe.h"
#include "tests/support/async_scenarios.h"
#include "tests/support/engines.h"
#include "tests/support/kernel_evidence.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;

namespace {

const ScenarioExpect kKernel{Backend::ktls, Transport::kernel};

}  // namespace

TEST_CASE("256 connections on one io_uring, 1 MiB both ways each, all on kTLS") {
  auto e = engine_of(EngineKind::io_uring);
  (void)kernel_probe();  // its own test sessions are not the connections' ones
  auto tx0 = tls_stat_counter("TlsTxSw"), rx0 = tls_stat_counter("TlsRxSw");
  auto err0 = tls_stat_counter("TlsDecryptError");
  many_connections(*e, kKernel, 256, 1 << 20);
  // Every one of the 512 endpoints opened a kernel TX and RX session.
  CHECK(tls_stat_counter("TlsTxSw") - tx0 == 512);
  CHECK(tls_stat_counter("TlsRxSw") - rx0 == 512);
  CHECK(tls_stat_counter("TlsDecryptError") == err0);
}

TEST_CASE("the poll engine carries kTLS connections too") {
  auto e = engine_of(EngineKind::poll);
  auto tx0 = tls_stat_counter("TlsTxSw");
  many_connections(*e, kKernel, 16, 1 << 20);
  CHECK(tls_stat_counter("TlsTxSw") - tx0 == 32);
}

TEST_CASE("a silent peer times out of its handshake") {
  on_each_engine([](Engine& e) { silent_peer_times_out(e); });
}

TEST_CASE("abort mid-transfer cancels cleanly (kTLS)") {
  on_each_engine([](Engine& e) { abort_mid_transfer(e, kKernel); });
}

TEST_CASE("send_file splices a file into kTLS intact") {
  on_each_engine([](Engine& e) { send_file_intact(e, kKernel, 16u << 20); });
}

TEST_CASE("a peer that never reads stalls only its own connection (close_notify, fatal alert)") {
  on_each_engine([](Engine& e) {
    stalled_peer_leaves_others_running(e, kKernel, Stall::close_notify);
    stalled_peer_leaves_others_running(e, kKernel, Stall::fatal_alert);
  });
}
