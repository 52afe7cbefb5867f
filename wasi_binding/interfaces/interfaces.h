// The WASI interfaces this host provides, one file each; import_table.cc collects them.
#pragma once

#include <vector>

#include "wasi_binding/host/import_table.h"

namespace wasi_ktls::wasi {

std::vector<Import> preview1_imports();       // wasi_snapshot_preview1 (what wasi-libc needs)
std::vector<Import> cli_imports();            // wasi:cli/{environment,exit,stdin,stdout,stderr}
std::vector<Import> clocks_random_imports();  // wasi:clocks/*, wasi:random/random
std::vector<Import> io_imports();             // wasi:io/{error,poll,streams}
std::vector<Import> sockets_imports();        // wasi:sockets/*: TCP client, name lookup
std::vector<Import> tls_imports();            // wasi:tls/types@0.2.0-draft

}  // namespace wasi_ktls::wasi
