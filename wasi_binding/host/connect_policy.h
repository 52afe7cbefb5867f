// Which addresses a guest may connect to: nothing unless granted (`--allow-connect`). A rule
// is an address or CIDR range and/or a port: "127.0.0.1", "10.0.0.0/8:5432", "[::1]:443",
// "localhost:8443" (a name is resolved when the rule is parsed), ":443", "any".
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "base/result.h"

namespace wasi_ktls::wasi {

class ConnectPolicy {
 public:
  struct Rule {
    bool any_address = true;
    int family = AF_INET;  // when !any_address
    std::uint8_t addr[16] = {};
    unsigned prefix = 0;   // bits that must match
    std::optional<std::uint16_t> port;
  };

  // Adds one `--allow-connect` value; an error names what in it is wrong.
  Status allow(std::string_view spec);
  bool permits(const sockaddr_storage& to) const;
  bool empty() const { return rules_.empty(); }

 private:
  std::vector<Rule> rules_;
};

}  // namespace wasi_ktls::wasi
