#include "ktls/engine.h"

#include <cstdlib>

#include "ktls/poll_engine.h"
#include "ktls/uring_engine.h"
#include "ktls/uring_probe.h"

namespace wasi_ktls {
namespace {

// Why io_uring could not be set up, in the probe's words ("EPERM: io_uring refused by
// policy ..."), named after the syscall that failed.
std::string uring_failure(const Error& setup_error) {
  UringProbe probe = probe_io_uring();
  std::string why = probe.ok ? setup_error.message : probe.reason;
  constexpr std::string_view kPrefix = "io_uring_queue_init: ";
  if (why.rfind(kPrefix, 0) == 0) why = "io_uring_setup: " + why.substr(kPrefix.size());
  return why;
}

}  // namespace

Result<EngineKind> parse_engine_kind(std::string_view text) {
  if (text == "auto" || text == "automatic") return EngineKind::automatic;
  if (text == "io_uring") return EngineKind::io_uring;
  if (text == "poll") return EngineKind::poll;
  return Error{fmt::format("unknown I/O engine '{}' (expected io_uring, poll or auto)", text),
               EINVAL};
}

Result<EngineKind> engine_kind_from_environment() {
  const char* v = std::getenv("WASI_KTLS_ENGINE");
  if (v == nullptr || *v == '\0') return EngineKind::automatic;
  auto kind = parse_engine_kind(v);
  if (!kind) return Error{"WASI_KTLS_ENGINE: " + kind.error().message, EINVAL};
  return kind;
}

Result<EngineChoice> make_engine(EngineKind kind, unsigned queue_depth) {
  // One bound for both engines: the io_uring SQ can't be larger (IORING_MAX_ENTRIES).
  if (queue_depth == 0 || queue_depth > 32768)
    return Error{fmt::format("I/O engine queue depth {} out of range 1..32768", queue_depth),
                 EINVAL};
  if (kind == EngineKind::poll) {
    auto e = PollEngine::create(queue_depth);
    if (!e) return e.error();
    return EngineChoice{std::move(*e), "poll engine requested"};
  }
  auto ring = UringEngine::create(queue_depth);
  if (ring) return EngineChoice{std::move(*ring), "io_uring set up"};
  std::string why = uring_failure(ring.error());
  if (kind == EngineKind::io_uring)
    return Error{"io_uring engine requested, but " + why, ring.error().sys_errno};
  auto e = PollEngine::create(queue_depth);
  if (!e) return e.error();
  return EngineChoice{std::move(*e), "poll engine, because " + why};
}

}  // namespace wasi_ktls
