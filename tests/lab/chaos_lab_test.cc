// Faults on the wire, on the kernel transport (run in tools/kernel-lab as root): the chaos
// proxy (tools/chaos) between our client and our server flips a byte, truncates, cuts, resets,
// stalls, splits and coalesces, injects records; each case asserts what the user of the
// blocking Connection, the io_uring AsyncConnection and the Asio stream sees, and that no fd
// leaked (tests/support/chaos_scenarios.h).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>

#include "ktls/probe/probe.h"
#include "tests/support/chaos_scenarios.h"
#include "tests/support/tls_contexts.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;

namespace {

const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

// The PKI and the probe are made once, on first use: before any fd count.
void warm_up() {
  (void)pki();
  REQUIRE_MESSAGE(kernel_probe().ulp.ok, kernel_probe().ulp.reason);
}

void each_front_end(void (*scenario)(FrontEnd, Backend)) {
  warm_up();
  for (FrontEnd f : kAllFrontEnds) {
    INFO(to_string(f));
    scenario(f, Backend::ktls);
  }
}

}  // namespace

TEST_CASE("kTLS through the proxy, no fault: the payload arrives intact") { each_front_end(chaos_none); }
TEST_CASE("kTLS: a flipped byte is bad_record_mac, our alert goes out, no retry") { each_front_end(chaos_flip_byte); }
TEST_CASE("kTLS: a truncated record then FIN") { each_front_end(chaos_truncate_record); }
TEST_CASE("kTLS: FIN without close_notify is truncation") { each_front_end(chaos_fin); }
TEST_CASE("kTLS: RST mid-transfer is ECONNRESET") { each_front_end(chaos_rst); }
TEST_CASE("kTLS: a stall longer than the read bound") { each_front_end(chaos_stall); }
TEST_CASE("kTLS: 1-byte segments, Finished coalesced with the first data") { each_front_end(chaos_split_coalesce); }
TEST_CASE("kTLS: an injected plaintext alert after the hand-over") { each_front_end(chaos_inject_alert); }
TEST_CASE("kTLS: an injected plaintext KeyUpdate after the hand-over") { each_front_end(chaos_inject_key_update); }
TEST_CASE("kTLS: data after close_notify is not delivered") { each_front_end(chaos_data_after_close); }
