// One (transport, engine) group of the soak: its own engine on its own thread, a listener,
// the server side on it and `connections` client slots dialing it.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <thread>

#include "base/result.h"
#include "base/unique_fd.h"
#include "bench/soak/group_context.h"

namespace wasi_ktls::soak {

struct GroupSpec {
  Transport transport = Transport::kernel;
  EngineKind engine = EngineKind::io_uring;
  unsigned connections = 0;
};

class Group {
 public:
  // The engine and the listener exist when this returns (the fd baseline counts them); no
  // connection does until start().
  static Result<std::unique_ptr<Group>> create(const GroupSpec& spec, const Policy& client,
                                               const Policy& server, const Traffic& traffic,
                                               const ConnectionOptions& options);
  ~Group();  // finish()

  void start();
  // Clients close cleanly at their next step and do not reconnect.
  void stop() { ctx_->stopping = true; }
  // Stopped, and every connection on both sides is gone.
  bool drained() const;
  // Ends the engine thread (bounded: what is still in flight after a few seconds is left).
  void finish();

  const Tally& tally() const { return ctx_->tally; }
  const GroupSpec& spec() const { return spec_; }
  std::string name() const;  // "ktls/io_uring"

 private:
  Group(GroupSpec spec, std::unique_ptr<Engine> engine, UniqueFd listener,
        std::unique_ptr<GroupContext> ctx)
      : spec_(spec), ctx_(std::move(ctx)), engine_(std::move(engine)), listener_(std::move(listener)) {}
  void run();

  GroupSpec spec_;
  // Declared first so that it outlives the engine, whose teardown may still run callbacks.
  std::unique_ptr<GroupContext> ctx_;
  std::unique_ptr<Engine> engine_;
  UniqueFd listener_;
  std::thread thread_;
  std::atomic<bool> quit_{false};
};

}  // namespace wasi_ktls::soak
