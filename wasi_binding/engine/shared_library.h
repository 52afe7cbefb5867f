// A dlopen'ed library, closed when its last owner lets go: a Module and every Instance made
// from it share one, so the code stays mapped as long as anything can run it.
#pragma once

#include <memory>
#include <string>

#include "base/result.h"

namespace wasi_ktls::wasm {

class SharedLibrary {
 public:
  // RTLD_NOW | RTLD_LOCAL: every symbol resolved up front, none visible to other libraries.
  static Result<std::shared_ptr<SharedLibrary>> open(const std::string& path);
  ~SharedLibrary();
  SharedLibrary(const SharedLibrary&) = delete;
  SharedLibrary& operator=(const SharedLibrary&) = delete;

  // nullptr if the library has no such symbol.
  void* symbol(const char* name) const;

 private:
  explicit SharedLibrary(void* handle) : handle_(handle) {}
  void* handle_;
};

}  // namespace wasi_ktls::wasm
