// The engine seam: what the wasi:tls host needs from a WebAssembly engine, and nothing more.
// An engine loads a core module against the host's imports, instantiates it, calls its few
// entry points, and shows its linear memory. Everything above this header (the canonical ABI,
// resources, wasi interfaces) is engine-independent; wasm2c (wasm2c_engine.h) is the first
// engine, and another (wabt's interpreter, an embedder's own) plugs in here.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace wasi_ktls::wasm {

enum class ValType : std::uint8_t { i32, i64, f32, f64 };

struct FuncType {
  std::vector<ValType> params;
  std::vector<ValType> results;  // at most one (no multi-value imports in wasi 0.2)
  bool operator==(const FuncType&) const = default;
};

std::string to_string(const FuncType& t);  // "(i32, i64) -> i32"

// A host function as the guest calls it. Arguments arrive as raw values (i32 zero-extended,
// i64 as is, floats bit-cast); the single result, if any, goes to *result. Returns false to
// stop the guest at once: a trap, or an exit the host has recorded. `host` is the pointer
// given to Module::instantiate. Host functions may call back into the guest (cabi_realloc).
using HostCall = bool (*)(void* host, const std::uint64_t* args, std::uint64_t* result);

struct HostFunction {
  FuncType type;
  HostCall call = nullptr;
};

// The host's imports: `module` as the guest wrote it (any version suffix); nullptr when the
// host has no such function.
class ImportResolver {
 public:
  virtual ~ImportResolver() = default;
  virtual const HostFunction* find(std::string_view module, std::string_view name) const = 0;
};

// The entry points the host calls. realloc is the guest's `cabi_realloc` (for a command
// module whose export wasm-ld wrapped in constructor/destructor calls, the function inside
// the wrapper); run is `wasi:cli/run@0.2.x#run`.
enum class Entry : std::uint8_t { start, initialize, run, realloc };

struct CallOutcome {
  enum class Kind : std::uint8_t {
    returned,  // `value` holds the result, if the entry has one
    trapped,   // the guest trapped; `trap` says why (wasm2c's wording)
    stopped,   // a host function returned false: the host knows why
  };
  Kind kind = Kind::returned;
  std::uint64_t value = 0;
  std::string trap;
};

class Instance {
 public:
  virtual ~Instance() = default;
  // The guest's linear memory as it is now. Any call into the guest may grow (and move) it:
  // take it again after every call.
  virtual std::span<std::uint8_t> memory() = 0;
  virtual bool has(Entry e) const = 0;
  // Calls entry `e` (which must exist) with its arguments: realloc takes four i32s.
  // Nesting is allowed: a host function may call realloc while the guest is running.
  virtual CallOutcome call(Entry e, std::span<const std::uint64_t> args = {}) = 0;
};

class Module {
 public:
  virtual ~Module() = default;
  // A new instance whose host functions receive `host`. Fails if instantiation traps
  // (a data segment out of range, a start function that traps).
  virtual Result<std::unique_ptr<Instance>> instantiate(void* host) = 0;
};

class Engine {
 public:
  virtual ~Engine() = default;
  virtual std::string_view name() const = 0;
  // Validates the module's imports against `imports` (an import the host lacks, or whose type
  // differs, is an error naming it) and its exports (memory; _start, or
  // wasi:cli/run@0.2.x#run after _initialize), then prepares it to run.
  virtual Result<std::unique_ptr<Module>> load(std::span<const std::uint8_t> wasm,
                                               const ImportResolver& imports) = 0;
};

}  // namespace wasi_ktls::wasm
