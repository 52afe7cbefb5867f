#include "wasi_binding/host/host.h"

#include <algorithm>
#include <cerrno>
#include <set>

#include "wasi_binding/streams/tls_session.h"

namespace wasi_ktls::wasi {

Host::Host(const HostConfig& config, Engine& io) : config_(config), io_(io) {}
Host::~Host() = default;

void Host::attach(wasm::Instance& instance) { memory_.emplace(instance); }

GuestMemory& Host::memory() {
  if (!memory_) trap("the guest called the host before it was instantiated");
  return *memory_;
}

void Host::watch(std::weak_ptr<TlsSession> s) {
  std::erase_if(sessions_, [](const std::weak_ptr<TlsSession>& w) { return w.expired(); });
  sessions_.push_back(std::move(s));
}

void Host::stop_with_trap(std::string reason) {
  if (!trap_ && !exit_) trap_ = std::move(reason);
}

void Host::stop_with_exit(int status) {
  if (!trap_ && !exit_) exit_ = status;
}

void Host::block_on(Pollee& p) {
  Pollee* one[] = {&p};
  (void)poll(one);
}

std::vector<std::uint32_t> Host::poll(std::span<Pollee* const> list) {
  const Clock::time_point socket_bound = Clock::now() + config_.connection.io_timeout;
  for (;;) {
    std::vector<std::uint32_t> ready;
    for (std::uint32_t i = 0; i < list.size(); ++i)
      if (list[i]->ready()) ready.push_back(i);
    if (!ready.empty()) return ready;

    // What to wait for: the guest's pollables, and the background writes.
    std::set<std::pair<int, short>> fds;  // (fd, POLLIN or POLLOUT)
    Clock::time_point deadline = kNoDeadline;
    bool possible = false;
    bool now = false;
    for (Pollee* p : list) {
      const Wait w = p->wait();
      if (!w.can_happen()) continue;
      possible = true;
      now = now || w.now;
      if (w.fd >= 0) fds.insert({w.fd, w.events});
      deadline = std::min(deadline, w.deadline);
    }
    if (!possible)
      trap("none of the {} pollable(s) waited on can ever become ready and nothing else is "
           "pending, so the guest would wait forever",
           list.size());
    if (now) continue;
    std::erase_if(sessions_, [](const std::weak_ptr<TlsSession>& w) { return w.expired(); });
    for (const auto& w : sessions_) {
      auto s = w.lock();
      if (s && s->progress_writes()) {
        const Wait bw = s->write_wait();
        if (bw.fd >= 0) fds.insert({bw.fd, bw.events});
      }
    }
    const bool sockets_only = deadline == kNoDeadline;
    if (sockets_only) deadline = socket_bound;
    if (Clock::now() >= deadline) {
      if (sockets_only)
        trap("nothing became ready within {} ms (the bound on waiting for sockets alone); a "
             "guest that means to wait longer puts a monotonic-clock pollable in the list",
             config_.connection.io_timeout.count());
      continue;  // a timer is due: its pollable is ready now
    }

    // One round on the engine: a readiness op per socket, the earliest deadline as the wait.
    auto fired = std::make_shared<bool>(false);
    std::vector<int> started;
    for (const auto& [fd, events] : fds) {
      Status st = io_.poll(fd, events, kNoDeadline, [fired](int) { *fired = true; });
      if (st) {
        started.push_back(fd);
      } else {
        *fired = true;  // cannot wait on it: look again at once
      }
    }
    while (!*fired) {
      const auto left = deadline - Clock::now();
      if (left <= Clock::duration::zero()) break;
      const auto ms = std::chrono::ceil<std::chrono::milliseconds>(left);
      auto r = io_.run_once(std::min(ms, std::chrono::milliseconds(1000)));
      if (!r) trap("the I/O engine failed: {}", r.error().message);
    }
    std::sort(started.begin(), started.end());
    started.erase(std::unique(started.begin(), started.end()), started.end());
    for (int fd : started) io_.cancel(fd);
    // The cancelled ops complete too; bounded, as every wait here is.
    for (int i = 0; i < 100 && io_.in_flight() > 0; ++i)
      (void)io_.run_once(std::chrono::milliseconds(10));
  }
}

}  // namespace wasi_ktls::wasi
