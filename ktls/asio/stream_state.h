// The part of wasi_ktls::asio::stream that is not a template: one connection's OpenSSL SSL
// (made at construction from the user's ssl::context), its connection core once the
// handshake starts, and every decision an operation takes. An operation (Op) says what it
// needs from Asio next as an Action; stream.h only carries Actions out, asynchronously on the
// next layer (async_read_some / async_write_some / async_wait) or synchronously, so both APIs
// behave alike.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/buffer.hpp>
#include <boost/asio/ssl/stream_base.hpp>
#include <boost/asio/ssl/verify_context.hpp>
#include <boost/system/error_code.hpp>

#include "base/result.h"
#include "handshake/session.h"
#include "ktls/asio/error.h"
#include "ktls/conn/backend.h"
#include "ktls/conn/core.h"

typedef struct ssl_ctx_st SSL_CTX;

namespace wasi_ktls::asio {

struct StreamOptions {
  // nullopt: WASI_KTLS_BACKEND if set (an invalid value fails the handshake), else auto.
  std::optional<Backend> backend;
  // Records per TX key on the kernel transport; 0: the AEAD limit of the negotiated cipher.
  std::uint64_t tx_record_limit = 0;
};

namespace detail {

using boost::system::error_code;
using VerifyCallback = std::function<bool(bool preverified, boost::asio::ssl::verify_context&)>;

// What an operation asks of Asio next.
struct Action {
  enum class Kind { complete, read_some, write_some, wait_read, wait_write };
  Kind kind = Kind::complete;
  error_code ec;         // complete
  std::size_t bytes = 0;  // complete
  boost::asio::mutable_buffer in;
  boost::asio::const_buffer out;
};

class StreamState;

// One operation: which, its arguments, and where it stands. `fd` is the lowest layer's
// socket, for the control records (and readiness waits) the next layer cannot carry.
struct Op {
  enum class Kind { handshake, read, write, shutdown };
  Kind kind = Kind::read;
  boost::asio::ssl::stream_base::handshake_type type = boost::asio::ssl::stream_base::client;
  boost::asio::mutable_buffer in;
  boost::asio::const_buffer out;  // write; handshake: bytes already read from the peer
  bool draining = false;          // shutdown: waiting for the peer's close_notify
  Action::Kind last = Action::Kind::complete;  // what was asked of Asio
  error_code transport_ec;  // the next layer's own failure, reported as it is (as ssl::stream)

  static Op of(Kind k, boost::asio::mutable_buffer in = {}, boost::asio::const_buffer out = {}) {
    Op op;
    op.kind = k;
    op.in = in;
    op.out = out;
    return op;
  }

  Action start(StreamState& s, int fd);
  Action resume(StreamState& s, int fd, error_code ec, std::size_t n);

 private:
  Action run(StreamState& s, int fd);
  Action drain(StreamState& s, int fd);
  Action finish(StreamState& s, const Error& e);
};

class StreamState {
 public:
  // An SSL from `ctx` (the user's boost::asio::ssl::context); `ec` set if OpenSSL cannot.
  static std::unique_ptr<StreamState> create(SSL_CTX* ctx, StreamOptions options, error_code& ec);
  ~StreamState();

  // The SSL the handshake uses, from construction on; on the kernel transport nullptr once
  // the handshake is over (OpenSSL's state and keys are freed when the kernel has them).
  SSL* native_handle() const;
  error_code set_verify_mode(int mode);
  error_code set_verify_depth(int depth);
  error_code set_verify_callback(VerifyCallback cb);
  void set_backend(Backend b) { backend_ = b; }

  Backend backend() const { return backend_ ? *backend_ : Backend::auto_; }
  Transport transport() const;
  const std::string& transport_reason() const;
  const HandshakeInfo& info() const;
  std::uint64_t bytes_read() const;
  std::uint64_t bytes_written() const;
  const std::string& last_error() const { return last_error_; }

  error_code fail(error_code ec, std::string why);

 private:
  friend struct Op;
  StreamState(Session session, StreamOptions options);

  std::optional<Session> session_;  // until the handshake starts: then the core's
  StreamOptions options_;
  Result<Backend> backend_ = Backend::auto_;
  std::optional<ConnectionCore> core_;
  VerifyCallback verify_;
  std::vector<std::uint8_t> discard_;  // shutdown: application data the peer still sends
  std::string last_error_;
};

}  // namespace detail
}  // namespace wasi_ktls::asio
