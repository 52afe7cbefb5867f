// The fuzz targets' input reader: front to back, big-endian, so that a seed can be written by
// hand (libFuzzer's FuzzedDataProvider takes integers from the end, which no seed author can
// follow). Past the end every read yields zeros or fewer bytes: any input is a valid program.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
#include <string_view>

namespace wasi_ktls::fuzz {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : rest_(data, size) {}

  bool empty() const { return rest_.empty(); }
  std::size_t remaining() const { return rest_.size(); }

  std::uint8_t u8() {
    if (rest_.empty()) return 0;
    const std::uint8_t v = rest_[0];
    rest_ = rest_.subspan(1);
    return v;
  }
  std::uint16_t u16() { return static_cast<std::uint16_t>(u8() << 8 | u8()); }
  std::uint32_t u32() { return std::uint32_t{u16()} << 16 | u16(); }
  std::uint64_t u64() { return std::uint64_t{u32()} << 32 | u32(); }

  // Up to n bytes (fewer at the end of the input).
  std::span<const std::uint8_t> bytes(std::size_t n) {
    const auto b = rest_.first(std::min(n, rest_.size()));
    rest_ = rest_.subspan(b.size());
    return b;
  }
  std::string_view text(std::size_t n) {
    const auto b = bytes(n);
    return {reinterpret_cast<const char*>(b.data()), b.size()};
  }
  std::span<const std::uint8_t> rest() { return bytes(rest_.size()); }

 private:
  std::span<const std::uint8_t> rest_;
};

// A broken invariant of the code under test: a finding, reported like a sanitizer's.
[[noreturn]] inline void violated(const char* target, const char* what) {
  std::fprintf(stderr, "%s: invariant violated: %s\n", target, what);
  std::abort();
}

}  // namespace wasi_ktls::fuzz

// check(condition, "what must hold"): abort with the message when it does not.
#define FUZZ_CHECK(cond, what) \
  do {                         \
    if (!(cond)) ::wasi_ktls::fuzz::violated(__FILE__, what); \
  } while (0)
