// wasi:clocks/{monotonic-clock,wall-clock} and wasi:random/random (0.2.x).
#include <openssl/rand.h>

#include <ctime>

#include "wasi_binding/interfaces/interfaces.h"
#include "wasi_binding/interfaces/io_resources.h"

namespace wasi_ktls::wasi {
namespace {

std::uint64_t nanos(clockid_t id) {
  timespec ts{};
  ::clock_gettime(id, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// A deadline on the monotonic clock. One too far to represent (hundreds of years) can
// never come: the poll loop treats it as never ready.
class Deadline final : public Pollee {
 public:
  explicit Deadline(std::uint64_t at_ns) : at_ns_(at_ns) {}
  bool ready() override { return nanos(CLOCK_MONOTONIC) >= at_ns_; }
  Wait wait() override {
    const std::uint64_t now = nanos(CLOCK_MONOTONIC);
    if (at_ns_ <= now) return Wait::ready();
    constexpr std::uint64_t kNeverNs = 100ull * 365 * 24 * 3600 * 1'000'000'000ull;
    if (at_ns_ - now > kNeverNs) return Wait::never();
    return Wait::until(Clock::now() + std::chrono::nanoseconds(at_ns_ - now));
  }

 private:
  std::uint64_t at_ns_;
};

std::uint64_t mono_now(Host&) { return nanos(CLOCK_MONOTONIC); }
std::uint64_t mono_resolution(Host&) { return 1; }

std::uint32_t subscribe_instant(Host& h, std::uint64_t when) {
  return h.table().insert(std::make_unique<Pollable>(std::make_unique<Deadline>(when)));
}

std::uint32_t subscribe_duration(Host& h, std::uint64_t ns) {
  const std::uint64_t now = nanos(CLOCK_MONOTONIC);
  const std::uint64_t at = ns > UINT64_MAX - now ? UINT64_MAX : now + ns;
  return h.table().insert(std::make_unique<Pollable>(std::make_unique<Deadline>(at)));
}

// datetime {seconds: u64, nanoseconds: u32}: 16/8.
void store_datetime(Host& h, std::uint32_t ret, std::uint64_t ns) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 16, 8, "return area");
  m.store<std::uint64_t>(at, ns / 1'000'000'000u);
  m.store<std::uint32_t>(at + 8, static_cast<std::uint32_t>(ns % 1'000'000'000u));
}

void wall_now(Host& h, std::uint32_t ret) { store_datetime(h, ret, nanos(CLOCK_REALTIME)); }
void wall_resolution(Host& h, std::uint32_t ret) { store_datetime(h, ret, 1); }

void random_bytes(Host& h, std::uint64_t len, std::uint32_t ret) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(ret, 8, 4, "return area");
  if (len > (64u << 20)) trap("len: {} random bytes at once is more than this host gives (64 MiB)", len);
  const auto n = static_cast<std::uint32_t>(len);
  const std::uint32_t p = m.allocate(1, n, "the list");
  if (n > 0 && RAND_bytes(m.bytes(p, n, "the list").data(), static_cast<int>(n)) != 1)
    trap("the host's random generator failed");
  m.store<std::uint32_t>(at, p);
  m.store<std::uint32_t>(at + 4, n);
}

std::uint64_t random_u64(Host&) {
  std::uint64_t v = 0;
  if (RAND_bytes(reinterpret_cast<unsigned char*>(&v), sizeof v) != 1)
    trap("the host's random generator failed");
  return v;
}

}  // namespace

std::vector<Import> clocks_random_imports() {
  return {
      def<"wasi:clocks/monotonic-clock@0.2", "now", &mono_now>(),
      def<"wasi:clocks/monotonic-clock@0.2", "resolution", &mono_resolution>(),
      def<"wasi:clocks/monotonic-clock@0.2", "subscribe-instant", &subscribe_instant>(),
      def<"wasi:clocks/monotonic-clock@0.2", "subscribe-duration", &subscribe_duration>(),
      def<"wasi:clocks/wall-clock@0.2", "now", &wall_now>(),
      def<"wasi:clocks/wall-clock@0.2", "resolution", &wall_resolution>(),
      def<"wasi:random/random@0.2", "get-random-bytes", &random_bytes>(),
      def<"wasi:random/random@0.2", "get-random-u64", &random_u64>(),
  };
}

}  // namespace wasi_ktls::wasi
