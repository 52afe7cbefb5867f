#include "wasi_binding/engine/shared_library.h"

#include <dlfcn.h>

namespace wasi_ktls::wasm {

Result<std::shared_ptr<SharedLibrary>> SharedLibrary::open(const std::string& path) {
  void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = ::dlerror();
    return make_error(ErrorKind::config, "cannot load {}: {}", path, why ? why : "dlopen failed");
  }
  return std::shared_ptr<SharedLibrary>(new SharedLibrary(handle));
}

SharedLibrary::~SharedLibrary() { ::dlclose(handle_); }

void* SharedLibrary::symbol(const char* name) const { return ::dlsym(handle_, name); }

}  // namespace wasi_ktls::wasm
