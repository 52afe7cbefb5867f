// Files `serve --root DIR` may send: opened beneath DIR only (no "..", no symlink out of it),
// regular files only.
#pragma once

#include <cstdint>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace wasi_ktls {

class StaticFiles {
 public:
  static Result<StaticFiles> open(const std::string& root);

  struct File {
    UniqueFd fd;
    std::uint64_t size = 0;
  };
  // `target` is the request path ("/a/b.txt"). Errors carry ENOENT / EACCES / EISDIR as the
  // reason to answer 404 or 403.
  Result<File> open_file(std::string_view target) const;

 private:
  explicit StaticFiles(UniqueFd root) : root_(std::move(root)) {}
  UniqueFd root_;
};

}  // namespace wasi_ktls
