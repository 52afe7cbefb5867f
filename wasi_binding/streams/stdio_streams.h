// The process's stdin, stdout and stderr as wasi:cli streams (and preview1's fds 0-2).
#pragma once

#include "wasi_binding/streams/stream.h"

namespace wasi_ktls::wasi {

class StdinStream final : public InputStream {
 public:
  StreamResult read(std::span<std::uint8_t> into) override;
  bool ready() override;
  Wait wait() override;

 private:
  StreamResult ended_ = StreamResult::ok_n(0);
};

// Writes go to the fd at once and in full: a terminal, a pipe or a file the user chose.
class StdioOutput final : public OutputStream {
 public:
  explicit StdioOutput(int fd) : fd_(fd) {}
  StreamResult check_write() override;
  StreamResult write(std::span<const std::uint8_t> data) override;
  StreamResult flush() override { return check_write(); }
  bool flushed() override { return true; }
  bool ready() override { return true; }
  Wait wait() override { return Wait::ready(); }

 private:
  int fd_;
  StreamResult ended_ = StreamResult::ok_n(0);
};

// write(2) all of `data` to `fd` (a blocking stdio fd): 0, or the errno that stopped it.
int write_fully(int fd, std::span<const std::uint8_t> data);

}  // namespace wasi_ktls::wasi
