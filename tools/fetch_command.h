// `wasi-ktls fetch URL`: a TLS client that sends an HTTP/1.1 GET and prints the body; with
// -v, the negotiated parameters and the backend (and why) on stderr.
#pragma once

#include "tools/command.h"

namespace wasi_ktls::cli {

Command add_fetch_command(CLI::App& parent);

}  // namespace wasi_ktls::cli
