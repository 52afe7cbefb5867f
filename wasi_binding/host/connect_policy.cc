#include "wasi_binding/host/connect_policy.h"

#include <arpa/inet.h>
#include <netdb.h>

#include <charconv>
#include <cstring>
#include <string>

namespace wasi_ktls::wasi {
namespace {

bool prefix_matches(const std::uint8_t* a, const std::uint8_t* b, unsigned bits) {
  const unsigned whole = bits / 8;
  if (std::memcmp(a, b, whole) != 0) return false;
  const unsigned rest = bits % 8;
  if (rest == 0) return true;
  const auto mask = static_cast<std::uint8_t>(0xFF << (8 - rest));
  return (a[whole] & mask) == (b[whole] & mask);
}

Result<unsigned> parse_number(std::string_view s, unsigned max, std::string_view what,
                              std::string_view spec) {
  unsigned v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size() || v > max)
    return make_error(ErrorKind::config, "--allow-connect {}: {} '{}' is not a number 0..{}",
                      spec, what, s, max);
  return v;
}

}  // namespace

Status ConnectPolicy::allow(std::string_view spec) {
  Rule rule;
  if (spec == "any") {
    rules_.push_back(rule);
    return {};
  }
  std::string_view host = spec;
  std::string bracketed;  // "[v6]/bits": the address and its prefix without the brackets
  std::optional<std::string_view> port;
  if (!host.empty() && host.front() == '[') {  // [v6]:port or [v6]/bits:port
    const auto close = host.find(']');
    if (close == std::string_view::npos)
      return make_error(ErrorKind::config, "--allow-connect {}: '[' without ']'", spec);
    std::string_view after = host.substr(close + 1);
    host = host.substr(1, close - 1);
    if (!after.empty() && after.front() == '/') {
      const auto colon = after.find(':');
      bracketed = std::string(host) + std::string(after.substr(0, colon));
      after = colon == std::string_view::npos ? std::string_view{} : after.substr(colon);
      host = bracketed;
    }
    if (!after.empty()) {
      if (after.front() != ':')
        return make_error(ErrorKind::config, "--allow-connect {}: expected ':PORT' after ']'",
                          spec);
      port = after.substr(1);
    }
  } else if (const auto colon = host.rfind(':');
             colon != std::string_view::npos && host.find(':') == colon) {
    port = host.substr(colon + 1);  // one colon: ADDR:PORT (an IPv6 literal needs brackets)
    host = host.substr(0, colon);
  }
  if (port) {
    auto p = parse_number(*port, 65535, "port", spec);
    if (!p) return p.error();
    rule.port = static_cast<std::uint16_t>(*p);
  }
  if (!host.empty() && host != "any") {
    std::string addr(host);
    std::optional<unsigned> bits;
    if (const auto slash = addr.find('/'); slash != std::string::npos) {
      auto b = parse_number(std::string_view(addr).substr(slash + 1), 128, "prefix length", spec);
      if (!b) return b.error();
      bits = *b;
      addr.resize(slash);
    }
    rule.any_address = false;
    if (::inet_pton(AF_INET, addr.c_str(), rule.addr) == 1) {
      rule.family = AF_INET;
      rule.prefix = bits.value_or(32);
      if (rule.prefix > 32)
        return make_error(ErrorKind::config, "--allow-connect {}: an IPv4 prefix is at most /32",
                          spec);
    } else if (::inet_pton(AF_INET6, addr.c_str(), rule.addr) == 1) {
      rule.family = AF_INET6;
      rule.prefix = bits.value_or(128);
    } else {
      if (bits)
        return make_error(ErrorKind::config, "--allow-connect {}: '{}' is not an IP address",
                          spec, addr);
      // A name: every address it resolves to now.
      addrinfo hints{};
      hints.ai_socktype = SOCK_STREAM;
      addrinfo* res = nullptr;
      if (int rc = ::getaddrinfo(addr.c_str(), nullptr, &hints, &res); rc != 0)
        return make_error(ErrorKind::config, "--allow-connect {}: cannot resolve '{}': {}", spec,
                          addr, ::gai_strerror(rc));
      for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        Rule r = rule;
        if (ai->ai_family == AF_INET) {
          r.family = AF_INET;
          r.prefix = 32;
          std::memcpy(r.addr, &reinterpret_cast<sockaddr_in*>(ai->ai_addr)->sin_addr, 4);
        } else if (ai->ai_family == AF_INET6) {
          r.family = AF_INET6;
          r.prefix = 128;
          std::memcpy(r.addr, &reinterpret_cast<sockaddr_in6*>(ai->ai_addr)->sin6_addr, 16);
        } else {
          continue;
        }
        rules_.push_back(r);
      }
      ::freeaddrinfo(res);
      return {};
    }
  }
  rules_.push_back(rule);
  return {};
}

bool ConnectPolicy::permits(const sockaddr_storage& to) const {
  std::uint16_t port = 0;
  const std::uint8_t* addr = nullptr;
  if (to.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(to);
    port = ntohs(a.sin_port);
    addr = reinterpret_cast<const std::uint8_t*>(&a.sin_addr);
  } else if (to.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(to);
    port = ntohs(a.sin6_port);
    addr = reinterpret_cast<const std::uint8_t*>(&a.sin6_addr);
  } else {
    return false;
  }
  for (const Rule& r : rules_) {
    if (r.port && *r.port != port) continue;
    if (r.any_address) return true;
    if (r.family == to.ss_family && prefix_matches(r.addr, addr, r.prefix)) return true;
  }
  return false;
}

}  // namespace wasi_ktls::wasi
