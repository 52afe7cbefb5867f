// Files `serve --root DIR` may send: opened beneath DIR only (no "..", no symlink out of it),
// regular files only, and looking never blocks (a FIFO is refused, not opened).
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
  // `target` is the request path ("/a/b.txt"). Errors carry the errno http_status() reads.
  Result<File> open_file(std::string_view target) const;

  // What to answer for an open_file error: 404 when no such name exists (ENOENT, ENOTDIR,
  // an empty name); 403 when the name exists but serve will not send it: outside the root
  // (EXDEV, ELOOP), not readable (EACCES), or not a regular file (EPERM: a FIFO, device,
  // socket or directory is refused as forbidden rather than reported missing, so that the
  // operator sees it was found and refused); 500 for anything else (EMFILE, EIO...).
  static int http_status(const Error& e);

 private:
  explicit StaticFiles(UniqueFd root) : root_(std::move(root)) {}
  Result<UniqueFd> open_beneath(const std::string& rel, int flags) const;
  UniqueFd root_;
};

}  // namespace wasi_ktls
