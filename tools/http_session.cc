#include "tools/http_session.h"

#include <cerrno>

namespace wasi_ktls {
namespace {

constexpr std::size_t kBufSize = 64 * 1024;

}  // namespace

HttpSession::HttpSession(AsyncConnection::Ptr conn, std::string peer, const Config& config)
    : conn_(std::move(conn)), peer_(std::move(peer)), config_(config), buf_(kBufSize) {}

void HttpSession::start(AsyncConnection::Ptr conn, std::string peer, const Config& config) {
  auto s = std::make_shared<HttpSession>(std::move(conn), std::move(peer), config);
  if (config.echo)
    s->echo();
  else
    s->next_request();
}

void HttpSession::finish(Status st) {
  if (finished_) return;
  finished_ = true;
  auto self = shared_from_this();
  conn_->close([self, st](Status closed) {
    Status result = !st ? st : closed;
    if (self->config_.on_end) self->config_.on_end(*self, result);
  });
}

void HttpSession::next_request() {
  auto head = http::head_length(in_);
  if (!head) {
    head_ = "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n";
    auto self = shared_from_this();
    Error e = head.error();
    conn_->write(std::span(reinterpret_cast<const std::uint8_t*>(head_.data()), head_.size()),
                 [self, e](Result<std::size_t>) { self->finish(e); });
    return;
  }
  if (*head > 0) {
    auto req = http::parse_request(std::string_view(in_).substr(0, *head));
    in_.erase(0, *head);
    return respond(std::move(req));
  }
  auto self = shared_from_this();
  conn_->read(buf_, [self](Result<std::size_t> n) {
    if (!n) return self->finish(n.error());
    if (*n == 0) return self->finish(Status{});  // close_notify between requests: clean end
    self->in_.append(reinterpret_cast<const char*>(self->buf_.data()), *n);
    self->next_request();
  });
}

void HttpSession::respond(Result<http::Request> req) {
  http::Route r;
  bool keep_alive = false;
  bool file = false;
  if (req) {
    r = http::route(*req);
    keep_alive = req->keep_alive;
    if (r.status == 404 && config_.files != nullptr) {
      auto f = config_.files->open_file(req->target);
      if (f) {
        file_ = std::move(*f);
        file = true;
        r.status = 200;
        r.content_type = "application/octet-stream";
        r.text_body.clear();
        r.body_length = file_.size;
      } else if (f.error().sys_errno == EACCES || f.error().sys_errno == EXDEV) {
        r.status = 403;
        r.text_body = "forbidden\n";
        r.body_length = r.text_body.size();
      }
    }
  } else {
    r.status = 400;
    r.text_body = req.error().message + "\n";
    r.body_length = r.text_body.size();
  }
  head_ = http::response_head(r, keep_alive);
  if (!r.pattern_body && !file) head_ += r.text_body;
  auto self = shared_from_this();
  conn_->write(
      std::span(reinterpret_cast<const std::uint8_t*>(head_.data()), head_.size()),
      [self, r, keep_alive, file, bad = !req](Result<std::size_t> w) {
        if (!w) return self->finish(w.error());
        if (bad) return self->finish(make_error("bad request"));
        if (r.pattern_body) return self->send_pattern(0, r.body_length, keep_alive);
        if (!file) return self->after_response(keep_alive);
        self->conn_->send_file(self->file_.fd.get(), 0, self->file_.size,
                               [self, keep_alive](Result<std::size_t> s) {
                                 self->file_ = {};
                                 if (!s) return self->finish(s.error());
                                 self->after_response(keep_alive);
                               });
      });
}

void HttpSession::send_pattern(std::uint64_t offset, std::uint64_t length, bool keep_alive) {
  if (offset == length) return after_response(keep_alive);
  auto n = static_cast<std::size_t>(std::min<std::uint64_t>(buf_.size(), length - offset));
  http::fill_pattern(offset, std::span(buf_.data(), n));
  auto self = shared_from_this();
  conn_->write(std::span(buf_.data(), n), [self, offset, length, keep_alive](Result<std::size_t> w) {
    if (!w) return self->finish(w.error());
    self->send_pattern(offset + *w, length, keep_alive);
  });
}

void HttpSession::after_response(bool keep_alive) {
  if (keep_alive)
    next_request();
  else
    finish(Status{});
}

void HttpSession::echo() {
  auto self = shared_from_this();
  conn_->read(buf_, [self](Result<std::size_t> n) {
    if (!n) return self->finish(n.error());
    if (*n == 0) return self->finish(Status{});
    self->conn_->write(std::span(self->buf_.data(), *n), [self](Result<std::size_t> w) {
      if (!w) return self->finish(w.error());
      self->echo();
    });
  });
}

}  // namespace wasi_ktls
