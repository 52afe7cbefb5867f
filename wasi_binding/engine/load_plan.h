// What an engine needs to know about a module before it compiles anything, and the checks
// that refuse a module early: every function import bound to a host function of the same
// type, the exports the host calls present with the types it calls them with, and a command
// module's wrapped cabi_realloc unwrapped. Engine-independent: any engine behind engine.h
// can start from a LoadPlan.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "base/result.h"
#include "wasi_binding/engine/engine.h"
#include "wasi_binding/engine/wasm_module.h"

namespace wasi_ktls::wasm {

struct HostImport {
  std::string module;
  std::string name;
  FuncType type;
  HostCall call = nullptr;
};

struct LoadPlan {
  WasmModule module;  // as parsed from the input (offsets refer to it, not to `wasm`)
  // One per distinct (module, name) import, in order of first appearance: the order of the
  // host-call table an instance is given. (A module may import the same function twice.)
  std::vector<HostImport> imports;
  // The export that implements each Entry (indexed by Entry), if the module has it.
  std::array<std::optional<std::string>, 4> entries;
  // The binary to compile: the input, or the input with one more export (the function inside
  // a command's cabi_realloc wrapper, named kUnwrappedRealloc).
  std::vector<std::uint8_t> wasm;

  const std::optional<std::string>& entry(Entry e) const {
    return entries[static_cast<std::size_t>(e)];
  }
};

// The private export name of an unwrapped command cabi_realloc.
inline constexpr std::string_view kUnwrappedRealloc = "wasi-ktls:unwrapped:cabi_realloc";

// Failures are ErrorKind::config: malformed input, imports the host lacks (all of them named
// in one message) or has with another type, missing or mistyped exports.
Result<LoadPlan> plan_load(std::span<const std::uint8_t> wasm, const ImportResolver& resolver);

}  // namespace wasi_ktls::wasm
