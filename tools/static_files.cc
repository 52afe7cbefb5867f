#include "tools/static_files.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace wasi_ktls {
namespace {

const char* kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  return "not a regular file";
}

}  // namespace

Result<StaticFiles> StaticFiles::open(const std::string& root) {
  UniqueFd fd(::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return errno_error(errno, "--root " + root);
  return StaticFiles(std::move(fd));
}

Result<UniqueFd> StaticFiles::open_beneath(const std::string& rel, int flags) const {
  // The kernel confines the lookup: no "..", absolute symlink or magic link leaves root.
  open_how how{};
  how.flags = static_cast<std::uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  long fd = ::syscall(SYS_openat2, root_.get(), rel.c_str(), &how, sizeof how);
  if (fd < 0) return errno_error(errno, "open " + rel);
  return UniqueFd(static_cast<int>(fd));
}

Result<StaticFiles::File> StaticFiles::open_file(std::string_view target) const {
  std::string_view path = target.substr(0, target.find('?'));
  while (path.starts_with('/')) path.remove_prefix(1);
  if (path.empty()) return Error{"no file named", EISDIR};
  // Percent-encoding is not decoded: a '%' cannot smuggle "..", it just names no file.
  if (path.find('\0') != std::string_view::npos) return Error{"bad file name", ENOENT};
  std::string rel(path);

  // Looked at through O_PATH first, which opens nothing: opening a FIFO for reading waits
  // for a writer (forever, on the worker's thread), and opening a device runs its driver.
  auto where = open_beneath(rel, O_PATH);
  if (!where) return where.error();
  struct stat seen{};
  if (::fstat(where->get(), &seen) != 0) return errno_error(errno, "stat " + rel);
  if (!S_ISREG(seen.st_mode))
    return Error{fmt::format("{} is {}, not a regular file", rel, kind_of(seen.st_mode)), EPERM};

  // The name is resolved again and may now be something else: O_NONBLOCK keeps even a FIFO
  // swapped in meanwhile from blocking, and the inode must be the one checked above.
  auto f = open_beneath(rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
  if (!f) return f.error();
  struct stat st{};
  if (::fstat(f->get(), &st) != 0) return errno_error(errno, "stat " + rel);
  if (!S_ISREG(st.st_mode) || st.st_dev != seen.st_dev || st.st_ino != seen.st_ino)
    return Error{rel + " changed while it was being opened", EPERM};
  // Meaningless for a regular file's reads, but splice and sendfile are not to see it.
  int fl = ::fcntl(f->get(), F_GETFL);
  if (fl < 0 || ::fcntl(f->get(), F_SETFL, fl & ~O_NONBLOCK) != 0)
    return errno_error(errno, "fcntl " + rel);
  return File{std::move(*f), static_cast<std::uint64_t>(st.st_size)};
}

int StaticFiles::http_status(const Error& e) {
  switch (e.sys_errno) {
    case ENOENT: case ENOTDIR: case ENAMETOOLONG: case EISDIR:
      return 404;
    case EACCES: case EPERM: case EXDEV: case ELOOP:
      return 403;
    default:
      return 500;
  }
}

}  // namespace wasi_ktls
