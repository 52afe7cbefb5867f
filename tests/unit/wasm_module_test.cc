// The core-wasm reader: hand-assembled modules, well-formed and not.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "wasi_binding/engine/wasm_module.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "tests/support/wasm_bytes.h"

namespace wasi_ktls::wasm {
namespace {

// (type 0: () -> ()) (type 1: (i32, i64) -> i32) (type 2: (f32, f64) -> f64)
const Bytes kTypes = section(1, Bytes{3} + Bytes{0x60, 0, 0} + Bytes{0x60, 2, 0x7f, 0x7e, 1, 0x7f} +
                                    Bytes{0x60, 2, 0x7d, 0x7c, 1, 0x7c});
// import "wasi:io/streams@0.2.0"."[method]output-stream.write" : type 1; "env"."f" : type 0
const Bytes kImports =
    section(2, Bytes{2} + name("wasi:io/streams@0.2.0") + name("[method]output-stream.write") +
                   Bytes{0x00, 1} + name("env") + name("f") + Bytes{0x00, 0});
// two defined functions: type 0, type 2
const Bytes kFunctions = section(3, Bytes{2, 0, 2});
const Bytes kMemory = section(5, Bytes{1, 0x00, 1});
// export "memory" memory 0, "_start" func 2, "g" func 3
const Bytes kExports = section(7, Bytes{3} + name("memory") + Bytes{0x02, 0} + name("_start") +
                                      Bytes{0x00, 2} + name("g") + Bytes{0x00, 3});
// bodies: (nop) and (local.get 1 ; end) with one f64 local declaration group
const Bytes kCode = section(10, Bytes{2} + Bytes{2, 0, 0x0b} + Bytes{6, 1, 1, 0x7c, 0x20, 1, 0x0b});

Bytes full_module() {
  return kHeader + kTypes + kImports + kFunctions + kMemory + kExports + kCode +
         section(0, name("name") + Bytes{1, 2, 3});
}

std::string error_of(const Bytes& wasm) {
  auto m = WasmModule::parse(wasm);
  REQUIRE_FALSE(m.ok());
  CHECK(m.error().kind == ErrorKind::config);
  return m.error().message;
}

bool contains(const std::string& s, std::string_view part) {
  if (s.find(part) != std::string::npos) return true;
  MESSAGE("actual: " << s);
  return false;
}

TEST_CASE("an empty module is just the header") {
  auto m = WasmModule::parse(kHeader);
  REQUIRE(m.ok());
  CHECK(m->types.empty());
  CHECK(m->imports.empty());
  CHECK(m->exports.empty());
  CHECK(m->export_section.empty());
}

TEST_CASE("types, function imports, functions, exports and code bodies are read") {
  const Bytes wasm = full_module();
  auto m = WasmModule::parse(wasm);
  REQUIRE(m.ok());
  REQUIRE(m->types.size() == 3);
  CHECK(*m->types[0] == FuncType{});
  CHECK(*m->types[1] == FuncType{{ValType::i32, ValType::i64}, {ValType::i32}});
  CHECK(*m->types[2] == FuncType{{ValType::f32, ValType::f64}, {ValType::f64}});

  REQUIRE(m->imports.size() == 2);
  CHECK(m->imports[0].module == "wasi:io/streams@0.2.0");
  CHECK(m->imports[0].name == "[method]output-stream.write");
  CHECK(m->imports[0].type_index == 1);
  CHECK(m->imports[1].module == "env");

  REQUIRE(m->functions == std::vector<std::uint32_t>{0, 2});
  CHECK(m->function_count() == 4);
  CHECK(*m->function_type(0) == *m->types[1]);  // an import
  CHECK(*m->function_type(3) == *m->types[2]);  // the second defined function

  REQUIRE(m->exports.size() == 3);
  CHECK(m->find_export("memory")->kind == ExternKind::memory);
  CHECK(m->find_export("_start")->index == 2);
  CHECK(m->find_export("nope") == nullptr);

  // The export section's range covers its id, size and contents.
  const std::size_t at = (kHeader + kTypes + kImports + kFunctions + kMemory).size();
  CHECK(m->export_section.begin == at);
  CHECK(m->export_section.end == at + kExports.size());

  REQUIRE(m->bodies.size() == 2);
  const auto& b = m->bodies[1];
  CHECK(b.end - b.begin == 6);
  CHECK(wasm[b.begin] == 1);       // one local declaration group
  CHECK(wasm[b.end - 1] == 0x0b);  // end
}

TEST_CASE("a type with a value type the host cannot exchange is kept, unrepresentable") {
  // (v128) -> () and (externref) -> ()
  auto m = WasmModule::parse(kHeader + section(1, Bytes{2, 0x60, 1, 0x7b, 0, 0x60, 1, 0x6f, 0}));
  REQUIRE(m.ok());
  REQUIRE(m->types.size() == 2);
  CHECK_FALSE(m->types[0].has_value());
  CHECK_FALSE(m->types[1].has_value());
  CHECK(contains(error_of(kHeader + section(1, Bytes{1, 0x60, 1, 0x55, 0})),
                 "unknown value type 0x55"));
}

TEST_CASE("the header must be wasm's, version 1") {
  CHECK(contains(error_of(Bytes{0x00, 0x61, 0x73}), "header at offset 0: truncated"));
  CHECK(contains(error_of(Bytes{0x7f, 'E', 'L', 'F', 1, 0, 0, 0}), "no \\0asm magic"));
  // A component (layer 1, version 0x0d) is not a core module.
  CHECK(contains(error_of(Bytes{0x00, 0x61, 0x73, 0x6d, 0x0d, 0x00, 0x01, 0x00}),
                 "version is not 1"));
}

TEST_CASE("non-function imports are refused by name") {
  auto import_of = [](std::uint8_t kind, const Bytes& desc) {
    return kHeader + section(2, Bytes{1} + name("env") + name("thing") + Bytes{kind} + desc);
  };
  CHECK(
      contains(error_of(import_of(0x02, {0x00, 1})), "env.thing imports a memory: not supported"));
  CHECK(contains(error_of(import_of(0x01, {0x70, 0x00, 1})), "imports a table: not supported"));
  CHECK(contains(error_of(import_of(0x03, {0x7f, 0x00})), "imports a global: not supported"));
  CHECK(contains(error_of(import_of(0x09, {})), "unknown kind 9"));
}

TEST_CASE("every length and index is checked, and the error names section and offset") {
  const Bytes wasm = full_module();
  // Every truncation of a valid module is refused, and none reads past the end (ASan); a cut
  // after the type, import or code section leaves a valid module.
  const std::size_t valid_cuts[] = {
      (kHeader + kTypes).size(), (kHeader + kTypes + kImports).size(),
      (kHeader + kTypes + kImports + kFunctions + kMemory + kExports + kCode).size()};
  for (std::size_t n = kHeader.size() + 1; n < wasm.size(); ++n) {
    if (std::find(std::begin(valid_cuts), std::end(valid_cuts), n) != std::end(valid_cuts))
      continue;
    const Bytes cut(wasm.begin(), wasm.begin() + static_cast<long>(n));
    CAPTURE(n);
    CHECK(contains(error_of(cut), "malformed wasm"));
  }
  // A section whose size runs past the file.
  CHECK(contains(error_of(kHeader + Bytes{1, 50, 0}),
                 "section list at offset 10: truncated: type section (50 bytes)"));
  // A name whose length runs past its section.
  CHECK(contains(error_of(kHeader + section(1, Bytes{1, 0x60, 0, 0}) +
                          section(2, Bytes{1, 100, 'a', 'b', 'c'})),
                 "import section at offset 18: truncated: import module name (100 bytes) runs "
                 "past the end (3 left)"));
  // A count that cannot fit the bytes left.
  CHECK(contains(error_of(kHeader + section(3, leb(1u << 30))),
                 "function count 1073741824 cannot fit"));
  // A LEB128 longer than five bytes, and one with bits beyond 32.
  CHECK(contains(error_of(kHeader + section(1, Bytes{0x80, 0x80, 0x80, 0x80, 0x80, 0x00})),
                 "type count is not a valid u32 LEB128"));
  CHECK(contains(error_of(kHeader + section(1, Bytes{0xff, 0xff, 0xff, 0xff, 0x7f})),
                 "type section at offset 10: type count is not a valid u32 LEB128"));
  // Bytes left over after a section's last entry.
  CHECK(contains(error_of(kHeader + section(3, Bytes{0, 0xaa})),
                 "1 bytes left after its last entry"));
  // Type indices out of range, in imports and functions.
  CHECK(contains(error_of(kHeader + section(2, Bytes{1} + name("m") + name("f") + Bytes{0, 0})),
                 "import m.f uses type 0, but there are 0 types"));
  CHECK(contains(error_of(kHeader + kTypes + section(3, Bytes{1, 7})),
                 "function 0 uses type 7, but there are 3 types"));
  // Exports: an unknown function, an unknown kind, a repeated name.
  CHECK(contains(error_of(kHeader + section(7, Bytes{1} + name("f") + Bytes{0, 0})),
                 "export \"f\" names function 0, but there are 0 functions"));
  CHECK(contains(error_of(kHeader + section(7, Bytes{1} + name("f") + Bytes{7, 0})),
                 "unknown kind 7"));
  CHECK(contains(error_of(kHeader + kMemory +
                          section(7, Bytes{2} + name("m") + Bytes{2, 0} + name("m") + Bytes{2, 0})),
                 "export name \"m\" appears twice"));
  // Code: count against the function section, a body running past its section, no code.
  CHECK(contains(error_of(kHeader + kTypes + section(3, Bytes{1, 0}) + section(10, Bytes{2})),
                 "2 bodies for 1 functions"));
  CHECK(contains(
      error_of(kHeader + kTypes + section(3, Bytes{1, 0}) + section(10, Bytes{1, 9, 0, 0x0b})),
      "code section at offset 34: truncated: function body (9 bytes)"));
  CHECK(contains(error_of(kHeader + kTypes + section(3, Bytes{1, 0})),
                 "code section: missing, but 1 functions are declared"));
  // A type that is not a function type.
  CHECK(contains(error_of(kHeader + section(1, Bytes{1, 0x5f, 0, 0})),
                 "type 0 is not a function type"));
}

TEST_CASE("sections must come in order, each at most once; custom sections anywhere") {
  CHECK(contains(error_of(kHeader + section(3, Bytes{0}) + kTypes),
                 "type section at offset 11 is out of order"));
  CHECK(contains(error_of(kHeader + kTypes + kTypes), "out of order or repeated"));
  CHECK(contains(error_of(kHeader + section(14, {})), "unknown section id 14 at offset 8"));
  const Bytes custom = section(0, name("x"));
  CHECK(WasmModule::parse(kHeader + custom + kTypes + custom + custom).ok());
  // datacount (12) goes before code (10), tag (13) before global (6).
  CHECK(WasmModule::parse(kHeader + section(12, Bytes{0}) + section(10, Bytes{0})).ok());
  CHECK(WasmModule::parse(kHeader + section(13, Bytes{0}) + section(6, Bytes{0})).ok());
  CHECK_FALSE(WasmModule::parse(kHeader + section(10, Bytes{0}) + section(12, Bytes{0})).ok());
}

}  // namespace
}  // namespace wasi_ktls::wasm
