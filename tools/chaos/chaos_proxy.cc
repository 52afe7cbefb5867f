#include "tools/chaos/chaos_proxy.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "ktls/io/tcp_socket.h"

namespace wasi_ktls::chaos {

void serve(int listener, const ProxyConfig& config, const std::atomic<bool>& armed, int stop_fd,
           const std::function<void(const RelayReport&)>& done) {
  for (;;) {
    pollfd pfd[2] = {{stop_fd, POLLIN, 0}, {listener, POLLIN, 0}};
    const int r = ::poll(pfd, 2, -1);  // stop_fd bounds it: the owner's stop, or a signal
    if (r < 0) {
      if (errno == EINTR) continue;
      return;
    }
    if (pfd[0].revents != 0) return;
    auto client = tcp_accept(listener, std::chrono::milliseconds(0));
    if (!client) continue;
    auto server = tcp_connect(config.to_host, config.to_port, config.io_timeout);
    if (!server) {
      RelayReport refused;
      refused.end = "target refused: " + server.error().message;
      done(refused);
      continue;  // client closes here: the client sees the refusal as a closed connection
    }
    done(relay(client->release(), server->release(), config, armed, stop_fd));
  }
}

Result<std::unique_ptr<ChaosProxy>> ChaosProxy::start(const ProxyConfig& config) {
  std::unique_ptr<ChaosProxy> p(new ChaosProxy());
  p->config_ = config;
  p->armed_.store(config.armed);
  auto listener = tcp_listen("127.0.0.1", config.listen_port);
  if (!listener) return listener.error();
  auto port = local_port(listener->get());
  if (!port) return port.error();
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) return errno_error(errno, "pipe2");
  p->stop_read_.reset(fds[0]);
  p->stop_write_.reset(fds[1]);
  p->listener_ = std::move(*listener);
  p->port_ = *port;
  ChaosProxy* self = p.get();
  p->thread_ = std::thread([self] {
    serve(self->listener_.get(), self->config_, self->armed_, self->stop_read_.get(),
          [self](const RelayReport& r) {
            std::lock_guard lock(self->mu_);
            self->reports_.push_back(r);
            self->cv_.notify_all();
          });
  });
  return p;
}

Result<std::vector<RelayReport>> ChaosProxy::wait_reports(std::size_t n,
                                                          std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  if (!cv_.wait_for(lock, timeout, [&] { return reports_.size() >= n; }))
    return make_error(ErrorKind::timeout, "chaos proxy: {} of {} relays ended in time",
                      reports_.size(), n);
  return reports_;
}

std::vector<RelayReport> ChaosProxy::stop() {
  if (thread_.joinable()) {
    const char x = 1;
    (void)!::write(stop_write_.get(), &x, 1);
    thread_.join();
  }
  std::lock_guard lock(mu_);
  return reports_;
}

ChaosProxy::~ChaosProxy() { stop(); }

}  // namespace wasi_ktls::chaos
