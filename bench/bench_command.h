// `wasi-ktls bench [--quick|--smoke] [--out DIR] [--only ROWS] [--count]`: every row of the
// benchmark (harness.h) side by side in one run, kernel rows in the kernel lab when this
// kernel has no kTLS; a progress line per row, then a Markdown table, a JSON file with every
// raw sample, and PNG plots in DIR.
#pragma once

#include "tools/command.h"

namespace wasi_ktls::bench {

cli::Command add_bench_command(CLI::App& app);

}  // namespace wasi_ktls::bench
