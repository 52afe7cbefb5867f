#include "wasi_binding/engine/engine.h"

namespace wasi_ktls::wasm {
namespace {

std::string_view name_of(ValType t) {
  switch (t) {
    case ValType::i32: return "i32";
    case ValType::i64: return "i64";
    case ValType::f32: return "f32";
    case ValType::f64: return "f64";
  }
  return "?";
}

std::string list(const std::vector<ValType>& types) {
  std::string out = "(";
  for (std::size_t i = 0; i < types.size(); ++i) {
    if (i > 0) out += ", ";
    out += name_of(types[i]);
  }
  return out + ")";
}

}  // namespace

std::string to_string(const FuncType& t) {
  // A single result is written bare, as the seam's comment shows: "(i32, i64) -> i32".
  return list(t.params) + " -> " +
         (t.results.size() == 1 ? std::string(name_of(t.results[0])) : list(t.results));
}

}  // namespace wasi_ktls::wasm
