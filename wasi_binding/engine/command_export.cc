#include "wasi_binding/engine/command_export.h"

#include <algorithm>

#include "wasi_binding/engine/wasm_reader.h"

namespace wasi_ktls::wasm {
namespace {

constexpr std::uint8_t kCall = 0x10;
constexpr std::uint8_t kLocalGet = 0x20;
constexpr std::uint8_t kEnd = 0x0b;

struct Op {
  std::uint8_t code;
  std::uint32_t index;
  bool operator==(const Op&) const = default;
};

// A body made only of calls and local.gets, without locals, or nullopt.
std::optional<std::vector<Op>> simple_body(const WasmModule& m, std::span<const std::uint8_t> wasm,
                                           std::uint32_t func) {
  if (func < m.imports.size()) return std::nullopt;
  const ByteRange range = m.bodies[func - m.imports.size()];
  WasmReader r(wasm.subspan(range.begin, range.end - range.begin), range.begin, "code section");
  if (r.u32("local declaration count") != 0) return std::nullopt;
  std::vector<Op> ops;
  while (r.ok() && !r.at_end()) {
    const std::uint8_t code = r.byte("opcode");
    if (code == kEnd) return r.at_end() ? std::optional(std::move(ops)) : std::nullopt;
    if (code != kCall && code != kLocalGet) return std::nullopt;
    ops.push_back({code, r.u32("index")});
  }
  return std::nullopt;
}

bool is_defined_thunk(const WasmModule& m, std::uint32_t func) {
  if (func < m.imports.size() || func >= m.function_count()) return false;
  const FuncType* t = m.function_type(func);
  return t != nullptr && t->params.empty() && t->results.empty();
}

struct Shape {
  std::optional<std::uint32_t> ctors;
  std::optional<std::uint32_t> dtors;
};

// `ops` as [call ctors] local.get 0..n-1, call F [call dtors]: F, or nullopt.
std::optional<std::uint32_t> match(const std::vector<Op>& ops, std::size_t params,
                                   const Shape& shape) {
  std::vector<Op> expect;
  if (shape.ctors) expect.push_back({kCall, *shape.ctors});
  for (std::uint32_t i = 0; i < params; ++i) expect.push_back({kLocalGet, i});
  const std::size_t target_at = expect.size();
  if (ops.size() != target_at + 1 + (shape.dtors ? 1 : 0)) return std::nullopt;
  if (!std::equal(expect.begin(), expect.end(), ops.begin())) return std::nullopt;
  if (ops[target_at].code != kCall) return std::nullopt;
  if (shape.dtors && ops[target_at + 1] != Op{kCall, *shape.dtors}) return std::nullopt;
  return ops[target_at].index;
}

}  // namespace

std::optional<std::uint32_t> command_export_target(const WasmModule& m,
                                                   std::span<const std::uint8_t> wasm,
                                                   std::uint32_t start, std::uint32_t func) {
  auto start_ops = simple_body(m, wasm, start);
  auto func_ops = simple_body(m, wasm, func);
  const FuncType* type = m.function_type(func);
  if (!start_ops || !func_ops || type == nullptr) return std::nullopt;
  // `_start` has no parameters, so its wrapper is one to three calls; each way of reading
  // them as [ctors] target [dtors] that has a constructor or destructor call is a candidate.
  std::vector<Shape> shapes;
  const auto& s = *start_ops;
  for (const auto& op : s)
    if (op.code != kCall) return std::nullopt;
  if (s.size() == 3) shapes.push_back({s[0].index, s[2].index});
  if (s.size() == 2) {
    shapes.push_back({s[0].index, std::nullopt});
    shapes.push_back({std::nullopt, s[1].index});
  }
  std::optional<std::uint32_t> found;
  for (const auto& shape : shapes) {
    if (shape.ctors && !is_defined_thunk(m, *shape.ctors)) continue;
    if (shape.dtors && !is_defined_thunk(m, *shape.dtors)) continue;
    auto target = match(*func_ops, type->params.size(), shape);
    if (!target || *target == func || *target < m.imports.size() || *target >= m.function_count())
      continue;
    const FuncType* target_type = m.function_type(*target);
    if (target_type == nullptr || *target_type != *type) continue;
    if (found && *found != *target) return std::nullopt;  // two readings disagree: not sure
    found = target;
  }
  return found;
}

namespace {

void put_u32(std::vector<std::uint8_t>& out, std::uint32_t v) {
  do {
    std::uint8_t b = v & 0x7f;
    v >>= 7;
    if (v != 0) b |= 0x80;
    out.push_back(b);
  } while (v != 0);
}

}  // namespace

std::vector<std::uint8_t> with_function_export(const WasmModule& m,
                                               std::span<const std::uint8_t> wasm,
                                               std::string_view name, std::uint32_t func) {
  const ByteRange sec = m.export_section;
  WasmReader r(wasm.subspan(sec.begin, sec.end - sec.begin), sec.begin, "export section");
  r.byte("section id");
  r.u32("section size");
  const std::uint32_t count = r.u32("export count");
  auto entries = r.bytes(r.remaining(), "exports");

  std::vector<std::uint8_t> contents;
  put_u32(contents, count + 1);
  contents.insert(contents.end(), entries.begin(), entries.end());
  put_u32(contents, static_cast<std::uint32_t>(name.size()));
  contents.insert(contents.end(), name.begin(), name.end());
  contents.push_back(static_cast<std::uint8_t>(ExternKind::func));
  put_u32(contents, func);

  std::vector<std::uint8_t> out(wasm.begin(), wasm.begin() + static_cast<long>(sec.begin));
  out.push_back(7);
  put_u32(out, static_cast<std::uint32_t>(contents.size()));
  out.insert(out.end(), contents.begin(), contents.end());
  out.insert(out.end(), wasm.begin() + static_cast<long>(sec.end), wasm.end());
  return out;
}

}  // namespace wasi_ktls::wasm
