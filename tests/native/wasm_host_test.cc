// The wasi:tls host as a library: each hostile guest is stopped with a trap that names its
// cause, and the same process (the same loaded module, too) runs the next instance
// afterwards; guests that only need the host's refusals (no network) run to their own exit.
// Runs under ASan and UBSan with the rest of the suite: no hostile guest reaches host memory.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "wasi_binding/engine/wasm2c_engine.h"
#include "wasi_binding/host/import_table.h"
#include "wasi_binding/host/run_guest.h"

namespace wasi_ktls::wasi {
namespace {

std::vector<std::uint8_t> guest_bytes(const std::string& name) {
  const std::string path = "tests/guests/" + name + ".wasm";
  std::ifstream f(path, std::ios::binary);
  REQUIRE_MESSAGE(f.good(), "cannot open " << path);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

wasm::Wasm2cOptions options() {
  wasm::Wasm2cOptions o;
  const char* tmp = std::getenv("TEST_TMPDIR");
  o.cache_dir = std::string(tmp != nullptr ? tmp : "/tmp") + "/wasm-host-test-cache";
  return o;
}

HostConfig config(std::vector<std::string> args) {
  HostConfig c;
  c.args = std::move(args);
  return c;  // no TLS context, no connections allowed
}

struct Case {
  const char* guest;
  const char* cause;  // in the trap reason
};

}  // namespace

TEST_CASE("hostile guests trap with their cause, and the next instance runs") {
  wasm::Wasm2cEngine engine(options());
  // Guests that need no connection; the others are run against servers by the lab script.
  const Case cases[] = {
      {"hostile_unknown_handle", "handle 12345 is not a live resource"},
      {"hostile_double_drop", "[resource-drop]pollable: self: handle"},
      {"hostile_parent_before_child", "still has 1 child resource"},
      {"hostile_bad_family", "address-family: 7 is not an ip-address-family"},
      {"hostile_bad_addr_tag", "ip-socket-address tag 5"},
      {"hostile_block_forever", "can ever become ready"},
  };
  for (const Case& c : cases) {
    CAPTURE(c.guest);
    auto module = engine.load(guest_bytes(c.guest), host_imports());
    REQUIRE_MESSAGE(module.ok(), (module.ok() ? "" : module.error().message));
    for (int round = 0; round < 2; ++round) {  // the same module, instance after instance
      auto out = run_instance(**module, config({c.guest}));
      REQUIRE(out.ok());
      CHECK(out->status == kTrapStatus);
      REQUIRE(out->trap.has_value());
      CHECK_MESSAGE(out->trap->find(c.cause) != std::string::npos, *out->trap);
    }
  }
  // After all of them, a guest runs to its own end: refused by the host's connect policy,
  // it exits 0 because it got access-denied.
  auto denied = engine.load(guest_bytes("connect_denied"), host_imports());
  REQUIRE(denied.ok());
  auto out = run_instance(**denied, config({"connect_denied", "127.0.0.1", "9"}));
  REQUIRE(out.ok());
  CHECK_FALSE(out->trap.has_value());
  CHECK(out->status == 0);
}

}  // namespace wasi_ktls::wasi
