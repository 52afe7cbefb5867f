// `wasi-ktls serve`: a TLS server answering HTTP/1.1 GET / and GET /bytes/N (byte i = i % 251),
// or echoing every byte with --echo; one log line per connection with its backend and why.
#pragma once

#include "tools/command.h"

namespace wasi_ktls::cli {

Command add_serve_command(CLI::App& parent);

}  // namespace wasi_ktls::cli
