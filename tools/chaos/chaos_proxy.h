// The chaos proxy: listens, and relays each connection it accepts (one at a time) to the
// target through relay.h, applying the configured fault. A test runs it in-process on its own
// thread (start(), then connect to port()); the CLI (tools/chaos_proxy_main.cc) runs serve()
// on its main thread. Every wait is bounded.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "tools/chaos/relay.h"

namespace wasi_ktls::chaos {

// Accepts and relays connections on `listener` until `stop_fd` is readable; `done` gets each
// connection's report. A connection the target refuses is closed and reported.
void serve(int listener, const ProxyConfig& config, const std::atomic<bool>& armed, int stop_fd,
           const std::function<void(const RelayReport&)>& done);

class ChaosProxy {
 public:
  // Listening (on 127.0.0.1) when it returns.
  static Result<std::unique_ptr<ChaosProxy>> start(const ProxyConfig& config);
  ~ChaosProxy();  // stops the relay, joins its thread, closes every fd

  std::uint16_t port() const { return port_; }
  // Application_data records in the fault's flow count from now (ProxyConfig::armed false).
  void arm() { armed_.store(true, std::memory_order_release); }
  // Waits until `n` connections were relayed to their end; their reports, or an error.
  Result<std::vector<RelayReport>> wait_reports(std::size_t n, std::chrono::milliseconds timeout);
  // Ends the relay in progress (its sockets close) and returns every report so far.
  std::vector<RelayReport> stop();

 private:
  ChaosProxy() = default;

  ProxyConfig config_;
  UniqueFd listener_;
  UniqueFd stop_read_, stop_write_;
  std::uint16_t port_ = 0;
  std::atomic<bool> armed_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RelayReport> reports_;
  std::thread thread_;
};

}  // namespace wasi_ktls::chaos
