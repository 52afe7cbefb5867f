#include "bench/soak/tally.h"

#include "base/errno_name.h"

namespace wasi_ktls::soak {

std::string kind_of(const Error& e) {
  std::string k(to_string(e.kind));
  if (e.sys_errno != 0) k += " (" + errno_name(e.sys_errno) + ")";
  return k;
}

void Tally::error(const std::string& where, const Error& e) {
  std::lock_guard lock(mu_);
  auto& [count, example] = errors_[where + ": " + kind_of(e)];
  if (count++ == 0) example = e.message;
}

std::uint64_t Tally::errors() const {
  std::lock_guard lock(mu_);
  std::uint64_t n = 0;
  for (const auto& [k, v] : errors_) n += v.first;
  return n;
}

std::map<std::string, std::pair<std::uint64_t, std::string>> Tally::errors_by_kind() const {
  std::lock_guard lock(mu_);
  return errors_;
}

}  // namespace wasi_ktls::soak
