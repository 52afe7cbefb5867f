// The TLS options `serve` and `fetch` share (trust, identity, ALPN, versions, suites,
// backend), declared once on a CLI11 subcommand and turned into a Policy.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "base/result.h"
#include "handshake/policy.h"
#include "ktls/conn/connection.h"

namespace wasi_ktls::cli {

struct TlsOptions {
  std::string ca;  // file or directory
  std::string cert;
  std::string key;
  std::vector<std::string> alpn;
  std::string min_version = "1.2";
  std::string max_version = "1.3";
  std::string tls13_suites;
  std::string tls12_ciphers;
  std::string backend;  // empty: WASI_KTLS_BACKEND, else auto
  bool insecure = false;

  // Declares the options on `app` (for a server, the certificate options are required).
  void add_to(CLI::App& app, Role role);
  Result<Policy> policy() const;
  Result<ConnectionOptions> connection_options() const;
};

}  // namespace wasi_ktls::cli
