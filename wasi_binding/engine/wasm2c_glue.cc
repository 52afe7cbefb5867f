#include "wasi_binding/engine/wasm2c_glue.h"

#include <algorithm>
#include <map>

#include "wasi_binding/engine/wasm2c_names.h"

namespace wasi_ktls::wasm {
namespace {

// Before the generated part: what every glue file needs.
constexpr std::string_view kPrologue = R"(#define _GNU_SOURCE
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "wasm-rt-impl.h"

#if !WASM_RT_USE_STACK_DEPTH_COUNT || WASM_RT_MEMCHECK_SIGNAL_HANDLER
/* Bounds are checked by explicit tests and recursion by counting: no signal handlers in the
   host process. The save/restore below relies on the depth counter existing. */
#error "compile with -DWASM_RT_MEMCHECK_SIGNAL_HANDLER=0"
#endif

#define KTLS_EXPORT __attribute__((visibility("default")))

typedef bool (*ktls_host_call)(void* host, const uint64_t* args, uint64_t* result);

/* wasm-rt keeps its trap target and call depth in globals of this library, so calls into
   any instance of this module are serialized. Recursive: a host function may call back. */
static pthread_mutex_t ktls_lock = PTHREAD_RECURSIVE_MUTEX_INITIALIZER_NP;
static bool ktls_initialized;

static WASM_RT_NO_RETURN void ktls_stop(void) {
  wasm_rt_trap((wasm_rt_trap_t)KTLS_STOPPED);
}

static uint64_t ktls_f32_bits(float v) { uint32_t b; memcpy(&b, &v, sizeof b); return b; }
static uint64_t ktls_f64_bits(double v) { uint64_t b; memcpy(&b, &v, sizeof b); return b; }
static float ktls_bits_f32(uint64_t v) { uint32_t b = (uint32_t)v; float f; memcpy(&f, &b, sizeof f); return f; }
static double ktls_bits_f64(uint64_t v) { double f; memcpy(&f, &v, sizeof f); return f; }
)";

// After the generated part: the entry points, in terms of the generated ktls_* helpers.
constexpr std::string_view kEpilogue = R"(
/* Runs fn(ctx) under its own trap target. A host function may re-enter (cabi_realloc while
   the guest runs), so the enclosing call's jmp_buf and depth bookkeeping are saved here and
   put back before returning: a trap in the inner call ends only the inner call, and a later
   trap of the outer call still lands in the outer try, with the outer depth. */
static int ktls_guarded(void (*fn)(void*), void* ctx) {
  jmp_buf outer_buf;
  memcpy(outer_buf, wasm_rt_jmp_buf, sizeof(jmp_buf));
  WASM_RT_UNWIND_TARGET* outer_target = wasm_rt_get_unwind_target();
  const uint32_t outer_depth = wasm_rt_call_stack_depth;
  const uint32_t outer_saved_depth = wasm_rt_saved_call_stack_depth;
  int code = wasm_rt_impl_try();
  if (code == 0) fn(ctx);
  memcpy(wasm_rt_jmp_buf, outer_buf, sizeof(jmp_buf));
  wasm_rt_set_unwind_target(outer_target);
  wasm_rt_call_stack_depth = outer_depth;
  wasm_rt_saved_call_stack_depth = outer_saved_depth;
  return code;
}

static void ktls_do_instantiate(void* p) {
  if (!ktls_initialized) {
    wasm_rt_init();
    ktls_init_module();
    ktls_initialized = true;
  }
  ktls_instantiate_guest((ktls_instance*)p);
}

KTLS_EXPORT int wasi_ktls_w2c_v1_instantiate(void* host, const ktls_host_call* calls,
                                             void** out) {
  *out = NULL;
  ktls_instance* i = calloc(1, sizeof *i);
  if (i == NULL) return KTLS_NO_MEMORY;
  ktls_bind(i, host, calls);
  pthread_mutex_lock(&ktls_lock);
  int code = ktls_guarded(ktls_do_instantiate, i);
  pthread_mutex_unlock(&ktls_lock);
  /* wasm-rt does not check the allocation of the initial memory. */
  wasm_rt_memory_t* mem = ktls_memory(i);
  if (code == 0 && mem->data == NULL && mem->size != 0) code = KTLS_NO_MEMORY;
  if (code != 0) {
    ktls_free_guest(i);  /* frees what was allocated before a trap; calloc'd, so NULL-safe */
    free(i);
    return code;
  }
  *out = i;
  return 0;
}

KTLS_EXPORT void wasi_ktls_w2c_v1_free(void* p) {
  ktls_free_guest((ktls_instance*)p);
  free(p);
}

KTLS_EXPORT uint8_t* wasi_ktls_w2c_v1_memory(void* p, uint64_t* size) {
  wasm_rt_memory_t* mem = ktls_memory((ktls_instance*)p);
  *size = mem->size;
  return mem->data;
}

struct ktls_call {
  ktls_instance* instance;
  int entry;
  const uint64_t* args;
  uint64_t result;
};

static void ktls_do_call(void* p) {
  struct ktls_call* c = p;
  c->result = ktls_dispatch(c->instance, c->entry, c->args);
}

KTLS_EXPORT int wasi_ktls_w2c_v1_call(void* p, int entry, const uint64_t* args,
                                      uint64_t* result) {
  struct ktls_call c = {(ktls_instance*)p, entry, args, 0};
  pthread_mutex_lock(&ktls_lock);
  int code = ktls_guarded(ktls_do_call, &c);
  pthread_mutex_unlock(&ktls_lock);
  *result = c.result;
  return code;
}

KTLS_EXPORT const char* wasi_ktls_w2c_v1_strerror(int code) {
  if (code == KTLS_STOPPED) return "stopped by a host function";
  if (code == KTLS_NO_MEMORY) return "out of memory";
  return wasm_rt_strerror((wasm_rt_trap_t)code);
}

/* wasm-rt's function-type registry is heap memory held by this library: give it back when
   the library is unloaded. */
__attribute__((destructor)) static void ktls_unload(void) {
  if (ktls_initialized) wasm_rt_free();
}
)";

std::string to_u64(ValType t, std::string_view v) {
  switch (t) {
    case ValType::i32:
    case ValType::i64: return fmt::format("(uint64_t){}", v);
    case ValType::f32: return fmt::format("ktls_f32_bits({})", v);
    case ValType::f64: return fmt::format("ktls_f64_bits({})", v);
  }
  return "";
}

std::string from_u64(ValType t, std::string_view v) {
  switch (t) {
    case ValType::i32: return fmt::format("(u32){}", v);
    case ValType::i64: return fmt::format("(u64){}", v);
    case ValType::f32: return fmt::format("ktls_bits_f32({})", v);
    case ValType::f64: return fmt::format("ktls_bits_f64({})", v);
  }
  return "";
}

std::string forwarder(const HostImport& imp, std::size_t index) {
  const std::string fn = wasm2c_function_name(imp.module, imp.name);
  const std::string result =
      imp.type.results.empty() ? "void" : std::string(wasm2c_c_type(imp.type.results[0]));
  std::string params = fmt::format("struct {}* m", wasm2c_instance_struct(imp.module));
  std::string packed;
  for (std::size_t i = 0; i < imp.type.params.size(); ++i) {
    const ValType t = imp.type.params[i];
    params += fmt::format(", {} a{}", wasm2c_c_type(t), i);
    packed += fmt::format("{}{}", i ? ", " : "", to_u64(t, fmt::format("a{}", i)));
  }
  std::string out =
      fmt::format("/* import: {}.{} */\n{} {}({}) {{\n", imp.module, imp.name, result, fn, params);
  // An empty initializer list is not C11: a function without parameters still passes a slot.
  out +=
      fmt::format("  uint64_t args[{}] = {{{}}};\n  uint64_t r = 0;\n",
                  std::max<std::size_t>(imp.type.params.size(), 1), packed.empty() ? "0" : packed);
  out += fmt::format("  if (!m->calls[{}](m->host, args, &r)) ktls_stop();\n", index);
  if (!imp.type.results.empty())
    out += fmt::format("  return {};\n", from_u64(imp.type.results[0], "r"));
  return out + "}\n\n";
}

}  // namespace

std::string wasm2c_glue(const LoadPlan& plan, std::string_view module_name,
                        std::string_view header) {
  const std::string self = wasm2c_mangle(module_name);
  std::string out = fmt::format(
      "/* Generated by wasi-ktls (wasi_binding/engine/wasm2c_glue.cc). */\n"
      "#define KTLS_STOPPED {}\n#define KTLS_NO_MEMORY ({})\n",
      kGlueStopped, kGlueNoMemory);
  out += kPrologue;
  out += fmt::format("#include \"{}\"\n\n", header);

  // wasm2c passes one instance pointer per imported module, in the modules' byte order.
  std::map<std::string, std::string> members;  // module -> member of ktls_instance
  for (const auto& imp : plan.imports) members.emplace(imp.module, "");
  std::size_t n = 0;
  for (auto& [module, member] : members) {
    member = fmt::format("m{}", n++);
    out += fmt::format("struct {} {{\n  void* host;\n  const ktls_host_call* calls;\n}};\n",
                       wasm2c_instance_struct(module));
  }
  out += "\n";
  for (std::size_t i = 0; i < plan.imports.size(); ++i) out += forwarder(plan.imports[i], i);

  out += fmt::format("typedef struct {{\n  {}_instance_t guest;\n", self);
  for (const auto& [module, member] : members)
    out += fmt::format("  struct {} {};\n", wasm2c_instance_struct(module), member);
  out += "} ktls_instance;\n\n";

  out += "static void ktls_bind(ktls_instance* i, void* host, const ktls_host_call* calls) {\n";
  for (const auto& [module, member] : members)
    out += fmt::format("  i->{0}.host = host;\n  i->{0}.calls = calls;\n", member);
  out += "}\n\n";

  out += fmt::format("static void ktls_init_module(void) {{ {}_init_module(); }}\n\n", self);
  out += fmt::format(
      "static void ktls_instantiate_guest(ktls_instance* i) {{\n  {}_instantiate(&i->guest", self);
  for (const auto& [module, member] : members) out += fmt::format(", &i->{}", member);
  out += ");\n}\n\n";
  out += fmt::format("static void ktls_free_guest(ktls_instance* i) {{ {}_free(&i->guest); }}\n\n",
                     self);
  out += fmt::format(
      "static wasm_rt_memory_t* ktls_memory(ktls_instance* i) {{ return {}(&i->guest); }}\n\n",
      wasm2c_function_name(module_name, "memory"));

  out +=
      "static uint64_t ktls_dispatch(ktls_instance* i, int entry, const uint64_t* a) {\n"
      "  (void)a;\n  switch (entry) {\n";
  const auto call = [&](Entry e) {
    return fmt::format("{}(&i->guest", wasm2c_function_name(module_name, *plan.entry(e)));
  };
  if (plan.entry(Entry::start))
    out += fmt::format("    case {}: {}); return 0;\n", static_cast<int>(Entry::start),
                       call(Entry::start));
  if (plan.entry(Entry::initialize))
    out += fmt::format("    case {}: {}); return 0;\n", static_cast<int>(Entry::initialize),
                       call(Entry::initialize));
  if (plan.entry(Entry::run))
    out +=
        fmt::format("    case {}: return {});\n", static_cast<int>(Entry::run), call(Entry::run));
  if (plan.entry(Entry::realloc))
    out += fmt::format("    case {}: return {}, (u32)a[0], (u32)a[1], (u32)a[2], (u32)a[3]);\n",
                       static_cast<int>(Entry::realloc), call(Entry::realloc));
  out += "  }\n  return 0;\n}\n";

  out += kEpilogue;
  return out;
}

}  // namespace wasi_ktls::wasm
