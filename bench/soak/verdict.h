// Whether a resource series stayed flat: after a warm-up (the first half of the run), every
// sample within `tolerance` of the later samples' median, and no drift from the first to the
// last of them beyond it either. A leak of any steady rate shows as drift; a burst as a sample
// off the median.
#pragma once

#include <string>
#include <vector>

namespace wasi_ktls::soak {

struct Flatness {
  bool flat = false;
  std::string why;           // the numbers behind the verdict, for the report
  double first = 0, last = 0, max = 0, median = 0;  // over the whole run / after warm-up
};

// The band is `tolerance` times the median, but never narrower than `min_band` (in the series'
// own unit): a small count moves by a few units for reasons that are no leak.
Flatness judge_flat(const std::vector<double>& run_series, double tolerance, double min_band = 0);

}  // namespace wasi_ktls::soak
