// /proc/net/tls_stat: the kernel's kTLS counters (one "Name value" pair per line). The file
// exists only while tls.ko is loaded, per network namespace; tests diff it to prove that data
// went through the kernel path.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"

namespace wasi_ktls {

inline constexpr const char* kTlsStatPath = "/proc/net/tls_stat";

struct TlsStat {
  // In the kernel's order; names are kept verbatim (e.g. "TlsCurrTxSw").
  std::vector<std::pair<std::string, std::uint64_t>> counters;

  std::optional<std::uint64_t> get(std::string_view name) const;
};

// Parses the file's text; a malformed line is an error naming it.
Result<TlsStat> parse_tls_stat(std::string_view text);

// Reads and parses `path`. A missing file is an Error with sys_errno ENOENT (tls.ko not loaded).
Result<TlsStat> read_tls_stat(const char* path = kTlsStatPath);

}  // namespace wasi_ktls
