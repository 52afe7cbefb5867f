#include "bench/soak/client.h"

#include <sys/socket.h>

#include <cerrno>
#include <random>
#include <vector>

#include "bench/soak/message_io.h"
#include "ktls/conn/async_connection.h"

namespace wasi_ktls::soak {
namespace {

class Client : public std::enable_shared_from_this<Client> {
 public:
  Client(GroupContext& g, unsigned slot)
      : g_(g), rng_(g.traffic.seed * 1'000'003 + slot), buf_(kChunk) {}

  void connect() {
    if (g_.stopping) return retire();
    tcp_ = UniqueFd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!tcp_) return fail("socket", errno_error(errno, "socket"));
    ++g_.tally.pending;
    Status st = g_.engine.connect(tcp_.get(), reinterpret_cast<const sockaddr*>(&g_.server_addr),
                                  sizeof g_.server_addr, deadline(),
                                  [self = shared_from_this()](int r) { self->on_tcp(r); });
    if (!st) {
      --g_.tally.pending;
      fail("connect", st.error());
    }
  }

 private:
  Clock::time_point deadline() const { return Clock::now() + g_.client_options.io_timeout; }

  void on_tcp(int r) {
    if (r < 0) {
      --g_.tally.pending;
      return fail("connect", errno_error(-r, "connect"));
    }
    AsyncConnection::connect(g_.engine, std::move(tcp_), g_.client_tls, "localhost", g_.client_options,
                             [self = shared_from_this()](Result<AsyncConnection::Ptr> c) {
                               self->on_tls(std::move(c));
                             });
  }

  void on_tls(Result<AsyncConnection::Ptr> c) {
    --g_.tally.pending;
    if (!c) return fail("handshake", c.error());
    conn_ = *c;
    ++g_.tally.live_clients;
    ++g_.tally.opened;
    if (conn_->transport() != g_.transport)
      return fail("handshake", make_error("transport {} instead of {}: {}", to_string(conn_->transport()),
                                          to_string(g_.transport), conn_->transport_reason()));
    pause([this] { exchange(); });
  }

  void exchange() {
    if (g_.stopping) return close_clean();
    request_ = MessageHeader{pick_length(rng_, g_.traffic.max_length), rng_()};
    send_message(conn_, buf_, request_, [self = shared_from_this()](Status s) {
      if (!s) return self->fail("write request", s.error());
      receive_message(self->conn_, self->buf_, [self](Result<Received> r, bool) { self->on_reply(r); });
    });
  }

  void on_reply(const Result<Received>& r) {
    if (!r) return fail("read reply", r.error());
    if (r->clean_end) return fail("read reply", make_error("close_notify instead of a reply"));
    std::uint64_t bad = r->mismatched;
    if (!r->bad_header &&
        (r->header.length != request_.length || r->header.seed != reply_seed(request_.seed)))
      bad += kHeaderSize;
    g_.tally.message(kHeaderSize + (r->bad_header ? 0 : r->header.length), bad);
    if (bad > 0) return restart();  // counted as a mismatch; out of step from here
    std::uniform_real_distribution<double> u(0, 1);
    if (u(rng_) >= g_.traffic.close_probability) return pause([this] { exchange(); });
    if (u(rng_) >= g_.traffic.abrupt_share) return close_clean();
    close_abrupt(rng_() % 2 == 0);
  }

  // Our close_notify, then the server's answer to it: a read that ends cleanly.
  void close_clean() {
    conn_->close([self = shared_from_this()](Status s) {
      if (!s) return self->fail("close", s.error());
      self->conn_->read(self->buf_, [self](Result<std::size_t> n) {
        if (!n) return self->fail("read close_notify", n.error());
        if (*n != 0) return self->fail("read close_notify", make_error("{} bytes after our close_notify", *n));
        ++self->g_.tally.closed_clean;
        self->end_connection();
        self->connect();
      });
    });
  }

  // The socket goes without close_notify: a FIN, or (SO_LINGER 0) a RST. The server, waiting
  // for the next message, must see truncation or a reset and nothing else.
  void close_abrupt(bool rst) {
    if (rst) {
      linger l{1, 0};
      if (::setsockopt(conn_->fd(), SOL_SOCKET, SO_LINGER, &l, sizeof l) != 0)
        return fail("SO_LINGER", errno_error(errno, "setsockopt SO_LINGER"));
    }
    ++(rst ? g_.tally.abrupt_rst : g_.tally.abrupt_fin);
    end_connection();
    connect();
  }

  template <class F>
  void pause(F then) {
    std::uniform_int_distribution<long> d(0, 2 * g_.traffic.think_mean.count());
    Status st = g_.engine.timer(Clock::now() + std::chrono::milliseconds(d(rng_)),
                                [self = shared_from_this(), then](int) { then(); });
    if (!st) {
      // Not through fail(): its retry is a timer too.
      g_.tally.error("client timer", st.error());
      end_connection();
      retire();
    }
  }

  void end_connection() {
    if (!conn_) return;
    conn_->abort();
    conn_.reset();
    --g_.tally.live_clients;
  }

  void fail(const std::string& phase, const Error& e) {
    g_.tally.error("client " + phase, e);
    restart();
  }

  // A new connection after a pause (a persistent failure must not spin), or none if the soak
  // is ending.
  void restart() {
    end_connection();
    tcp_.reset();
    if (g_.stopping) return retire();
    pause([this] { connect(); });
  }

  void retire() { --g_.running_clients; }

  GroupContext& g_;
  std::mt19937_64 rng_;
  std::vector<std::uint8_t> buf_;
  UniqueFd tcp_;
  AsyncConnection::Ptr conn_;
  MessageHeader request_;
};

}  // namespace

void start_client(GroupContext& group, unsigned slot) {
  ++group.running_clients;
  std::make_shared<Client>(group, slot)->connect();
}

}  // namespace wasi_ktls::soak
