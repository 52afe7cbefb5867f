// What the embedder (the `wasi-ktls run` command, a test) configures for a guest: its argv
// and environment, the TLS policy and backend the host uses for wasi:tls, which addresses the
// guest may connect to, and where per-connection notes go.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "handshake/policy.h"
#include "ktls/conn/core.h"
#include "wasi_binding/host/connect_policy.h"

namespace wasi_ktls::wasi {

struct HostConfig {
  std::vector<std::string> args;  // argv, args[0] the module's name
  std::vector<std::string> env;   // "NAME=value"
  std::shared_ptr<const TlsContext> tls;
  ConnectionOptions connection;
  ConnectPolicy connect;
  // One line per TLS connection once its handshake is over (for -v); may be empty.
  std::function<void(std::string_view)> on_tls_connection;
};

}  // namespace wasi_ktls::wasi
