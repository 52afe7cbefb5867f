#include "ktls/conn/userspace_transport.h"

#include <sys/socket.h>

#include "ktls/io/socket_io.h"

namespace wasi_ktls {
namespace {

// Plaintext per SSL_write call: bounds the ciphertext buffered before it goes out.
constexpr std::size_t kWriteChunk = 256 * 1024;
// Ciphertext per recv.
constexpr std::size_t kRecvChunk = 64 * 1024;

}  // namespace

UserspaceTransport::UserspaceTransport(int fd, Session session,
                                       std::chrono::milliseconds io_timeout)
    : fd_(fd), session_(std::move(session)), io_timeout_(io_timeout) {}

Status UserspaceTransport::flush() {
  auto out = session_.pending_output();
  if (out.empty()) return {};
  auto st = send_all(fd_, out, deadline_after(io_timeout_));
  if (st) session_.consume_output(out.size());
  return st;
}

Result<std::size_t> UserspaceTransport::read(std::span<std::uint8_t> buf) {
  if (buf.empty()) return std::size_t{0};
  for (;;) {
    auto r = session_.read_plaintext(buf);
    // Reading can make OpenSSL answer (a KeyUpdate, an alert): send that first.
    if (auto st = flush(); !st) return st.error();
    if (!r) return r.error();
    switch (r->kind) {
      case ReadResult::Kind::data: return r->bytes;
      case ReadResult::Kind::eof: return std::size_t{0};
      case ReadResult::Kind::need_input: break;
    }
    // Ciphertext lands in the session's own input buffer: OpenSSL reads it from there.
    auto n = recv_some(fd_, session_.input_space(kRecvChunk), deadline_after(io_timeout_),
                       "reading");
    if (!n) return n.error();
    if (*n == 0)
      return make_error("peer closed the connection without close_notify (truncation)");
    session_.commit_input(*n);
  }
}

Status UserspaceTransport::write(std::span<const std::uint8_t> data) {
  while (!data.empty()) {
    auto chunk = data.first(std::min(data.size(), kWriteChunk));
    auto w = session_.write_plaintext(chunk);
    if (!w) return w.error();
    if (auto st = flush(); !st) return st;
    data = data.subspan(chunk.size());
  }
  return {};
}

Status UserspaceTransport::close() {
  if (closed_) return {};
  closed_ = true;
  auto st = session_.shutdown();
  if (!st) return st;
  if (auto f = flush(); !f) return f;
  // ENOTCONN: the peer has already reset the connection; there is no write side left.
  if (::shutdown(fd_, SHUT_WR) != 0 && errno != ENOTCONN)
    return errno_error(errno, "shutdown(SHUT_WR)");
  return {};
}

}  // namespace wasi_ktls
