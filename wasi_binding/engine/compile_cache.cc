#include "wasi_binding/engine/compile_cache.h"

#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <vector>

namespace wasi_ktls::wasm {
namespace {

// Removes a build directory and whatever is in it when the load is done, however it ends.
class WorkDir {
 public:
  // mkdtemp under `parent`; empty path() if it cannot be made there.
  explicit WorkDir(const std::string& parent) {
    std::string tmpl = parent + "/.wasi-ktls-build-XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) != nullptr) path_ = buf.data();
  }
  ~WorkDir() {
    if (path_.empty()) return;
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  WorkDir(const WorkDir&) = delete;
  WorkDir& operator=(const WorkDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A cached library is code we run: only one that this user or root owns and no one else can
// write (a cache prepared by root on a read-only image qualifies).
bool trustworthy(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         (st.st_uid == ::geteuid() || st.st_uid == 0) && (st.st_mode & (S_IWGRP | S_IWOTH)) == 0;
}

std::string temp_parent() {
  const char* tmp = std::getenv("TMPDIR");
  return tmp && *tmp ? tmp : "/tmp";
}

}  // namespace

Result<std::string> cache_key(std::string_view recipe, std::span<const std::uint8_t> wasm) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  const unsigned char separator = 0;
  // The separator keeps (recipe, bytes) pairs apart: no recipe contains a NUL.
  const bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1 &&
                  EVP_DigestUpdate(ctx, recipe.data(), recipe.size()) == 1 &&
                  EVP_DigestUpdate(ctx, &separator, 1) == 1 &&
                  EVP_DigestUpdate(ctx, wasm.data(), wasm.size()) == 1 &&
                  EVP_DigestFinal_ex(ctx, digest, &len) == 1;
  EVP_MD_CTX_free(ctx);
  if (!ok) return make_error(ErrorKind::system, "SHA-256 of the module failed (OpenSSL EVP)");
  std::string hex;
  for (unsigned int i = 0; i < len; ++i) hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

std::string cache_directory(const std::string& override_dir) {
  if (!override_dir.empty()) return override_dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/wasi-ktls";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/wasi-ktls";
  return {};
}

Result<std::shared_ptr<SharedLibrary>> load_or_build(const std::string& dir, const std::string& key,
                                                     const BuildFn& build) {
  const std::string name = key + ".so";
  const std::string cached = dir.empty() ? std::string() : dir + "/" + name;
  if (!cached.empty() && trustworthy(cached)) {
    // A cached library that does not load (a truncated disk, say) is rebuilt and replaced.
    if (auto lib = SharedLibrary::open(cached)) return lib;
  }

  std::unique_ptr<WorkDir> work;
  if (!dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(std::filesystem::path(dir).parent_path(), ec);
    ::mkdir(dir.c_str(), 0700);  // private: what is in it is run as code
    work = std::make_unique<WorkDir>(dir);
  }
  const bool into_cache = work && !work->path().empty();
  if (!into_cache) {
    work = std::make_unique<WorkDir>(temp_parent());
    if (work->path().empty())
      return errno_error(errno, "cannot make a build directory in " + temp_parent());
  }
  const std::string built = work->path() + "/" + name;
  if (auto b = build(work->path(), built); !b) return b.error();
  if (into_cache) {
    // The compiler's umask decides its output's mode; the cache wants it unwritable by others.
    ::chmod(built.c_str(), 0644);
    if (::rename(built.c_str(), cached.c_str()) == 0) return SharedLibrary::open(cached);
  }
  return SharedLibrary::open(built);
}

}  // namespace wasi_ktls::wasm
