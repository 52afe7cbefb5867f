#include "wasi_binding/engine/load_plan.h"

#include <set>
#include <utility>

#include "wasi_binding/engine/command_export.h"

namespace wasi_ktls::wasm {
namespace {

constexpr std::string_view kRunPrefix = "wasi:cli/run@0.2.";
constexpr std::string_view kRunSuffix = "#run";

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
  std::string out;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (i > 0) out += sep;
    out += parts[i];
  }
  return out;
}

Status bind_imports(const WasmModule& m, const ImportResolver& resolver,
                    std::vector<HostImport>& out) {
  std::vector<std::string> missing, mismatched;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& imp : m.imports) {
    const std::string full = imp.module + "." + imp.name;
    const auto& type = m.types[imp.type_index];
    if (!type) {
      mismatched.push_back(
          fmt::format("{} has a type with a value type other than i32, i64, f32, f64", full));
      continue;
    }
    const HostFunction* host = resolver.find(imp.module, imp.name);
    if (host == nullptr) {
      if (seen.insert({imp.module, imp.name}).second) missing.push_back(full);
      continue;
    }
    if (host->type != *type) {
      mismatched.push_back(fmt::format("{} is imported as {}, but this host provides {}", full,
                                       to_string(*type), to_string(host->type)));
      continue;
    }
    if (seen.insert({imp.module, imp.name}).second)
      out.push_back({imp.module, imp.name, *type, host->call});
  }
  std::vector<std::string> problems;
  if (!missing.empty())
    problems.push_back(fmt::format("the module imports {}, which this host does not provide",
                                   join(missing, ", ")));
  if (!mismatched.empty())
    problems.push_back(fmt::format("the module's import types differ from the host's: {}",
                                   join(mismatched, "; ")));
  if (!problems.empty()) return make_error(ErrorKind::config, "{}", join(problems, "; "));
  return {};
}

// The export named `name`, if any, checked to be a function of the expected type.
Result<std::optional<std::string>> find_entry(const WasmModule& m, std::string_view name,
                                              const FuncType& expected) {
  const Export* e = m.find_export(name);
  if (e == nullptr) return std::optional<std::string>();
  if (e->kind != ExternKind::func)
    return make_error(ErrorKind::config, "the module's export {} is not a function", name);
  const FuncType* actual = m.function_type(e->index);
  if (actual == nullptr || *actual != expected)
    return make_error(ErrorKind::config, "the module's export {} has type {}, expected {}", name,
                      actual ? to_string(*actual) : "(not i32/i64/f32/f64)", to_string(expected));
  return std::optional<std::string>(std::string(name));
}

Result<std::string> run_export_name(const WasmModule& m) {
  std::vector<std::string> found;
  for (const auto& e : m.exports)
    if (e.name.size() >= kRunPrefix.size() + kRunSuffix.size() && e.name.starts_with(kRunPrefix) &&
        e.name.ends_with(kRunSuffix))
      found.push_back(e.name);
  if (found.size() > 1)
    return make_error(ErrorKind::config, "the module exports more than one run function: {}",
                      join(found, ", "));
  return found.empty() ? std::string() : found.front();
}

}  // namespace

Result<LoadPlan> plan_load(std::span<const std::uint8_t> wasm, const ImportResolver& resolver) {
  auto parsed = WasmModule::parse(wasm);
  if (!parsed) return parsed.error();
  LoadPlan plan;
  plan.module = std::move(*parsed);
  const WasmModule& m = plan.module;

  if (auto bound = bind_imports(m, resolver, plan.imports); !bound) return bound.error();

  const Export* memory = m.find_export("memory");
  if (memory == nullptr || memory->kind != ExternKind::memory)
    return make_error(ErrorKind::config, "the module does not export its memory as \"memory\"");

  auto run_name = run_export_name(m);
  if (!run_name) return run_name.error();
  const FuncType i32_result{{}, {ValType::i32}};
  const FuncType realloc_type{{ValType::i32, ValType::i32, ValType::i32, ValType::i32},
                              {ValType::i32}};
  const std::pair<Entry, std::pair<std::string, FuncType>> rules[] = {
      {Entry::start, {"_start", FuncType{}}},
      {Entry::initialize, {"_initialize", FuncType{}}},
      {Entry::run, {*run_name, i32_result}},
      {Entry::realloc, {"cabi_realloc", realloc_type}},
  };
  for (const auto& [entry, rule] : rules) {
    if (rule.first.empty()) continue;
    auto found = find_entry(m, rule.first, rule.second);
    if (!found) return found.error();
    plan.entries[static_cast<std::size_t>(entry)] = std::move(*found);
  }
  if (!plan.entry(Entry::start) && !plan.entry(Entry::run))
    return make_error(ErrorKind::config,
                      "the module exports neither _start nor wasi:cli/run@0.2.x#run: nothing to "
                      "run");

  plan.wasm.assign(wasm.begin(), wasm.end());
  if (plan.entry(Entry::start) && plan.entry(Entry::realloc)) {
    auto target = command_export_target(m, wasm, m.find_export("_start")->index,
                                        m.find_export("cabi_realloc")->index);
    if (target) {
      if (m.find_export(kUnwrappedRealloc) != nullptr)
        return make_error(ErrorKind::config, "the module exports {}, a name this engine reserves",
                          kUnwrappedRealloc);
      plan.wasm = with_function_export(m, wasm, kUnwrappedRealloc, *target);
      plan.entries[static_cast<std::size_t>(Entry::realloc)] = std::string(kUnwrappedRealloc);
    }
  }
  return plan;
}

}  // namespace wasi_ktls::wasm
