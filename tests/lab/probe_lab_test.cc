// The probe inside the kernel lab (UML 6.1, tls.ko and the AEAD modules loadable, root):
// every version x cipher x direction is accepted, rekey is reported as the kernel itself
// answers it, io_uring works and /proc/net/tls_stat is there. Then the same through the CLI's
// JSON.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <sys/utsname.h>
#include <sys/wait.h>

#include <cerrno>
#include <cstdio>
#include <string>

#include <nlohmann/json.hpp>

#include "base/errno_name.h"
#include "ktls/io/loopback_pair.h"
#include "ktls/probe/probe.h"
#include "ktls/record/crypto_info.h"
#include "ktls/record/install.h"

namespace wasi_ktls {
namespace {

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// What this kernel does with a second TLS 1.3 TX key on one socket, asked directly rather
// than through the probe (and never decided from the version number): 0 or -errno.
long second_tx_key() {
  auto pair = make_loopback_pair();
  REQUIRE(pair.ok());
  REQUIRE(attach_tls_ulp(pair->client.get()) == 0);
  const auto key = KernelCryptoInfo::zeroed(TlsVersion::tls13, Cipher::aes_128_gcm);
  REQUIRE(set_kernel_key(pair->client.get(), Direction::tx, key) == 0);
  return set_kernel_key(pair->client.get(), Direction::tx, key);
}

TEST_CASE("lab kernel takes all 12 version x cipher x direction combinations") {
  const Probe& p = kernel_probe();
  CHECK(p.ulp.ok);
  CHECK(p.ulp.reason == "accepted");
  REQUIRE(p.combos.size() == 12);
  for (const ComboVerdict& cv : p.combos) {
    INFO(to_string(cv.version), " ", to_string(cv.cipher), " ", to_string(cv.direction), ": ",
         cv.verdict.reason);
    CHECK(cv.verdict.ok);
    CHECK(cv.verdict.sys_errno == 0);
  }
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers) {
      CHECK(p.supports(v, c));
      CHECK_FALSE(p.refusal(v, c).has_value());
    }
}

TEST_CASE("lab kernel: the probe's rekey answer is what the kernel does; options are known") {
  const Probe& p = kernel_probe();
  const long again = second_tx_key();
  MESSAGE("a second TLS_TX here: " << (again == 0 ? std::string("accepted") : errno_name(-again)));
  CHECK(p.rekey.ok == (again == 0));
  if (again != 0) {
    CHECK(p.rekey.sys_errno == -again);
    CHECK(contains(p.rekey.reason, errno_name(-again)));
  }
  if (again == -EBUSY) {
    CHECK(contains(p.rekey.reason, "no TLS 1.3 rekey"));
    CHECK(contains(p.rekey.reason, "6.14"));
  }
  // 6.0+ has TLS_RX_EXPECT_NO_PAD, 5.19+ TLS_TX_ZEROCOPY_RO.
  CHECK(p.rx_expect_no_pad.ok);
  CHECK(p.tx_zerocopy_ro.ok);
}

TEST_CASE("lab kernel: io_uring and tls_stat") {
  const Probe& p = kernel_probe();
  CHECK(p.io_uring.ok);
  for (const char* op : {"SEND", "RECV", "SENDMSG", "RECVMSG", "SPLICE"}) {
    INFO(op);
    CHECK(p.io_uring.offers(op));
  }
  REQUIRE(p.tls_stat.has_value());
  CHECK(p.tls_stat_read.ok);
  for (const char* name : {"TlsCurrTxSw", "TlsCurrRxSw", "TlsTxSw", "TlsRxSw", "TlsDecryptError"}) {
    INFO(name);
    CHECK(p.tls_stat->get(name).has_value());
  }
  // The probe itself opened software sessions, so the cumulative counters moved.
  CHECK(p.tls_stat->get("TlsTxSw").value_or(0) >= 6);
  CHECK(p.tls_stat->get("TlsRxSw").value_or(0) >= 6);
}

// Runs `command` through the shell and returns its stdout and exit status.
std::pair<std::string, int> run(const std::string& command) {
  std::FILE* f = ::popen(command.c_str(), "r");
  REQUIRE(f != nullptr);
  std::string out;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) out.append(buf, n);
  int status = ::pclose(f);
  return {out, WIFEXITED(status) ? WEXITSTATUS(status) : -1};
}

TEST_CASE("wasi-ktls probe --json in the lab reports the same, in the documented schema") {
  // Relative to the repo root, the lab's cwd; `timeout` bounds the wait.
  auto [out, status] = run("timeout 60 bazel-bin/tools/wasi-ktls probe --json");
  REQUIRE(status == 0);
  auto j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(j.is_discarded());

  CHECK(j["schema"] == 1);
  utsname u{};
  REQUIRE(::uname(&u) == 0);
  CHECK(j["kernel"] == u.release);
  CHECK(j["ulp"]["ok"] == true);
  REQUIRE(j["combos"].is_array());
  REQUIRE(j["combos"].size() == 12);
  int seen = 0;
  for (const char* v : {"1.2", "1.3"})
    for (const char* c : {"AES-128-GCM", "AES-256-GCM", "CHACHA20-POLY1305"})
      for (const char* d : {"tx", "rx"}) {
        const auto& e = j["combos"][seen++];
        INFO(v, " ", c, " ", d);
        CHECK(e["version"] == v);
        CHECK(e["cipher"] == c);
        CHECK(e["direction"] == d);
        CHECK(e["ok"] == true);
        CHECK(e["reason"].is_string());
      }
  for (const auto& u6 : j["usable"]) CHECK(u6["ok"] == true);
  const long again = second_tx_key();
  CHECK(j["rekey"]["ok"] == (again == 0));
  if (again != 0) CHECK(j["rekey"]["errno"] == errno_name(-again));
  CHECK(j["io_uring"]["ok"] == true);
  CHECK(j["io_uring"]["ops"]["SEND"] == true);
  CHECK(j["io_uring"]["ops"]["RECV"] == true);
  CHECK(j["rx_expect_no_pad"]["ok"] == true);
  CHECK(j["tls_stat"]["ok"] == true);
  CHECK(j["tls_stat"]["counters"].contains("TlsCurrTxSw"));
  CHECK(j["tls_stat"]["counters"]["TlsTxSw"].is_number_unsigned());
}

}  // namespace
}  // namespace wasi_ktls
