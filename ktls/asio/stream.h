// A Boost.Asio TLS stream over tcp::socket, usable where Asio code writes
// boost::asio::ssl::stream<tcp::socket>: the handshake runs in OpenSSL (handshake::Session),
// then the kernel carries the records (kTLS) and reads and writes are plain async socket
// operations on the same socket, so Asio's reactor (or its io_uring backend) drives them; or
// the userspace transport when the kernel cannot, with the reason.
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
// Timeouts are the caller's, as with any Asio socket (cancel or close the socket).
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
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>

#include "handshake/policy.h"
#include "handshake/session.h"
#include "ktls/conn/backend.h"

namespace wasi_ktls::asio {

enum class errc {
  handshake_failed = 1,  // the TLS handshake failed (last_error(): the verify reason or alert)
  backend_unavailable,   // backend ktls requested (or WASI_KTLS_BACKEND invalid): why not
  kernel_install_failed,  // the kernel took one key and refused the other: connection is over
  tls_error,              // a fatal TLS error after the handshake (alert, bad record, KeyUpdate)
  shut_down,              // write after async_shutdown
  not_established,        // read/write before a successful handshake, or a second handshake
  wrong_role,             // handshake type differs from the TlsContext's role
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

// What an operation asks the stream's socket to do next (the logic lives in stream.cc; the
// templates below only run the I/O it names).
struct Step {
  enum class Kind { complete, read_some, write_some, write_all, wait_readable, wait_writable,
                    wait_tx_idle };
  Kind kind = Kind::complete;
  boost::system::error_code ec;  // complete
  std::size_t bytes = 0;         // complete
  boost::asio::mutable_buffer in;
  boost::asio::const_buffer out;

  static Step done(boost::system::error_code ec, std::size_t n = 0) {
    Step s;
    s.ec = ec;
    s.bytes = n;
    return s;
  }
};

struct State;
// Out of line, so that templates (the constructor) never need State's definition.
struct StateDeleter {
  void operator()(State* s) const;
};

class HandshakeOp {
 public:
  static constexpr bool kHasSize = false;
  explicit HandshakeOp(boost::asio::ssl::stream_base::handshake_type t) : type_(t) {}
  Step start(Stream& s);
  Step resume(Stream& s, boost::system::error_code ec, std::size_t n);

 private:
  Step advance(Stream& s);
  Step after_flush(Stream& s);
  Step finish(Stream& s);
  boost::asio::ssl::stream_base::handshake_type type_;
  enum class Phase { flushing, flushing_error, reading } phase_ = Phase::reading;
  bool done_ = false;
  std::size_t read_bytes_ = 0;
};

// Output of the userspace Session goes out through one writer at a time (see State::tx_*).
class TxFlush {
 public:
  // The caller's Session output is queued; returns the step to take, or complete({}) when sent.
  // `may_leave` (reads): if another operation is writing, it sends our bytes too.
  Step begin(Stream& s, bool may_leave);
  Step resume(Stream& s, boost::system::error_code ec);
  bool active() const { return active_; }

 private:
  Step write_next(Stream& s);
  bool active_ = false;   // between begin() and the final step
  bool writer_ = false;   // we own the socket's write side
  bool waiting_ = false;  // for another writer to finish
};

class ReadOp {
 public:
  static constexpr bool kHasSize = true;
  explicit ReadOp(boost::asio::mutable_buffer b) : buf_(b) {}
  Step start(Stream& s);
  Step resume(Stream& s, boost::system::error_code ec, std::size_t n);

 private:
  Step kernel_result(Stream& s, long result);
  Step user_read(Stream& s);
  Step user_deliver(Stream& s);
  boost::asio::mutable_buffer buf_;
  enum class Phase { socket_read, wait_readable, flushing } phase_ = Phase::socket_read;
  TxFlush flush_;
  std::optional<Result<ReadResult>> saved_;
};

class WriteOp {
 public:
  static constexpr bool kHasSize = true;
  explicit WriteOp(boost::asio::const_buffer b) : buf_(b) {}
  Step start(Stream& s);
  Step resume(Stream& s, boost::system::error_code ec, std::size_t n);

 private:
  boost::asio::const_buffer buf_;
  std::size_t chunk_ = 0;
  TxFlush flush_;
};

class ShutdownOp {
 public:
  static constexpr bool kHasSize = false;
  Step start(Stream& s);
  Step resume(Stream& s, boost::system::error_code ec, std::size_t n);

 private:
  Step kernel_send(Stream& s);
  Step finish(Stream& s);
  TxFlush flush_;
};

template <class Op>
struct Driver {
  Driver(Stream& s, Op o) : stream(s), op(std::move(o)) {}
  Stream& stream;
  Op op;
  bool started = false;
  std::optional<Step> immediate;  // completed inside the initiating call: delivered via post

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
  Stream(Arg&& arg, TlsContext ctx, StreamOptions options = {})
      : socket_(std::forward<Arg>(arg)), tx_idle_(socket_.get_executor()) {
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
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(
        detail::Driver<detail::HandshakeOp>{*this, detail::HandshakeOp(type)}, token, socket_);
  }

  // Reads into the first non-empty buffer of the sequence (as ssl::stream does).
  template <class MutableBufferSequence,
            class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_read_some(const MutableBufferSequence& buffers,
                       Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        detail::Driver<detail::ReadOp>{*this, detail::ReadOp(detail::first_mutable(buffers))},
        token, socket_);
  }

  template <class ConstBufferSequence,
            class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_write_some(const ConstBufferSequence& buffers,
                        Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
        detail::Driver<detail::WriteOp>{*this, detail::WriteOp(detail::first_const(buffers))},
        token, socket_);
  }

  // close_notify, then shutdown(SHUT_WR); reads stay possible. Does not wait for the peer's
  // close_notify. Idempotent.
  template <class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_shutdown(Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return boost::asio::async_compose<Token, void(boost::system::error_code)>(
        detail::Driver<detail::ShutdownOp>{*this, detail::ShutdownOp()}, token, socket_);
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

  template <class Op>
  friend struct detail::Driver;
  friend class detail::HandshakeOp;
  friend class detail::TxFlush;
  friend class detail::ReadOp;
  friend class detail::WriteOp;
  friend class detail::ShutdownOp;

  next_layer_type socket_;
  boost::asio::steady_timer tx_idle_;  // never expires; cancelled when the writer is done
  std::unique_ptr<detail::State, detail::StateDeleter> state_;
};

template <class Op>
template <class Self>
void detail::Driver<Op>::operator()(Self& self, boost::system::error_code ec, std::size_t n) {
  Step st;
  if (immediate) {
    st = *immediate;
  } else if (!started) {
    started = true;
    st = op.start(stream);
    if (st.kind == Step::Kind::complete) {
      // Never call the handler from inside the initiating function.
      immediate = st;
      boost::asio::post(std::move(self));
      return;
    }
  } else {
    st = op.resume(stream, ec, n);
  }
  switch (st.kind) {
    case Step::Kind::complete:
      if constexpr (Op::kHasSize)
        self.complete(st.ec, st.bytes);
      else
        self.complete(st.ec);
      return;
    case Step::Kind::read_some:
      stream.socket_.async_read_some(st.in, std::move(self));
      return;
    case Step::Kind::write_some:
      stream.socket_.async_write_some(st.out, std::move(self));
      return;
    case Step::Kind::write_all:
      boost::asio::async_write(stream.socket_, st.out, std::move(self));
      return;
    case Step::Kind::wait_readable:
      stream.socket_.async_wait(boost::asio::socket_base::wait_read, std::move(self));
      return;
    case Step::Kind::wait_writable:
      stream.socket_.async_wait(boost::asio::socket_base::wait_write, std::move(self));
      return;
    case Step::Kind::wait_tx_idle:
      stream.tx_idle_.async_wait(std::move(self));
      return;
  }
}

}  // namespace wasi_ktls::asio
