#include "bench/soak/server.h"

#include <cerrno>
#include <memory>
#include <vector>

#include "bench/soak/message_io.h"
#include "ktls/conn/async_connection.h"

namespace wasi_ktls::soak {
namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(GroupContext& g, AsyncConnection::Ptr conn) : g_(g), conn_(std::move(conn)), buf_(kChunk) {
    ++g_.tally.live_servers;
  }
  ~Session() { --g_.tally.live_servers; }

  void next() {
    receive_message(conn_, buf_, [self = shared_from_this()](Result<Received> r, bool mid) {
      self->on_request(r, mid);
    });
  }

 private:
  void on_request(const Result<Received>& r, bool mid_message) {
    if (!r) return on_read_error(r.error(), mid_message);
    if (r->clean_end) {
      conn_->close([self = shared_from_this()](Status s) {
        if (!s) return self->g_.tally.error("server close", s.error());
        ++self->g_.tally.server_clean;
      });
      return;
    }
    g_.tally.message(kHeaderSize + (r->bad_header ? 0 : r->header.length), r->mismatched);
    if (r->mismatched > 0) return;  // counted; the stream is out of step, so it ends here
    std::optional<std::uint64_t> flip;
    if (g_.traffic.corrupt_every > 0 && ++g_.replies % g_.traffic.corrupt_every == 0) {
      flip = r->header.length / 2;
      ++g_.tally.corrupted;
    }
    send_message(conn_, buf_, MessageHeader{r->header.length, reply_seed(r->header.seed)},
                 [self = shared_from_this()](Status s) {
                   if (!s) return self->g_.tally.error("server write reply", s.error());
                   self->next();
                 },
                 flip);
  }

  // Between messages, the two ways a client's deliberate abrupt close can look; anywhere
  // else, or any other kind, is an error.
  void on_read_error(const Error& e, bool mid_message) {
    if (!mid_message && e.kind == ErrorKind::truncated) {
      ++g_.tally.server_truncated;
    } else if (!mid_message && e.sys_errno == ECONNRESET) {
      ++g_.tally.server_reset;
    } else {
      g_.tally.error(mid_message ? "server read request (mid-message)" : "server read request", e);
    }
  }

  GroupContext& g_;
  AsyncConnection::Ptr conn_;
  std::vector<std::uint8_t> buf_;
};

// A client that closes right after its handshake (every client in the drain may) can have its
// close_notify and FIN in before the server hands its keys over: the kernel takes keys only on
// an ESTABLISHED socket, so `auto` goes on in userspace, which must still see the clean close.
bool late_handover(const GroupContext& g, const AsyncConnection& c) {
  return g.transport == Transport::kernel && c.transport() == Transport::userspace &&
         c.transport_reason().find("not ESTABLISHED") != std::string::npos;
}

void accept_next(GroupContext& g, int listener) {
  Status st = g.engine.accept(listener, kNoDeadline, [&g, listener](int r) {
    if (r == -ECANCELED) return;  // the group is finishing
    if (r < 0) {
      g.tally.error("server accept", errno_error(-r, "accept"));
    } else {
      ++g.tally.pending;
      AsyncConnection::accept(g.engine, UniqueFd(r), g.server_tls, g.server_options,
                              [&g](Result<AsyncConnection::Ptr> c) {
                                --g.tally.pending;
                                if (!c) return g.tally.error("server handshake", c.error());
                                ++g.tally.accepted;
                                if (late_handover(g, **c)) ++g.tally.server_late;
                                else if ((*c)->transport() != g.transport)
                                  return g.tally.error("server handshake",
                                                       make_error("transport {} instead of {}: {}",
                                                                  to_string((*c)->transport()),
                                                                  to_string(g.transport),
                                                                  (*c)->transport_reason()));
                                std::make_shared<Session>(g, *c)->next();
                              });
    }
    accept_next(g, listener);
  });
  if (!st) g.tally.error("server accept", st.error());
}

}  // namespace

void start_server(GroupContext& group, int listener) { accept_next(group, listener); }

}  // namespace wasi_ktls::soak
