// The I/O engines a test runs on: one made to order (a failure to make it fails the test, with
// the reason), or each of io_uring and poll in turn.
#pragma once

#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <memory>

#include "ktls/io/engine.h"

namespace wasi_ktls::test {

inline std::unique_ptr<Engine> engine_of(EngineKind kind) {
  auto e = make_engine(kind);
  REQUIRE_MESSAGE(e.ok(), (e.ok() ? "" : e.error().message));
  return std::move(e->engine);
}

// Runs the engine until `done()` or `timeout`; false on timeout or a run_once error.
inline bool run_until(Engine& engine, const std::function<bool()>& done,
                      std::chrono::milliseconds timeout = std::chrono::seconds(60)) {
  auto until = Clock::now() + timeout;
  while (!done()) {
    if (Clock::now() >= until) return false;
    auto r = engine.run_once(std::chrono::milliseconds(50));
    if (!r) {
      FAIL_CHECK("run_once: " << r.error().message);
      return false;
    }
  }
  return true;
}

inline void on_each_engine(const std::function<void(Engine&)>& run) {
  for (EngineKind k : {EngineKind::io_uring, EngineKind::poll}) {
    auto e = engine_of(k);
    INFO("engine " << e->name());
    run(*e);
  }
}

}  // namespace wasi_ktls::test
