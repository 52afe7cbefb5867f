// wasi:sockets (0.2.x), the client half a TLS guest needs: instance-network, TCP sockets
// (create, connect, streams, shutdown, addresses, the options a client sets) and name
// lookup through the system resolver. Connecting is denied unless the embedder's
// ConnectPolicy grants the address (`--allow-connect`).
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

#include "wasi_binding/interfaces/interfaces.h"
#include "wasi_binding/interfaces/io_resources.h"
#include "wasi_binding/interfaces/sockets_resources.h"
#include "wasi_binding/streams/socket_space.h"
#include "wasi_binding/streams/tcp_streams.h"

namespace wasi_ktls::wasi {
namespace {

// wasi:sockets/network error-code, in WIT order.
enum Code : std::uint8_t {
  unknown, access_denied, not_supported, invalid_argument, out_of_memory, timeout,
  concurrency_conflict, not_in_progress, would_block, invalid_state, new_socket_limit,
  address_not_bindable, address_in_use, remote_unreachable, connection_refused,
  connection_reset, connection_aborted, datagram_too_large, name_unresolvable,
  temporary_resolver_failure, permanent_resolver_failure,
};

Code code_of(int err) {
  switch (err) {
    case EACCES: case EPERM: return access_denied;
    case EAFNOSUPPORT: case EOPNOTSUPP: case EPROTONOSUPPORT: return not_supported;
    case EINVAL: return invalid_argument;
    case ENOMEM: case ENOBUFS: return out_of_memory;
    case ETIMEDOUT: return timeout;
    case EMFILE: case ENFILE: return new_socket_limit;
    case EADDRINUSE: return address_in_use;
    case EADDRNOTAVAIL: return address_not_bindable;
    case ENETUNREACH: case EHOSTUNREACH: case ENETDOWN: case EHOSTDOWN: return remote_unreachable;
    case ECONNREFUSED: return connection_refused;
    case ECONNRESET: case EPIPE: return connection_reset;
    case ECONNABORTED: return connection_aborted;
    default: return unknown;
  }
}

class Network final : public Resource {
 public:
  std::string_view type() const override { return "network"; }
};

TcpSocket& tcp(Host& h, std::uint32_t self) {
  return h.table().get<TcpSocket>(self, "tcp-socket", "self");
}

// result<_, error-code> (2/1).
void store_unit_result(Host& h, std::uint32_t at, std::optional<Code> err) {
  GuestMemory& m = h.memory();
  m.store<std::uint8_t>(at, err ? 1 : 0);
  if (err) m.store<std::uint8_t>(at + 1, *err);
}

std::uint32_t instance_network(Host& h) { return h.table().insert(std::make_unique<Network>()); }
void network_drop(Host& h, std::uint32_t self) { h.table().drop(self, "network", "self"); }

void create_tcp_socket(Host& h, std::uint32_t family, std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 8, 4, "return area");
  if (family > 1) trap("address-family: {} is not an ip-address-family (0 ipv4, 1 ipv6)", family);
  const int af = family == 0 ? AF_INET : AF_INET6;
  const int fd = ::socket(af, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    m.store<std::uint8_t>(at, 1);
    m.store<std::uint8_t>(at + 4, code_of(errno));
    return;
  }
  auto s = std::make_unique<TcpSocket>(std::make_shared<const UniqueFd>(fd), af);
  m.store<std::uint8_t>(at, 0);
  m.store<std::uint32_t>(at + 4, h.table().insert(std::move(s)));
}

void start_connect(Host& h, std::uint32_t self, std::uint32_t network, std::uint32_t tag,
                   std::uint32_t p0, std::uint32_t p1, std::uint32_t p2, std::uint32_t p3,
                   std::uint32_t p4, std::uint32_t p5, std::uint32_t p6, std::uint32_t p7,
                   std::uint32_t p8, std::uint32_t p9, std::uint32_t p10, std::uint32_t ret) {
  const std::uint32_t at = h.memory().return_area(ret, 2, 1, "return area");
  TcpSocket& s = tcp(h, self);
  (void)h.table().get<Network>(network, "network", "network");
  if (tag > 1) trap("remote-address: ip-socket-address tag {} (0 ipv4, 1 ipv6)", tag);
  sockaddr_storage to{};
  socklen_t len;
  bool unspecified;
  std::uint16_t port;
  if (tag == 0) {
    auto& a = reinterpret_cast<sockaddr_in&>(to);
    a.sin_family = AF_INET;
    port = static_cast<std::uint16_t>(p0);
    a.sin_port = htons(port);
    const std::uint8_t oct[4] = {static_cast<std::uint8_t>(p1), static_cast<std::uint8_t>(p2),
                                 static_cast<std::uint8_t>(p3), static_cast<std::uint8_t>(p4)};
    std::memcpy(&a.sin_addr, oct, 4);
    unspecified = a.sin_addr.s_addr == 0;
    len = sizeof a;
  } else {
    auto& a = reinterpret_cast<sockaddr_in6&>(to);
    a.sin6_family = AF_INET6;
    port = static_cast<std::uint16_t>(p0);
    a.sin6_port = htons(port);
    a.sin6_flowinfo = htonl(p1);
    const std::uint32_t groups[8] = {p2, p3, p4, p5, p6, p7, p8, p9};
    for (int i = 0; i < 8; ++i) {
      const auto g = static_cast<std::uint16_t>(groups[i]);
      a.sin6_addr.s6_addr[2 * i] = static_cast<std::uint8_t>(g >> 8);
      a.sin6_addr.s6_addr[2 * i + 1] = static_cast<std::uint8_t>(g);
    }
    a.sin6_scope_id = p10;
    unspecified = IN6_IS_ADDR_UNSPECIFIED(&a.sin6_addr);
    len = sizeof a;
  }
  if (s.state == TcpSocket::State::connecting) return store_unit_result(h, at, concurrency_conflict);
  if (s.state != TcpSocket::State::unbound) return store_unit_result(h, at, invalid_state);
  if (to.ss_family != s.family || unspecified || port == 0)
    return store_unit_result(h, at, invalid_argument);
  if (!h.config().connect.permits(to)) return store_unit_result(h, at, access_denied);
  if (::connect(s.fd->get(), reinterpret_cast<const sockaddr*>(&to), len) != 0 &&
      errno != EINPROGRESS) {
    return store_unit_result(h, at, code_of(errno));
  }
  s.state = TcpSocket::State::connecting;
  store_unit_result(h, at, std::nullopt);
}

void finish_connect(Host& h, std::uint32_t self, std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 12, 4, "return area");
  TcpSocket& s = tcp(h, self);
  auto fail = [&](Code c) {
    m.store<std::uint8_t>(at, 1);
    m.store<std::uint8_t>(at + 4, c);
  };
  if (s.state != TcpSocket::State::connecting) return fail(not_in_progress);
  if (!s.ready()) return fail(would_block);
  int err = 0;
  socklen_t elen = sizeof err;
  if (::getsockopt(s.fd->get(), SOL_SOCKET, SO_ERROR, &err, &elen) != 0) err = errno;
  if (err != 0) {
    s.state = TcpSocket::State::closed;
    return fail(code_of(err));
  }
  s.state = TcpSocket::State::connected;
  const std::uint32_t in = h.table().insert(std::make_unique<TcpInput>(s.fd));
  const std::uint32_t out = h.table().insert(std::make_unique<TcpOutput>(s.fd));
  m.store<std::uint8_t>(at, 0);
  m.store<std::uint32_t>(at + 4, in);
  m.store<std::uint32_t>(at + 8, out);
}

std::uint32_t tcp_subscribe(Host& h, std::uint32_t self) { return subscribe(h, tcp(h, self), self); }

void tcp_shutdown(Host& h, std::uint32_t self, std::uint32_t how, std::uint32_t ret) {
  const std::uint32_t at = h.memory().return_area(ret, 2, 1, "return area");
  TcpSocket& s = tcp(h, self);
  if (how > 2) trap("shutdown-type: {} (0 receive, 1 send, 2 both)", how);
  if (s.state != TcpSocket::State::connected) return store_unit_result(h, at, invalid_state);
  const int mode = how == 0 ? SHUT_RD : how == 1 ? SHUT_WR : SHUT_RDWR;
  if (::shutdown(s.fd->get(), mode) != 0 && errno != ENOTCONN)
    return store_unit_result(h, at, code_of(errno));
  store_unit_result(h, at, std::nullopt);
}

// result<ip-socket-address, error-code>: 36/4: tag@0; ok: address tag@4, payload@8.
void store_address(Host& h, std::uint32_t at, const sockaddr_storage& a) {
  GuestMemory& m = h.memory();
  m.store<std::uint8_t>(at, 0);
  if (a.ss_family == AF_INET) {
    const auto& v4 = reinterpret_cast<const sockaddr_in&>(a);
    m.store<std::uint8_t>(at + 4, 0);
    m.store<std::uint16_t>(at + 8, ntohs(v4.sin_port));
    const auto* b = reinterpret_cast<const std::uint8_t*>(&v4.sin_addr);
    for (int i = 0; i < 4; ++i) m.store<std::uint8_t>(at + 10 + i, b[i]);
    return;
  }
  const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
  m.store<std::uint8_t>(at + 4, 1);
  m.store<std::uint16_t>(at + 8, ntohs(v6.sin6_port));
  m.store<std::uint32_t>(at + 12, ntohl(v6.sin6_flowinfo));
  for (int i = 0; i < 8; ++i)
    m.store<std::uint16_t>(at + 16 + 2 * i,
                           static_cast<std::uint16_t>(v6.sin6_addr.s6_addr[2 * i] << 8 |
                                                      v6.sin6_addr.s6_addr[2 * i + 1]));
  m.store<std::uint32_t>(at + 32, v6.sin6_scope_id);
}

void address_impl(Host& h, std::uint32_t self, std::uint32_t ret, bool remote) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 36, 4, "return area");
  TcpSocket& s = tcp(h, self);
  sockaddr_storage a{};
  socklen_t len = sizeof a;
  const bool got = (remote ? ::getpeername(s.fd->get(), reinterpret_cast<sockaddr*>(&a), &len)
                           : ::getsockname(s.fd->get(), reinterpret_cast<sockaddr*>(&a), &len)) == 0;
  if (s.state == TcpSocket::State::unbound || !got) {
    m.store<std::uint8_t>(at, 1);
    m.store<std::uint8_t>(at + 4, invalid_state);
    return;
  }
  store_address(h, at, a);
}

void local_address(Host& h, std::uint32_t self, std::uint32_t ret) { address_impl(h, self, ret, false); }
void remote_address(Host& h, std::uint32_t self, std::uint32_t ret) { address_impl(h, self, ret, true); }

std::uint32_t address_family(Host& h, std::uint32_t self) {
  return tcp(h, self).family == AF_INET ? 0 : 1;
}

// Integer socket options: result<T, error-code> with T u8/bool (2/1), u32 (8/4), u64 (16/8).
template <class T>
void store_option(Host& h, std::uint32_t ret, int level, int name, TcpSocket& s) {
  GuestMemory& m = h.memory();
  constexpr std::uint32_t off = sizeof(T) >= 4 ? sizeof(T) : 1;
  const std::uint32_t at = m.return_area(ret, off + sizeof(T), alignof(T), "return area");
  int v = 0;
  socklen_t len = sizeof v;
  if (::getsockopt(s.fd->get(), level, name, &v, &len) != 0) {
    m.store<std::uint8_t>(at, 1);
    m.store<std::uint8_t>(at + off, code_of(errno));
    return;
  }
  m.store<std::uint8_t>(at, 0);
  m.store<T>(at + off, static_cast<T>(v));
}

void set_option(Host& h, std::uint32_t ret, int level, int name, TcpSocket& s, std::uint64_t value,
                std::uint64_t min, std::uint64_t max) {
  const std::uint32_t at = h.memory().return_area(ret, 2, 1, "return area");
  if (value < min || value > max) return store_unit_result(h, at, invalid_argument);
  const int v = static_cast<int>(value);
  if (::setsockopt(s.fd->get(), level, name, &v, sizeof v) != 0)
    return store_unit_result(h, at, code_of(errno));
  store_unit_result(h, at, std::nullopt);
}

void keep_alive_enabled(Host& h, std::uint32_t self, std::uint32_t ret) {
  store_option<std::uint8_t>(h, ret, SOL_SOCKET, SO_KEEPALIVE, tcp(h, self));
}
void set_keep_alive_enabled(Host& h, std::uint32_t self, std::uint32_t v, std::uint32_t ret) {
  if (v > 1) trap("value: {} is not a bool", v);
  set_option(h, ret, SOL_SOCKET, SO_KEEPALIVE, tcp(h, self), v, 0, 1);
}
void hop_limit(Host& h, std::uint32_t self, std::uint32_t ret) {
  TcpSocket& s = tcp(h, self);
  store_option<std::uint8_t>(h, ret, s.family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
                             s.family == AF_INET ? IP_TTL : IPV6_UNICAST_HOPS, s);
}
void set_hop_limit(Host& h, std::uint32_t self, std::uint32_t v, std::uint32_t ret) {
  TcpSocket& s = tcp(h, self);
  set_option(h, ret, s.family == AF_INET ? IPPROTO_IP : IPPROTO_IPV6,
             s.family == AF_INET ? IP_TTL : IPV6_UNICAST_HOPS, s, v & 0xFF, 1, 255);
}
void receive_buffer_size(Host& h, std::uint32_t self, std::uint32_t ret) {
  store_option<std::uint64_t>(h, ret, SOL_SOCKET, SO_RCVBUF, tcp(h, self));
}
void set_receive_buffer_size(Host& h, std::uint32_t self, std::uint64_t v, std::uint32_t ret) {
  set_option(h, ret, SOL_SOCKET, SO_RCVBUF, tcp(h, self), v, 1, INT32_MAX / 2);
}
void send_buffer_size(Host& h, std::uint32_t self, std::uint32_t ret) {
  store_option<std::uint64_t>(h, ret, SOL_SOCKET, SO_SNDBUF, tcp(h, self));
}
void set_send_buffer_size(Host& h, std::uint32_t self, std::uint64_t v, std::uint32_t ret) {
  set_option(h, ret, SOL_SOCKET, SO_SNDBUF, tcp(h, self), v, 1, INT32_MAX / 2);
}

void tcp_drop(Host& h, std::uint32_t self) { h.table().drop(self, "tcp-socket", "self"); }

// ---- ip-name-lookup --------------------------------------------------------------------------

class ResolveStream final : public Resource, public Pollee {
 public:
  std::string_view type() const override { return "resolve-address-stream"; }
  bool ready() override { return true; }  // resolved when created
  Wait wait() override { return Wait::ready(); }
  std::vector<sockaddr_storage> addresses;
  std::size_t next = 0;
};

void resolve_addresses(Host& h, std::uint32_t network, std::uint32_t ptr, std::uint32_t len,
                       std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 8, 4, "return area");
  (void)h.table().get<Network>(network, "network", "network");
  const std::string name(m.string(ptr, len, "name"));
  auto fail = [&](Code c) {
    m.store<std::uint8_t>(at, 1);
    m.store<std::uint8_t>(at + 4, c);
  };
  // The WIT: a name, or an IP address literal; nothing with a port or a scheme.
  if (name.empty() || name.find_first_of("/ ") != std::string::npos ||
      name.find('\0') != std::string::npos)
    return fail(invalid_argument);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  // The system resolver; it waits on the network with its own bounded timeouts (resolv.conf).
  const int rc = ::getaddrinfo(name.c_str(), nullptr, &hints, &res);
  if (rc != 0) {
    return fail(rc == EAI_NONAME || rc == EAI_NODATA ? name_unresolvable
                : rc == EAI_AGAIN                   ? temporary_resolver_failure
                                                    : permanent_resolver_failure);
  }
  auto s = std::make_unique<ResolveStream>();
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    sockaddr_storage a{};
    std::memcpy(&a, ai->ai_addr, ai->ai_addrlen);
    bool dup = false;
    for (const auto& b : s->addresses) dup = dup || std::memcmp(&a, &b, sizeof a) == 0;
    if (!dup) s->addresses.push_back(a);
  }
  ::freeaddrinfo(res);
  m.store<std::uint8_t>(at, 0);
  m.store<std::uint32_t>(at + 4, h.table().insert(std::move(s)));
}

// result<option<ip-address>, error-code>: 22/2.
void resolve_next_address(Host& h, std::uint32_t self, std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 22, 2, "return area");
  auto& s = h.table().get<ResolveStream>(self, "resolve-address-stream", "self");
  m.store<std::uint8_t>(at, 0);
  if (s.next >= s.addresses.size()) {
    m.store<std::uint8_t>(at + 2, 0);
    return;
  }
  const sockaddr_storage& a = s.addresses[s.next++];
  m.store<std::uint8_t>(at + 2, 1);
  if (a.ss_family == AF_INET) {
    m.store<std::uint8_t>(at + 4, 0);
    const auto* b = reinterpret_cast<const std::uint8_t*>(&reinterpret_cast<const sockaddr_in&>(a).sin_addr);
    for (int i = 0; i < 4; ++i) m.store<std::uint8_t>(at + 6 + i, b[i]);
  } else {
    m.store<std::uint8_t>(at + 4, 1);
    const auto& v6 = reinterpret_cast<const sockaddr_in6&>(a);
    for (int i = 0; i < 8; ++i)
      m.store<std::uint16_t>(at + 6 + 2 * i,
                             static_cast<std::uint16_t>(v6.sin6_addr.s6_addr[2 * i] << 8 |
                                                        v6.sin6_addr.s6_addr[2 * i + 1]));
  }
}

std::uint32_t resolve_subscribe(Host& h, std::uint32_t self) {
  return subscribe(h, h.table().get<ResolveStream>(self, "resolve-address-stream", "self"), self);
}
void resolve_drop(Host& h, std::uint32_t self) {
  h.table().drop(self, "resolve-address-stream", "self");
}

}  // namespace

bool TcpSocket::ready() {
  if (state != State::connecting) return true;
  return fd_ready(fd->get(), POLLOUT);
}

Wait TcpSocket::wait() {
  if (state != State::connecting) return Wait::ready();
  return Wait::on(fd->get(), POLLOUT);
}

std::vector<Import> sockets_imports() {
  return {
      def<"wasi:sockets/instance-network@0.2", "instance-network", &instance_network>(),
      def<"wasi:sockets/network@0.2", "[resource-drop]network", &network_drop>(),
      def<"wasi:sockets/tcp-create-socket@0.2", "create-tcp-socket", &create_tcp_socket>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.start-connect", &start_connect>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.finish-connect", &finish_connect>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.subscribe", &tcp_subscribe>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.shutdown", &tcp_shutdown>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.local-address", &local_address>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.remote-address", &remote_address>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.address-family", &address_family>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.keep-alive-enabled", &keep_alive_enabled>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.set-keep-alive-enabled",
          &set_keep_alive_enabled>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.hop-limit", &hop_limit>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.set-hop-limit", &set_hop_limit>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.receive-buffer-size", &receive_buffer_size>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.set-receive-buffer-size",
          &set_receive_buffer_size>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.send-buffer-size", &send_buffer_size>(),
      def<"wasi:sockets/tcp@0.2", "[method]tcp-socket.set-send-buffer-size",
          &set_send_buffer_size>(),
      def<"wasi:sockets/tcp@0.2", "[resource-drop]tcp-socket", &tcp_drop>(),
      def<"wasi:sockets/ip-name-lookup@0.2", "resolve-addresses", &resolve_addresses>(),
      def<"wasi:sockets/ip-name-lookup@0.2", "[method]resolve-address-stream.resolve-next-address",
          &resolve_next_address>(),
      def<"wasi:sockets/ip-name-lookup@0.2", "[method]resolve-address-stream.subscribe",
          &resolve_subscribe>(),
      def<"wasi:sockets/ip-name-lookup@0.2", "[resource-drop]resolve-address-stream",
          &resolve_drop>(),
  };
}

}  // namespace wasi_ktls::wasi
