#include "tools/chaos/fault.h"

#include <array>
#include <utility>

namespace wasi_ktls::chaos {
namespace {

constexpr std::array<std::pair<Fault, std::string_view>, 10> kFaults{{
    {Fault::none, "none"},
    {Fault::flip_byte, "flip-byte"},
    {Fault::truncate_record, "truncate-record"},
    {Fault::fin, "fin"},
    {Fault::rst, "rst"},
    {Fault::stall, "stall"},
    {Fault::split_coalesce, "split-coalesce"},
    {Fault::inject_alert, "inject-alert"},
    {Fault::inject_key_update, "inject-key-update"},
    {Fault::data_after_close, "data-after-close"},
}};

}  // namespace

std::string_view to_string(Fault f) {
  for (const auto& [fault, name] : kFaults)
    if (fault == f) return name;
  return "?";
}

std::optional<Fault> parse_fault(std::string_view name) {
  for (const auto& [fault, n] : kFaults)
    if (n == name) return fault;
  return std::nullopt;
}

std::string_view to_string(Flow f) { return f == Flow::c2s ? "c2s" : "s2c"; }

std::optional<Flow> parse_flow(std::string_view name) {
  if (name == "c2s") return Flow::c2s;
  if (name == "s2c") return Flow::s2c;
  return std::nullopt;
}

}  // namespace wasi_ktls::chaos
