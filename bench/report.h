// From the raw samples of a run to what a reader looks at: per-row metrics (median and
// min-max over the samples), Markdown tables, the performance goals with their ratios, and
// gnuplot PNGs. Rows measured in the kernel lab are kept apart and labelled: their CPU
// figures are counts on generic C crypto, never speed.
#pragma once

#include <map>
#include <string>

#include "base/result.h"
#include "bench/harness.h"

namespace wasi_ktls::bench {

struct Stat {
  double median = 0, min = 0, max = 0;
};
// The metrics of one case (json from run_case): name -> statistics over its samples.
std::map<std::string, Stat> metrics(const Json& c);

// One line for the progress output: the case's headline numbers.
std::string headline(const Json& c);

// The whole report: {"machine", ..., "cases": [...]} -> Markdown.
std::string markdown(const Json& run);

// Writes OUT/*.png with gnuplot; its data files and script go to `scratch`.
Status plots(const Json& run, const std::string& out, const std::string& scratch);

}  // namespace wasi_ktls::bench
