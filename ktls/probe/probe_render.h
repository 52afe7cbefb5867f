// The probe as people read it (a compact table) and as programs read it (JSON, schema in
// docs/probe-json.md). Pure: renders a Probe, measures nothing.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ktls/probe/probe.h"

namespace wasi_ktls {

// Bumped on any incompatible change to the JSON shape; additions keep the number.
inline constexpr int kProbeJsonSchema = 1;

// Keys in the documented order (ordered_json), so the output diffs cleanly.
nlohmann::ordered_json probe_to_json(const Probe& p);

// Multi-line, ends with '\n'.
std::string probe_to_table(const Probe& p);

}  // namespace wasi_ktls
