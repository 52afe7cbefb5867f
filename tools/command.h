// How a wasi-ktls subcommand plugs into the CLI: it declares its options on the parent app
// and hands back what to run if the user picked it. Adding a subcommand is one file plus
// one line in wasi_ktls_main.cc.
#pragma once

#include <functional>

#include <CLI/CLI.hpp>

namespace wasi_ktls::cli {

struct Command {
  CLI::App* app = nullptr;  // the subcommand, owned by the parent app
  std::function<int()> run;  // its exit status
};

}  // namespace wasi_ktls::cli
