#include "tools/chaos/relay.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <string>

#include "base/unique_fd.h"

namespace wasi_ktls::chaos {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kHeader = 5;
constexpr std::uint8_t kChangeCipherSpec = 20;
constexpr std::uint8_t kApplicationData = 23;

// What a fault does to the rest of its flow once its queue has gone out.
enum class Then : std::uint8_t { relay, fin, rst };

struct OneWay {
  int src = -1;
  int dst = -1;
  std::string in;                // bytes read, short of a whole record
  std::deque<std::string> out;   // one send() each: a segment on the wire (TCP_NODELAY)
  std::size_t out_pos = 0;       // of out.front()
  bool src_eof = false;
  bool dst_shut = false;         // FIN sent (or the far end is gone)
  bool discard = false;          // the fault ended this flow: what src sends goes nowhere
  Then then = Then::relay;
  std::uint64_t counted = 0;     // application_data records since the relay was armed
  Clock::time_point hold_until{};  // stall: nothing goes out before then
  bool seen_ccs = false;         // split-coalesce
  bool coalesce_done = false;
  std::string held;
  Clock::time_point held_since{};
};

class Relay {
 public:
  Relay(int client, int server, const ProxyConfig& cfg, const std::atomic<bool>& armed)
      : client_(client), server_(server), cfg_(cfg), armed_(armed) {
    flows_[0].src = client;
    flows_[0].dst = server;
    flows_[1].src = server;
    flows_[1].dst = client;
    const int one = 1;
    for (int fd : {client, server}) {
      // Each queued segment is its own send; without NODELAY Nagle would merge them again.
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
  }

  RelayReport run(int stop_fd);

 private:
  bool faulted(const OneWay& f) const { return &f == &flows_[static_cast<int>(cfg_.flow)]; }
  int index(const OneWay& f) const { return &f == &flows_[0] ? 0 : 1; }
  void on_record(OneWay& f, std::string record);
  bool is_target(OneWay& f, std::uint8_t type);
  void apply(OneWay& f, std::string record);
  void emit(OneWay& f, std::string bytes);
  void read_from(OneWay& f);
  void send_to(OneWay& f);
  void release_held(OneWay& f, Clock::time_point now);

  UniqueFd client_, server_;
  const ProxyConfig& cfg_;
  const std::atomic<bool>& armed_;
  OneWay flows_[2];
  RelayReport report_;
  Clock::time_point last_move_ = Clock::now();
  bool reset_ = false;  // a RST went out: the relay is over
};

void Relay::emit(OneWay& f, std::string bytes) {
  if (cfg_.fault == Fault::split_coalesce) {
    for (char c : bytes) f.out.emplace_back(1, c);
  } else {
    f.out.push_back(std::move(bytes));
  }
}

bool Relay::is_target(OneWay& f, std::uint8_t type) {
  if (cfg_.fault == Fault::none || cfg_.fault == Fault::split_coalesce) return false;
  if (report_.fault_applied || !faulted(f) || type != kApplicationData) return false;
  if (!armed_.load(std::memory_order_acquire)) return false;
  if (f.counted < cfg_.after_records) {
    ++f.counted;
    return false;
  }
  return true;
}

void Relay::on_record(OneWay& f, std::string record) {
  ++report_.records[index(f)];
  const auto type = static_cast<std::uint8_t>(record[0]);
  if (is_target(f, type)) return apply(f, std::move(record));
  if (cfg_.fault == Fault::split_coalesce && faulted(f) && !f.coalesce_done) {
    if (type == kChangeCipherSpec) {
      f.seen_ccs = true;
    } else if (f.seen_ccs) {
      // The record after ChangeCipherSpec is the sender's Finished (TLS 1.2, and TLS 1.3 in
      // middlebox-compatibility mode): it waits for the next record to share its segment.
      if (f.held.empty()) {
        f.held = std::move(record);
        f.held_since = Clock::now();
        return;
      }
      f.out.push_back(std::move(f.held) + record);
      f.held.clear();
      f.coalesce_done = true;
      report_.coalesced_records = 2;
      report_.fault_applied = true;
      return;
    }
  }
  emit(f, std::move(record));
}

void Relay::apply(OneWay& f, std::string record) {
  report_.fault_applied = true;
  switch (cfg_.fault) {
    case Fault::flip_byte:
      record.back() = static_cast<char>(record.back() ^ 0x01);
      return emit(f, std::move(record));
    case Fault::truncate_record: {
      const std::size_t body = record.size() - kHeader;
      emit(f, record.substr(0, kHeader + body / 2));
      f.then = Then::fin;
      f.discard = true;
      return;
    }
    case Fault::fin:
      f.then = Then::fin;
      f.discard = true;
      return;
    case Fault::rst:
      f.then = Then::rst;
      f.discard = true;
      return;
    case Fault::stall:
      f.hold_until = Clock::now() + cfg_.stall;
      return emit(f, std::move(record));
    case Fault::inject_alert: {
      // Plaintext fatal handshake_failure: what a peer would send if no keys were in use.
      const std::string alert("\x15\x03\x03\x00\x02\x02\x28", 7);
      return emit(f, alert + record);
    }
    case Fault::inject_key_update: {
      // Plaintext KeyUpdate(update_requested).
      const std::string ku("\x16\x03\x03\x00\x05\x18\x00\x00\x01\x01", 10);
      return emit(f, ku + record);
    }
    case Fault::data_after_close: {
      std::string extra("\x17\x03\x03\x00\x20", 5);
      extra.append(32, '\xab');
      return emit(f, record + extra);
    }
    case Fault::none:
    case Fault::split_coalesce:
      break;
  }
  emit(f, std::move(record));
}

void Relay::read_from(OneWay& f) {
  char buf[64 * 1024];
  const ssize_t n = ::recv(f.src, buf, sizeof buf, MSG_DONTWAIT);
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    // The far end reset: so does this flow's next hop, once what came before is out.
    f.src_eof = true;
    if (f.then == Then::relay) f.then = Then::rst;
    return;
  }
  last_move_ = Clock::now();
  if (n == 0) {
    f.src_eof = true;
    if (!f.discard && !f.in.empty()) emit(f, std::move(f.in));  // not a whole record: as is
    f.in.clear();
    return;
  }
  if (f.discard) return;
  f.in.append(buf, static_cast<std::size_t>(n));
  while (f.in.size() >= kHeader && !f.discard) {
    const std::size_t len = (static_cast<std::uint8_t>(f.in[3]) << 8) |
                            static_cast<std::uint8_t>(f.in[4]);
    if (f.in.size() < kHeader + len) break;
    std::string record = f.in.substr(0, kHeader + len);
    f.in.erase(0, kHeader + len);
    on_record(f, std::move(record));
  }
  if (f.discard) f.in.clear();
}

void Relay::send_to(OneWay& f) {
  while (!f.out.empty()) {
    const std::string& seg = f.out.front();
    const ssize_t n = ::send(f.dst, seg.data() + f.out_pos, seg.size() - f.out_pos,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
      // The next hop is gone: nothing more can reach it.
      f.out.clear();
      f.out_pos = 0;
      f.dst_shut = true;
      f.discard = true;
      return;
    }
    last_move_ = Clock::now();
    f.out_pos += static_cast<std::size_t>(n);
    if (f.out_pos == seg.size()) {
      f.out.pop_front();
      f.out_pos = 0;
      // One segment per send: a split flow goes out one byte per wake-up of the reader.
      if (cfg_.fault == Fault::split_coalesce) return;
    }
  }
}

void Relay::release_held(OneWay& f, Clock::time_point now) {
  if (f.held.empty() || now - f.held_since < cfg_.coalesce_hold) return;
  // Nothing came to share the segment with: it goes alone, and the report says no coalescing.
  std::string held = std::move(f.held);
  f.held.clear();
  f.coalesce_done = true;
  emit(f, std::move(held));
}

RelayReport Relay::run(int stop_fd) {
  for (;;) {
    const auto now = Clock::now();
    for (OneWay& f : flows_) release_held(f, now);
    // What each flow owes its next hop once its queue is out.
    for (OneWay& f : flows_) {
      if (!f.out.empty() || f.dst_shut || !f.held.empty()) continue;
      if (f.then == Then::rst) {
        const linger hard{1, 0};
        ::setsockopt(f.dst, SOL_SOCKET, SO_LINGER, &hard, sizeof hard);
        (f.dst == client_.get() ? client_ : server_).reset();
        report_.end = "sent RST to the " + std::string(index(f) == 0 ? "server" : "client");
        reset_ = true;
        return report_;
      }
      if (f.then == Then::fin || f.src_eof) {
        ::shutdown(f.dst, SHUT_WR);
        f.dst_shut = true;
      }
    }
    if (flows_[0].dst_shut && flows_[1].dst_shut && flows_[0].src_eof && flows_[1].src_eof) {
      report_.end = "both ends closed";
      return report_;
    }

    pollfd pfd[3] = {{stop_fd, POLLIN, 0}, {client_.get(), 0, 0}, {server_.get(), 0, 0}};
    auto events_of = [&](int fd) -> short& { return fd == client_.get() ? pfd[1].events : pfd[2].events; };
    Clock::time_point wake = last_move_ + cfg_.io_timeout;
    for (OneWay& f : flows_) {
      if (!f.src_eof) events_of(f.src) |= POLLIN;
      if (!f.out.empty() && !f.dst_shut) {
        if (now >= f.hold_until)
          events_of(f.dst) |= POLLOUT;
        else
          wake = std::min(wake, f.hold_until);
      }
      if (!f.held.empty()) wake = std::min(wake, f.held_since + cfg_.coalesce_hold);
    }
    if (now >= last_move_ + cfg_.io_timeout) {
      report_.end = "nothing moved for the I/O timeout";
      return report_;
    }
    const auto wait_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(wake - now).count() + 1;
    const int r = ::poll(pfd, 3, static_cast<int>(std::max<long long>(wait_ms, 1)));
    if (r < 0 && errno != EINTR) {
      report_.end = std::string("poll: ") + std::strerror(errno);
      return report_;
    }
    if (r <= 0) continue;
    if (pfd[0].revents != 0) {
      report_.end = "stopped";
      return report_;
    }
    auto revents_of = [&](int fd) { return fd == client_.get() ? pfd[1].revents : pfd[2].revents; };
    for (OneWay& f : flows_) {
      if (!f.out.empty() && !f.dst_shut && (revents_of(f.dst) & (POLLOUT | POLLERR | POLLHUP)))
        send_to(f);
    }
    for (OneWay& f : flows_) {
      if (!f.src_eof && (revents_of(f.src) & (POLLIN | POLLERR | POLLHUP))) read_from(f);
    }
  }
}

}  // namespace

RelayReport relay(int client, int server, const ProxyConfig& config,
                  const std::atomic<bool>& armed, int stop_fd) {
  Relay r(client, server, config, armed);
  return r.run(stop_fd);
}

}  // namespace wasi_ktls::chaos
