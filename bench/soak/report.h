// A soak's outputs in its --out directory: report.md (also printed), samples.json (settings,
// counts, verdict and every sample), samples.csv, and soak.png (RSS and fds against time,
// drawn by gnuplot).
#pragma once

#include <string>

#include "base/result.h"
#include "bench/soak/summary.h"

namespace wasi_ktls::soak {

std::string markdown(const Summary& s);
// Writes all four files; the plot's gnuplot script and log stay next to them.
Status write_outputs(const Summary& s, const std::string& out_dir);

}  // namespace wasi_ktls::soak
