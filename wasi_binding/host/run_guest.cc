#include "wasi_binding/host/run_guest.h"

#include "ktls/io/engine.h"
#include "wasi_binding/host/host.h"

namespace wasi_ktls::wasi {

Result<RunOutcome> run_instance(wasm::Module& module, const HostConfig& config) {
  auto io = make_engine();
  if (!io) return io.error();
  Host host(config, *io->engine);
  auto instance = module.instantiate(&host);
  if (!instance) return RunOutcome{kTrapStatus, "instantiation: " + instance.error().message};
  wasm::Instance& inst = **instance;
  host.attach(inst);

  wasm::CallOutcome out;
  bool reactor = false;
  if (inst.has(wasm::Entry::start)) {
    out = inst.call(wasm::Entry::start);
  } else {
    reactor = true;
    if (inst.has(wasm::Entry::initialize)) out = inst.call(wasm::Entry::initialize);
    if (out.kind == wasm::CallOutcome::Kind::returned) out = inst.call(wasm::Entry::run);
  }
  switch (out.kind) {
    case wasm::CallOutcome::Kind::returned:
      if (!reactor) return RunOutcome{0, std::nullopt};
      if (out.value > 1)
        return RunOutcome{kTrapStatus,
                          fmt::format("wasi:cli/run#run returned result tag {} (0 ok, 1 err)",
                                      out.value)};
      return RunOutcome{static_cast<int>(out.value), std::nullopt};
    case wasm::CallOutcome::Kind::trapped:
      return RunOutcome{kTrapStatus, out.trap};
    case wasm::CallOutcome::Kind::stopped:
      if (host.exit_status()) return RunOutcome{*host.exit_status(), std::nullopt};
      return RunOutcome{kTrapStatus, host.trap_reason().value_or("stopped by the host")};
  }
  return RunOutcome{kTrapStatus, "unknown outcome"};
}

}  // namespace wasi_ktls::wasi
