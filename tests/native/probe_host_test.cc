// The probe on the build host. This host is known to have no kTLS, so the test pins the exact
// answer: the ULP refused with ENOENT and nothing else probed. On a host that does have kTLS
// (tls.ko present after probing) it checks the answer is at least self-consistent.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "ktls/io/loopback_pair.h"
#include "ktls/probe/probe.h"

namespace wasi_ktls {
namespace {

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// Decided from the system, not from the probe under test: tls.ko shows up in /sys/module
// (and its counters in /proc) once loaded, which the probe's own ULP attach would do.
bool host_has_ktls() {
  return ::access("/sys/module/tls", F_OK) == 0 || ::access("/proc/net/tls_stat", F_OK) == 0;
}

TEST_CASE("probe reports the kernel release and all 12 combinations in order") {
  const Probe& p = kernel_probe();
  utsname u{};
  REQUIRE(::uname(&u) == 0);
  CHECK(p.kernel == u.release);
  REQUIRE(p.combos.size() == 12);
  std::size_t i = 0;
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers)
      for (Direction d : {Direction::tx, Direction::rx}) {
        CHECK(p.combos[i].version == v);
        CHECK(p.combos[i].cipher == c);
        CHECK(p.combos[i].direction == d);
        ++i;
      }
}

TEST_CASE("host without kTLS: the ULP is refused with ENOENT and every combo says why") {
  const Probe& p = kernel_probe();
  if (host_has_ktls()) {
    MESSAGE("this host has tls.ko: checking consistency instead of the no-kTLS answer");
    CHECK(p.ulp.ok);
    REQUIRE(p.tls_stat.has_value());
    CHECK(p.tls_stat->get("TlsCurrTxSw").has_value());
    for (const ComboVerdict& cv : p.combos) {
      if (cv.verdict.ok) {
        CHECK(cv.verdict.reason == "accepted");
      } else {
        CHECK(cv.verdict.sys_errno != 0);
        CHECK(contains(cv.verdict.reason, "E"));
      }
    }
    for (TlsVersion v : kAllVersions)
      for (Cipher c : kAllCiphers)
        CHECK(p.supports(v, c) == !p.refusal(v, c).has_value());
    return;
  }

  CHECK_FALSE(p.ulp.ok);
  CHECK(p.ulp.sys_errno == ENOENT);
  CHECK(contains(p.ulp.reason, "ENOENT"));
  CHECK(contains(p.ulp.reason, "no TLS ULP"));

  for (const ComboVerdict& cv : p.combos) {
    CHECK_FALSE(cv.verdict.ok);
    CHECK(contains(cv.verdict.reason, "ULP unavailable"));
    CHECK(contains(cv.verdict.reason, "ENOENT"));
  }
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers) {
      CHECK_FALSE(p.supports(v, c));
      auto why = p.refusal(v, c);
      REQUIRE(why.has_value());
      CHECK(contains(*why, "ULP unavailable"));
    }
  CHECK_FALSE(p.any_supported());
  CHECK_FALSE(p.rekey.ok);
  CHECK(contains(p.rekey.reason, "ULP unavailable"));
  CHECK_FALSE(p.rx_expect_no_pad.ok);
  CHECK_FALSE(p.tx_zerocopy_ro.ok);
  CHECK_FALSE(p.tls_stat.has_value());
  CHECK(p.tls_stat_read.sys_errno == ENOENT);
}

TEST_CASE("the probe's ULP answer matches a direct setsockopt") {
  auto pair = make_loopback_pair();
  REQUIRE(pair.ok());
  static constexpr char kTls[] = "tls";
  int rc = ::setsockopt(pair->client.get(), SOL_TCP, TCP_ULP, kTls, sizeof kTls);
  int err = rc == 0 ? 0 : errno;
  const Probe& p = kernel_probe();
  CHECK(p.ulp.ok == (rc == 0));
  CHECK(p.ulp.sys_errno == err);
}

TEST_CASE("io_uring works on the host and offers SEND and RECV") {
  const Probe& p = kernel_probe();
  CHECK(p.io_uring.ok);
  CHECK(p.io_uring.reason == "accepted");
  CHECK(p.io_uring.offers("SEND"));
  CHECK(p.io_uring.offers("RECV"));
  CHECK(p.io_uring.offers("SENDMSG"));
  CHECK(p.io_uring.offers("RECVMSG"));
  CHECK_FALSE(p.io_uring.offers("NO_SUCH_OP"));
}

TEST_CASE("kernel_probe is measured once and shared between threads") {
  std::vector<const Probe*> seen(4, nullptr);
  std::vector<std::thread> threads;
  for (std::size_t i = 0; i < seen.size(); ++i)
    threads.emplace_back([&seen, i] { seen[i] = &kernel_probe(); });
  for (auto& t : threads) t.join();
  for (const Probe* s : seen) CHECK(s == &kernel_probe());
}

TEST_CASE("a fresh measurement is quick and agrees with the cached one") {
  auto start = std::chrono::steady_clock::now();
  Probe fresh = measure_probe();
  auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < std::chrono::seconds(5));
  const Probe& cached = kernel_probe();
  CHECK(fresh.ulp.ok == cached.ulp.ok);
  CHECK(fresh.ulp.reason == cached.ulp.reason);
  REQUIRE(fresh.combos.size() == cached.combos.size());
  for (std::size_t i = 0; i < fresh.combos.size(); ++i)
    CHECK(fresh.combos[i].verdict.ok == cached.combos[i].verdict.ok);
}

}  // namespace
}  // namespace wasi_ktls
