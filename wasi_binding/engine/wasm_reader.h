// A bounded cursor over one part of a wasm binary. The first failure sticks: later reads
// return zeros and empty values, so a parser reads a whole entry and checks ok() once, and the
// error names the section and the absolute offset where the input went wrong.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "base/result.h"

namespace wasi_ktls::wasm {

class WasmReader {
 public:
  // `origin`: the offset of bytes[0] in the whole binary, so errors point into the file;
  // `where`: what these bytes are ("export section"), for the error.
  WasmReader(std::span<const std::uint8_t> bytes, std::size_t origin, std::string where)
      : bytes_(bytes), origin_(origin), where_(std::move(where)) {}

  std::size_t offset() const { return origin_ + pos_; }
  std::size_t remaining() const { return bytes_.size() - pos_; }
  bool at_end() const { return pos_ == bytes_.size(); }
  bool ok() const { return !failed_; }

  std::uint8_t byte(std::string_view what);
  // LEB128, at most 5 bytes, no bits beyond 32 (the spec's u32).
  std::uint32_t u32(std::string_view what);
  // A u32 length and that many bytes.
  std::string name(std::string_view what);
  std::span<const std::uint8_t> bytes(std::size_t n, std::string_view what);

  // Records a failure at `at` (an absolute offset) unless one is already recorded.
  void fail(std::size_t at, std::string message);
  // The recorded failure (kind config), naming the section and offset.
  Error error() const;

 private:
  std::span<const std::uint8_t> bytes_;
  std::size_t origin_;
  std::string where_;
  std::size_t pos_ = 0;
  // Plain members, not an optional: GCC 12 at -O1 takes an optional<string-holding struct>
  // for a maybe-uninitialized read (-Werror).
  bool failed_ = false;
  std::size_t fail_at_ = 0;
  std::string fail_message_;
};

}  // namespace wasi_ktls::wasm
