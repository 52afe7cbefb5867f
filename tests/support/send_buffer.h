// A peer that never reads, made certain: fills a socket's send buffer until the kernel takes
// not one more byte, and keeps at it until the connection has stopped draining (TCP goes on
// moving bytes into the peer's receive buffer after the first EAGAIN, autotuning grows it, and
// a small send can fit where POLLOUT is not yet signalled), so an operation started afterwards
// really has to wait for room.
#pragma once

namespace wasi_ktls::test {

// On a kTLS socket the bytes are data records the peer never sees.
void fill_until_stalled(int fd);

}  // namespace wasi_ktls::test
