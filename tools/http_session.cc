#include "tools/http_session.h"

#include <algorithm>
#include <cerrno>

namespace wasi_ktls {
namespace {

// After refusing a request, what the peer already sent is read and dropped, up to this much:
// closing with unread data sends a TCP reset, which can destroy our answer before the peer
// has read it.
constexpr std::uint64_t kMaxDrainBytes = 256 * 1024;
// ... and for at most this long in all (or --idle-timeout, if shorter; as nginx's
// lingering_timeout): a peer that keeps trickling must not hold the connection.
constexpr std::chrono::milliseconds kMaxDrainTime{5'000};

std::span<const std::uint8_t> bytes_of(const std::string& s) {
  return std::span(reinterpret_cast<const std::uint8_t*>(s.data()), s.size());
}

bool nothing_yet(const Error& e) { return e.kind == ErrorKind::would_block; }

// Gives the heap back what a string held (clear() keeps it): idle sessions are many.
void release(std::string& s) { std::string().swap(s); }

}  // namespace

HttpSession::HttpSession(AsyncConnection::Ptr conn, std::string peer, const Config& config)
    : conn_(std::move(conn)), peer_(std::move(peer)), config_(config) {}

void HttpSession::start(AsyncConnection::Ptr conn, std::string peer, const Config& config) {
  auto s = std::make_shared<HttpSession>(std::move(conn), std::move(peer), config);
  s->await_request();
  if (config.echo)
    s->echo();
  else
    s->next_request();
}

Result<std::span<const std::uint8_t>> HttpSession::read_now() {
  auto n = conn_->read_now(config_.read_buffer);
  if (!n) return n.error();
  return std::span<const std::uint8_t>(config_.read_buffer.first(*n));
}

void HttpSession::await_request() {
  in_request_ = false;
  deadline_ = Clock::now() + config_.idle_timeout;
}

void HttpSession::request_started() {
  if (in_request_) return;
  in_request_ = true;
  deadline_ = Clock::now() + config_.header_timeout;
}

void HttpSession::wait_then(std::function<void()> resume) {
  if (in_.empty()) release(in_);
  auto self = shared_from_this();
  conn_->wait_readable(deadline_, [self, resume = std::move(resume)](Status st) {
    if (!st && st.error().kind == ErrorKind::timeout)
      return self->finish(self->in_request_
                              ? Error{fmt::format("request not complete within {} ms "
                                                  "(--header-timeout)",
                                                  self->config_.header_timeout.count()),
                                      ETIMEDOUT, ErrorKind::timeout}
                              : Error{fmt::format("no request for {} ms (--idle-timeout)",
                                                  self->config_.idle_timeout.count()),
                                      ETIMEDOUT, ErrorKind::timeout});
    if (!st) return self->finish(st.error());
    resume();
  });
}

void HttpSession::finish_after_write_error(const Error& e) {
  if (finished_) return;
  finished_ = true;
  conn_->abort();
  end(e);
}

void HttpSession::finish(Status st, bool drain) {
  if (finished_) return;
  finished_ = true;
  auto self = shared_from_this();
  conn_->close([self, st, drain](Status closed) {
    Status result = !st ? st : closed;
    if (drain && closed) {
      self->deadline_ = Clock::now() + std::min(kMaxDrainTime, self->config_.idle_timeout);
      return self->drain(0, result);
    }
    self->end(result);
  });
}

void HttpSession::drain(std::uint64_t dropped, Status result) {
  while (dropped < kMaxDrainBytes) {
    auto got = read_now();
    if (got && !got->empty()) {
      dropped += got->size();
      continue;
    }
    if (!got && nothing_yet(got.error())) {
      auto self = shared_from_this();
      conn_->wait_readable(deadline_, [self, dropped, result](Status st) {
        if (!st) return self->end(result);
        self->drain(dropped, result);
      });
      return;
    }
    break;  // the peer's close (or any end of reading) is the end; how it ended is not the news
  }
  end(result);
}

void HttpSession::end(const Status& result) {
  if (config_.on_end) config_.on_end(*this, result);
}

void HttpSession::next_request() {
  for (;;) {
    if (!in_.empty()) request_started();
    auto head = http::head_length(in_);
    if (!head) {
      http::Route r;
      r.status = 431;
      r.close = true;
      head_ = http::response_head(r, false);
      auto self = shared_from_this();
      Error e = head.error();
      conn_->write(bytes_of(head_), [self, e](Result<std::size_t> w) {
        release(self->head_);
        if (!w) return self->finish_after_write_error(w.error());
        self->finish(e, true);
      });
      return;
    }
    if (*head > 0) {
      auto req = http::parse_request(std::string_view(in_).substr(0, *head));
      in_.erase(0, *head);
      // A request that is answered and keeps the connection has its body skipped first: read
      // as the next request, it would be answered as one. (Refused ones close instead.)
      if (req && req->content_length > 0 && !http::route(*req).close) {
        body_left_ = req->content_length;
        pending_ = std::move(*req);
        return skip_body();
      }
      return respond(std::move(req));
    }
    auto got = read_now();
    if (!got) {
      if (nothing_yet(got.error()))
        return wait_then([self = shared_from_this()] { self->next_request(); });
      return finish(got.error());
    }
    if (got->empty()) return finish(Status{});  // close_notify between requests: clean end
    in_.append(reinterpret_cast<const char*>(got->data()), got->size());
  }
}

void HttpSession::skip_body() {
  for (;;) {
    auto n = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, in_.size()));
    in_.erase(0, n);
    body_left_ -= n;
    if (body_left_ == 0) return respond(std::move(pending_));
    auto got = read_now();
    if (!got) {
      if (nothing_yet(got.error()))
        return wait_then([self = shared_from_this()] { self->skip_body(); });
      return finish(got.error());
    }
    if (got->empty()) return finish(make_error("peer ended the stream inside a request body"));
    // A peer that sends a body without pause never waits: the request's bound is checked here.
    if (Clock::now() >= deadline_)
      return finish(Error{fmt::format("request not complete within {} ms (--header-timeout)",
                                      config_.header_timeout.count()),
                          ETIMEDOUT, ErrorKind::timeout});
    // Body bytes are dropped where they lie; only what follows the body is kept.
    const auto body = static_cast<std::size_t>(std::min<std::uint64_t>(body_left_, got->size()));
    body_left_ -= body;
    in_.append(reinterpret_cast<const char*>(got->data()) + body, got->size() - body);
  }
}

void HttpSession::respond(Result<http::Request> req) {
  http::Route r;
  bool keep_alive = false;
  bool file = false;
  if (req) {
    r = http::route(*req);
    keep_alive = req->keep_alive && !r.close;
    if (r.status == 404 && config_.files != nullptr) {
      auto f = config_.files->open_file(req->target);
      if (f) {
        file_ = std::move(*f);
        file = true;
        r.status = 200;
        r.content_type = "application/octet-stream";
        r.text_body.clear();
        r.body_length = file_.size;
      } else if (int status = StaticFiles::http_status(f.error()); status != 404) {
        r.status = status;
        r.text_body = status == 403 ? "forbidden\n" : "cannot open the file\n";
        r.body_length = r.text_body.size();
      }
    }
  } else {
    r.status = 400;
    r.text_body = req.error().message + "\n";
    r.body_length = r.text_body.size();
    r.close = true;
  }
  head_ = http::response_head(r, keep_alive);
  bool body = !r.head_only;
  if (body && !r.pattern_body && !file) head_ += r.text_body;
  std::optional<Error> refused;
  if (!req)
    refused = make_error("bad request: {}", req.error().message);
  else if (r.close)
    refused = make_error("refused {} {}: {}", req->method.substr(0, 16), r.status,
                         r.text_body.substr(0, r.text_body.size() - 1));
  auto self = shared_from_this();
  conn_->write(bytes_of(head_), [self, r, keep_alive, file, body, refused](Result<std::size_t> w) {
    release(self->head_);
    if (!w) return self->finish_after_write_error(w.error());
    if (refused) return self->finish(*refused, /*drain=*/true);
    if (body && r.pattern_body) return self->send_pattern(0, r.body_length, keep_alive);
    if (!body || !file) {
      self->file_ = {};
      return self->after_response(keep_alive);
    }
    self->conn_->send_file(self->file_.fd.get(), 0, self->file_.size,
                           [self, keep_alive](Result<std::size_t> s) {
                             self->file_ = {};
                             if (!s) return self->finish_after_write_error(s.error());
                             self->after_response(keep_alive);
                           });
  });
}

void HttpSession::send_pattern(std::uint64_t offset, std::uint64_t length, bool keep_alive) {
  if (offset == length) return after_response(keep_alive);
  auto self = shared_from_this();
  conn_->write(http::pattern_bytes(offset, length - offset),
               [self, offset, length, keep_alive](Result<std::size_t> w) {
                 if (!w) return self->finish_after_write_error(w.error());
                 self->send_pattern(offset + *w, length, keep_alive);
               });
}

void HttpSession::after_response(bool keep_alive) {
  if (keep_alive) {
    await_request();
    next_request();
  }
  else
    finish(Status{});
}

void HttpSession::echo() {
  auto got = read_now();
  if (!got) {
    if (nothing_yet(got.error())) return wait_then([self = shared_from_this()] { self->echo(); });
    return finish(got.error());
  }
  if (got->empty()) return finish(Status{});
  // Sent from the session's own copy (the read buffer is the worker's), freed once sent.
  echo_.assign(got->begin(), got->end());
  auto self = shared_from_this();
  conn_->write(echo_, [self](Result<std::size_t> w) {
    self->echo_ = std::vector<std::uint8_t>();  // `= {}` would keep the capacity
    if (!w) return self->finish_after_write_error(w.error());
    self->await_request();
    self->echo();
  });
}

}  // namespace wasi_ktls
