// Running a build tool (wasm2c, the C compiler) from inside a host process: fork and exec, no
// shell, nothing of ours inherited but the output pipe, and a deadline after which the tool
// and everything it started are killed.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "base/result.h"

namespace wasi_ktls::wasm {

// Runs argv (argv[0] looked up in PATH) with stdin from /dev/null, in its own process group.
// Succeeds when it exits 0. Fails when it cannot be started (kind config, with the exec
// errno), exits otherwise or is killed by a signal (kind config), or passes `timeout` (kind
// timeout; the whole group gets SIGKILL). Failures carry the tail of its stdout and stderr.
Status run_tool(const std::vector<std::string>& argv, std::chrono::milliseconds timeout);

}  // namespace wasi_ktls::wasm
