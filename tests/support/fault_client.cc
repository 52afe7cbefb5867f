#include "tests/support/fault_client.h"

#include <optional>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include "ktls/conn/async_connection.h"
#include "ktls/conn/connection.h"
#include "ktls/io/engine.h"
#include "ktls/io/tcp_socket.h"
#include "tests/support/asio_stream_pair.h"
#include "tests/support/engines.h"
#include "tests/support/tls_contexts.h"

namespace wasi_ktls::test {

namespace net = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr auto kBound = 60s;  // any one call; only a failure waits this long

template <class T>
Outcome outcome_of(const Result<T>& r) {
  Outcome o;
  o.ok = r.ok();
  if (!r.ok()) {
    o.error = r.error();
  } else if constexpr (std::is_same_v<T, std::size_t>) {
    o.bytes = *r;
  }
  return o;
}

class BlockingClient final : public FaultClient {
 public:
  Outcome connect(std::uint16_t port, const Policy& policy, Backend backend,
                  const ConnectionOptions& options) override {
    ConnectionOptions o = options;
    o.backend = backend;
    ctx_.emplace(context(Role::client, policy));
    auto fd = tcp_connect("127.0.0.1", port, kBound);
    if (!fd) return outcome_of(fd);
    auto c = Connection::connect(std::move(*fd), *ctx_, "localhost", o);
    if (!c) return outcome_of(c);
    conn_.emplace(std::move(*c));
    return Outcome::success();
  }
  Outcome read(std::span<std::uint8_t> buf) override { return outcome_of(conn_->read(buf)); }
  Outcome write(std::span<const std::uint8_t> data) override {
    Outcome o = outcome_of(conn_->write(data));
    if (o.ok) o.bytes = data.size();
    return o;
  }
  Transport transport() const override { return conn_->transport(); }
  void pump(std::chrono::milliseconds) override {}  // it has no loop of its own

 private:
  std::optional<TlsContext> ctx_;
  std::optional<Connection> conn_;
};

class AsyncClient final : public FaultClient {
 public:
  AsyncClient() : engine_(engine_of(EngineKind::io_uring)) {}
  ~AsyncClient() override {
    if (conn_) {
      conn_->abort();
      (void)run_until(*engine_, [&] { return engine_->in_flight() == 0; }, 10s);
      conn_.reset();
    }
  }
  Outcome connect(std::uint16_t port, const Policy& policy, Backend backend,
                  const ConnectionOptions& options) override {
    ConnectionOptions o = options;
    o.backend = backend;
    ctx_.emplace(context(Role::client, policy));
    auto fd = tcp_connect("127.0.0.1", port, kBound);
    if (!fd) return outcome_of(fd);
    std::optional<Result<AsyncConnection::Ptr>> got;
    AsyncConnection::connect(*engine_, std::move(*fd), *ctx_, "localhost", o,
                             [&](Result<AsyncConnection::Ptr> c) { got = std::move(c); });
    if (!run_until(*engine_, [&] { return got.has_value(); }, kBound))
      return Outcome::failure(make_error(ErrorKind::timeout, "test: connect did not finish"));
    if (!*got) return outcome_of(*got);
    conn_ = std::move(**got);
    return Outcome::success();
  }
  Outcome read(std::span<std::uint8_t> buf) override {
    std::optional<Result<std::size_t>> got;
    conn_->read(buf, [&](Result<std::size_t> r) { got = std::move(r); });
    return finish(got);
  }
  Outcome write(std::span<const std::uint8_t> data) override {
    std::optional<Result<std::size_t>> got;
    conn_->write(data, [&](Result<std::size_t> r) { got = std::move(r); });
    return finish(got);
  }
  Transport transport() const override { return conn_->transport(); }
  void pump(std::chrono::milliseconds d) override { (void)engine_->run_once(d); }

 private:
  Outcome finish(std::optional<Result<std::size_t>>& got) {
    if (!run_until(*engine_, [&] { return got.has_value(); }, kBound))
      return Outcome::failure(make_error(ErrorKind::timeout, "test: operation did not finish"));
    return outcome_of(*got);
  }

  std::unique_ptr<Engine> engine_;
  std::optional<TlsContext> ctx_;
  AsyncConnection::Ptr conn_;
};

class AsioClient final : public FaultClient {
 public:
  explicit AsioClient(std::chrono::milliseconds cancel) : cancel_(cancel) {}
  Outcome connect(std::uint16_t port, const Policy& policy, Backend backend,
                  const ConnectionOptions&) override {
    ctx_ = std::make_unique<AsioContext>(Role::client, policy);
    stream_ = make_stream(io_, *ctx_, stream_options(backend, "localhost"));
    error_code ec;
    stream_->next_layer().connect(
        net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), port), ec);
    if (!ec) {
      std::optional<error_code> got;
      stream_->async_handshake(Stream::client, [&](error_code e) { got = e; });
      ec = run(got);
    }
    return of(ec, 0);
  }
  Outcome read(std::span<std::uint8_t> buf) override {
    // A user's own bound on a read: a timer that cancels it (the stream has no read timeout).
    net::cancellation_signal sig;
    net::steady_timer timer(io_, cancel_);
    timer.async_wait([&](error_code e) {
      if (!e) sig.emit(net::cancellation_type::terminal);
    });
    std::optional<error_code> got;
    std::size_t n = 0;
    stream_->async_read_some(net::buffer(buf.data(), buf.size()),
                             net::bind_cancellation_slot(sig.slot(), [&](error_code e, std::size_t k) {
                               got = e;
                               n = k;
                               timer.cancel();
                             }));
    const error_code ec = run(got);
    // The timer's handler must run before `sig` goes.
    io_.restart();
    io_.run_for(kBound);
    return of(ec, n);
  }
  Outcome write(std::span<const std::uint8_t> data) override {
    std::optional<error_code> got;
    std::size_t n = 0;
    net::async_write(*stream_, net::buffer(data.data(), data.size()), [&](error_code e, std::size_t k) {
      got = e;
      n = k;
    });
    return of(run(got), n);
  }
  Transport transport() const override { return stream_->transport(); }
  void pump(std::chrono::milliseconds d) override {
    io_.restart();
    io_.run_for(d);
  }

 private:
  error_code run(std::optional<error_code>& got) {
    io_.restart();
    const auto until = std::chrono::steady_clock::now() + kBound;
    while (!got && std::chrono::steady_clock::now() < until) io_.run_one_for(100ms);
    return got ? *got : net::error::timed_out;
  }
  Outcome of(error_code ec, std::size_t n) {
    Outcome o;
    o.ok = !ec;
    o.bytes = n;
    o.ec = ec;
    if (ec) o.error.message = stream_->last_error().empty() ? ec.message() : stream_->last_error();
    return o;
  }

  std::chrono::milliseconds cancel_;
  net::io_context io_;
  std::unique_ptr<AsioContext> ctx_;
  std::unique_ptr<Stream> stream_;
};

}  // namespace

std::string_view to_string(FrontEnd f) {
  switch (f) {
    case FrontEnd::connection: return "Connection";
    case FrontEnd::async_connection: return "AsyncConnection";
    case FrontEnd::asio_stream: return "asio::stream";
  }
  return "?";
}

std::unique_ptr<FaultClient> make_fault_client(FrontEnd f, std::chrono::milliseconds asio_cancel) {
  switch (f) {
    case FrontEnd::connection: return std::make_unique<BlockingClient>();
    case FrontEnd::async_connection: return std::make_unique<AsyncClient>();
    case FrontEnd::asio_stream: return std::make_unique<AsioClient>(asio_cancel);
  }
  return nullptr;
}

}  // namespace wasi_ktls::test
