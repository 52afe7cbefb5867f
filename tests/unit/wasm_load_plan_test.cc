// Checks made before anything is compiled: imports against the host, the entry exports, and
// the unwrapping of a command's cabi_realloc (hand-assembled in wasm-ld's shapes).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "tests/support/wasm_bytes.h"
#include "wasi_binding/engine/load_plan.h"

namespace wasi_ktls::wasm {
namespace {

// The 5-byte form wasm-ld leaves in code it copies from object files.
Bytes padded(std::uint32_t v) {
  return {static_cast<std::uint8_t>(0x80 | (v & 0x7f)),
          static_cast<std::uint8_t>(0x80 | ((v >> 7) & 0x7f)),
          static_cast<std::uint8_t>(0x80 | ((v >> 14) & 0x7f)),
          static_cast<std::uint8_t>(0x80 | ((v >> 21) & 0x7f)), static_cast<std::uint8_t>(v >> 28)};
}

template <class T>
Bytes vec(const std::vector<T>& items) {
  Bytes out = leb(static_cast<std::uint32_t>(items.size()));
  for (const auto& i : items) out = out + i;
  return out;
}

enum : std::uint8_t { I32 = 0x7f, I64 = 0x7e, F32 = 0x7d, F64 = 0x7c };

Bytes functype(const Bytes& params, const Bytes& results) {
  return Bytes{0x60} + leb(static_cast<std::uint32_t>(params.size())) + params +
         leb(static_cast<std::uint32_t>(results.size())) + results;
}

struct Import {
  std::string module, name;
  std::uint32_t type;
};
struct Exp {
  std::string name;
  std::uint8_t kind;
  std::uint32_t index;
};

// A module: types, function imports, defined functions (type, body code without locals and
// its final `end`), memory 0, and exports.
struct ModuleSpec {
  std::vector<Bytes> types;
  std::vector<Import> imports;
  std::vector<std::pair<std::uint32_t, Bytes>> functions;
  std::vector<Exp> exports;

  Bytes build() const {
    std::vector<Bytes> imps, funcs, bodies, exps;
    for (const auto& i : imports)
      imps.push_back(name(i.module) + name(i.name) + Bytes{0} + leb(i.type));
    for (const auto& [type, code] : functions) {
      funcs.push_back(leb(type));
      const Bytes body = Bytes{0} + code + Bytes{0x0b};
      bodies.push_back(leb(static_cast<std::uint32_t>(body.size())) + body);
    }
    for (const auto& e : exports) exps.push_back(name(e.name) + Bytes{e.kind} + leb(e.index));
    return kHeader + section(1, vec(types)) + section(2, vec(imps)) + section(3, vec(funcs)) +
           section(5, Bytes{1, 0, 1}) + section(7, vec(exps)) + section(10, vec(bodies));
  }
};

bool ok_host(void*, const std::uint64_t*, std::uint64_t*) { return true; }

class MapResolver : public ImportResolver {
 public:
  void add(std::string module, std::string name, FuncType type) {
    functions_[{std::move(module), std::move(name)}] = HostFunction{std::move(type), ok_host};
  }
  const HostFunction* find(std::string_view module, std::string_view name) const override {
    auto it = functions_.find({std::string(module), std::string(name)});
    return it == functions_.end() ? nullptr : &it->second;
  }

 private:
  std::map<std::pair<std::string, std::string>, HostFunction> functions_;
};

constexpr std::uint8_t kFunc = 0, kMem = 2;
const Bytes kVoid = functype({}, {});
const Bytes kRunType = functype({}, {I32});
const Bytes kReallocType = functype({I32, I32, I32, I32}, {I32});

bool contains(const std::string& s, std::string_view part) {
  if (s.find(part) != std::string::npos) return true;
  MESSAGE("actual: " << s);
  return false;
}

// A reactor: wasi:cli/run export, memory, two imports.
ModuleSpec reactor() {
  ModuleSpec m;
  m.types = {kVoid, kRunType, functype({I32, I64}, {I32})};
  m.imports = {{"wasi:io/streams@0.2.0", "write", 2}, {"test:x/y", "f", 0}};
  m.functions = {{1, {0x41, 0x00}}, {0, {}}};  // i32.const 0 ; nothing
  m.exports = {
      {"memory", kMem, 0}, {"wasi:cli/run@0.2.3#run", kFunc, 2}, {"_initialize", kFunc, 3}};
  return m;
}

MapResolver reactor_host() {
  MapResolver r;
  r.add("wasi:io/streams@0.2.0", "write", {{ValType::i32, ValType::i64}, {ValType::i32}});
  r.add("test:x/y", "f", {});
  return r;
}

TEST_CASE("a reactor with everything bound plans its imports and entries") {
  const Bytes wasm = reactor().build();
  auto plan = plan_load(wasm, reactor_host());
  REQUIRE_MESSAGE(plan.ok(), plan.error().message);
  REQUIRE(plan->imports.size() == 2);
  CHECK(plan->imports[0].module == "wasi:io/streams@0.2.0");
  CHECK((plan->imports[0].call == &ok_host));
  CHECK(plan->entry(Entry::run) == "wasi:cli/run@0.2.3#run");
  CHECK(plan->entry(Entry::initialize) == "_initialize");
  CHECK_FALSE(plan->entry(Entry::start));
  CHECK_FALSE(plan->entry(Entry::realloc));
  CHECK(plan->wasm == wasm);
}

TEST_CASE("every import the host lacks is named in one error") {
  const Bytes wasm = reactor().build();
  auto plan = plan_load(wasm, MapResolver{});
  REQUIRE_FALSE(plan.ok());
  CHECK(plan.error().kind == ErrorKind::config);
  CHECK(plan.error().message ==
        "the module imports wasi:io/streams@0.2.0.write, test:x/y.f, which this host does not "
        "provide");
}

TEST_CASE("an import of another type than the host's is named with both types") {
  MapResolver host;
  host.add("wasi:io/streams@0.2.0", "write", {{ValType::i32, ValType::i32}, {ValType::i32}});
  host.add("test:x/y", "f", {});
  auto plan = plan_load(reactor().build(), host);
  REQUIRE_FALSE(plan.ok());
  CHECK(contains(plan.error().message,
                 "wasi:io/streams@0.2.0.write is imported as (i32, i64) -> i32, but this host "
                 "provides (i32, i32) -> i32"));
}

TEST_CASE("an import repeated in the module is one host call") {
  ModuleSpec m = reactor();
  m.imports.push_back({"test:x/y", "f", 0});
  for (auto& e : m.exports) e.index += e.kind == kFunc ? 1 : 0;
  auto plan = plan_load(m.build(), reactor_host());
  REQUIRE_MESSAGE(plan.ok(), plan.error().message);
  CHECK(plan->imports.size() == 2);
}

TEST_CASE("the exports a host calls must exist with their types") {
  auto error_for = [](ModuleSpec m) {
    auto plan = plan_load(m.build(), reactor_host());
    REQUIRE_FALSE(plan.ok());
    return plan.error().message;
  };
  ModuleSpec no_memory = reactor();
  no_memory.exports.erase(no_memory.exports.begin());
  CHECK(contains(error_for(no_memory), "does not export its memory as \"memory\""));

  ModuleSpec nothing_to_run = reactor();
  nothing_to_run.exports.erase(nothing_to_run.exports.begin() + 1);
  CHECK(contains(error_for(nothing_to_run), "exports neither _start nor wasi:cli/run"));

  ModuleSpec bad_run = reactor();
  bad_run.exports[1].index = 3;  // the () -> () function
  CHECK(contains(error_for(bad_run),
                 "export wasi:cli/run@0.2.3#run has type () -> (), expected () -> i32"));

  ModuleSpec bad_realloc = reactor();
  bad_realloc.exports.push_back({"cabi_realloc", kFunc, 2});
  CHECK(contains(error_for(bad_realloc),
                 "export cabi_realloc has type () -> i32, expected (i32, i32, i32, i32) -> i32"));

  ModuleSpec start_not_func = reactor();
  start_not_func.exports.push_back({"_start", kMem, 0});
  CHECK(contains(error_for(start_not_func), "export _start is not a function"));

  ModuleSpec two_runs = reactor();
  two_runs.exports.push_back({"wasi:cli/run@0.2.0#run", kFunc, 2});
  CHECK(contains(error_for(two_runs), "more than one run function"));
}

// A command as wasm-ld 14 links it. Functions (no imports): 0 ctors, 1 dtors, 2 _start,
// 3 cabi_realloc, 4 _start's wrapper, 5 cabi_realloc's wrapper.
ModuleSpec command(bool with_ctors, bool padded_calls = false) {
  auto call = [&](std::uint32_t f) { return Bytes{0x10} + (padded_calls ? padded(f) : leb(f)); };
  const Bytes gets = {0x20, 0, 0x20, 1, 0x20, 2, 0x20, 3};
  const Bytes ctors = with_ctors ? call(0) : Bytes{};
  ModuleSpec m;
  m.types = {kVoid, kReallocType};
  m.functions = {{0, {}},
                 {0, {}},
                 {0, {}},
                 {1, {0x20, 0}},
                 {0, ctors + call(2) + call(1)},
                 {1, ctors + gets + call(3) + call(1)}};
  m.exports = {{"memory", kMem, 0}, {"_start", kFunc, 4}, {"cabi_realloc", kFunc, 5}};
  return m;
}

std::optional<std::uint32_t> exported(const Bytes& wasm, std::string_view name) {
  auto m = WasmModule::parse(wasm);
  REQUIRE(m.ok());
  const Export* e = m->find_export(name);
  return e ? std::optional(e->index) : std::nullopt;
}

TEST_CASE("a command's wrapped cabi_realloc is called unwrapped, with or without constructors") {
  for (bool with_ctors : {true, false}) {
    for (bool padded_calls : {false, true}) {
      CAPTURE(with_ctors);
      CAPTURE(padded_calls);
      auto plan = plan_load(command(with_ctors, padded_calls).build(), MapResolver{});
      REQUIRE_MESSAGE(plan.ok(), plan.error().message);
      CHECK(plan->entry(Entry::realloc) == std::string(kUnwrappedRealloc));
      CHECK(plan->entry(Entry::start) == "_start");
      // The rewritten binary still exports everything it did, and the inner function too.
      CHECK(exported(plan->wasm, kUnwrappedRealloc) == 3u);
      CHECK(exported(plan->wasm, "cabi_realloc") == 5u);
      CHECK(exported(plan->wasm, "_start") == 4u);
      CHECK(exported(plan->wasm, "memory") == 0u);
    }
  }
}

TEST_CASE("what is not a wasm-ld wrapper is left alone") {
  auto realloc_entry = [](const ModuleSpec& m) {
    auto plan = plan_load(m.build(), MapResolver{});
    REQUIRE_MESSAGE(plan.ok(), plan.error().message);
    return *plan->entry(Entry::realloc);
  };
  // A reactor: no _start, nothing wrapped (wasm-ld wraps only commands).
  ModuleSpec reactor_like = command(true);
  reactor_like.exports[1] = {"wasi:cli/run@0.2.0#run", kFunc, 6};
  reactor_like.types.push_back(kRunType);
  reactor_like.functions.push_back({2, {0x41, 0}});
  CHECK(realloc_entry(reactor_like) == "cabi_realloc");

  // cabi_realloc forwards, then calls something other than what _start's wrapper calls last.
  ModuleSpec other_tail = command(true);
  other_tail.functions[5].second =
      Bytes{0x10, 0, 0x20, 0, 0x20, 1, 0x20, 2, 0x20, 3, 0x10, 3, 0x10, 2};
  CHECK(realloc_entry(other_tail) == "cabi_realloc");

  // Arguments out of order, a local declared, or more code: not the wrapper's shape.
  ModuleSpec swapped = command(false);
  swapped.functions[5].second = Bytes{0x20, 1, 0x20, 0, 0x20, 2, 0x20, 3, 0x10, 3, 0x10, 1};
  CHECK(realloc_entry(swapped) == "cabi_realloc");
  ModuleSpec extra = command(false);
  extra.functions[5].second = Bytes{0x20, 0, 0x20, 1, 0x20, 2, 0x20, 3, 0x10, 3, 0x10, 1, 0x01};
  CHECK(realloc_entry(extra) == "cabi_realloc");

  // _start not wrapped at all (a bare call): nothing to compare with.
  ModuleSpec bare_start = command(false);
  bare_start.functions[4].second = Bytes{0x10, 2};
  CHECK(realloc_entry(bare_start) == "cabi_realloc");
}

}  // namespace
}  // namespace wasi_ktls::wasm
