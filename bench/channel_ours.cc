// wasi-ktls as a server or client program uses it: AsyncConnection on the io_uring engine,
// on the kernel transport (backend ktls: the keys must go to the kernel) or the userspace
// one. The blocking shape is only the harness's: each call runs the engine until its one
// operation completes, which is what a busy event loop does for one connection.
#include <optional>

#include "bench/channel.h"
#include "handshake/policy.h"
#include "ktls/conn/async_connection.h"
#include "ktls/io/engine.h"

namespace wasi_ktls::bench {
namespace {

template <typename T>
Result<T> run_until(Engine& engine, std::optional<Result<T>>& slot) {
  while (!slot)
    if (auto r = engine.run_once(std::chrono::milliseconds(100)); !r) return r.error();
  return std::move(*slot);
}

class OursChannel : public Channel {
 public:
  OursChannel(std::unique_ptr<Engine> engine, AsyncConnection::Ptr conn)
      : engine_(std::move(engine)), conn_(std::move(conn)) {}
  ~OursChannel() override {
    conn_->abort();
    while (conn_.use_count() > 1 && engine_->run_once(std::chrono::milliseconds(10))) {
    }
  }
  Result<std::size_t> write(std::span<const std::uint8_t> data) override {
    std::optional<Result<std::size_t>> done;
    conn_->write(data, [&](Result<std::size_t> r) { done = std::move(r); });
    return run_until(*engine_, done);
  }
  Result<std::size_t> read(std::span<std::uint8_t> buf) override {
    std::optional<Result<std::size_t>> done;
    conn_->read(buf, [&](Result<std::size_t> r) { done = std::move(r); });
    return run_until(*engine_, done);
  }
  std::string transport() const override {
    const std::string& why = conn_->transport_reason();  // empty when the kernel took it
    return std::string(to_string(conn_->transport())) + (why.empty() ? "" : " (" + why + ")");
  }

 private:
  std::unique_ptr<Engine> engine_;
  AsyncConnection::Ptr conn_;
};

}  // namespace

Result<std::unique_ptr<Channel>> open_ours(bool server, bool kernel, UniqueFd fd,
                                           const TlsSetup& tls) {
  Policy p;
  if (server) {
    p.certificate_chain = PemSource::file(tls.pki + "/" + tls.cert);
    p.private_key = PemSource::file(tls.pki + "/" + tls.key);
  } else {
    p.ca = PemSource::file(tls.pki + "/ca.pem");
  }
  auto version = parse_version(tls.version);
  if (!version) return make_error(ErrorKind::usage, "bad TLS version '{}'", tls.version);
  p.min_version = p.max_version = *version;
  p.tls13_suites = tls.tls13_suite;
  p.tls12_ciphers = tls.tls12_cipher;
  auto ctx = TlsContext::create(server ? Role::server : Role::client, p);
  if (!ctx) return ctx.error();
  auto made = make_engine(EngineKind::io_uring);
  if (!made) return made.error();
  ConnectionOptions opts;
  opts.backend = kernel ? Backend::ktls : Backend::userspace;
  opts.io_timeout = std::chrono::seconds(60);

  std::optional<Result<AsyncConnection::Ptr>> done;
  auto on = [&](Result<AsyncConnection::Ptr> c) { done = std::move(c); };
  if (server)
    AsyncConnection::accept(*made->engine, std::move(fd), *ctx, opts, on);
  else
    AsyncConnection::connect(*made->engine, std::move(fd), *ctx, "localhost", opts, on);
  auto conn = run_until(*made->engine, done);
  if (!conn) return conn.error();
  return std::unique_ptr<Channel>(std::make_unique<OursChannel>(std::move(made->engine), *conn));
}

}  // namespace wasi_ktls::bench
