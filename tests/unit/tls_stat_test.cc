// Parsing /proc/net/tls_stat text as the 6.1 kernel prints it.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cerrno>

#include "ktls/probe/tls_stat.h"

namespace wasi_ktls {
namespace {

// The layout of tls_statistics_seq_show: "%-32s\t%lu\n" per counter.
constexpr std::string_view kSample =
    "TlsCurrTxSw                     \t1\n"
    "TlsCurrRxSw                     \t0\n"
    "TlsCurrTxDevice                 \t0\n"
    "TlsCurrRxDevice                 \t0\n"
    "TlsTxSw                         \t6\n"
    "TlsRxSw                         \t6\n"
    "TlsTxDevice                     \t0\n"
    "TlsRxDevice                     \t0\n"
    "TlsDecryptError                 \t0\n"
    "TlsRxDeviceResync               \t0\n"
    "TlsDecryptRetry                 \t0\n"
    "TlsRxNoPadViolation             \t18446744073709551615\n";

TEST_CASE("parse_tls_stat keeps every counter, in order, with full 64-bit values") {
  auto stat = parse_tls_stat(kSample);
  REQUIRE(stat.ok());
  REQUIRE(stat->counters.size() == 12);
  CHECK(stat->counters.front().first == "TlsCurrTxSw");
  CHECK(stat->counters.back().first == "TlsRxNoPadViolation");
  CHECK(stat->get("TlsCurrTxSw") == 1u);
  CHECK(stat->get("TlsTxSw") == 6u);
  CHECK(stat->get("TlsRxNoPadViolation") == 18446744073709551615ull);
  CHECK_FALSE(stat->get("TlsNoSuchCounter").has_value());
}

TEST_CASE("parse_tls_stat accepts an empty file and a missing final newline") {
  auto empty = parse_tls_stat("");
  REQUIRE(empty.ok());
  CHECK(empty->counters.empty());
  auto last = parse_tls_stat("TlsTxSw 3");
  REQUIRE(last.ok());
  CHECK(last->get("TlsTxSw") == 3u);
}

TEST_CASE("parse_tls_stat names the malformed line") {
  auto no_value = parse_tls_stat("TlsTxSw 1\nTlsRxSw\n");
  REQUIRE_FALSE(no_value.ok());
  CHECK(no_value.error().message.find("line 2") != std::string::npos);
  auto not_number = parse_tls_stat("TlsTxSw 1x\n");
  REQUIRE_FALSE(not_number.ok());
  CHECK(not_number.error().message.find("1x") != std::string::npos);
  CHECK_FALSE(parse_tls_stat("TlsTxSw -1\n").ok());
  CHECK_FALSE(parse_tls_stat("TlsTxSw 99999999999999999999\n").ok());
}

TEST_CASE("read_tls_stat reports a missing file as ENOENT") {
  auto stat = read_tls_stat("/nonexistent/tls_stat");
  REQUIRE_FALSE(stat.ok());
  CHECK(stat.error().sys_errno == ENOENT);
}

}  // namespace
}  // namespace wasi_ktls
