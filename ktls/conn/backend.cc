#include "ktls/conn/backend.h"

#include <cstdlib>

namespace wasi_ktls {

std::string_view to_string(Backend b) {
  switch (b) {
    case Backend::auto_: return "auto";
    case Backend::ktls: return "ktls";
    case Backend::userspace: return "userspace";
  }
  return "?";
}

std::string_view to_string(Transport t) { return t == Transport::kernel ? "ktls" : "userspace"; }

Result<Backend> parse_backend(std::string_view s) {
  if (s == "auto") return Backend::auto_;
  if (s == "ktls") return Backend::ktls;
  if (s == "userspace") return Backend::userspace;
  return make_error("unknown backend '{}': expected auto, ktls or userspace", s);
}

Result<Backend> backend_from_environment(Backend fallback) {
  const char* v = std::getenv("WASI_KTLS_BACKEND");
  if (v == nullptr || *v == '\0') return fallback;
  auto b = parse_backend(v);
  if (!b) return make_error("WASI_KTLS_BACKEND: {}", b.error().message);
  return b;
}

Result<BackendDecision> decide_backend(Backend requested,
                                       const std::optional<std::string>& kernel_refusal) {
  switch (requested) {
    case Backend::userspace:
      return BackendDecision{Transport::userspace, "userspace requested"};
    case Backend::ktls:
      if (kernel_refusal) return make_error("backend ktls requested but {}", *kernel_refusal);
      return BackendDecision{Transport::kernel, ""};
    case Backend::auto_:
      if (kernel_refusal) return BackendDecision{Transport::userspace, *kernel_refusal};
      return BackendDecision{Transport::kernel, ""};
  }
  return make_error("invalid backend value");
}

}  // namespace wasi_ktls
