// Faults on the wire, on the userspace transport (this host's kernel has no kTLS; runs under
// ASan in tools/test): the same chaos-proxy scenarios as tests/lab/chaos_lab_test.cc, on the
// blocking Connection, the io_uring AsyncConnection and the Asio stream.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <signal.h>

#include "tests/support/chaos_scenarios.h"
#include "tests/support/tls_contexts.h"

using namespace wasi_ktls;
using namespace wasi_ktls::test;

namespace {

const bool kIgnoreSigpipe = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

void each_front_end(void (*scenario)(FrontEnd, Backend)) {
  (void)pki();  // made once, on first use: before any fd count
  for (FrontEnd f : kAllFrontEnds) {
    INFO(to_string(f));
    scenario(f, Backend::userspace);
  }
}

}  // namespace

TEST_CASE("userspace through the proxy, no fault: the payload arrives intact") { each_front_end(chaos_none); }
TEST_CASE("userspace: a flipped byte is bad_record_mac, our alert goes out, no retry") { each_front_end(chaos_flip_byte); }
TEST_CASE("userspace: a truncated record then FIN") { each_front_end(chaos_truncate_record); }
TEST_CASE("userspace: FIN without close_notify is truncation") { each_front_end(chaos_fin); }
TEST_CASE("userspace: RST mid-transfer is ECONNRESET") { each_front_end(chaos_rst); }
TEST_CASE("userspace: a stall longer than the read bound") { each_front_end(chaos_stall); }
TEST_CASE("userspace: 1-byte segments, Finished coalesced with the first data") { each_front_end(chaos_split_coalesce); }
TEST_CASE("userspace: an injected plaintext alert after the hand-over") { each_front_end(chaos_inject_alert); }
TEST_CASE("userspace: an injected plaintext KeyUpdate after the hand-over") { each_front_end(chaos_inject_key_update); }
TEST_CASE("userspace: data after close_notify is not delivered") { each_front_end(chaos_data_after_close); }
