#include "bench/soak/verdict.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace wasi_ktls::soak {

Flatness judge_flat(const std::vector<double>& run, double tolerance, double min_band) {
  Flatness f;
  if (run.empty()) {
    f.why = "no samples";
    return f;
  }
  f.first = run.front();
  f.last = run.back();
  f.max = *std::max_element(run.begin(), run.end());
  std::vector<double> later(run.begin() + static_cast<std::ptrdiff_t>(run.size() / 2), run.end());
  if (later.size() < 3) {
    f.why = fmt::format("only {} samples after warm-up (need 3): run longer or sample more often", later.size());
    return f;
  }
  std::vector<double> sorted = later;
  std::sort(sorted.begin(), sorted.end());
  f.median = sorted[sorted.size() / 2];
  double worst = 0;
  for (double v : later) worst = std::max(worst, std::abs(v - f.median));
  const double drift = later.back() - later.front();
  const double band = std::max(tolerance * f.median, min_band);
  f.flat = worst <= band && std::abs(drift) <= band;
  f.why = fmt::format("after warm-up ({} samples): median {:.4g}, farthest {:.2f}% from it, drift {:+.2f}%; "
                      "allowed {:.2f}%",
                      later.size(), f.median, 100 * worst / f.median, 100 * drift / f.median,
                      100 * band / f.median);
  return f;
}

}  // namespace wasi_ktls::soak
