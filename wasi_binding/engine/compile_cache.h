// Compiled modules on disk, keyed by content. A module compiles once per machine and
// toolchain; every later load of the same bytes is a dlopen.
//
//   <dir>/<sha256 hex>.so     dir: the override, else $XDG_CACHE_HOME/wasi-ktls,
//                                  else $HOME/.cache/wasi-ktls
//
// A library enters the cache only by rename(2) from a build directory inside the cache
// directory, so no reader ever sees a partly written one. When the directory cannot be
// created or written (a read-only root, no HOME), the module is built in a temporary
// directory under $TMPDIR (else /tmp), loaded, and the directory removed at once.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "wasi_binding/engine/shared_library.h"

namespace wasi_ktls::wasm {

// The cache file's name stem: SHA-256 (OpenSSL EVP) of the module's bytes and `recipe`,
// everything else that decides the library (toolchain identity, flags, glue source).
Result<std::string> cache_key(std::string_view recipe, std::span<const std::uint8_t> wasm);

// `override_dir` if set, else from the environment; empty when there is none (no HOME).
std::string cache_directory(const std::string& override_dir);

// Builds a library at `out` using the empty directory `work_dir` for intermediate files.
using BuildFn = std::function<Status(const std::string& work_dir, const std::string& out)>;

// The library for `key` from `dir` (which may be empty or unusable), built with `build` when
// the cache has no loadable copy. Nothing the build wrote survives except the cache entry.
Result<std::shared_ptr<SharedLibrary>> load_or_build(const std::string& dir, const std::string& key,
                                                     const BuildFn& build);

}  // namespace wasi_ktls::wasm
