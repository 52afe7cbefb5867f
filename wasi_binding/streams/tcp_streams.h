// The two streams of a connected TCP socket (wasi:sockets tcp-socket.finish-connect). Reads
// go straight into the caller's buffer (the guest's memory) and never read ahead: a read of
// N bytes receives at most N. Writes go straight from it, and only what the socket would not
// take at once is kept in a host buffer. While nothing is buffered, a TLS handshake given
// the streams runs on the socket itself (raw_socket()), even after plaintext both ways.
#pragma once

#include <memory>

#include "base/byte_queue.h"
#include "base/unique_fd.h"
#include "wasi_binding/streams/stream.h"

namespace wasi_ktls::wasi {

using SharedFd = std::shared_ptr<const UniqueFd>;

class TcpInput final : public InputStream {
 public:
  explicit TcpInput(SharedFd fd) : fd_(std::move(fd)) {}
  StreamResult read(std::span<std::uint8_t> into) override;
  bool ready() override;
  Wait wait() override;
  int raw_socket() const override { return fd_->get(); }
  const SharedFd& shared_fd() const { return fd_; }

 private:
  SharedFd fd_;
  StreamResult ended_ = StreamResult::ok_n(0);  // closed or failed, once it is
};

class TcpOutput final : public OutputStream {
 public:
  explicit TcpOutput(SharedFd fd) : fd_(std::move(fd)) {}
  StreamResult check_write() override;
  StreamResult write(std::span<const std::uint8_t> data) override;
  StreamResult flush() override;
  bool flushed() override;
  bool ready() override;
  Wait wait() override;
  int raw_socket() const override { return pending_.empty() ? fd_->get() : -1; }

 private:
  StreamResult send_pending();
  StreamResult fail(int err);

  SharedFd fd_;
  ByteQueue pending_;  // what the socket did not take yet
  StreamResult ended_ = StreamResult::ok_n(0);
};

}  // namespace wasi_ktls::wasi
