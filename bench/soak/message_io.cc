#include "bench/soak/message_io.h"

#include <algorithm>
#include <array>
#include <memory>

namespace wasi_ktls::soak {
namespace {

// Each step's callback holds the operation alive; a read or write may complete inline, so a
// long message recurses at most once per chunk (1 MiB / 16 KiB = 64 frames).
struct Send : std::enable_shared_from_this<Send> {
  AsyncConnection::Ptr conn;
  std::span<std::uint8_t> buf;
  MessageHeader h;
  std::function<void(Status)> done;
  std::optional<std::uint64_t> flip_at;
  std::uint64_t sent = 0;  // payload bytes

  void first() {
    encode_header(h, buf.first<kHeaderSize>());
    std::size_t n = std::min<std::uint64_t>(buf.size() - kHeaderSize, h.length);
    fill(0, buf.subspan(kHeaderSize, n));
    write(kHeaderSize + n, n);
  }
  void fill(std::uint64_t offset, std::span<std::uint8_t> out) {
    fill_payload(h.seed, offset, out);
    if (flip_at && *flip_at >= offset && *flip_at - offset < out.size()) out[*flip_at - offset] ^= 0xFF;
  }
  void write(std::size_t bytes, std::size_t payload) {
    conn->write(buf.first(bytes), [self = shared_from_this(), payload](Result<std::size_t> r) {
      if (!r) return self->done(r.error());
      self->sent += payload;
      self->next();
    });
  }
  void next() {
    if (sent == h.length) return done(Status{});
    std::size_t n = std::min<std::uint64_t>(buf.size(), h.length - sent);
    fill(sent, buf.first(n));
    write(n, n);
  }
};

struct Receive : std::enable_shared_from_this<Receive> {
  AsyncConnection::Ptr conn;
  std::span<std::uint8_t> buf;
  ReceiveDone done;
  std::array<std::uint8_t, kHeaderSize> head{};
  std::size_t head_got = 0;
  Received out;
  std::uint64_t got = 0;  // payload bytes

  void next() {
    if (head_got < kHeaderSize) {
      conn->read(std::span(head).subspan(head_got), [self = shared_from_this()](Result<std::size_t> r) {
        self->on_head(r);
      });
      return;
    }
    if (got == out.header.length) return done(out, true);
    std::size_t want = std::min<std::uint64_t>(buf.size(), out.header.length - got);
    conn->read(buf.first(want), [self = shared_from_this()](Result<std::size_t> r) { self->on_payload(r); });
  }
  void on_head(const Result<std::size_t>& r) {
    if (!r) return done(r.error(), head_got > 0);
    if (*r == 0) {
      if (head_got > 0) return done(make_error("stream ended inside a message header"), true);
      out.clean_end = true;
      return done(out, false);
    }
    head_got += *r;
    if (head_got == kHeaderSize) {
      auto h = decode_header(head);
      if (!h) {
        // Out of step: what follows cannot be framed, so the message ends here.
        out.bad_header = true;
        out.mismatched = kHeaderSize;
        return done(out, true);
      }
      out.header = *h;
    }
    next();
  }
  void on_payload(const Result<std::size_t>& r) {
    if (!r) return done(r.error(), true);
    if (*r == 0) return done(make_error("stream ended after {} of {} payload bytes", got, out.header.length), true);
    out.mismatched += count_mismatches(out.header.seed, got, buf.first(*r));
    got += *r;
    next();
  }
};

}  // namespace

void send_message(const AsyncConnection::Ptr& conn, std::span<std::uint8_t> buf,
                  const MessageHeader& h, std::function<void(Status)> done,
                  std::optional<std::uint64_t> flip_at) {
  auto s = std::make_shared<Send>();
  s->flip_at = flip_at;
  s->conn = conn;
  s->buf = buf;
  s->h = h;
  s->done = std::move(done);
  s->first();
}

void receive_message(const AsyncConnection::Ptr& conn, std::span<std::uint8_t> buf,
                     ReceiveDone done) {
  auto r = std::make_shared<Receive>();
  r->conn = conn;
  r->buf = buf;
  r->done = std::move(done);
  r->next();
}

}  // namespace wasi_ktls::soak
