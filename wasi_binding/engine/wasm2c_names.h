// The C names wasm2c 1.0.32 gives a module's imports and exports, so that generated glue
// defines exactly the functions the generated code calls. The rule (c-writer.cc, MangleName,
// checked against wasm2c's own output in tests/unit/wasm_mangle_test.cc): "Z_", then each
// byte of the name kept if it is an ASCII letter, digit or '_' other than 'Z', and otherwise
// written as 'Z' and two upper-case hex digits. 'Z' is escaped so that the result is unique.
#pragma once

#include <string>
#include <string_view>

#include "wasi_binding/engine/engine.h"

namespace wasi_ktls::wasm {

std::string wasm2c_mangle(std::string_view name);

// The function wasm2c declares for an import, or for an export of module `module_name`
// (wasm2c -n): mangle(module) + mangle(name), e.g. "Z_wasiZ3AioZ2FstreamsZ400Z2E2Z2E0Z_read".
std::string wasm2c_function_name(std::string_view module, std::string_view name);

// The struct an imported module's functions receive as their first argument:
// "Z_<mangled module>_instance_t" (a struct tag the embedder defines).
std::string wasm2c_instance_struct(std::string_view module);

// wasm2c's C spelling of a value type (its typedefs u32, u64, f32, f64).
std::string_view wasm2c_c_type(ValType t);

}  // namespace wasi_ktls::wasm
