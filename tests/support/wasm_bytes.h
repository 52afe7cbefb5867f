// Hand-assembling core wasm binaries in tests: LEB128 numbers, names, sections.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace wasi_ktls::wasm {

using Bytes = std::vector<std::uint8_t>;

inline Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// Unsigned LEB128, shortest form.
inline Bytes leb(std::uint32_t v) {
  Bytes out;
  do {
    std::uint8_t b = v & 0x7f;
    v >>= 7;
    if (v != 0) b |= 0x80;
    out.push_back(b);
  } while (v != 0);
  return out;
}

inline Bytes name(std::string_view s) {
  return leb(static_cast<std::uint32_t>(s.size())) + Bytes(s.begin(), s.end());
}

inline Bytes section(std::uint8_t id, const Bytes& contents) {
  return Bytes{id} + leb(static_cast<std::uint32_t>(contents.size())) + contents;
}

// "\0asm", version 1.
inline const Bytes kHeader = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00};

}  // namespace wasi_ktls::wasm
