// wasi:tls/types@0.2.0-draft with wasmtime's semantics: the constructor takes the two
// transport streams (own), finish consumes the handshake and returns a future, get is
// take-once, close-output sends close_notify after pending writes and leaves the input
// readable, and the plaintext streams are children of the client-connection. Past wasmtime:
// when the streams are a TCP socket's own with nothing buffered, the handshake runs on the
// socket and `auto` hands the keys to the kernel (TlsSession).
#include <memory>
#include <optional>

#include "wasi_binding/interfaces/interfaces.h"
#include "wasi_binding/interfaces/io_resources.h"
#include "wasi_binding/streams/tls_session.h"
#include "wasi_binding/streams/tls_streams.h"

namespace wasi_ktls::wasi {
namespace {

class ClientHandshake final : public Resource {
 public:
  std::string_view type() const override { return "client-handshake"; }
  std::string server_name;
  std::unique_ptr<InputStream> in;
  std::unique_ptr<OutputStream> out;
};

class ClientConnection final : public Resource {
 public:
  explicit ClientConnection(std::shared_ptr<TlsSession> s) : session(std::move(s)) {}
  std::string_view type() const override { return "client-connection"; }
  std::shared_ptr<TlsSession> session;
};

class FutureClientStreams final : public Resource, public Pollee {
 public:
  std::string_view type() const override { return "future-client-streams"; }
  bool ready() override { return !session || session->handshake_done(); }
  Wait wait() override { return session ? session->handshake_wait() : Wait::ready(); }

  std::shared_ptr<TlsSession> session;  // null: failed before it started (start_error)
  std::optional<std::string> start_error;
  bool taken = false;
};

std::uint32_t handshake_new(Host& h, std::uint32_t name_ptr, std::uint32_t name_len,
                            std::uint32_t in, std::uint32_t out) {
  const std::string_view name = h.memory().string(name_ptr, name_len, "server-name");
  // Checked before either stream leaves the table, so a trap leaves the table as it was.
  (void)h.table().get<InputStream>(in, "input-stream", "input");
  (void)h.table().get<OutputStream>(out, "output-stream", "output");
  auto hs = std::make_unique<ClientHandshake>();
  hs->server_name = std::string(name);
  hs->in = h.table().take<InputStream>(in, "input-stream", "input");
  hs->out = h.table().take<OutputStream>(out, "output-stream", "output");
  return h.table().insert(std::move(hs));
}

std::uint32_t handshake_finish(Host& h, std::uint32_t self) {
  std::unique_ptr<ClientHandshake> hs =
      h.table().take<ClientHandshake>(self, "client-handshake", "this");
  auto future = std::make_unique<FutureClientStreams>();
  const HostConfig& cfg = h.config();
  Result<std::shared_ptr<TlsSession>> s =
      Error{"this host has no TLS configuration", 0, ErrorKind::config};
  const int fd = hs->in->raw_socket();
  if (cfg.tls == nullptr) {
    // s says why
  } else if (fd >= 0 && fd == hs->out->raw_socket()) {
    // The socket's own streams, nothing buffered: TLS runs on the socket, exact reads, and
    // `auto` may hand the keys to the kernel.
    s = TlsSession::on_socket(*cfg.tls, hs->server_name,
                              static_cast<TcpInput&>(*hs->in).shared_fd(), cfg.connection);
  } else {
    s = TlsSession::on_streams(*cfg.tls, hs->server_name, std::move(hs->in), std::move(hs->out),
                               cfg.connection,
                               fd < 0 || hs->out->raw_socket() < 0
                                   ? "the streams are not a TCP socket of this host with nothing "
                                     "buffered"
                                   : "the two streams belong to different sockets");
  }
  if (s) {
    future->session = std::move(*s);
    h.watch(future->session);
  } else {
    future->start_error = s.error().message;
  }
  return h.table().insert(std::move(future));
}

std::uint32_t future_subscribe(Host& h, std::uint32_t self) {
  auto& f = h.table().get<FutureClientStreams>(self, "future-client-streams", "self");
  return subscribe(h, f, self);
}

// option<result<result<tuple<conn, in, out>, io-error>>>: 24/4.
void future_get(Host& h, std::uint32_t self, std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 24, 4, "return area");
  auto& f = h.table().get<FutureClientStreams>(self, "future-client-streams", "self");
  if (!f.taken && !f.ready()) {
    m.store<std::uint8_t>(at, 0);  // none: still pending
    return;
  }
  m.store<std::uint8_t>(at, 1);
  if (f.taken) {
    m.store<std::uint8_t>(at + 4, 1);  // err: the value was already taken
    return;
  }
  f.taken = true;
  m.store<std::uint8_t>(at + 4, 0);
  std::optional<std::string> failure = f.start_error;
  if (!failure && f.session->handshake_error()) failure = f.session->handshake_error()->message;
  if (failure) {
    if (h.config().on_tls_connection)
      h.config().on_tls_connection(fmt::format("tls: server={} handshake failed: {}",
                                               f.session ? f.session->server_name() : "?", *failure));
    m.store<std::uint8_t>(at + 8, 1);
    m.store<std::uint32_t>(at + 12, h.table().insert(std::make_unique<IoError>(*failure)));
    f.session.reset();
    return;
  }
  std::shared_ptr<TlsSession> s = std::move(f.session);
  if (h.config().on_tls_connection) h.config().on_tls_connection("tls: " + s->describe());
  const std::uint32_t conn = h.table().insert(std::make_unique<ClientConnection>(s));
  const std::uint32_t in = h.table().insert(std::make_unique<TlsInput>(s), conn);
  const std::uint32_t out = h.table().insert(std::make_unique<TlsOutput>(s), conn);
  m.store<std::uint8_t>(at + 8, 0);
  m.store<std::uint32_t>(at + 12, conn);
  m.store<std::uint32_t>(at + 16, in);
  m.store<std::uint32_t>(at + 20, out);
}

void close_output(Host& h, std::uint32_t self) {
  h.table().get<ClientConnection>(self, "client-connection", "self").session->close_output();
}

void handshake_drop(Host& h, std::uint32_t self) {
  h.table().drop(self, "client-handshake", "self");
}
void connection_drop(Host& h, std::uint32_t self) {
  h.table().drop(self, "client-connection", "self");
}
void future_drop(Host& h, std::uint32_t self) {
  h.table().drop(self, "future-client-streams", "self");
}

}  // namespace

std::vector<Import> tls_imports() {
  return {
      def<"wasi:tls/types@0.2.0-draft", "[constructor]client-handshake", &handshake_new>(),
      def<"wasi:tls/types@0.2.0-draft", "[static]client-handshake.finish", &handshake_finish>(),
      def<"wasi:tls/types@0.2.0-draft", "[method]client-connection.close-output", &close_output>(),
      def<"wasi:tls/types@0.2.0-draft", "[method]future-client-streams.subscribe",
          &future_subscribe>(),
      def<"wasi:tls/types@0.2.0-draft", "[method]future-client-streams.get", &future_get>(),
      def<"wasi:tls/types@0.2.0-draft", "[resource-drop]client-handshake", &handshake_drop>(),
      def<"wasi:tls/types@0.2.0-draft", "[resource-drop]client-connection", &connection_drop>(),
      def<"wasi:tls/types@0.2.0-draft", "[resource-drop]future-client-streams", &future_drop>(),
  };
}

}  // namespace wasi_ktls::wasi
