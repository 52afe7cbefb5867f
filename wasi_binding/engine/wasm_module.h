// A core WebAssembly binary read as far as loading it needs: the function types, the function
// imports, the exports, and where each function body lies. Validation of the code itself is
// left to the compiler behind the engine (wasm2c validates fully); this parser checks every
// length and index it reads, so nothing it returns points outside the binary.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/result.h"
#include "wasi_binding/engine/engine.h"

namespace wasi_ktls::wasm {

struct FuncImport {
  std::string module;
  std::string name;
  std::uint32_t type_index = 0;
};

enum class ExternKind : std::uint8_t { func = 0, table = 1, memory = 2, global = 3, tag = 4 };

struct Export {
  std::string name;
  ExternKind kind = ExternKind::func;
  std::uint32_t index = 0;
};

// A byte range [begin, end) of the binary.
struct ByteRange {
  std::size_t begin = 0;
  std::size_t end = 0;
  bool empty() const { return begin == end; }
};

struct WasmModule {
  // Failures are ErrorKind::config naming the section and offset, or the import a host
  // cannot satisfy by functions alone (an imported memory, table, global or tag).
  static Result<WasmModule> parse(std::span<const std::uint8_t> wasm);

  // nullopt for a type that uses a value type beyond i32/i64/f32/f64 (v128, references):
  // such a function may live inside the module but cannot cross to the host.
  std::vector<std::optional<FuncType>> types;
  std::vector<FuncImport> imports;       // function index space: imports first...
  std::vector<std::uint32_t> functions;  // ...then the defined functions' type indices
  std::vector<Export> exports;
  std::vector<ByteRange> bodies;  // per defined function: its locals and code, after the size
  ByteRange export_section;       // the whole section (id, size, contents); empty if absent

  std::size_t function_count() const { return imports.size() + functions.size(); }
  // The type of function `index` (< function_count()); nullptr if it is not representable.
  const FuncType* function_type(std::uint32_t index) const;
  const Export* find_export(std::string_view name) const;
};

}  // namespace wasi_ktls::wasm
