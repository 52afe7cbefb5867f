// wasm2c 1.0.32's names. Every expected string below was copied from wasm2c's own output
// (wasm2c -n guest / -n gu.est on modules importing and exporting these names).
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <string>

#include "wasi_binding/engine/wasm2c_names.h"

namespace wasi_ktls::wasm {
namespace {

TEST_CASE("letters, digits and '_' are kept; 'Z' and every other byte become Z + hex") {
  CHECK(wasm2c_mangle("guest") == "Z_guest");
  CHECK(wasm2c_mangle("wasi_snapshot_preview1") == "Z_wasi_snapshot_preview1");
  CHECK(wasm2c_mangle("wasi:foo/bar@0.2.0") == "Z_wasiZ3AfooZ2FbarZ400Z2E2Z2E0");
  CHECK(wasm2c_mangle("Z:/@.-[]#") == "Z_Z5AZ3AZ2FZ40Z2EZ2DZ5BZ5DZ23");
  CHECK(wasm2c_mangle("a b") == "Z_aZ20b");
  CHECK(wasm2c_mangle("") == "Z_");
  // Bytes beyond ASCII (UTF-8 'é'), DEL and a control byte; 'z' stays, 'Z' does not.
  CHECK(wasm2c_mangle("\xc3\xa9\x7f\x01_Zz09") == "Z_ZC3ZA9Z7FZ01_Z5Az09");
}

TEST_CASE("functions are module then name, each mangled") {
  CHECK(wasm2c_function_name("wasi:foo/bar@0.2.0", "baz") == "Z_wasiZ3AfooZ2FbarZ400Z2E2Z2E0Z_baz");
  CHECK(wasm2c_function_name("Z:/@.-[]#", "n-a.m/e@Z[x]#y") ==
        "Z_Z5AZ3AZ2FZ40Z2EZ2DZ5BZ5DZ23Z_nZ2DaZ2EmZ2FeZ40Z5AZ5BxZ5DZ23y");
  CHECK(wasm2c_function_name("", "") == "Z_Z_");
  // Exports: the -n module name in place of the import module.
  CHECK(wasm2c_function_name("gu.est", "x y") == "Z_guZ2EestZ_xZ20y");
  CHECK(wasm2c_function_name("guest", "_start") == "Z_guestZ__start");
  CHECK(wasm2c_function_name("guest", "memory") == "Z_guestZ_memory");
}

TEST_CASE("an imported module's instance struct") {
  CHECK(wasm2c_instance_struct("wasi:foo/bar@0.2.0") ==
        "Z_wasiZ3AfooZ2FbarZ400Z2E2Z2E0_instance_t");
  CHECK(wasm2c_instance_struct("") == "Z__instance_t");
  CHECK(wasm2c_instance_struct("a b") == "Z_aZ20b_instance_t");
}

TEST_CASE("value types use wasm2c's typedefs") {
  CHECK(wasm2c_c_type(ValType::i32) == "u32");
  CHECK(wasm2c_c_type(ValType::i64) == "u64");
  CHECK(wasm2c_c_type(ValType::f32) == "f32");
  CHECK(wasm2c_c_type(ValType::f64) == "f64");
}

}  // namespace
}  // namespace wasi_ktls::wasm
