// A wasi:sockets tcp-socket: its fd (shared with the streams finish-connect hands out, and
// with a TLS connection on them) and where it is in connecting.
#pragma once

#include "wasi_binding/abi/resource_table.h"
#include "wasi_binding/streams/pollee.h"
#include "wasi_binding/streams/tcp_streams.h"

namespace wasi_ktls::wasi {

class TcpSocket final : public Resource, public Pollee {
 public:
  enum class State : std::uint8_t { unbound, connecting, connected, closed };
  TcpSocket(SharedFd f, int af) : fd(std::move(f)), family(af) {}
  std::string_view type() const override { return "tcp-socket"; }
  bool ready() override;  // a connect has finished (or none is in progress)
  Wait wait() override;

  SharedFd fd;
  int family;
  State state = State::unbound;
};

}  // namespace wasi_ktls::wasi
