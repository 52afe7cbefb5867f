// `wasi-ktls run GUEST.wasm [ARGS...]`: runs a WebAssembly guest with wasi:tls (and the
// wasi:io, wasi:sockets, wasi:cli pieces it needs) provided by this host.
#pragma once

#include "tools/command.h"

namespace wasi_ktls::cli {

Command add_run_command(CLI::App& app);

}  // namespace wasi_ktls::cli
