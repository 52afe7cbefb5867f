// AsyncConnection on the host (no kTLS): the userspace transport on both engines.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "ktls/engine.h"
#include "tests/support/async_scenarios.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;

namespace {

std::unique_ptr<Engine> engine_of(EngineKind kind) {
  auto e = make_engine(kind);
  REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().message));
  return std::move(e->engine);
}

const ScenarioExpect kUserspace{Backend::auto_, Transport::userspace};

}  // namespace

TEST_CASE("many connections on one engine, 1 MiB both ways each (userspace)") {
  for (EngineKind k : {EngineKind::io_uring, EngineKind::poll}) {
    auto e = engine_of(k);
    INFO("engine " << e->name());
    many_connections(*e, kUserspace, 64, 1 << 20);
  }
}

TEST_CASE("a silent peer times out of its handshake") {
  for (EngineKind k : {EngineKind::io_uring, EngineKind::poll}) {
    auto e = engine_of(k);
    INFO("engine " << e->name());
    silent_peer_times_out(*e);
  }
}

TEST_CASE("abort mid-transfer cancels cleanly (userspace)") {
  for (EngineKind k : {EngineKind::io_uring, EngineKind::poll}) {
    auto e = engine_of(k);
    INFO("engine " << e->name());
    abort_mid_transfer(*e, kUserspace);
  }
}

TEST_CASE("send_file on the userspace transport reads and encrypts the file") {
  for (EngineKind k : {EngineKind::io_uring, EngineKind::poll}) {
    auto e = engine_of(k);
    INFO("engine " << e->name());
    send_file_intact(*e, kUserspace, 8u << 20);
  }
}
