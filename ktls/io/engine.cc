#include "ktls/io/engine.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "ktls/io/io_request.h"
#include "ktls/io/poll_engine.h"
#include "ktls/io/uring_engine.h"
#include "ktls/io/uring_probe.h"

namespace wasi_ktls {
namespace {

// Why io_uring could not be set up, in the probe's words ("EPERM: io_uring refused by
// policy ..."), named after the syscall that failed.
std::string uring_failure(const Error& setup_error) {
  UringProbe probe = probe_io_uring();
  std::string why = probe.ok ? setup_error.message : probe.reason;
  constexpr std::string_view kPrefix = "io_uring_queue_init: ";
  if (why.rfind(kPrefix, 0) == 0) why = "io_uring_setup: " + why.substr(kPrefix.size());
  return why;
}

IoRequest request(IoRequest::Kind kind, int fd, Clock::time_point deadline, Completion&& done) {
  IoRequest req;
  req.kind = kind;
  req.fd = fd;
  req.deadline = deadline;
  req.done = std::move(done);
  return req;
}

}  // namespace

Status Engine::recv(int fd, std::span<std::uint8_t> buf, int flags, Clock::time_point deadline,
                    Completion done) {
  IoRequest req = request(IoRequest::Kind::recv, fd, deadline, std::move(done));
  req.buf = buf.data();
  req.len = buf.size();
  req.flags = flags;
  return start(std::move(req));
}

Status Engine::send(int fd, std::span<const std::uint8_t> buf, int flags,
                    Clock::time_point deadline, Completion done) {
  IoRequest req = request(IoRequest::Kind::send, fd, deadline, std::move(done));
  req.buf = const_cast<std::uint8_t*>(buf.data());  // only read
  req.len = buf.size();
  req.flags = flags;
  return start(std::move(req));
}

Status Engine::recvmsg(int fd, msghdr* msg, int flags, Clock::time_point deadline,
                       Completion done) {
  IoRequest req = request(IoRequest::Kind::recvmsg, fd, deadline, std::move(done));
  req.msg = msg;
  req.flags = flags;
  return start(std::move(req));
}

Status Engine::sendmsg(int fd, const msghdr* msg, int flags, Clock::time_point deadline,
                       Completion done) {
  IoRequest req = request(IoRequest::Kind::sendmsg, fd, deadline, std::move(done));
  req.msg = const_cast<msghdr*>(msg);  // only read
  req.flags = flags;
  return start(std::move(req));
}

Status Engine::poll(int fd, short events, Clock::time_point deadline, Completion done) {
  if (events != POLLIN && events != POLLOUT)
    return Error{"poll: events must be POLLIN or POLLOUT", EINVAL};
  IoRequest req = request(IoRequest::Kind::poll, fd, deadline, std::move(done));
  req.flags = events;
  return start(std::move(req));
}

Status Engine::send_file(int sock, int file, std::uint64_t offset, std::size_t len,
                         Clock::time_point deadline, Completion done) {
  if (offset > static_cast<std::uint64_t>(INT64_MAX) || len > static_cast<std::size_t>(INT32_MAX))
    return Error{"send_file: offset or length out of range (length at most 2 GiB - 1)", EINVAL};
  IoRequest req = request(IoRequest::Kind::send_file, sock, deadline, std::move(done));
  req.file = file;
  req.offset = offset;
  req.len = len;
  return start(std::move(req));
}

Status Engine::accept(int listen_fd, Clock::time_point deadline, Completion done) {
  return start(request(IoRequest::Kind::accept, listen_fd, deadline, std::move(done)));
}

Status Engine::connect(int fd, const sockaddr* addr, socklen_t len, Clock::time_point deadline,
                       Completion done) {
  if (len > sizeof(sockaddr_storage)) return Error{"connect: address too long", EINVAL};
  IoRequest req = request(IoRequest::Kind::connect, fd, deadline, std::move(done));
  std::memcpy(&req.addr, addr, len);
  req.addrlen = len;
  return start(std::move(req));
}

Status Engine::timer(Clock::time_point when, Completion done) {
  return start(request(IoRequest::Kind::timer, -1, when, std::move(done)));
}

Result<EngineKind> parse_engine_kind(std::string_view text) {
  if (text == "auto" || text == "automatic") return EngineKind::automatic;
  if (text == "io_uring") return EngineKind::io_uring;
  if (text == "poll") return EngineKind::poll;
  return Error{fmt::format("unknown I/O engine '{}' (expected io_uring, poll or auto)", text),
               EINVAL};
}

Result<EngineKind> engine_kind_from_environment() {
  const char* v = std::getenv("WASI_KTLS_ENGINE");
  if (v == nullptr || *v == '\0') return EngineKind::automatic;
  auto kind = parse_engine_kind(v);
  if (!kind) return Error{"WASI_KTLS_ENGINE: " + kind.error().message, EINVAL};
  return kind;
}

Result<EngineChoice> make_engine(EngineKind kind, unsigned queue_depth) {
  // One bound for both engines: the io_uring SQ can't be larger (IORING_MAX_ENTRIES).
  if (queue_depth == 0 || queue_depth > 32768)
    return Error{fmt::format("I/O engine queue depth {} out of range 1..32768", queue_depth),
                 EINVAL};
  if (kind == EngineKind::poll) {
    auto e = PollEngine::create(queue_depth);
    if (!e) return e.error();
    return EngineChoice{std::move(*e), "poll engine requested"};
  }
  auto ring = UringEngine::create(queue_depth);
  if (ring) return EngineChoice{std::move(*ring), "io_uring set up"};
  std::string why = uring_failure(ring.error());
  if (kind == EngineKind::io_uring)
    return Error{"io_uring engine requested, but " + why, ring.error().sys_errno};
  auto e = PollEngine::create(queue_depth);
  if (!e) return e.error();
  return EngineChoice{std::move(*e), "poll engine, because " + why};
}

}  // namespace wasi_ktls
