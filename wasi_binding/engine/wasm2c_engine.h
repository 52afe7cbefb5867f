// The first engine behind engine.h: wasm2c translates the module to C, the system C compiler
// makes a shared library of it (kept in a content-keyed cache), and the library is dlopen'ed
// into the host process. Guest code runs natively, with wasm's bounds checks done in C.
//
// Calls into the instances of one loaded module are serialized (wasm-rt keeps its trap
// target and call depth per library); a host function may call back into its instance.
// Host functions must not throw.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "wasi_binding/engine/engine.h"
#include "wasi_binding/engine/wasm2c_options.h"

namespace wasi_ktls::wasm {

class Wasm2cEngine final : public Engine {
 public:
  explicit Wasm2cEngine(Wasm2cOptions options = {});

  std::string_view name() const override { return "wasm2c"; }
  // Also fails when the module cannot be compiled: a tool missing (kind config), failing
  // (kind config, with the tail of its output) or past options.compile_timeout (kind timeout).
  Result<std::unique_ptr<Module>> load(std::span<const std::uint8_t> wasm,
                                       const ImportResolver& imports) override;

  // How many modules this engine has compiled; loads served from the cache do not count.
  std::uint64_t compiles() const { return compiles_.load(); }

 private:
  Wasm2cOptions options_;
  std::atomic<std::uint64_t> compiles_{0};
};

}  // namespace wasi_ktls::wasm
