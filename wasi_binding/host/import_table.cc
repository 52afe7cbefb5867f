#include "wasi_binding/host/import_table.h"

#include <cctype>

#include "wasi_binding/interfaces/interfaces.h"

namespace wasi_ktls::wasi {
namespace {

std::string key(std::string_view module, std::string_view name) {
  std::string k(module);
  k += '\n';
  k += name;
  return k;
}

// "wasi:io/streams@0.2.3" -> "wasi:io/streams@0.2": any 0.2.N (digits only) is 0.2.
std::string_view minor_series(std::string_view module) {
  const auto at = module.rfind("@0.2.");
  if (at == std::string_view::npos) return {};
  const std::string_view patch = module.substr(at + 5);
  if (patch.empty() || !std::all_of(patch.begin(), patch.end(),
                                    [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }))
    return {};
  return module.substr(0, at + 4);
}

}  // namespace

void ImportTable::add(const std::vector<Import>& imports) {
  for (const Import& i : imports) map_[key(i.module, i.name)] = i.fn;
}

const wasm::HostFunction* ImportTable::find(std::string_view module, std::string_view name) const {
  if (auto it = map_.find(key(module, name)); it != map_.end()) return &it->second;
  if (const std::string_view series = minor_series(module); !series.empty())
    if (auto it = map_.find(key(series, name)); it != map_.end()) return &it->second;
  return nullptr;
}

const ImportTable& host_imports() {
  static const ImportTable table = [] {
    ImportTable t;
    t.add(preview1_imports());
    t.add(cli_imports());
    t.add(clocks_random_imports());
    t.add(io_imports());
    t.add(sockets_imports());
    t.add(tls_imports());
    return t;
  }();
  return table;
}

}  // namespace wasi_ktls::wasi
