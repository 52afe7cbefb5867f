#include "wasi_binding/engine/wasm2c_names.h"

#include <fmt/format.h>

namespace wasi_ktls::wasm {
namespace {

bool kept(unsigned char c) {
  // wasm2c uses isalnum in the C locale: ASCII only, whatever the byte's sign.
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Y') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

std::string wasm2c_mangle(std::string_view name) {
  std::string out = "Z_";
  for (char ch : name) {
    const auto c = static_cast<unsigned char>(ch);
    if (kept(c))
      out += ch;
    else
      out += fmt::format("Z{:02X}", c);
  }
  return out;
}

std::string wasm2c_function_name(std::string_view module, std::string_view name) {
  return wasm2c_mangle(module) + wasm2c_mangle(name);
}

std::string wasm2c_instance_struct(std::string_view module) {
  return wasm2c_mangle(module) + "_instance_t";
}

std::string_view wasm2c_c_type(ValType t) {
  switch (t) {
    case ValType::i32: return "u32";
    case ValType::i64: return "u64";
    case ValType::f32: return "f32";
    case ValType::f64: return "f64";
  }
  return "?";
}

}  // namespace wasi_ktls::wasm
