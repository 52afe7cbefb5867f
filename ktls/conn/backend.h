// Which transport a connection uses after its handshake, and why: chosen at run time from
// the API or WASI_KTLS_BACKEND, never silently.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "base/result.h"

namespace wasi_ktls {

// What the user asked for. `auto_` uses the kernel when it can take the negotiated
// version and cipher; `ktls` that cannot be honoured is an error, never a fallback.
enum class Backend { auto_, ktls, userspace };

// What a connection actually runs on.
enum class Transport { kernel, userspace };

std::string_view to_string(Backend b);    // "auto" / "ktls" / "userspace"
std::string_view to_string(Transport t);  // "ktls" / "userspace"
Result<Backend> parse_backend(std::string_view s);

// WASI_KTLS_BACKEND if set (an invalid value is an error naming it), else `fallback`.
Result<Backend> backend_from_environment(Backend fallback = Backend::auto_);

struct BackendDecision {
  Transport transport = Transport::userspace;
  std::string reason;  // why userspace under auto; empty for the kernel
};

// `kernel_refusal` is why the kernel cannot take this connection (nullopt: it can).
Result<BackendDecision> decide_backend(Backend requested,
                                       const std::optional<std::string>& kernel_refusal);

}  // namespace wasi_ktls
