// wasi-ktls: the project's command-line tool. Each subcommand lives in its own file and is
// registered below with one line.
#include <vector>

#include "bench/bench_command.h"
#include "bench/worker.h"
#include "tools/command.h"
#include "tools/fetch_command.h"
#include "tools/probe_command.h"
#include "tools/run_command.h"
#include "tools/serve_command.h"

int main(int argc, char** argv) {
  using namespace wasi_ktls::cli;
  // SIGPIPE keeps its default disposition. A peer that goes away is an EPIPE error from the
  // library, not a signal: its sends use MSG_NOSIGNAL, and send_file, whose splice and
  // sendfile take no such flag, keeps SIGPIPE from the process itself (ktls/io engines). A
  // closed stdout still ends the tool, as it does any command-line tool.
  CLI::App app{"wasi-ktls: wasi:tls host backend on kernel TLS"};
  app.require_subcommand(1);

  std::vector<Command> commands;
  commands.push_back(add_probe_command(app));
  commands.push_back(add_serve_command(app));
  commands.push_back(add_fetch_command(app));
  commands.push_back(add_run_command(app));
  commands.push_back(wasi_ktls::bench::add_bench_command(app));
  commands.push_back(wasi_ktls::bench::add_bench_worker_command(app));

  CLI11_PARSE(app, argc, argv);
  for (const Command& c : commands)
    if (c.app->parsed()) return c.run();
  return 2;  // unreachable: require_subcommand(1) makes CLI11 reject a missing subcommand
}
