// The C file compiled next to wasm2c's output: it defines the module's imports as forwarders
// to the host's HostCalls and exposes a few entry points the C++ side finds with dlsym.
//
// Traps are longjmps (wasm-rt), so every setjmp and every longjmp stays in C: the glue's entry
// points open the try, wasm code traps, and a host function that returns false makes its
// forwarder trap once the host function has returned. No longjmp ever crosses a C++ frame.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "wasi_binding/engine/engine.h"
#include "wasi_binding/engine/load_plan.h"

namespace wasi_ktls::wasm {

// The glue's entry points. The names carry the glue ABI's version: a library built for
// another version lacks them and is rebuilt, never called with the wrong arguments.
inline constexpr char kGlueInstantiate[] = "wasi_ktls_w2c_v1_instantiate";
inline constexpr char kGlueFree[] = "wasi_ktls_w2c_v1_free";
inline constexpr char kGlueMemory[] = "wasi_ktls_w2c_v1_memory";
inline constexpr char kGlueCall[] = "wasi_ktls_w2c_v1_call";
inline constexpr char kGlueStrerror[] = "wasi_ktls_w2c_v1_strerror";

// What instantiate and call return: 0, a wasm_rt_trap_t, or one of these.
inline constexpr int kGlueStopped = 0x7fff;  // a host function returned false
inline constexpr int kGlueNoMemory = -1;     // instantiate could not allocate

// instantiate(host, calls, &instance): `calls` (one per LoadPlan import, in order) must
// outlive the instance. call(instance, entry, args, &result): `entry` is an Entry.
using GlueInstantiate = int (*)(void* host, const HostCall* calls, void** instance);
using GlueFree = void (*)(void* instance);
using GlueMemory = std::uint8_t* (*)(void* instance, std::uint64_t* size);
using GlueCall = int (*)(void* instance, int entry, const std::uint64_t* args,
                         std::uint64_t* result);
using GlueStrerror = const char* (*)(int code);

// The glue for `plan`, whose wasm2c output was made with `-n module_name` and whose header
// is `header` (the name given to #include).
std::string wasm2c_glue(const LoadPlan& plan, std::string_view module_name,
                        std::string_view header);

}  // namespace wasi_ktls::wasm
