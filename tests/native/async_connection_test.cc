// AsyncConnection on the host (no kTLS): the userspace transport on both engines.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include "ktls/io/engine.h"
#include "tests/support/async_scenarios.h"
#include "tests/support/engines.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;

namespace {

const ScenarioExpect kUserspace{Backend::auto_, Transport::userspace};

}  // namespace

TEST_CASE("many connections on one engine, 1 MiB both ways each (userspace)") {
  on_each_engine([](Engine& e) { many_connections(e, kUserspace, 64, 1 << 20); });
}

TEST_CASE("a silent peer times out of its handshake") {
  on_each_engine([](Engine& e) { silent_peer_times_out(e); });
}

TEST_CASE("abort mid-transfer cancels cleanly (userspace)") {
  on_each_engine([](Engine& e) { abort_mid_transfer(e, kUserspace); });
}

TEST_CASE("send_file on the userspace transport reads and encrypts the file") {
  on_each_engine([](Engine& e) { send_file_intact(e, kUserspace, 8u << 20); });
}

TEST_CASE("a peer that never reads stalls only its own connection (userspace)") {
  on_each_engine([](Engine& e) {
    stalled_peer_leaves_others_running(e, kUserspace, Stall::close_notify);
    stalled_peer_leaves_others_running(e, kUserspace, Stall::fatal_alert);
  });
}
