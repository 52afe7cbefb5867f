// Running one guest instance of a loaded module to its end: instantiate against a fresh
// Host (its own handles, streams and I/O engine), call its entry point (a command's _start,
// or a reactor's _initialize then wasi:cli/run#run) and say how it ended. The module stays
// loaded: an embedder (or a test) runs the next instance after a trap.
#pragma once

#include <optional>
#include <string>

#include "base/result.h"
#include "wasi_binding/engine/engine.h"
#include "wasi_binding/host/host_config.h"

namespace wasi_ktls::wasi {

struct RunOutcome {
  int status = 0;                   // the guest's exit status (134 after a trap)
  std::optional<std::string> trap;  // why it trapped
};

// An error only when the host itself cannot start (no I/O engine, instantiation refused).
Result<RunOutcome> run_instance(wasm::Module& module, const HostConfig& config);

inline constexpr int kTrapStatus = 134;

}  // namespace wasi_ktls::wasi
