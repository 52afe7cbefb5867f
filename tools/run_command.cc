#include "tools/run_command.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "base/unique_fd.h"

#include "tools/tls_options.h"
#include "wasi_binding/engine/wasm2c_engine.h"
#include "wasi_binding/host/import_table.h"
#include "wasi_binding/host/run_guest.h"

namespace wasi_ktls::cli {
namespace {

constexpr int kLoadFailure = 2;

struct RunOptions {
  TlsOptions tls;
  std::vector<std::string> allow_connect;
  std::vector<std::string> env;  // --env NAME=VALUE or NAME
  double handshake_timeout_s = 10;
  bool verbose = false;
  std::vector<std::string> guest;  // GUEST.wasm and its arguments
};

Result<std::vector<std::uint8_t>> read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error(errno, "cannot open " + path);
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0) return errno_error(errno, "cannot stat " + path);
  if (!S_ISREG(st.st_mode)) return make_error("{} is not a regular file", path);
  std::vector<std::uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t have = 0;
  while (have < bytes.size()) {
    const ssize_t n = ::read(fd.get(), bytes.data() + have, bytes.size() - have);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, "cannot read " + path);
    if (n == 0) break;
    have += static_cast<std::size_t>(n);
  }
  bytes.resize(have);
  return bytes;
}

// The guest's "NAME=VALUE" for --env NAME=VALUE, or for --env NAME with NAME's value here,
// which keeps a secret off the command line (and out of `ps`).
Result<std::string> guest_variable(const std::string& spec) {
  const auto eq = spec.find('=');
  const std::string name = spec.substr(0, eq);
  if (name.empty()) return make_error("--env {}: no variable name", spec);
  if (eq != std::string::npos) return spec;
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return make_error("--env {}: {} is not set in this environment", name, name);
  return name + "=" + value;
}

int run(const RunOptions& o) {
  auto fail_load = [](const std::string& what) {
    std::fprintf(stderr, "wasi-ktls run: %s\n", what.c_str());
    return kLoadFailure;
  };
  if (o.guest.empty()) return fail_load("no GUEST.wasm given");
  const std::string& path = o.guest.front();

  wasi::HostConfig cfg;
  cfg.args = o.guest;
  for (const std::string& spec : o.env) {
    auto variable = guest_variable(spec);
    if (!variable) return fail_load(variable.error().message);
    cfg.env.push_back(std::move(*variable));
  }
  for (const std::string& spec : o.allow_connect)
    if (Status s = cfg.connect.allow(spec); !s) return fail_load(s.error().message);
  auto policy = o.tls.policy();
  if (!policy) return fail_load(policy.error().message);
  auto ctx = TlsContext::create(Role::client, *policy);
  if (!ctx) return fail_load("TLS configuration: " + ctx.error().message);
  cfg.tls = std::make_shared<const TlsContext>(std::move(*ctx));
  auto conn = o.tls.connection_options();
  if (!conn) return fail_load(conn.error().message);
  cfg.connection = *conn;
  if (!(o.handshake_timeout_s > 0) || o.handshake_timeout_s > 3600)
    return fail_load("--handshake-timeout must be a number of seconds in (0, 3600]");
  cfg.connection.handshake_timeout =
      std::chrono::milliseconds(static_cast<long>(o.handshake_timeout_s * 1000));
  if (o.verbose)
    cfg.on_tls_connection = [](std::string_view line) {
      std::fprintf(stderr, "%.*s\n", static_cast<int>(line.size()), line.data());
    };

  auto bytes = read_file(path);
  if (!bytes) return fail_load(bytes.error().message);
  wasm::Wasm2cEngine engine;
  auto module = engine.load(*bytes, wasi::host_imports());
  if (!module) return fail_load("cannot load " + path + ": " + module.error().message);

  std::fflush(stdout);
  auto outcome = wasi::run_instance(**module, cfg);
  std::fflush(stdout);
  if (!outcome) {
    std::fprintf(stderr, "wasi-ktls run: %s\n", outcome.error().message.c_str());
    return kLoadFailure;
  }
  if (outcome->trap) std::fprintf(stderr, "trap: %s\n", outcome->trap->c_str());
  return outcome->status;
}

}  // namespace

Command add_run_command(CLI::App& app) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Run a WebAssembly guest (core module) with wasi:tls on kernel TLS");
  cmd->add_option("--ca", opts->tls.ca,
                  "CA file or directory to verify servers with (default: system store)");
  auto* c = cmd->add_option("--cert", opts->tls.cert, "Client certificate chain (PEM) for mTLS");
  auto* k = cmd->add_option("--key", opts->tls.key, "Private key (PEM) of --cert");
  c->needs(k);
  k->needs(c);
  cmd->add_option("--alpn", opts->tls.alpn, "ALPN protocols, in preference order (P1,P2)")
      ->delimiter(',')
      ->allow_extra_args(false);
  cmd->add_option("--backend", opts->tls.backend,
                  "Data path after the handshake: auto, ktls or userspace "
                  "(default: $WASI_KTLS_BACKEND, else auto)")
      ->check(CLI::IsMember({"auto", "ktls", "userspace"}));
  cmd->add_option("--allow-connect", opts->allow_connect,
                  "Let the guest connect to ADDR[/BITS][:PORT] (a name, an address, a CIDR "
                  "range, :PORT, or any); repeatable. Default: no connections")
      ->allow_extra_args(false);  // one value per use: GUEST.wasm may follow
  cmd->add_option("--env", opts->env,
                  "Give the guest environment variable NAME=VALUE, or NAME with its value "
                  "here (keeps a secret off the command line); repeatable. Default: none")
      ->allow_extra_args(false);
  cmd->add_option("--handshake-timeout", opts->handshake_timeout_s,
                  "Seconds a TLS handshake may take (default 10)");
  cmd->add_flag("-v,--verbose", opts->verbose,
                "One line on stderr per TLS connection: server, version, suite, ALPN, backend");
  // GUEST.wasm and everything after it are the guest's, even what looks like an option.
  cmd->prefix_command();
  cmd->footer("GUEST.wasm [GUEST-ARGS...] follow the options; the guest's argv is them.");
  return Command{cmd, [opts, cmd] {
                   opts->guest = cmd->remaining();
                   return run(*opts);
                 }};
}

}  // namespace wasi_ktls::cli
