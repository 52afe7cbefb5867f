// wasi_ktls::asio::stream<NextLayer>: boost::asio::ssl::stream<NextLayer> with the kernel
// carrying the records after the handshake (kTLS) where it can, else userspace OpenSSL, and
// the reason. Same types, constructors (from the user's ssl::context, whose configuration
// applies: certificates, keys, verify mode and paths, options, ciphers, ALPN callbacks),
// operations, overloads and error codes; switch by changing the type (README: "switching an
// existing Asio or Beast program to kTLS").
//
// Every operation runs the connection core (ktls/conn/core.h): its socket steps are the next
// layer's own read_some / write_some (async_ or not), so a next layer's behaviour, such as
// beast::tcp_stream's timeouts, keeps working; control records (alerts, close_notify, session
// tickets on the kernel path) are non-blocking recvmsg/sendmsg on the lowest layer's socket,
// waiting for readiness with its wait / async_wait.
//
// Semantics, as ssl::stream:
// - A read completes with error::eof after the peer's close_notify, with
//   ssl::error::stream_truncated when the transport ends without one.
// - shutdown sends close_notify (the TCP connection stays open: it is the next layer's), waits
//   for the peer's close_notify (application data before it is discarded) and succeeds; stream_truncated if
//   the transport ends first. With a read of the caller's outstanding, that read gets the
//   peer's close_notify (eof) and shutdown completes once ours is sent.
// - write_some sends from the first non-empty buffer; read_some reads into the first.
// - One read and one write (or handshake, or shutdown) may be outstanding at a time; handlers
//   of one stream must not run concurrently (one thread or a strand); a second read or write
//   gets errc::operation_in_progress. Every async operation supports terminal per-operation
//   cancellation; handlers run on their associated executor.
// - Errors of the next layer are reported as it reported them; errors of our own are in the
//   "wasi_ktls" category (error.h), with the full reason in last_error().
// Differences: native_handle() is nullptr after a handshake that gave the keys to the kernel
// (OpenSSL's state is freed then; info() has version, suite, ALPN and peer); no renegotiation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/detail/throw_error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
// All of it, as the header this one replaces: ssl::context, verify_context,
// host_name_verification, ssl::error.
#include <boost/asio/ssl.hpp>
#include <boost/system/error_code.hpp>
#include <boost/system/system_error.hpp>

#include "ktls/asio/error.h"
#include "ktls/asio/stream_state.h"

namespace wasi_ktls::asio {

namespace detail {

// The socket under a next layer: a socket's lowest_layer(), or what a beast::basic_stream's
// socket() or a wrapper's next_layer() leads to.
template <class S>
auto& lowest_socket(S& s) {
  if constexpr (requires { s.socket(); })
    return lowest_socket(s.socket());
  else if constexpr (requires { s.lowest_layer(); })
    return s.lowest_layer();
  else
    return lowest_socket(s.next_layer());
}

template <class Seq, class Buffer>
Buffer first_buffer(const Seq& seq) {
  for (auto it = boost::asio::buffer_sequence_begin(seq); it != boost::asio::buffer_sequence_end(seq);
       ++it) {
    Buffer b(*it);
    if (b.size() > 0) return b;
  }
  return {};
}

// All of a buffer sequence as one buffer: in place when it is one, else copied into `store`.
template <class Seq>
boost::asio::const_buffer joined(const Seq& seq, std::vector<std::uint8_t>& store) {
  if (boost::asio::buffer_sequence_end(seq) == std::next(boost::asio::buffer_sequence_begin(seq)))
    return *boost::asio::buffer_sequence_begin(seq);
  store.resize(boost::asio::buffer_size(seq));
  boost::asio::buffer_copy(boost::asio::buffer(store), seq);
  return boost::asio::buffer(store);
}

}  // namespace detail

template <class NextLayer>
class stream : public boost::asio::ssl::stream_base {
 public:
  using native_handle_type = SSL*;
  using next_layer_type = std::remove_reference_t<NextLayer>;
  using lowest_layer_type =
      std::remove_reference_t<decltype(detail::lowest_socket(std::declval<next_layer_type&>()))>;
  using executor_type = typename next_layer_type::executor_type;

  // `arg` constructs the next layer: an io_context, an executor, or a socket to adopt.
  // Throws boost::system::system_error if OpenSSL cannot make the SSL (as ssl::stream).
  template <class Arg>
  stream(Arg&& arg, boost::asio::ssl::context& ctx, StreamOptions options = {})
      : next_(std::forward<Arg>(arg)) {
    boost::system::error_code ec;
    state_ = detail::StreamState::create(ctx.native_handle(), std::move(options), ec);
    boost::asio::detail::throw_error(ec, "stream");
  }
  stream(stream&&) = default;
  stream& operator=(stream&&) = default;

  executor_type get_executor() noexcept { return next_.get_executor(); }
  // The SSL the handshake uses, from construction on (set SNI, verification on it); nullptr
  // after a handshake that gave the keys to the kernel.
  native_handle_type native_handle() { return state_->native_handle(); }
  next_layer_type& next_layer() { return next_; }
  const next_layer_type& next_layer() const { return next_; }
  lowest_layer_type& lowest_layer() { return detail::lowest_socket(next_); }
  const lowest_layer_type& lowest_layer() const {
    return detail::lowest_socket(next_);
  }

  // ---- verification (before the handshake) ----

  void set_verify_mode(boost::asio::ssl::verify_mode v) {
    boost::system::error_code ec;
    set_verify_mode(v, ec);
    throw_if(ec, "set_verify_mode");
  }
  BOOST_ASIO_SYNC_OP_VOID set_verify_mode(boost::asio::ssl::verify_mode v,
                                          boost::system::error_code& ec) {
    ec = state_->set_verify_mode(v);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }
  void set_verify_depth(int depth) {
    boost::system::error_code ec;
    set_verify_depth(depth, ec);
    throw_if(ec, "set_verify_depth");
  }
  BOOST_ASIO_SYNC_OP_VOID set_verify_depth(int depth, boost::system::error_code& ec) {
    ec = state_->set_verify_depth(depth);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }
  // `callback`: bool(bool preverified, boost::asio::ssl::verify_context&), as ssl::stream.
  template <class VerifyCallback>
  void set_verify_callback(VerifyCallback callback) {
    boost::system::error_code ec;
    set_verify_callback(std::move(callback), ec);
    throw_if(ec, "set_verify_callback");
  }
  template <class VerifyCallback>
  BOOST_ASIO_SYNC_OP_VOID set_verify_callback(VerifyCallback callback,
                                              boost::system::error_code& ec) {
    ec = state_->set_verify_callback(std::move(callback));
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }

  // ---- synchronous operations ----

  void handshake(handshake_type type) { run_or_throw(handshake_op(type), "handshake"); }
  BOOST_ASIO_SYNC_OP_VOID handshake(handshake_type type, boost::system::error_code& ec) {
    run_sync(handshake_op(type), ec);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }
  // `buffers`: bytes already read from the peer, the first the handshake reads.
  template <class ConstBufferSequence>
  void handshake(handshake_type type, const ConstBufferSequence& buffers) {
    std::vector<std::uint8_t> store;
    run_or_throw(handshake_op(type, detail::joined(buffers, store)), "handshake");
  }
  template <class ConstBufferSequence>
  BOOST_ASIO_SYNC_OP_VOID handshake(handshake_type type, const ConstBufferSequence& buffers,
                                    boost::system::error_code& ec) {
    std::vector<std::uint8_t> store;
    run_sync(handshake_op(type, detail::joined(buffers, store)), ec);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }

  void shutdown() { run_or_throw(shutdown_op(), "shutdown"); }
  BOOST_ASIO_SYNC_OP_VOID shutdown(boost::system::error_code& ec) {
    run_sync(shutdown_op(), ec);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }

  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers) {
    return run_or_throw(write_op(buffers), "write_some");
  }
  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    return run_sync(write_op(buffers), ec);
  }

  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    return run_or_throw(read_op(buffers), "read_some");
  }
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    return run_sync(read_op(buffers), ec);
  }

  // ---- asynchronous operations ----

  template <class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_handshake(handshake_type type,
                       Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(
        Composed<false>{*this, handshake_op(type)}, token, next_);
  }

  // The handler gets the number of bytes of `buffers` used: all of them.
  template <class ConstBufferSequence,
            class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_handshake(handshake_type type, const ConstBufferSequence& buffers,
                       Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    // Copied: the operation outlives the caller's sequence object, not its memory.
    auto store = std::make_shared<std::vector<std::uint8_t>>(boost::asio::buffer_size(buffers));
    boost::asio::buffer_copy(boost::asio::buffer(*store), buffers);
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Composed<true>{*this, handshake_op(type, boost::asio::buffer(*store)), store}, token,
        next_);
  }

  template <class ConstBufferSequence,
            class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_write_some(const ConstBufferSequence& buffers,
                        Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Composed<true>{*this, write_op(buffers)}, token, next_);
  }

  template <class MutableBufferSequence,
            class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_read_some(const MutableBufferSequence& buffers,
                       Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        Composed<true>{*this, read_op(buffers)}, token, next_);
  }

  template <class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_shutdown(Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(
        Composed<false>{*this, shutdown_op()}, token, next_);
  }

  // ---- what this library adds ----

  // Before the handshake; else StreamOptions::backend, WASI_KTLS_BACKEND, auto.
  void set_backend(Backend b) { state_->set_backend(b); }
  Backend backend() const { return state_->backend(); }
  // After a successful handshake: kernel or userspace, and why userspace (auto's fallback or
  // a request; empty on the kernel).
  Transport transport() const { return state_->transport(); }
  const std::string& transport_reason() const { return state_->transport_reason(); }
  const HandshakeInfo& info() const { return state_->info(); }
  std::uint64_t bytes_read() const { return state_->bytes_read(); }
  std::uint64_t bytes_written() const { return state_->bytes_written(); }
  // The full reason behind the last error this stream reported ("" if none yet).
  const std::string& last_error() const { return state_->last_error(); }

 private:
  static void throw_if(const boost::system::error_code& ec, const char* what) {
    boost::asio::detail::throw_error(ec, what);
  }

  static detail::Op handshake_op(handshake_type type, boost::asio::const_buffer preread = {}) {
    detail::Op op = detail::Op::of(detail::Op::Kind::handshake, {}, preread);
    op.type = type;
    return op;
  }
  template <class Seq>
  static detail::Op read_op(const Seq& b) {
    return detail::Op::of(detail::Op::Kind::read, detail::first_buffer<Seq, boost::asio::mutable_buffer>(b));
  }
  template <class Seq>
  static detail::Op write_op(const Seq& b) {
    return detail::Op::of(detail::Op::Kind::write, {}, detail::first_buffer<Seq, boost::asio::const_buffer>(b));
  }
  static detail::Op shutdown_op() { return detail::Op::of(detail::Op::Kind::shutdown); }

  int fd() { return lowest_layer().native_handle(); }

  // Carries out an operation's Actions with the next layer's blocking calls.
  std::size_t run_sync(detail::Op op, boost::system::error_code& ec) {
    detail::Action a = op.start(*state_, fd());
    while (a.kind != detail::Action::Kind::complete) {
      op.last = a.kind;
      boost::system::error_code step_ec;
      std::size_t n = 0;
      switch (a.kind) {
        case detail::Action::Kind::read_some: n = next_.read_some(a.in, step_ec); break;
        case detail::Action::Kind::write_some: n = next_.write_some(a.out, step_ec); break;
        case detail::Action::Kind::wait_read:
          lowest_layer().wait(boost::asio::socket_base::wait_read, step_ec);
          break;
        case detail::Action::Kind::wait_write:
          lowest_layer().wait(boost::asio::socket_base::wait_write, step_ec);
          break;
        case detail::Action::Kind::complete: break;
      }
      a = op.resume(*state_, fd(), step_ec, n);
    }
    ec = a.ec;
    return a.bytes;
  }

  // The throwing overloads, as Asio's: boost::system::system_error naming the operation.
  std::size_t run_or_throw(detail::Op op, const char* what) {
    boost::system::error_code ec;
    const std::size_t n = run_sync(std::move(op), ec);
    throw_if(ec, what);
    return n;
  }

  // async_compose's implementation: starts, resumes and completes one Op.
  template <bool kHasSize>
  struct Composed {
    stream& s;
    detail::Op op;
    std::shared_ptr<std::vector<std::uint8_t>> keep{};  // the buffered handshake's bytes
    std::optional<detail::Action> immediate{};  // completed inside the initiating call
    bool started = false;

    template <class Self>
    void operator()(Self& self, boost::system::error_code ec = {}, std::size_t n = 0) {
      detail::Action a;
      if (immediate) {
        a = *immediate;
      } else if (!started) {
        started = true;
        a = op.start(*s.state_, s.fd());
        if (a.kind == detail::Action::Kind::complete) {
          // Never call the handler from inside the initiating function.
          immediate = a;
          boost::asio::post(std::move(self));
          return;
        }
      } else {
        a = op.resume(*s.state_, s.fd(), ec, n);
      }
      op.last = a.kind;
      switch (a.kind) {
        case detail::Action::Kind::complete:
          if constexpr (kHasSize)
            self.complete(a.ec, a.bytes);
          else
            self.complete(a.ec);
          return;
        case detail::Action::Kind::read_some:
          s.next_.async_read_some(a.in, std::move(self));
          return;
        case detail::Action::Kind::write_some:
          s.next_.async_write_some(a.out, std::move(self));
          return;
        case detail::Action::Kind::wait_read:
          s.lowest_layer().async_wait(boost::asio::socket_base::wait_read, std::move(self));
          return;
        case detail::Action::Kind::wait_write:
          s.lowest_layer().async_wait(boost::asio::socket_base::wait_write, std::move(self));
          return;
      }
    }
  };

  NextLayer next_;
  std::unique_ptr<detail::StreamState> state_;
};

}  // namespace wasi_ktls::asio
