#include "tools/probe_command.h"

#include <cstdio>
#include <memory>

#include "ktls/probe/probe.h"
#include "ktls/probe/probe_render.h"

namespace wasi_ktls::cli {

Command add_probe_command(CLI::App& parent) {
  CLI::App* app = parent.add_subcommand(
      "probe", "Show which TLS versions/ciphers this kernel can offload (and why not), "
               "TLS 1.3 rekey, io_uring opcodes and /proc/net/tls_stat");
  auto json = std::make_shared<bool>(false);
  app->add_flag("--json", *json, "Print JSON (schema: docs/probe-json.md)");
  // "Unavailable" is an answer, not a failure: the exit status is 0 whenever the probe ran.
  return Command{app, [json] {
                   const Probe& p = kernel_probe();
                   std::string out =
                       *json ? probe_to_json(p).dump(2) + "\n" : probe_to_table(p);
                   std::fwrite(out.data(), 1, out.size(), stdout);
                   return std::fflush(stdout) == 0 ? 0 : 1;
                 }};
}

}  // namespace wasi_ktls::cli
