// How a host function stops the guest. A trap (the guest broke the canonical ABI: a pointer
// out of range, an unknown handle, a bad discriminant) and an exit (proc_exit,
// wasi:cli/exit) unwind the host function as a C++ exception, caught in exactly one place:
// the thunk between the engine and the host function (host/import_table.h), which records
// why and tells the engine to stop the guest. They never leave wasi_binding.
#pragma once

#include <cstdint>
#include <string>

#include <fmt/format.h>

namespace wasi_ktls::wasi {

struct Trap {
  std::string reason;
};

struct Exit {
  int status = 0;
};

// A nested call into the guest (cabi_realloc) stopped it: the outcome is already recorded.
struct Stopped {};

template <class... Args>
[[noreturn]] void trap(fmt::format_string<Args...> f, Args&&... args) {
  throw Trap{fmt::format(f, std::forward<Args>(args)...)};
}

}  // namespace wasi_ktls::wasi
