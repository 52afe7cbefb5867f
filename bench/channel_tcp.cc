// Plain TCP: the ceiling every TLS row is measured against.
#include <sys/socket.h>

#include "bench/channel.h"

namespace wasi_ktls::bench {
namespace {

class TcpChannel : public Channel {
 public:
  explicit TcpChannel(UniqueFd fd) : fd_(std::move(fd)) {}
  Result<std::size_t> write(std::span<const std::uint8_t> data) override {
    for (;;) {
      ssize_t n = ::send(fd_.get(), data.data(), data.size(), MSG_NOSIGNAL);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return errno_error(errno, "send");
    }
  }
  Result<std::size_t> read(std::span<std::uint8_t> buf) override {
    for (;;) {
      ssize_t n = ::recv(fd_.get(), buf.data(), buf.size(), 0);
      if (n >= 0) return static_cast<std::size_t>(n);
      if (errno != EINTR) return errno_error(errno, "recv");
    }
  }
  std::string transport() const override { return "plain TCP (no TLS)"; }

 private:
  UniqueFd fd_;
};

}  // namespace

Result<std::unique_ptr<Channel>> open_tcp(UniqueFd fd) {
  return std::unique_ptr<Channel>(std::make_unique<TcpChannel>(std::move(fd)));
}

}  // namespace wasi_ktls::bench
