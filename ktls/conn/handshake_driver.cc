#include "ktls/conn/handshake_driver.h"

#include <array>

namespace wasi_ktls {
namespace {

Status flush(int fd, Session& s, Deadline deadline) {
  auto out = s.pending_output();
  if (out.empty()) return {};
  auto st = send_all(fd, out, deadline);
  if (st) s.consume_output(out.size());
  return st;
}

}  // namespace

Status run_handshake(int fd, Session& session, Deadline deadline) {
  std::array<std::uint8_t, 16384 + 256> buf;
  for (;;) {
    auto step = session.advance();
    if (!step) {
      (void)flush(fd, session, deadline);  // the alert that explains the failure
      return step.error();
    }
    if (auto st = flush(fd, session, deadline); !st)
      return Error{"TLS handshake: " + st.error().message, st.error().sys_errno};
    if (step->done) return {};

    std::size_t want = std::min(step->read_bytes, buf.size());
    if (want == 0) return make_error("TLS handshake stalled: OpenSSL neither done nor reading");
    auto n = recv_some(fd, std::span(buf.data(), want), deadline, "during the TLS handshake");
    if (!n) return n.error();
    if (*n == 0) return make_error("TLS handshake failed: peer closed the connection");
    session.feed(std::span(buf.data(), *n));
  }
}

}  // namespace wasi_ktls
