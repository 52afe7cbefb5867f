// How many fds this process has open: a test compares it before and after to prove nothing
// leaked.
#pragma once

#include <dirent.h>

namespace wasi_ktls::test {

inline int open_fd_count() {
  int n = 0;
  DIR* d = ::opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  while (dirent* e = ::readdir(d))
    if (e->d_name[0] != '.') ++n;
  ::closedir(d);
  return n;  // includes the DIR's own fd, the same on both sides of a comparison
}

}  // namespace wasi_ktls::test
