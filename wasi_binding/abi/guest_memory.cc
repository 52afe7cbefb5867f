#include "wasi_binding/abi/guest_memory.h"

#include <array>

namespace wasi_ktls::wasi {

std::span<std::uint8_t> GuestMemory::bytes(std::uint32_t ptr, std::uint64_t len,
                                           const char* what) {
  const std::span<std::uint8_t> mem = instance_.memory();
  if (ptr > mem.size() || len > mem.size() - ptr)
    trap("{}: {} bytes at address {} run past the end of guest memory ({} bytes)", what, len,
         ptr, mem.size());
  return mem.subspan(ptr, static_cast<std::size_t>(len));
}

std::string_view GuestMemory::string(std::uint32_t ptr, std::uint32_t len, const char* what) {
  const auto b = bytes(ptr, len, what);
  std::string_view s(reinterpret_cast<const char*>(b.data()), b.size());
  if (!valid_utf8(s)) trap("{}: the string at address {} ({} bytes) is not valid UTF-8", what, ptr, len);
  return s;
}

std::uint32_t GuestMemory::return_area(std::uint32_t ptr, std::uint32_t size, std::uint32_t align,
                                       const char* what) {
  if (ptr % align != 0)
    trap("{}: return area at address {} is not {}-byte aligned", what, ptr, align);
  (void)bytes(ptr, size, what);
  return ptr;
}

std::uint32_t GuestMemory::allocate(std::uint32_t align, std::uint32_t size, const char* what) {
  return reallocate(0, 0, align, size, what);
}

std::uint32_t GuestMemory::reallocate(std::uint32_t ptr, std::uint32_t old_size,
                                      std::uint32_t align, std::uint32_t new_size,
                                      const char* what) {
  if (!instance_.has(wasm::Entry::realloc))
    trap("{}: the guest exports no cabi_realloc, which this call needs to return a list", what);
  const std::array<std::uint64_t, 4> args{ptr, old_size, align, new_size};
  const wasm::CallOutcome out = instance_.call(wasm::Entry::realloc, args);
  switch (out.kind) {
    case wasm::CallOutcome::Kind::returned:
      break;
    case wasm::CallOutcome::Kind::trapped:
      trap("{}: the guest's cabi_realloc trapped: {}", what, out.trap);
    case wasm::CallOutcome::Kind::stopped:
      throw Stopped{};
  }
  const auto got = static_cast<std::uint32_t>(out.value);
  if (got % align != 0)
    trap("{}: cabi_realloc returned address {}, not {}-byte aligned", what, got, align);
  (void)bytes(got, new_size, "cabi_realloc's result");
  return got;
}

std::uint32_t GuestMemory::copy_out(std::span<const std::uint8_t> data, std::uint32_t align,
                                    const char* what) {
  if (data.size() > UINT32_MAX) trap("{}: {} bytes do not fit a wasm32 list", what, data.size());
  const std::uint32_t at = allocate(align, static_cast<std::uint32_t>(data.size()), what);
  if (!data.empty()) std::memcpy(bytes(at, data.size(), what).data(), data.data(), data.size());
  return at;
}

bool valid_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    unsigned min;
    unsigned cp;
    if ((c & 0xE0) == 0xC0) { len = 2; min = 0x80; cp = c & 0x1F; }
    else if ((c & 0xF0) == 0xE0) { len = 3; min = 0x800; cp = c & 0x0F; }
    else if ((c & 0xF8) == 0xF0) { len = 4; min = 0x10000; cp = c & 0x07; }
    else return false;
    if (n - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace wasi_ktls::wasi
