#include "bench/soak/group.h"

#include <arpa/inet.h>

#include "bench/soak/client.h"
#include "bench/soak/server.h"
#include "ktls/io/tcp_socket.h"

namespace wasi_ktls::soak {

Result<std::unique_ptr<Group>> Group::create(const GroupSpec& spec, const Policy& client,
                                             const Policy& server, const Traffic& traffic,
                                             const ConnectionOptions& options) {
  // Room for every connection's read, write and timer on both sides, and the accept.
  auto engine = make_engine(spec.engine, 4 * spec.connections + 64);
  if (!engine) return engine.error();
  auto client_tls = TlsContext::create(Role::client, client);
  if (!client_tls) return client_tls.error();
  auto server_tls = TlsContext::create(Role::server, server);
  if (!server_tls) return server_tls.error();
  // The backlog holds a whole group reconnecting at once.
  auto listener = tcp_listen("127.0.0.1", 0, false, static_cast<int>(spec.connections) + 64);
  if (!listener) return listener.error();
  auto port = local_port(listener->get());
  if (!port) return port.error();

  auto ctx = std::unique_ptr<GroupContext>(new GroupContext{
      *engine->engine, spec.transport, *client_tls, *server_tls, options, options, traffic, {}, {}, {}, {}});
  // Clients insist on their group's transport; kernel servers use auto, and fall back only in
  // the one case the kernel cannot take (server.cc: late_handover).
  ctx->client_options.backend = spec.transport == Transport::kernel ? Backend::ktls : Backend::userspace;
  ctx->server_options.backend = spec.transport == Transport::kernel ? Backend::auto_ : Backend::userspace;
  ctx->traffic.seed = traffic.seed * 31 + static_cast<std::uint64_t>(spec.transport) * 7 +
                      static_cast<std::uint64_t>(spec.engine);
  ctx->server_addr.sin_family = AF_INET;
  ctx->server_addr.sin_port = htons(*port);
  ctx->server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return std::unique_ptr<Group>(
      new Group(spec, std::move(engine->engine), std::move(*listener), std::move(ctx)));
}

Group::~Group() { finish(); }

std::string Group::name() const {
  return std::string(to_string(spec_.transport)) + "/" + std::string(engine_->name());
}

void Group::start() { thread_ = std::thread([this] { run(); }); }

// The engine is used only from this thread: every connection starts and runs here.
void Group::run() {
  start_server(*ctx_, listener_.get());
  for (unsigned i = 0; i < spec_.connections; ++i) start_client(*ctx_, i);
  while (!quit_) {
    if (auto r = engine_->run_once(std::chrono::milliseconds(100)); !r)
      ctx_->tally.error("engine", r.error());
  }
  engine_->cancel(listener_.get());
  const auto deadline = Clock::now() + std::chrono::seconds(5);
  while (engine_->in_flight() > 0 && Clock::now() < deadline)
    (void)engine_->run_once(std::chrono::milliseconds(100));
}

bool Group::drained() const {
  const Tally& t = ctx_->tally;
  return ctx_->stopping && ctx_->running_clients == 0 && t.live_clients == 0 &&
         t.live_servers == 0 && t.pending == 0;
}

void Group::finish() {
  if (!thread_.joinable()) return;
  quit_ = true;
  thread_.join();
}

}  // namespace wasi_ktls::soak
