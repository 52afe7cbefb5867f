// `wasi-ktls probe [--json]`: what this kernel's TLS offload and io_uring can do, and why not.
#pragma once

#include "tools/command.h"

namespace wasi_ktls::cli {

Command add_probe_command(CLI::App& parent);

}  // namespace wasi_ktls::cli
