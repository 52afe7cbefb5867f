#include "tools/static_files.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace wasi_ktls {

Result<StaticFiles> StaticFiles::open(const std::string& root) {
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_error(errno, "--root " + root);
  return StaticFiles(std::move(fd));
}

Result<StaticFiles::File> StaticFiles::open_file(std::string_view target) const {
  std::string_view path = target.substr(0, target.find('?'));
  while (path.starts_with('/')) path.remove_prefix(1);
  if (path.empty()) return Error{"no file named", EISDIR};
  // Percent-encoding is not decoded: a '%' cannot smuggle "..", it just names no file.
  if (path.find('\0') != std::string_view::npos) return Error{"bad file name", ENOENT};
  std::string rel(path);
  // The kernel confines the lookup: no "..", absolute symlink or magic link leaves root.
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, root_.get(), rel.c_str(), &how, sizeof how);
  if (fd < 0) return errno_error(errno, "open " + rel);
  UniqueFd f(static_cast<int>(fd));
  struct stat st{};
  if (::fstat(f.get(), &st) != 0) return errno_error(errno, "stat " + rel);
  if (!S_ISREG(st.st_mode)) return Error{rel + " is not a regular file", EISDIR};
  return File{std::move(f), static_cast<std::uint64_t>(st.st_size)};
}

}  // namespace wasi_ktls
