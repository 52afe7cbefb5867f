// The wasi_snapshot_preview1 functions Debian's wasi-libc (2022, preview1 only) calls for a
// program's startup and stdio: args, environ, clocks, random, stdio reads and writes, fd
// status, proc_exit, sched_yield, and poll_oneoff on clocks. No filesystem: there are no
// preopens (fd_prestat_get answers EBADF), and fds above 2 do not exist.
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <thread>

#include "wasi_binding/interfaces/interfaces.h"
#include "wasi_binding/streams/stdio_streams.h"

namespace wasi_ktls::wasi {
namespace {

// wasi errno values.
enum : std::uint32_t {
  kSuccess = 0, kBadf = 8, kInval = 28, kIo = 29, kNotsup = 58, kSpipe = 70,
};

std::uint32_t to_wasi_errno(int err) {
  switch (err) {
    case EBADF: return kBadf;
    case EINVAL: return kInval;
    case EPIPE: return 64;  // EPIPE
    default: return kIo;
  }
}

// Sizes then contents of a list of C strings, as args_* and environ_* lay them out.
std::uint32_t sizes_of(Host& h, const std::vector<std::string>& v, std::uint32_t count_ptr,
                       std::uint32_t size_ptr) {
  GuestMemory& m = h.memory();
  std::uint64_t total = 0;
  for (const auto& s : v) total += s.size() + 1;
  m.store<std::uint32_t>(m.return_area(count_ptr, 4, 4, "count"), static_cast<std::uint32_t>(v.size()));
  m.store<std::uint32_t>(m.return_area(size_ptr, 4, 4, "buffer size"), static_cast<std::uint32_t>(total));
  return kSuccess;
}

std::uint32_t strings_into(Host& h, const std::vector<std::string>& v, std::uint32_t ptrs,
                           std::uint32_t buf) {
  GuestMemory& m = h.memory();
  std::uint64_t total = 0;
  for (const auto& s : v) total += s.size() + 1;
  (void)m.return_area(ptrs, static_cast<std::uint32_t>(v.size() * 4), 4, "pointer array");
  auto out = m.bytes(buf, total, "string buffer");
  std::uint32_t at = 0;
  for (std::size_t i = 0; i < v.size(); ++i) {
    m.store<std::uint32_t>(ptrs + 4 * static_cast<std::uint32_t>(i), buf + at);
    std::memcpy(out.data() + at, v[i].c_str(), v[i].size() + 1);
    at += static_cast<std::uint32_t>(v[i].size() + 1);
  }
  return kSuccess;
}

std::uint32_t args_sizes_get(Host& h, std::uint32_t c, std::uint32_t s) { return sizes_of(h, h.config().args, c, s); }
std::uint32_t args_get(Host& h, std::uint32_t p, std::uint32_t b) { return strings_into(h, h.config().args, p, b); }
std::uint32_t environ_sizes_get(Host& h, std::uint32_t c, std::uint32_t s) { return sizes_of(h, h.config().env, c, s); }
std::uint32_t environ_get(Host& h, std::uint32_t p, std::uint32_t b) { return strings_into(h, h.config().env, p, b); }

std::optional<clockid_t> clock_of(std::uint32_t id) {
  switch (id) {
    case 0: return CLOCK_REALTIME;
    case 1: return CLOCK_MONOTONIC;
    case 2: return CLOCK_PROCESS_CPUTIME_ID;
    case 3: return CLOCK_THREAD_CPUTIME_ID;
    default: return std::nullopt;
  }
}

std::uint32_t clock_res_get(Host& h, std::uint32_t id, std::uint32_t out) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(out, 8, 8, "resolution");
  const auto c = clock_of(id);
  if (!c) return kInval;
  timespec ts{};
  ::clock_getres(*c, &ts);
  m.store<std::uint64_t>(at, static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec);
  return kSuccess;
}

std::uint32_t clock_time_get(Host& h, std::uint32_t id, std::uint64_t, std::uint32_t out) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(out, 8, 8, "time");
  const auto c = clock_of(id);
  if (!c) return kInval;
  timespec ts{};
  ::clock_gettime(*c, &ts);
  m.store<std::uint64_t>(at, static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + ts.tv_nsec);
  return kSuccess;
}

std::uint32_t random_get(Host& h, std::uint32_t buf, std::uint32_t len) {
  auto b = h.memory().bytes(buf, len, "buf");
  if (len > 0 && RAND_bytes(b.data(), static_cast<int>(len)) != 1) return kIo;
  return kSuccess;
}

// iovec arrays: {buf u32, len u32} each.
template <class F>
std::uint32_t each_iovec(Host& h, std::uint32_t iovs, std::uint32_t n, F&& f) {
  GuestMemory& m = h.memory();
  (void)m.return_area(iovs, n * 8, 4, "iovs");
  for (std::uint32_t i = 0; i < n; ++i) {
    const auto p = m.load<std::uint32_t>(iovs + 8 * i, "iovs");
    const auto l = m.load<std::uint32_t>(iovs + 8 * i + 4, "iovs");
    if (!f(m.bytes(p, l, "iovec buffer"))) break;
  }
  return kSuccess;
}

std::uint32_t fd_write(Host& h, std::uint32_t fd, std::uint32_t iovs, std::uint32_t n,
                       std::uint32_t nwritten) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(nwritten, 4, 4, "nwritten");
  if (fd != 1 && fd != 2) return kBadf;
  std::uint32_t total = 0;
  int err = 0;
  each_iovec(h, iovs, n, [&](std::span<std::uint8_t> b) {
    err = write_fully(static_cast<int>(fd), b);
    if (err == 0) total += static_cast<std::uint32_t>(b.size());
    return err == 0;
  });
  m.store<std::uint32_t>(at, total);
  return err == 0 || total > 0 ? kSuccess : to_wasi_errno(err);
}

std::uint32_t fd_read(Host& h, std::uint32_t fd, std::uint32_t iovs, std::uint32_t n,
                      std::uint32_t nread) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(nread, 4, 4, "nread");
  if (fd != 0) return kBadf;
  std::uint32_t total = 0;
  int err = 0;
  each_iovec(h, iovs, n, [&](std::span<std::uint8_t> b) {
    ssize_t r;
    do r = ::read(0, b.data(), b.size());
    while (r < 0 && errno == EINTR);
    if (r < 0) err = errno;
    if (r > 0) total += static_cast<std::uint32_t>(r);
    return r == static_cast<ssize_t>(b.size());
  });
  m.store<std::uint32_t>(at, total);
  return err == 0 || total > 0 ? kSuccess : to_wasi_errno(err);
}

// fdstat: filetype u8@0, flags u16@2, rights_base u64@8, rights_inheriting u64@16.
std::uint32_t fd_fdstat_get(Host& h, std::uint32_t fd, std::uint32_t out) {
  GuestMemory& m = h.memory();
  const std::uint32_t at = m.return_area(out, 24, 8, "fdstat");
  if (fd > 2) return kBadf;
  struct stat st{};
  std::uint8_t type = 0;  // unknown
  if (::fstat(static_cast<int>(fd), &st) == 0) {
    if (S_ISCHR(st.st_mode)) type = 2;
    else if (S_ISREG(st.st_mode)) type = 4;
    else if (S_ISSOCK(st.st_mode)) type = 6;
  }
  // A terminal has no seek/tell rights: that is how wasi-libc's isatty() recognises it.
  constexpr std::uint64_t kSeek = 1u << 2, kTell = 1u << 5;
  const std::uint64_t rights = type == 2 ? ~(kSeek | kTell) & 0x1FFFFFFF : 0x1FFFFFFF;
  for (std::uint32_t i = 0; i < 24; ++i) m.store<std::uint8_t>(at + i, 0);
  m.store<std::uint8_t>(at, type);
  m.store<std::uint64_t>(at + 8, rights);
  return kSuccess;
}

std::uint32_t fd_seek(Host& h, std::uint32_t fd, std::uint64_t, std::uint32_t whence, std::uint32_t out) {
  (void)h.memory().return_area(out, 8, 8, "newoffset");
  if (whence > 2) return kInval;
  return fd > 2 ? kBadf : kSpipe;
}

std::uint32_t fd_close(Host&, std::uint32_t fd) { return fd > 2 ? kBadf : kSuccess; }
std::uint32_t fd_prestat_get(Host& h, std::uint32_t, std::uint32_t out) {
  (void)h.memory().return_area(out, 8, 4, "prestat");
  return kBadf;
}
std::uint32_t fd_prestat_dir_name(Host& h, std::uint32_t, std::uint32_t p, std::uint32_t l) {
  (void)h.memory().bytes(p, l, "path");
  return kBadf;
}

void proc_exit(Host&, std::uint32_t code) { throw Exit{static_cast<int>(code & 0xFF)}; }

std::uint32_t sched_yield(Host&) {
  std::this_thread::yield();
  return kSuccess;
}

// Clock subscriptions only: {userdata u64@0, tag u8@8, clock id u32@16, timeout u64@24,
// precision u64@32, flags u16@40}, 48 bytes; events {userdata u64@0, error u16@8,
// type u8@10, ...}, 32 bytes. An fd subscription gets its event with error NOTSUP.
std::uint32_t poll_oneoff(Host& h, std::uint32_t in, std::uint32_t out, std::uint32_t n,
                          std::uint32_t nevents) {
  GuestMemory& m = h.memory();
  const std::uint32_t ne = m.return_area(nevents, 4, 4, "nevents");
  if (n == 0) return kInval;
  if (n > 4096) trap("nsubscriptions: {} is more than this host handles at once", n);
  (void)m.return_area(in, n * 48, 8, "subscriptions");
  (void)m.return_area(out, n * 32, 8, "events");
  std::uint64_t wait_ns = UINT64_MAX;
  std::uint32_t events = 0;
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t s = in + 48 * i;
    const auto tag = m.load<std::uint8_t>(s + 8, "subscription tag");
    if (tag > 2) trap("subscriptions[{}]: tag {} (0 clock, 1 fd_read, 2 fd_write)", i, tag);
    if (tag != 0) {
      const std::uint32_t e = out + 32 * events++;
      m.store<std::uint64_t>(e, m.load<std::uint64_t>(s, "userdata"));
      m.store<std::uint16_t>(e + 8, kNotsup);
      m.store<std::uint8_t>(e + 10, tag);
      continue;
    }
    const auto id = m.load<std::uint32_t>(s + 16, "clock id");
    const auto timeout = m.load<std::uint64_t>(s + 24, "timeout");
    const auto flags = m.load<std::uint16_t>(s + 40, "flags");
    const auto c = clock_of(id);
    if (!c) return kInval;
    std::uint64_t rel = timeout;
    if (flags & 1) {  // absolute
      timespec t{};
      ::clock_gettime(*c, &t);
      const std::uint64_t cur = static_cast<std::uint64_t>(t.tv_sec) * 1'000'000'000u + t.tv_nsec;
      rel = timeout > cur ? timeout - cur : 0;
    }
    wait_ns = std::min(wait_ns, rel);
  }
  if (events == 0) {
    // The guest asked to sleep this long; the wait is its own bound.
    timespec d{static_cast<time_t>(wait_ns / 1'000'000'000u), static_cast<long>(wait_ns % 1'000'000'000u)};
    while (::nanosleep(&d, &d) != 0 && errno == EINTR) {
    }
    for (std::uint32_t i = 0; i < n; ++i) {
      const std::uint32_t s = in + 48 * i;
      const std::uint32_t e = out + 32 * events++;
      m.store<std::uint64_t>(e, m.load<std::uint64_t>(s, "userdata"));
      m.store<std::uint16_t>(e + 8, 0);
      m.store<std::uint8_t>(e + 10, 0);
    }
  }
  m.store<std::uint32_t>(ne, events);
  return kSuccess;
}

}  // namespace

std::vector<Import> preview1_imports() {
  return {
      def<"wasi_snapshot_preview1", "args_get", &args_get>(),
      def<"wasi_snapshot_preview1", "args_sizes_get", &args_sizes_get>(),
      def<"wasi_snapshot_preview1", "environ_get", &environ_get>(),
      def<"wasi_snapshot_preview1", "environ_sizes_get", &environ_sizes_get>(),
      def<"wasi_snapshot_preview1", "clock_res_get", &clock_res_get>(),
      def<"wasi_snapshot_preview1", "clock_time_get", &clock_time_get>(),
      def<"wasi_snapshot_preview1", "random_get", &random_get>(),
      def<"wasi_snapshot_preview1", "fd_write", &fd_write>(),
      def<"wasi_snapshot_preview1", "fd_read", &fd_read>(),
      def<"wasi_snapshot_preview1", "fd_fdstat_get", &fd_fdstat_get>(),
      def<"wasi_snapshot_preview1", "fd_seek", &fd_seek>(),
      def<"wasi_snapshot_preview1", "fd_close", &fd_close>(),
      def<"wasi_snapshot_preview1", "fd_prestat_get", &fd_prestat_get>(),
      def<"wasi_snapshot_preview1", "fd_prestat_dir_name", &fd_prestat_dir_name>(),
      def<"wasi_snapshot_preview1", "proc_exit", &proc_exit>(),
      def<"wasi_snapshot_preview1", "sched_yield", &sched_yield>(),
      def<"wasi_snapshot_preview1", "poll_oneoff", &poll_oneoff>(),
  };
}

}  // namespace wasi_ktls::wasi
