#include "wasi_binding/engine/wasm_reader.h"

namespace wasi_ktls::wasm {

std::uint8_t WasmReader::byte(std::string_view what) {
  if (!ok()) return 0;
  if (at_end()) {
    fail(offset(), fmt::format("truncated: {} runs past the end", what));
    return 0;
  }
  return bytes_[pos_++];
}

std::uint32_t WasmReader::u32(std::string_view what) {
  if (!ok()) return 0;
  const std::size_t start = offset();
  std::uint32_t value = 0;
  for (int shift = 0; shift < 35; shift += 7) {
    if (at_end()) {
      fail(start, fmt::format("truncated: {} runs past the end", what));
      return 0;
    }
    const std::uint8_t b = bytes_[pos_++];
    // The fifth byte carries bits 28..31 only: anything above is a value beyond u32.
    if (shift == 28 && (b & 0x70) != 0) break;
    value |= static_cast<std::uint32_t>(b & 0x7f) << shift;
    if ((b & 0x80) == 0) return value;
  }
  fail(start, fmt::format("{} is not a valid u32 LEB128", what));
  return 0;
}

std::span<const std::uint8_t> WasmReader::bytes(std::size_t n, std::string_view what) {
  if (!ok()) return {};
  if (n > remaining()) {
    fail(offset(),
         fmt::format("truncated: {} ({} bytes) runs past the end ({} left)", what, n, remaining()));
    return {};
  }
  auto out = bytes_.subspan(pos_, n);
  pos_ += n;
  return out;
}

std::string WasmReader::name(std::string_view what) {
  const std::uint32_t n = u32(what);
  auto b = bytes(n, what);
  return std::string(b.begin(), b.end());
}

void WasmReader::fail(std::size_t at, std::string message) {
  if (failed_) return;
  failed_ = true;
  fail_at_ = at;
  fail_message_ = std::move(message);
}

Error WasmReader::error() const {
  if (!failed_) return make_error(ErrorKind::config, "malformed wasm: {}", where_);
  return make_error(ErrorKind::config, "malformed wasm: {} at offset {}: {}", where_, fail_at_,
                    fail_message_);
}

}  // namespace wasi_ktls::wasm
