// Command modules and their wrapped exports.
//
// wasm-ld (lld 14) links a command (a module with `_start`) so that every exported function,
// `_start` included, is a synthetic wrapper that calls `__wasm_call_ctors` (when the module
// has constructors), then the function, then `__wasm_call_dtors` (when libc has it):
//
//   cabi_realloc.command_export:  call $ctors; local.get 0..3; call $cabi_realloc; call $dtors
//
// Calling such an export while `main` runs (as a host does with cabi_realloc) would run the
// constructors again and, worse, the atexit handlers and stdio flushes. The loader finds the
// function inside the wrapper from the code and exports it under a private name.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>
#include <vector>

#include "wasi_binding/engine/wasm_module.h"

namespace wasi_ktls::wasm {

// The function that export function `func` wraps, if its body has the wrapper's shape with
// the same constructor and destructor calls as the `_start` export `start` (which wasm-ld
// wraps the same way): the two must agree, so an ordinary function that happens to forward
// its arguments and then call something is not mistaken for a wrapper.
std::optional<std::uint32_t> command_export_target(const WasmModule& m,
                                                   std::span<const std::uint8_t> wasm,
                                                   std::uint32_t start, std::uint32_t func);

// `wasm` (which `m` was parsed from, and which has an export section) with one more export:
// function `func` as `name`.
std::vector<std::uint8_t> with_function_export(const WasmModule& m,
                                               std::span<const std::uint8_t> wasm,
                                               std::string_view name, std::uint32_t func);

}  // namespace wasi_ktls::wasm
