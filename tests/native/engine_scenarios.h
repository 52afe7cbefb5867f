// Engine scenarios shared by the engine tests (both engines, and the poll engine that a
// seccomp-filtered process falls back to): doctest checks inside, driven by run_once.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "base/unique_fd.h"
#include "ktls/io/engine.h"
#include "tests/support/engines.h"
#include "tests/support/fd_count.h"

namespace wasi_ktls::testing {

using test::run_until;

// An FNV-style hash of a byte stream, fed in pieces of any size.
struct Checksum {
  std::uint64_t h = 1469598103934665603ull;
  std::uint64_t word = 0;
  unsigned fill = 0;
  void add(std::span<const std::uint8_t> bytes);
};

// Deterministic bytes from a seed (xorshift), for data that can be regenerated to compare.
void fill_pattern(std::span<std::uint8_t> out, std::uint64_t& state);

// A temporary file of `size` pattern bytes (under TEST_TMPDIR or /tmp), deleted at close.
struct TempFile {
  UniqueFd fd;
  std::vector<std::uint8_t> bytes;
};
TempFile make_temp_file(std::size_t size, std::uint64_t seed);

using test::open_fd_count;

// Many request/response round trips over a loopback TCP pair, each message echoed back.
void check_echo(Engine& engine);

// A 16 MiB file sent with send_file arrives intact; offsets and end of file are honoured.
void check_send_file(Engine& engine);

}  // namespace wasi_ktls::testing
