// wasi_ktls::beast::ssl_stream<NextLayer>: boost::beast::ssl_stream<NextLayer> on
// wasi_ktls::asio::stream (stream.h), so a Beast program (HTTP, WebSocket) gets kTLS by
// changing the type. As Beast's: movable (the stream lives on the heap), writes of buffer
// sequences go through beast::flat_stream (one record for many small buffers), teardown and
// async_teardown are declared for exactly this type (WebSocket finds them), and
// beast::get_lowest_layer reaches the next layer (a beast::tcp_stream keeps its timeouts).
#pragma once

#include <memory>
#include <utility>

#include <boost/asio/compose.hpp>
#include <boost/beast/core/flat_stream.hpp>
#include <boost/beast/core/role.hpp>
// All of it, as the header this one replaces.
#include <boost/beast/ssl.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include "ktls/asio/stream.h"

namespace wasi_ktls::beast {

template <class NextLayer>
class ssl_stream : public boost::asio::ssl::stream_base {
  using ssl_stream_type = asio::stream<NextLayer>;
  using stream_type = boost::beast::flat_stream<ssl_stream_type>;

 public:
  using native_handle_type = typename ssl_stream_type::native_handle_type;
  using next_layer_type = typename ssl_stream_type::next_layer_type;
  using executor_type = typename stream_type::executor_type;

  template <class Executor1>
  struct rebind_executor {
    using other = ssl_stream<typename next_layer_type::template rebind_executor<Executor1>::other>;
  };

  template <class Arg>
  ssl_stream(Arg&& arg, boost::asio::ssl::context& ctx, asio::StreamOptions options = {})
      : p_(std::make_unique<stream_type>(std::forward<Arg>(arg), ctx, std::move(options))) {}

  executor_type get_executor() noexcept { return p_->get_executor(); }
  native_handle_type native_handle() noexcept { return tls().native_handle(); }
  const next_layer_type& next_layer() const noexcept { return p_->next_layer().next_layer(); }
  next_layer_type& next_layer() noexcept { return p_->next_layer().next_layer(); }
  // The kTLS stream itself: transport(), transport_reason(), last_error(), ...
  ssl_stream_type& tls() noexcept { return p_->next_layer(); }
  const ssl_stream_type& tls() const noexcept { return p_->next_layer(); }

  void set_verify_mode(boost::asio::ssl::verify_mode v) { tls().set_verify_mode(v); }
  BOOST_ASIO_SYNC_OP_VOID set_verify_mode(boost::asio::ssl::verify_mode v,
                                          boost::system::error_code& ec) {
    tls().set_verify_mode(v, ec);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }
  void set_verify_depth(int depth) { tls().set_verify_depth(depth); }
  BOOST_ASIO_SYNC_OP_VOID set_verify_depth(int depth, boost::system::error_code& ec) {
    tls().set_verify_depth(depth, ec);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }
  template <class VerifyCallback>
  void set_verify_callback(VerifyCallback callback) {
    tls().set_verify_callback(std::move(callback));
  }
  template <class VerifyCallback>
  BOOST_ASIO_SYNC_OP_VOID set_verify_callback(VerifyCallback callback,
                                              boost::system::error_code& ec) {
    tls().set_verify_callback(std::move(callback), ec);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }

  void handshake(handshake_type type) { tls().handshake(type); }
  BOOST_ASIO_SYNC_OP_VOID handshake(handshake_type type, boost::system::error_code& ec) {
    tls().handshake(type, ec);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }
  template <class ConstBufferSequence>
  void handshake(handshake_type type, const ConstBufferSequence& buffers) {
    tls().handshake(type, buffers);
  }
  template <class ConstBufferSequence>
  BOOST_ASIO_SYNC_OP_VOID handshake(handshake_type type, const ConstBufferSequence& buffers,
                                    boost::system::error_code& ec) {
    tls().handshake(type, buffers, ec);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }
  template <class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_handshake(handshake_type type,
                       Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return tls().async_handshake(type, std::forward<Token>(token));
  }
  template <class ConstBufferSequence,
            class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_handshake(handshake_type type, const ConstBufferSequence& buffers,
                       Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return tls().async_handshake(type, buffers, std::forward<Token>(token));
  }

  void shutdown() { tls().shutdown(); }
  BOOST_ASIO_SYNC_OP_VOID shutdown(boost::system::error_code& ec) {
    tls().shutdown(ec);
    BOOST_ASIO_SYNC_OP_VOID_RETURN(ec);
  }
  template <class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_shutdown(Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return tls().async_shutdown(std::forward<Token>(token));
  }

  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers) {
    return p_->write_some(buffers);
  }
  template <class ConstBufferSequence>
  std::size_t write_some(const ConstBufferSequence& buffers, boost::system::error_code& ec) {
    return p_->write_some(buffers, ec);
  }
  template <class ConstBufferSequence,
            class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_write_some(const ConstBufferSequence& buffers,
                        Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return p_->async_write_some(buffers, std::forward<Token>(token));
  }
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers) {
    return p_->read_some(buffers);
  }
  template <class MutableBufferSequence>
  std::size_t read_some(const MutableBufferSequence& buffers, boost::system::error_code& ec) {
    return p_->read_some(buffers, ec);
  }
  template <class MutableBufferSequence,
            class Token = boost::asio::default_completion_token_t<executor_type>>
  auto async_read_some(const MutableBufferSequence& buffers,
                       Token&& token = boost::asio::default_completion_token_t<executor_type>()) {
    return p_->async_read_some(buffers, std::forward<Token>(token));
  }

 private:
  std::unique_ptr<stream_type> p_;
};

// WebSocket's close: as for Beast's ssl_stream, close_notify both ways, then the next
// layer's own teardown.
template <class SyncStream>
void teardown(boost::beast::role_type role, ssl_stream<SyncStream>& stream,
              boost::system::error_code& ec) {
  stream.shutdown(ec);
  using boost::beast::websocket::teardown;
  boost::system::error_code next_ec;
  teardown(role, stream.next_layer(), ec ? next_ec : ec);
}

namespace detail {

template <class AsyncStream>
struct TeardownOp {
  ssl_stream<AsyncStream>& stream;
  boost::beast::role_type role;
  int stage = 0;
  boost::system::error_code shutdown_ec{};

  template <class Self>
  void operator()(Self& self, boost::system::error_code ec = {}) {
    switch (stage++) {
      case 0:
        stream.async_shutdown(std::move(self));
        return;
      case 1: {
        shutdown_ec = ec;
        using boost::beast::websocket::async_teardown;
        async_teardown(role, stream.next_layer(), std::move(self));
        return;
      }
      default:
        self.complete(shutdown_ec ? shutdown_ec : ec);
    }
  }
};

}  // namespace detail

template <class AsyncStream, class TeardownHandler>
void async_teardown(boost::beast::role_type role, ssl_stream<AsyncStream>& stream,
                    TeardownHandler&& handler) {
  boost::asio::async_compose<TeardownHandler, void(boost::system::error_code)>(
      detail::TeardownOp<AsyncStream>{stream, role}, handler, stream);
}

}  // namespace wasi_ktls::beast
