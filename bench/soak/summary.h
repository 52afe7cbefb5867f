// What a soak run found, and its verdict: the counts of each group and in total, the time
// series, the flatness of RSS and fds, and every reason it failed (none: it passed).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "bench/soak/group_context.h"
#include "bench/soak/sample.h"
#include "bench/soak/tally.h"
#include "bench/soak/verdict.h"

namespace wasi_ktls::soak {

struct Counts {
  std::string name;
  unsigned connections = 0;
  std::uint64_t opened = 0, accepted = 0, closed_clean = 0, abrupt_fin = 0, abrupt_rst = 0,
                server_clean = 0, server_truncated = 0, server_reset = 0, server_late = 0, messages = 0,
                bytes_checked = 0, mismatched_bytes = 0, mismatched_messages = 0, corrupted = 0, errors = 0;
  std::map<std::string, std::pair<std::uint64_t, std::string>> errors_by_kind;

  Counts& operator+=(const Counts& o);
};

Counts counts_of(std::string name, unsigned connections, const Tally& t);

// Every number of Counts with its name (in samples.json) and the Tally counter it comes from.
struct CountField {
  const char* name;
  std::uint64_t Counts::*count;
  Tally::Counter Tally::*tally;
};
extern const CountField kCountFields[14];

struct Summary {
  // Settings.
  double duration_s = 0, sample_interval_s = 0, tolerance = 0;
  unsigned connections = 0;
  Traffic traffic;
  std::string kernel, date;
  // Findings.
  std::vector<Counts> groups;
  Counts total;
  std::vector<Sample> samples;
  double run_s = 0, drain_s = 0;
  bool drained = false;
  Flatness rss, fds;
  std::uint64_t baseline_fds = 0, final_fds = 0;
  std::vector<std::string> failures;
};

// Fills total, rss, fds and failures from the rest.
void judge(Summary& s);

}  // namespace wasi_ktls::soak
