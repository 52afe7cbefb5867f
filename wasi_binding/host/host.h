// One guest instance's host state: its handle table, its memory as the canonical ABI sees
// it, the configuration, the I/O engine its pollables wait on, and how it stopped (trap or
// exit). Host functions (interfaces/) receive it; nothing in it is shared between instances.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "ktls/io/engine.h"
#include "wasi_binding/abi/guest_memory.h"
#include "wasi_binding/abi/resource_table.h"
#include "wasi_binding/host/host_config.h"
#include "wasi_binding/streams/pollee.h"

namespace wasi_ktls::wasi {

class TlsSession;

class Host {
 public:
  Host(const HostConfig& config, Engine& io);
  ~Host();

  void attach(wasm::Instance& instance);
  GuestMemory& memory();
  ResourceTable& table() { return table_; }
  const HostConfig& config() const { return config_; }

  // Indices (into `list`) of the pollables that are ready, at least one: waits for them on
  // the engine, while moving every TLS connection's buffered writes on. A list none of which
  // can ever become ready traps, as does a wait on sockets alone that passes the
  // connection's io_timeout (every wait has a bound; a guest that wants to wait longer
  // adds a clock pollable).
  std::vector<std::uint32_t> poll(std::span<Pollee* const> list);
  // Blocks until `p` is ready.
  void block_on(Pollee& p);

  // TLS connections whose writes go on in the background (close_notify after the guest
  // stopped writing, alerts and KeyUpdates a read left owed).
  void watch(std::weak_ptr<TlsSession> s);

  // How the guest stopped, if a host function stopped it.
  void stop_with_trap(std::string reason);
  void stop_with_exit(int status);
  const std::optional<std::string>& trap_reason() const { return trap_; }
  const std::optional<int>& exit_status() const { return exit_; }

 private:
  const HostConfig& config_;
  Engine& io_;
  std::optional<GuestMemory> memory_;
  std::vector<std::weak_ptr<TlsSession>> sessions_;
  std::optional<std::string> trap_;
  std::optional<int> exit_;
  // Last: its resources (streams, sessions) go before the rest.
  ResourceTable table_;
};

}  // namespace wasi_ktls::wasi
