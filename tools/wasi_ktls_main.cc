// wasi-ktls: the project's command-line tool. Each subcommand lives in its own file and is
// registered below with one line.
#include <csignal>
#include <vector>

#include "tools/command.h"
#include "tools/fetch_command.h"
#include "tools/probe_command.h"
#include "tools/serve_command.h"

int main(int argc, char** argv) {
  using namespace wasi_ktls::cli;
  // A peer that goes away mid-splice must be an EPIPE error, not the end of the process:
  // splice and sendfile, unlike send, take no MSG_NOSIGNAL.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"wasi-ktls: wasi:tls host backend on kernel TLS"};
  app.require_subcommand(1);

  std::vector<Command> commands;
  commands.push_back(add_probe_command(app));
  commands.push_back(add_serve_command(app));
  commands.push_back(add_fetch_command(app));

  CLI11_PARSE(app, argc, argv);
  for (const Command& c : commands)
    if (c.app->parsed()) return c.run();
  return 2;  // unreachable: require_subcommand(1) makes CLI11 reject a missing subcommand
}
