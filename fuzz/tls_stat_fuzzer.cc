// Feeds the probe's /proc/net/tls_stat parser (ktls/probe/tls_stat.h) arbitrary text as the
// file's content. Oracles: what parsed renders back as "Name value" lines that parse to the
// same counters, in order, and get() finds each name's first value.
// fuzz-sources: ktls/probe/tls_stat.cc base/result.cc
// fuzz-libs: -lfmt
// fuzz-flags: -max_len=8192
#include <fmt/format.h>

#include <cstdint>
#include <string>

#include "fuzz/fuzz_input.h"
#include "ktls/probe/tls_stat.h"

using namespace wasi_ktls;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const Result<TlsStat> stat = parse_tls_stat(in.text(size));
  if (!stat) {
    FUZZ_CHECK(!stat.error().message.empty(), "an error without a message");
    return 0;
  }
  std::string rendered;
  for (const auto& [name, value] : stat->counters) {
    FUZZ_CHECK(!name.empty(), "a counter without a name");
    rendered += fmt::format("{}\t{}\n", name, value);
    const auto first = stat->get(name);
    FUZZ_CHECK(first.has_value(), "get() misses a parsed name");
  }
  const Result<TlsStat> again = parse_tls_stat(rendered);
  FUZZ_CHECK(again.ok(), "the parser refuses what it parsed, rendered back");
  FUZZ_CHECK(again->counters == stat->counters, "counters change when rendered and parsed again");
  return 0;
}
