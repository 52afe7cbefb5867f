// The canonical ABI's view of guest memory (sync lowering, wasm32): every pointer, length,
// alignment and string is checked before use, and a violation is a Trap naming the argument.
// Memory is re-read from the engine on every access, because any call into the guest
// (cabi_realloc) may grow it and move it.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string_view>

#include "wasi_binding/abi/trap.h"
#include "wasi_binding/engine/engine.h"

namespace wasi_ktls::wasi {

class GuestMemory {
 public:
  explicit GuestMemory(wasm::Instance& instance) : instance_(instance) {}

  // `len` bytes at `ptr`, or a trap naming `what`.
  std::span<std::uint8_t> bytes(std::uint32_t ptr, std::uint64_t len, const char* what);
  // A UTF-8 string at (ptr, len); invalid UTF-8 traps.
  std::string_view string(std::uint32_t ptr, std::uint32_t len, const char* what);
  // A region the host fills with a function's results: in range and aligned, else a trap.
  std::uint32_t return_area(std::uint32_t ptr, std::uint32_t size, std::uint32_t align,
                            const char* what);

  template <class T>
  void store(std::uint32_t ptr, T value) {  // ptr from return_area(): already checked
    std::memcpy(bytes(ptr, sizeof(T), "store").data(), &value, sizeof(T));
  }
  template <class T>
  T load(std::uint32_t ptr, const char* what) {
    if (ptr % alignof(T) != 0) trap("{}: address {} is not {}-byte aligned", what, ptr, alignof(T));
    T v;
    std::memcpy(&v, bytes(ptr, sizeof(T), what).data(), sizeof(T));
    return v;
  }

  // `size` bytes from the guest's cabi_realloc(0, 0, align, size): checked for range and
  // alignment. size 0 is allowed (the ABI still asks).
  std::uint32_t allocate(std::uint32_t align, std::uint32_t size, const char* what);
  // cabi_realloc(ptr, old_size, align, new_size), checked the same way.
  std::uint32_t reallocate(std::uint32_t ptr, std::uint32_t old_size, std::uint32_t align,
                           std::uint32_t new_size, const char* what);
  // A list<u8> / string for the guest: allocated with cabi_realloc, then copied. Its pointer.
  std::uint32_t copy_out(std::span<const std::uint8_t> data, std::uint32_t align,
                         const char* what);

  wasm::Instance& instance() { return instance_; }

 private:
  wasm::Instance& instance_;
};

// True if `s` is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool valid_utf8(std::string_view s);

}  // namespace wasi_ktls::wasi
