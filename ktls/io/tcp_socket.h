// TCP endpoints for connections: dial with a bounded connect, listen, accept with a bound.
// Every socket is close-on-exec and blocking once connected.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace wasi_ktls {

// Resolves `host` (name or address) and connects to the first address that answers within
// `timeout` overall.
Result<UniqueFd> tcp_connect(std::string_view host, std::uint16_t port,
                             std::chrono::milliseconds timeout);

// A listening socket on address:port (port 0: any free port). `reuse_port` lets several
// listeners (one per thread) share the port: with any other SO_REUSEPORT socket of the same
// user too, so a server that must own its port checks port_in_use() first.
// An error naming address:port when a socket (a listener of any process, even one sharing
// with SO_REUSEPORT) holds it; binds without listening, so no connection is taken or reset.
Status port_in_use(std::string_view address, std::uint16_t port);

Result<UniqueFd> tcp_listen(std::string_view address, std::uint16_t port, bool reuse_port = false,
                            int backlog = 512);

// The port a socket is bound to.
Result<std::uint16_t> local_port(int fd);

// The peer of a connected socket as "address:port" ("[v6]:port"), or "?" if unknown.
std::string peer_name(int fd);

// Accepts one connection, waiting at most `timeout` (negative: forever). The peer's
// "address:port" goes to `peer` if given.
Result<UniqueFd> tcp_accept(int listen_fd, std::chrono::milliseconds timeout,
                            std::string* peer = nullptr);

}  // namespace wasi_ktls
