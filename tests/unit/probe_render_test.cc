// Rendering a hand-built Probe: the JSON contract of docs/probe-json.md and the table, plus
// the supports()/refusal() queries the connection layer relies on.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cerrno>

#include "ktls/probe/probe.h"
#include "ktls/probe/probe_render.h"

namespace wasi_ktls {
namespace {

bool contains(const std::string& s, std::string_view part) {
  return s.find(part) != std::string::npos;
}

// A 6.1-like kernel, except that it refuses ChaCha20 receive under TLS 1.3.
Probe lab_like() {
  Probe p;
  p.kernel = "6.1.176";
  p.ulp = {true, "accepted", 0};
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers)
      for (Direction d : {Direction::tx, Direction::rx}) {
        Verdict verdict{true, "accepted", 0};
        if (v == TlsVersion::tls13 && c == Cipher::chacha20_poly1305 && d == Direction::rx)
          verdict = {false, "ENOENT: kernel crypto for this cipher unavailable", ENOENT};
        p.combos.push_back({v, c, d, verdict});
      }
  p.rekey = {false, "EBUSY: kernel has no TLS 1.3 rekey", EBUSY};
  p.rx_expect_no_pad = {true, "accepted", 0};
  p.tx_zerocopy_ro = {true, "accepted", 0};
  p.io_uring.ok = true;
  p.io_uring.reason = "accepted";
  p.io_uring.ops = {{"SEND", true}, {"RECV", true}, {"SEND_ZC", false}};
  p.tls_stat_read = {true, "present", 0};
  p.tls_stat = TlsStat{{{"TlsCurrTxSw", 0}, {"TlsTxSw", 7}}};
  return p;
}

Probe no_ulp() {
  Probe p;
  p.kernel = "6.18.0";
  p.ulp = {false, "ENOENT: kernel has no TLS ULP", ENOENT};
  for (TlsVersion v : kAllVersions)
    for (Cipher c : kAllCiphers)
      for (Direction d : {Direction::tx, Direction::rx})
        p.combos.push_back({v, c, d, {false, "not probed: TLS ULP unavailable (ENOENT)", 0}});
  p.rekey = p.rx_expect_no_pad = p.tx_zerocopy_ro = {false, "not probed: TLS ULP unavailable", 0};
  p.io_uring = {false, "io_uring_queue_init: EPERM: io_uring refused by policy", EPERM, {}};
  p.tls_stat_read = {false, "ENOENT: /proc/net/tls_stat absent", ENOENT};
  return p;
}

TEST_CASE("supports() needs both directions and refusal() names the refused one") {
  Probe p = lab_like();
  CHECK(p.supports(TlsVersion::tls12, Cipher::aes_128_gcm));
  CHECK_FALSE(p.refusal(TlsVersion::tls12, Cipher::aes_128_gcm).has_value());
  CHECK(p.supports(TlsVersion::tls12, Cipher::chacha20_poly1305));
  CHECK_FALSE(p.supports(TlsVersion::tls13, Cipher::chacha20_poly1305));
  auto why = p.refusal(TlsVersion::tls13, Cipher::chacha20_poly1305);
  REQUIRE(why.has_value());
  CHECK(contains(*why, "TLS 1.3 CHACHA20-POLY1305 rx: ENOENT"));
  CHECK_FALSE(contains(*why, "tx"));
  CHECK(p.any_supported());
  CHECK_FALSE(no_ulp().any_supported());
}

TEST_CASE("JSON carries the documented fields with the documented spellings") {
  auto j = probe_to_json(lab_like());
  CHECK(j["schema"] == 1);
  CHECK(j["kernel"] == "6.1.176");
  CHECK(j["ulp"]["ok"] == true);
  CHECK(j["ulp"]["reason"] == "accepted");
  CHECK(j["ulp"]["errno"] == "");
  REQUIRE(j["combos"].size() == 12);
  CHECK(j["combos"][0]["version"] == "1.2");
  CHECK(j["combos"][0]["cipher"] == "AES-128-GCM");
  CHECK(j["combos"][0]["direction"] == "tx");
  CHECK(j["combos"][1]["direction"] == "rx");
  const auto& refused = j["combos"][11];
  CHECK(refused["version"] == "1.3");
  CHECK(refused["cipher"] == "CHACHA20-POLY1305");
  CHECK(refused["direction"] == "rx");
  CHECK(refused["ok"] == false);
  CHECK(refused["errno"] == "ENOENT");
  REQUIRE(j["usable"].size() == 6);
  CHECK(j["usable"][0]["ok"] == true);
  CHECK(j["usable"][0]["reason"] == "");
  CHECK(j["usable"][5]["ok"] == false);
  CHECK(j["rekey"]["ok"] == false);
  CHECK(j["rekey"]["errno"] == "EBUSY");
  CHECK(j["rx_expect_no_pad"]["ok"] == true);
  CHECK(j["tx_zerocopy_ro"]["ok"] == true);
  CHECK(j["io_uring"]["ok"] == true);
  CHECK(j["io_uring"]["ops"]["SEND"] == true);
  CHECK(j["io_uring"]["ops"]["SEND_ZC"] == false);
  CHECK(j["tls_stat"]["ok"] == true);
  CHECK(j["tls_stat"]["counters"]["TlsTxSw"] == 7);
  // Top-level key order is part of the human-facing contract (stable diffs).
  std::vector<std::string> keys;
  for (auto it = j.begin(); it != j.end(); ++it) keys.push_back(it.key());
  CHECK(keys == std::vector<std::string>{"schema", "kernel", "ulp", "combos", "usable", "rekey",
                                         "rx_expect_no_pad", "tx_zerocopy_ro", "io_uring",
                                         "tls_stat"});
}

TEST_CASE("JSON for a kernel without kTLS or io_uring keeps every section") {
  auto j = probe_to_json(no_ulp());
  CHECK(j["ulp"]["ok"] == false);
  CHECK(j["ulp"]["errno"] == "ENOENT");
  for (const auto& c : j["combos"]) CHECK(c["ok"] == false);
  CHECK(j["io_uring"]["ok"] == false);
  CHECK(j["io_uring"]["errno"] == "EPERM");
  CHECK(j["io_uring"]["ops"].is_object());
  CHECK(j["io_uring"]["ops"].empty());
  CHECK(j["tls_stat"]["counters"].is_object());
  CHECK(j["tls_stat"]["counters"].empty());
  // Round-trips through text.
  CHECK(nlohmann::ordered_json::parse(j.dump()) == j);
}

TEST_CASE("the table shows one row per version/cipher with tx/rx and the reason") {
  std::string t = probe_to_table(lab_like());
  CHECK(contains(t, "kernel 6.1.176: kTLS available for 5 of 6"));
  CHECK(contains(t, "1.2      AES-128-GCM        yes  yes"));
  CHECK(contains(t, "1.3      CHACHA20-POLY1305  yes  no   rx: ENOENT"));
  CHECK(contains(t, "rekey (TLS 1.3)    no   EBUSY"));
  CHECK(contains(t, "io_uring           yes  ops: SEND RECV; not offered: SEND_ZC"));
  CHECK(contains(t, "tls_stat           yes  TlsCurrTxSw=0 TlsTxSw=7\n"));
  CHECK(contains(t, "1.2      AES-256-GCM        yes  yes\n"));  // no trailing blanks
  CHECK(t.back() == '\n');
}

TEST_CASE("the table for a kernel without the ULP says why once, not twelve times") {
  std::string t = probe_to_table(no_ulp());
  CHECK(contains(t, "kTLS unavailable"));
  CHECK(contains(t, "TLS ULP            no   ENOENT: kernel has no TLS ULP"));
  CHECK(contains(t, "1.3      AES-256-GCM        no   no   not probed: TLS ULP unavailable\n"));
  CHECK(contains(t, "io_uring           no   io_uring_queue_init: EPERM"));
  CHECK(contains(t, "tls_stat           no   ENOENT"));
}

}  // namespace
}  // namespace wasi_ktls
