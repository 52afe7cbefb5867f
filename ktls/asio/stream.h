// A Boost.Asio TLS stream over tcp::socket, usable where Asio code writes
// boost::asio::ssl::stream<tcp::socket>: the connection core (ktls/conn/core.h) driven by
// Asio. Its socket steps become the socket's own async_read_some / async_write_some (so
// Asio's reactor, or its io_uring backend, carries them), control records are non-blocking
// recvmsg/sendmsg on the socket with async_wait when it is not ready; nothing blocks the
// thread. The kernel carries the records after the handshake where it can (kTLS), else the
// userspace transport, with the reason.
//
// Conventions, as ssl::stream: a clean close_notify from the peer completes a read with
// boost::asio::error::eof; a TCP FIN without close_notify with ssl::error::stream_truncated.
// Errors of our own are in the "wasi_ktls" category (errc below); their full reason, which an
// error_code cannot carry, is last_error(). Transport errors keep their system error_code.
//
// Unlike ssl::stream::async_shutdown, async_shutdown sends close_notify and shuts down the write
// side, then completes: it does not wait for the peer's close_notify (read until eof for that).
//
// Threading: as every Asio stream, one read and one write (or shutdown) may be outstanding at a
// time, and the handlers of one stream must not run concurrently (one thread, or a strand).
// Every operation supports terminal per-operation cancellation (bind_cancellation_slot);
// handlers run on their associated executor. Timeouts are the caller's, as with any Asio
// socket (cancel the operation, or close the socket).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/system/error_code.hpp>

#include "handshake/policy.h"
#include "handshake/session.h"
#include "ktls/conn/backend.h"

namespace wasi_ktls::asio {

enum class errc {
  handshake_failed = 1,   // the TLS handshake failed (last_error(): the verify reason or alert)
  backend_unavailable,    // backend ktls requested (or WASI_KTLS_BACKEND invalid): why not
  kernel_install_failed,  // the kernel took one key and refused the other: connection is over
  tls_error,              // a fatal TLS error after the handshake (alert, bad record, KeyUpdate)
  shut_down,              // write after async_shutdown (or after our fatal alert)
  not_established,        // read/write before a successful handshake, or a second handshake
  wrong_role,             // handshake type differs from the TlsContext's role
  operation_in_progress,  // a second read (or write) while one is outstanding
};

const boost::system::error_category& error_category();
boost::system::error_code make_error_code(errc e);

}  // namespace wasi_ktls::asio

template <>
struct boost::system::is_error_code_enum<wasi_ktls::asio::errc> : std::true_type {};

namespace wasi_ktls::asio {

struct StreamOptions {
  // nullopt: WASI_KTLS_BACKEND if set (an invalid value fails the handshake), else auto.
  std::optional<Backend> backend;
  // Client: sent as SNI (unless an IP address) and checked against the certificate.
  std::string server_name;
  // Records per TX key on the kernel transport; 0: the AEAD limit of the negotiated cipher.
  std::uint64_t tx_record_limit = 0;
};

class Stream;

namespace detail {

// What a composed operation asks Asio to do next; decided in stream.cc (the templates below
// only carry it out).
struct Action {
  enum class Kind { complete, read_some, write_some, wait_read, wait_write };
  Kind kind = Kind::complete;
  boost::system::error_code ec;  // complete
  std::size_t bytes = 0;         // complete
  boost::asio::mutable_buffer in;
  boost::asio::const_buffer out;
};

// One operation of the stream: which, its arguments, and where it stands.
struct Op {
  enum class Kind { handshake, read, write, shutdown };
  Kind kind = Kind::read;
  boost::asio::ssl::stream_base::handshake_type type = boost::asio::ssl::stream_base::client;
  boost::asio::mutable_buffer in;
  boost::asio::const_buffer out;
  bool started = false;
  std::optional<Action> immediate;  // completed inside the initiating call: delivered via post
  Action::Kind last = Action::Kind::complete;  // what was asked of Asio

  Action start(Stream& s);
  Action resume(Stream& s, boost::system::error_code ec, std::size_t n);
  // The core's steps that need no waiting, until one needs Asio or the operation is done.
  Action run(Stream& s);
};

struct State;
// Out of line, so that templates (the constructor) never need State's definition.
struct StateDeleter {
  void operator()(State* s) const;
};

// async_compose's implementation: starts, resumes and completes one Op.
template <bool kHasSize>
struct Composed {
  Stream& stream;
  Op op;

  template <class Self>
  void operator()(Self& self, boost::system::error_code ec = {}, std::size_t n = 0);
};

template <class Seq>
boost::asio::mutable_buffer first_mutable(const Seq& seq) {
  for (auto it = boost::asio::buffer_sequence_begin(seq); it != boost::asio::buffer_sequence_end(seq);
       ++it) {
    boost::asio::mutable_buffer b(*it);
    if (b.size() > 0) return b;
  }
  return {};
}

template <class Seq>
boost::asio::const_buffer first_const(const Seq& seq) {
  for (auto it = boost::asio::buffer_sequence_begin(seq); it != boost::asio::buffer_sequence_end(seq);
       ++it) {
    boost::asio::const_buffer b(*it);
    if (b.size() > 0) return b;
  }
  return {};
}

}  // namespace detail

class Stream : public boost::asio::ssl::stream_base {
 public:
  using next_layer_type = boost::asio::ip::tcp::socket;
  using lowest_layer_type = next_layer_type::lowest_layer_type;
  using executor_type = next_layer_type::executor_type;

  // `arg` constructs the socket: an io_context, an executor, or a tcp::socket to adopt (connected
  // for a client, accepted for a server, or to be connected through next_layer()).
  template <class Arg>
  Stream(Arg&& arg, TlsContext ctx, StreamOptions options = {}) : socket_(std::forward<Arg>(arg)) {
    init(std::move(ctx), std::move(options));
  }
  Stream(Stream&&) noexcept;
  Stream& operator=(Stream&&) noexcept;
  ~Stream();

  executor_type get_executor() noexcept { return socket_.get_executor(); }
  next_layer_type& next_layer() { return socket_; }
  const next_layer_type& next_layer() const { return socket_; }
  lowest_layer_type& lowest_layer() { return socket_.lowest_layer(); }

  // Client: the name to send as SNI and verify (as ssl::stream's host_name_verification).
  void set_server_name(std::string name);

  template <class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_handshake(handshake_type type,
                       Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    detail::Op op;
    op.kind = detail::Op::Kind::handshake;
    op.type = type;
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(
        detail::Composed<false>{*this, op}, token, socket_);
  }

  // Reads into the first non-empty buffer of the sequence (as ssl::stream does).
  template <class MutableBufferSequence,
            class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_read_some(const MutableBufferSequence& buffers,
                       Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    detail::Op op;
    op.kind = detail::Op::Kind::read;
    op.in = detail::first_mutable(buffers);
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        detail::Composed<true>{*this, op}, token, socket_);
  }

  template <class ConstBufferSequence,
            class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_write_some(const ConstBufferSequence& buffers,
                        Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    detail::Op op;
    op.kind = detail::Op::Kind::write;
    op.out = detail::first_const(buffers);
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        detail::Composed<true>{*this, op}, token, socket_);
  }

  // close_notify, then shutdown(SHUT_WR); reads stay possible. Does not wait for the peer's
  // close_notify. Idempotent.
  template <class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_shutdown(Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    detail::Op op;
    op.kind = detail::Op::Kind::shutdown;
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(
        detail::Composed<false>{*this, op}, token, socket_);
  }

  // After a successful handshake.
  Transport transport() const;
  // Why the userspace transport was used (auto fallback or request); empty on the kernel.
  const std::string& transport_reason() const;
  const HandshakeInfo& info() const;
  std::uint64_t bytes_read() const;
  std::uint64_t bytes_written() const;

  // The full reason behind the last error this stream reported ("" if none yet).
  const std::string& last_error() const;

 private:
  void init(TlsContext ctx, StreamOptions options);

  template <bool>
  friend struct detail::Composed;
  friend struct detail::Op;

  next_layer_type socket_;
  std::unique_ptr<detail::State, detail::StateDeleter> state_;
};

template <bool kHasSize>
template <class Self>
void detail::Composed<kHasSize>::operator()(Self& self, boost::system::error_code ec,
                                            std::size_t n) {
  Action a;
  if (op.immediate) {
    a = *op.immediate;
  } else if (!op.started) {
    op.started = true;
    a = op.start(stream);
    if (a.kind == Action::Kind::complete) {
      // Never call the handler from inside the initiating function.
      op.immediate = a;
      boost::asio::post(std::move(self));
      return;
    }
  } else {
    a = op.resume(stream, ec, n);
  }
  op.last = a.kind;
  switch (a.kind) {
    case Action::Kind::complete:
      if constexpr (kHasSize)
        self.complete(a.ec, a.bytes);
      else
        self.complete(a.ec);
      return;
    case Action::Kind::read_some:
      stream.socket_.async_read_some(a.in, std::move(self));
      return;
    case Action::Kind::write_some:
      stream.socket_.async_write_some(a.out, std::move(self));
      return;
    case Action::Kind::wait_read:
      stream.socket_.async_wait(boost::asio::socket_base::wait_read, std::move(self));
      return;
    case Action::Kind::wait_write:
      stream.socket_.async_wait(boost::asio::socket_base::wait_write, std::move(self));
      return;
  }
}

}  // namespace wasi_ktls::asio
