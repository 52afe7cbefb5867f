// `wasi-ktls bench-worker`: one end of one measurement, in its own process so that its CPU
// time is its own (getrusage around the measured phase only, after the handshake). The
// harness starts two per row (or one against a server it started) and reads one JSON line.
// Hidden from --help: only the harness runs it.
#pragma once

#include "tools/command.h"

namespace wasi_ktls::bench {

cli::Command add_bench_worker_command(CLI::App& app);

}  // namespace wasi_ktls::bench
