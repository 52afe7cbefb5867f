// How the wasm2c engine finds its tools and where it keeps what it compiled.
#pragma once

#include <chrono>
#include <string>

namespace wasi_ktls::wasm {

struct Wasm2cOptions {
  // Where compiled modules are kept (<dir>/<sha256>.so). Empty: $XDG_CACHE_HOME/wasi-ktls,
  // else $HOME/.cache/wasi-ktls. A directory that cannot be created or written is no error:
  // the module is then compiled in a temporary directory, used, and the directory removed.
  std::string cache_dir;
  // The C compiler (a gcc or clang driver), looked up in PATH.
  std::string cc = "cc";
  // wabt's wasm2c, looked up in PATH.
  std::string wasm2c = "wasm2c";
  // wabt's runtime sources, wasm-rt-impl.{c,h} (Debian's wabt package puts them here).
  std::string wasm_rt_dir = "/usr/share/wabt/wasm2c";
  // Each of wasm2c and the compiler is killed when it runs longer than this.
  std::chrono::milliseconds compile_timeout{std::chrono::minutes(5)};
};

}  // namespace wasi_ktls::wasm
