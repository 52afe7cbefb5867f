#include "wasi_binding/engine/wasm_module.h"

#include <algorithm>
#include <array>
#include <set>

#include "wasi_binding/engine/wasm_reader.h"

namespace wasi_ktls::wasm {
namespace {

constexpr std::array<std::uint8_t, 8> kHeader = {0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00};

enum SectionId : std::uint8_t {
  kCustom = 0,
  kType = 1,
  kImport = 2,
  kFunction = 3,
  kExport = 7,
  kCode = 10,
};

std::string_view section_name(std::uint8_t id) {
  static constexpr std::array<std::string_view, 14> names = {
      "custom", "type",  "import",  "function", "table", "memory",    "global",
      "export", "start", "element", "code",     "data",  "datacount", "tag"};
  return id < names.size() ? names[id] : "unknown";
}

// Where each known section must appear, relative to the others (datacount sits between
// element and code; tag between memory and global).
int section_rank(std::uint8_t id) {
  static constexpr std::array<int, 14> rank = {0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 12, 13, 11, 6};
  return rank[id];
}

std::optional<ValType> value_type(std::uint8_t b) {
  switch (b) {
    case 0x7f: return ValType::i32;
    case 0x7e: return ValType::i64;
    case 0x7d: return ValType::f32;
    case 0x7c: return ValType::f64;
  }
  return std::nullopt;
}

bool is_value_type(std::uint8_t b) {
  // The numeric types, v128, funcref, externref.
  return (b >= 0x7b && b <= 0x7f) || b == 0x70 || b == 0x6f;
}

// A vector's declared count must fit the bytes left, at `min_size` bytes per entry, so a
// hostile count cannot make the parser loop or allocate beyond the input.
bool count_fits(WasmReader& r, std::uint32_t count, std::size_t min_size, std::string_view what) {
  if (!r.ok()) return false;
  if (count > r.remaining() / min_size) {
    r.fail(r.offset(),
           fmt::format("{} count {} cannot fit in the {} bytes left", what, count, r.remaining()));
    return false;
  }
  return true;
}

void parse_types(WasmReader& r, WasmModule& m) {
  const std::uint32_t count = r.u32("type count");
  if (!count_fits(r, count, 3, "type")) return;
  for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
    const std::size_t at = r.offset();
    if (r.byte("type form") != 0x60) {
      r.fail(at, fmt::format("type {} is not a function type (form byte is not 0x60)", i));
      return;
    }
    FuncType t;
    bool representable = true;
    for (auto* list : {&t.params, &t.results}) {
      const std::uint32_t n = r.u32("value type count");
      if (!count_fits(r, n, 1, "value type")) return;
      for (std::uint32_t k = 0; k < n && r.ok(); ++k) {
        const std::size_t vat = r.offset();
        const std::uint8_t b = r.byte("value type");
        if (!r.ok()) return;
        if (!is_value_type(b)) {
          r.fail(vat, fmt::format("type {} has an unknown value type 0x{:02x}", i, b));
          return;
        }
        if (auto v = value_type(b))
          list->push_back(*v);
        else
          representable = false;
      }
    }
    m.types.push_back(representable ? std::optional<FuncType>(std::move(t)) : std::nullopt);
  }
}

void parse_imports(WasmReader& r, WasmModule& m) {
  const std::uint32_t count = r.u32("import count");
  if (!count_fits(r, count, 4, "import")) return;
  for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
    const std::size_t at = r.offset();
    FuncImport imp;
    imp.module = r.name("import module name");
    imp.name = r.name("import name");
    const std::uint8_t kind = r.byte("import kind");
    if (!r.ok()) return;
    static constexpr std::array<std::string_view, 5> what = {"a function", "a table", "a memory",
                                                             "a global", "a tag"};
    if (kind != 0) {
      if (kind < what.size())
        r.fail(at, fmt::format("import {}.{} imports {}: not supported", imp.module, imp.name,
                               what[kind]));
      else
        r.fail(at, fmt::format("import {}.{} has an unknown kind {}", imp.module, imp.name, kind));
      return;
    }
    const std::size_t type_at = r.offset();
    imp.type_index = r.u32("import type index");
    if (!r.ok()) return;
    if (imp.type_index >= m.types.size()) {
      r.fail(type_at, fmt::format("import {}.{} uses type {}, but there are {} types", imp.module,
                                  imp.name, imp.type_index, m.types.size()));
      return;
    }
    m.imports.push_back(std::move(imp));
  }
}

void parse_functions(WasmReader& r, WasmModule& m) {
  const std::uint32_t count = r.u32("function count");
  if (!count_fits(r, count, 1, "function")) return;
  for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
    const std::size_t at = r.offset();
    const std::uint32_t type = r.u32("function type index");
    if (!r.ok()) return;
    if (type >= m.types.size()) {
      r.fail(at, fmt::format("function {} uses type {}, but there are {} types", i, type,
                             m.types.size()));
      return;
    }
    m.functions.push_back(type);
  }
}

void parse_exports(WasmReader& r, WasmModule& m) {
  const std::uint32_t count = r.u32("export count");
  if (!count_fits(r, count, 3, "export")) return;
  std::set<std::string> seen;
  for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
    const std::size_t at = r.offset();
    Export e;
    e.name = r.name("export name");
    const std::uint8_t kind = r.byte("export kind");
    e.index = r.u32("export index");
    if (!r.ok()) return;
    if (kind > static_cast<std::uint8_t>(ExternKind::tag)) {
      r.fail(at, fmt::format("export \"{}\" has an unknown kind {}", e.name, kind));
      return;
    }
    e.kind = static_cast<ExternKind>(kind);
    if (e.kind == ExternKind::func && e.index >= m.function_count()) {
      r.fail(at, fmt::format("export \"{}\" names function {}, but there are {} functions", e.name,
                             e.index, m.function_count()));
      return;
    }
    if (!seen.insert(e.name).second) {
      r.fail(at, fmt::format("export name \"{}\" appears twice", e.name));
      return;
    }
    m.exports.push_back(std::move(e));
  }
}

void parse_code(WasmReader& r, WasmModule& m) {
  const std::size_t at = r.offset();
  const std::uint32_t count = r.u32("code count");
  if (!r.ok()) return;
  if (count != m.functions.size()) {
    r.fail(at, fmt::format("{} bodies for {} functions", count, m.functions.size()));
    return;
  }
  for (std::uint32_t i = 0; i < count && r.ok(); ++i) {
    const std::uint32_t size = r.u32("body size");
    const std::size_t begin = r.offset();
    r.bytes(size, "function body");
    if (r.ok()) m.bodies.push_back({begin, begin + size});
  }
}

}  // namespace

const FuncType* WasmModule::function_type(std::uint32_t index) const {
  const std::uint32_t type =
      index < imports.size() ? imports[index].type_index : functions[index - imports.size()];
  const auto& t = types[type];
  return t ? &*t : nullptr;
}

const Export* WasmModule::find_export(std::string_view name) const {
  for (const auto& e : exports)
    if (e.name == name) return &e;
  return nullptr;
}

Result<WasmModule> WasmModule::parse(std::span<const std::uint8_t> wasm) {
  WasmReader header(wasm, 0, "header");
  auto magic = header.bytes(kHeader.size(), "magic and version");
  if (!header.ok()) return header.error();
  if (!std::equal(magic.begin(), magic.begin() + 4, kHeader.begin()))
    return make_error(ErrorKind::config,
                      "malformed wasm: header at offset 0: not a wasm binary "
                      "(no \\0asm magic)");
  if (!std::equal(magic.begin() + 4, magic.end(), kHeader.begin() + 4))
    return make_error(ErrorKind::config,
                      "malformed wasm: header at offset 4: version is not 1 (a component, or a "
                      "future core version, is not a core module this engine loads)");

  WasmModule m;
  WasmReader file(wasm.subspan(kHeader.size()), kHeader.size(), "section list");
  int last_rank = 0;
  bool seen_code = false;
  while (!file.at_end()) {
    const std::size_t begin = file.offset();
    const std::uint8_t id = file.byte("section id");
    const std::uint32_t size = file.u32("section size");
    const std::size_t contents_at = file.offset();
    auto contents = file.bytes(size, fmt::format("{} section", section_name(id)));
    if (!file.ok()) return file.error();
    if (id > 13)
      return make_error(ErrorKind::config, "malformed wasm: unknown section id {} at offset {}", id,
                        begin);
    if (id != kCustom) {
      if (section_rank(id) <= last_rank)
        return make_error(ErrorKind::config,
                          "malformed wasm: {} section at offset {} is out of order or repeated",
                          section_name(id), begin);
      last_rank = section_rank(id);
    }
    WasmReader r(contents, contents_at, fmt::format("{} section", section_name(id)));
    switch (id) {
      case kType: parse_types(r, m); break;
      case kImport: parse_imports(r, m); break;
      case kFunction: parse_functions(r, m); break;
      case kExport:
        parse_exports(r, m);
        m.export_section = {begin, contents_at + size};
        break;
      case kCode:
        parse_code(r, m);
        seen_code = true;
        break;
      default: continue;  // not needed to load: the compiler reads and validates it
    }
    if (!r.ok()) return r.error();
    if (!r.at_end())
      return make_error(ErrorKind::config,
                        "malformed wasm: {} section at offset {}: {} bytes left after its last "
                        "entry",
                        section_name(id), r.offset(), r.remaining());
  }
  if (!seen_code && !m.functions.empty())
    return make_error(ErrorKind::config,
                      "malformed wasm: code section: missing, but {} functions are declared",
                      m.functions.size());
  return m;
}

}  // namespace wasi_ktls::wasm
