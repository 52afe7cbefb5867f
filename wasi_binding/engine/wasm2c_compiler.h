// From a LoadPlan to a shared library: wasm2c, the generated glue, and one run of the C
// compiler over both and wasm-rt, each tool a child process under the compile timeout.
#pragma once

#include <string>
#include <string_view>

#include "base/result.h"
#include "wasi_binding/engine/load_plan.h"
#include "wasi_binding/engine/wasm2c_options.h"

namespace wasi_ktls::wasm {

// What decides the compiled output besides the wasm bytes: the glue ABI, the compiler flags,
// and each tool as found now (resolved path, size, modification time), so that an upgraded
// compiler or wabt gets fresh cache entries. Fails (kind config) if a tool is not found.
Result<std::string> toolchain_identity(const Wasm2cOptions& options);

// The glue C for `plan` (wasm2c_glue.h), as compile_module compiles it.
std::string glue_source(const LoadPlan& plan);

// Compiles plan.wasm with `glue` in `work_dir` (which must exist and be empty) into `out`.
// Leaves its intermediate files in `work_dir`.
Status compile_module(const Wasm2cOptions& options, const LoadPlan& plan, std::string_view glue,
                      const std::string& work_dir, const std::string& out);

}  // namespace wasi_ktls::wasm
