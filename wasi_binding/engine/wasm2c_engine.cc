#include "wasi_binding/engine/wasm2c_engine.h"

#include <array>
#include <cerrno>
#include <utility>
#include <vector>

#include "wasi_binding/engine/compile_cache.h"
#include "wasi_binding/engine/load_plan.h"
#include "wasi_binding/engine/shared_library.h"
#include "wasi_binding/engine/wasm2c_compiler.h"
#include "wasi_binding/engine/wasm2c_glue.h"

namespace wasi_ktls::wasm {
namespace {

// One loaded module: its library, the glue's entry points in it, and the host calls every
// instance is given. Shared by the Module and its Instances, so that whichever goes last
// unloads the code.
struct Loaded {
  std::shared_ptr<SharedLibrary> library;
  GlueInstantiate instantiate = nullptr;
  GlueFree free = nullptr;
  GlueMemory memory = nullptr;
  GlueCall call = nullptr;
  GlueStrerror strerror = nullptr;
  std::vector<HostCall> calls;  // one per LoadPlan import, in its order
  std::array<bool, 4> entries{};
};

template <class Fn>
bool find(const SharedLibrary& lib, const char* name, Fn& out) {
  out = reinterpret_cast<Fn>(lib.symbol(name));
  return out != nullptr;
}

std::size_t param_count(Entry e) { return e == Entry::realloc ? 4 : 0; }

class Wasm2cInstance final : public Instance {
 public:
  Wasm2cInstance(std::shared_ptr<const Loaded> loaded, void* instance)
      : loaded_(std::move(loaded)), instance_(instance) {}
  ~Wasm2cInstance() override { loaded_->free(instance_); }

  std::span<std::uint8_t> memory() override {
    std::uint64_t size = 0;
    std::uint8_t* data = loaded_->memory(instance_, &size);
    return {data, static_cast<std::size_t>(size)};
  }

  bool has(Entry e) const override { return loaded_->entries[static_cast<std::size_t>(e)]; }

  CallOutcome call(Entry e, std::span<const std::uint64_t> args) override {
    CallOutcome out;
    if (!has(e) || args.size() != param_count(e)) {
      out.kind = CallOutcome::Kind::trapped;
      out.trap = has(e) ? "wrong number of arguments for this entry"
                        : "the module does not export this entry";
      return out;
    }
    const int code = loaded_->call(instance_, static_cast<int>(e), args.data(), &out.value);
    if (code == kGlueStopped) {
      out.kind = CallOutcome::Kind::stopped;
    } else if (code != 0) {
      out.kind = CallOutcome::Kind::trapped;
      out.trap = loaded_->strerror(code);
    }
    return out;
  }

 private:
  std::shared_ptr<const Loaded> loaded_;
  void* instance_;
};

class Wasm2cModule final : public Module {
 public:
  explicit Wasm2cModule(std::shared_ptr<const Loaded> loaded) : loaded_(std::move(loaded)) {}

  Result<std::unique_ptr<Instance>> instantiate(void* host) override {
    void* instance = nullptr;
    const int code = loaded_->instantiate(host, loaded_->calls.data(), &instance);
    if (code == kGlueNoMemory) return errno_error(ENOMEM, "instantiating the module");
    if (code == kGlueStopped)
      return make_error(ErrorKind::config,
                        "instantiating the module: a host function stopped its start function");
    if (code != 0)
      return make_error(ErrorKind::config, "instantiating the module trapped: {}",
                        loaded_->strerror(code));
    return std::unique_ptr<Instance>(std::make_unique<Wasm2cInstance>(loaded_, instance));
  }

 private:
  std::shared_ptr<const Loaded> loaded_;
};

}  // namespace

Wasm2cEngine::Wasm2cEngine(Wasm2cOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<Module>> Wasm2cEngine::load(std::span<const std::uint8_t> wasm,
                                                   const ImportResolver& imports) {
  auto plan = plan_load(wasm, imports);
  if (!plan) return plan.error();
  auto toolchain = toolchain_identity(options_);
  if (!toolchain) return toolchain.error();
  const std::string glue = glue_source(*plan);
  auto key = cache_key(*toolchain + "\n" + glue, wasm);
  if (!key) return key.error();

  auto library = load_or_build(cache_directory(options_.cache_dir), *key,
                               [&](const std::string& work_dir, const std::string& out) {
                                 ++compiles_;
                                 auto built = compile_module(options_, *plan, glue, work_dir, out);
                                 if (built) return built;
                                 Error e = built.error();
                                 e.message = "cannot compile the module: " + e.message;
                                 return Status(std::move(e));
                               });
  if (!library) return library.error();

  auto loaded = std::make_shared<Loaded>();
  loaded->library = std::move(*library);
  const SharedLibrary& lib = *loaded->library;
  if (!find(lib, kGlueInstantiate, loaded->instantiate) || !find(lib, kGlueFree, loaded->free) ||
      !find(lib, kGlueMemory, loaded->memory) || !find(lib, kGlueCall, loaded->call) ||
      !find(lib, kGlueStrerror, loaded->strerror))
    return make_error(ErrorKind::config, "the compiled module {} lacks the glue's entry points",
                      *key);
  for (const auto& imp : plan->imports) loaded->calls.push_back(imp.call);
  for (std::size_t e = 0; e < loaded->entries.size(); ++e)
    loaded->entries[e] = plan->entries[e].has_value();
  return std::unique_ptr<Module>(std::make_unique<Wasm2cModule>(std::move(loaded)));
}

}  // namespace wasi_ktls::wasm
