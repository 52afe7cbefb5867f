#include "tests/support/process_memory.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <string_view>

#include "base/unique_fd.h"

namespace wasi_ktls::test {
namespace {

constexpr std::size_t kMaxNeedle = 64 * 1024;
constexpr std::size_t kChunk = std::size_t{1} << 20;  // read and searched at a time
constexpr std::uint64_t kMaxMapping = std::uint64_t{4} << 30;

// The scan's own memory (read buffer, then the text of /proc/self/maps): mapped on its own,
// never from malloc (see the header), and left out of the scan by its address range.
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { release(); }

  // At least n bytes; what was in it before is lost.
  Status reserve(std::size_t n) {
    if (n <= size_) return {};
    release();
    void* p = ::mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return errno_error(errno, "mmap for the memory scan");
    base_ = static_cast<std::uint8_t*>(p);
    size_ = n;
    return {};
  }
  std::uint8_t* data() const { return base_; }
  std::uint64_t begin() const { return reinterpret_cast<std::uintptr_t>(base_); }
  std::uint64_t end() const { return begin() + size_; }

 private:
  // Unmapped memory is gone from the process, so the copies read into it need no wiping.
  void release() {
    if (base_ != nullptr) ::munmap(base_, size_);
    base_ = nullptr;
    size_ = 0;
  }
  std::uint8_t* base_ = nullptr;
  std::size_t size_ = 0;
};

// All of /proc/self/maps, read before scanning so that the scan's own reads cannot change it
// under the parser; it lives in `s` after the read buffer.
Result<std::string_view> read_maps(Scratch& s) {
  for (std::size_t cap = std::size_t{256} << 10;; cap *= 2) {
    if (auto r = s.reserve(kChunk + cap); !r) return r.error();
    UniqueFd fd(::open("/proc/self/maps", O_RDONLY | O_CLOEXEC));
    if (!fd) return errno_error(errno, "open /proc/self/maps");
    char* text = reinterpret_cast<char*>(s.data() + kChunk);
    std::size_t len = 0;
    while (len < cap) {
      ssize_t n = ::read(fd.get(), text + len, cap - len);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return errno_error(errno, "read /proc/self/maps");
      if (n == 0) return std::string_view(text, len);
      len += static_cast<std::size_t>(n);
    }
  }
}

struct Mapping {
  std::uint64_t begin = 0, end = 0;
  bool private_writable = false;  // and readable
};

// "begin-end perms offset dev inode path", addresses in hex.
bool parse_mapping(std::string_view line, Mapping& m) {
  const char* p = line.data();
  const char* end = p + line.size();
  auto r = std::from_chars(p, end, m.begin, 16);
  if (r.ec != std::errc() || r.ptr == end || *r.ptr != '-') return false;
  r = std::from_chars(r.ptr + 1, end, m.end, 16);
  if (r.ec != std::errc() || end - r.ptr < 5 || r.ptr[0] != ' ') return false;
  const char* perms = r.ptr + 1;
  m.private_writable = perms[0] == 'r' && perms[1] == 'w' && perms[3] == 'p';
  return m.begin < m.end;
}

// Compares haystack bytes XOR mask with the masked needle, so that the plain needle never
// exists in memory; only its first byte is kept plain, for memchr.
class Matcher {
 public:
  Matcher(std::span<const std::uint8_t> masked, std::uint8_t mask)
      : masked_(masked), mask_(mask), first_(static_cast<std::uint8_t>(masked[0] ^ mask)) {}
  std::size_t size() const { return masked_.size(); }

  bool in(const std::uint8_t* hay, std::size_t len) const {
    if (len < masked_.size()) return false;
    const std::uint8_t* p = hay;
    const std::uint8_t* last = hay + (len - masked_.size());
    while (p <= last) {
      p = static_cast<const std::uint8_t*>(
          std::memchr(p, first_, static_cast<std::size_t>(last - p) + 1));
      if (p == nullptr) return false;
      std::size_t i = 1;
      while (i < masked_.size() && static_cast<std::uint8_t>(p[i] ^ mask_) == masked_[i]) ++i;
      if (i == masked_.size()) return true;
      ++p;
    }
    return false;
  }

 private:
  std::span<const std::uint8_t> masked_;
  std::uint8_t mask_;
  std::uint8_t first_;
};

class Scanner {
 public:
  // `pagemap`: /proc/self/pagemap, or -1 to read every page.
  Scanner(int mem, int pagemap, const Matcher& m, const Scratch& s, MemoryScanStats& st)
      : mem_(mem),
        pagemap_(pagemap),
        m_(m),
        s_(s),
        st_(st),
        page_(static_cast<std::uint64_t>(::sysconf(_SC_PAGESIZE))) {}

  // Pages neither present nor swapped out were never written, so they hold nothing; reading
  // them would only map the zero page in, a waste on big reservations (256 MiB of ASan's
  // shadow, thread stacks).
  bool mapping(std::uint64_t b, std::uint64_t e) {
    if (pagemap_ < 0) return outside_scratch(b, e);
    std::uint64_t entries[512];
    std::uint64_t run = 0;  // start of the pages in use before `page`, if in_run
    bool in_run = false;
    for (std::uint64_t page = b; page < e;) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(512, (e - page) / page_));
      ssize_t got = ::pread(pagemap_, entries, want * sizeof entries[0],
                            static_cast<off_t>(page / page_ * sizeof entries[0]));
      if (got < 0 && errno == EINTR) continue;
      if (got < static_cast<ssize_t>(sizeof entries[0]))  // no answer: read them all
        return outside_scratch(in_run ? run : page, e);
      for (std::size_t i = 0; i < static_cast<std::size_t>(got) / sizeof entries[0]; ++i) {
        bool used = (entries[i] >> 62) != 0;  // bit 63: present, bit 62: swapped out
        if (used && !in_run) run = page;
        if (!used && in_run && outside_scratch(run, page)) return true;
        if (!used) st_.untouched_bytes += page_;
        in_run = used;
        page += page_;
      }
    }
    return in_run && outside_scratch(run, e);
  }

 private:
  // [b, e) less the scratch memory.
  bool outside_scratch(std::uint64_t b, std::uint64_t e) {
    if (s_.end() <= b || s_.begin() >= e) return range(b, e);
    return (b < s_.begin() && range(b, s_.begin())) || (s_.end() < e && range(s_.end(), e));
  }

  // Chunk by chunk, each overlapping the one before by the needle's length less one, so that
  // a needle across a chunk boundary is found.
  bool range(std::uint64_t b, std::uint64_t e) {
    std::uint64_t pos = b;
    while (pos < e) {
      std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(kChunk, e - pos));
      ssize_t got = ::pread(mem_, s_.data(), want, static_cast<off_t>(pos));
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) {
        std::uint64_t next = std::min(e, (pos / page_ + 1) * page_);
        st_.unreadable_bytes += next - pos;
        pos = next;
        continue;
      }
      auto n = static_cast<std::size_t>(got);
      st_.bytes += n;
      if (m_.in(s_.data(), n)) return true;
      pos += n;
      if (pos < e && n >= m_.size()) pos -= m_.size() - 1;
    }
    return false;
  }

  int mem_;
  int pagemap_;
  const Matcher& m_;
  const Scratch& s_;
  MemoryScanStats& st_;
  std::uint64_t page_;
};

}  // namespace

std::vector<std::uint8_t> masked(std::span<const std::uint8_t> plain, std::uint8_t mask) {
  std::vector<std::uint8_t> out(plain.size());
  for (std::size_t i = 0; i < plain.size(); ++i)
    out[i] = static_cast<std::uint8_t>(plain[i] ^ mask);
  return out;
}

Result<bool> process_memory_contains_masked(std::span<const std::uint8_t> masked_needle,
                                            std::uint8_t mask, MemoryScanStats* stats) {
  if (masked_needle.empty() || masked_needle.size() > kMaxNeedle)
    return make_error("memory scan: the needle must be 1..{} bytes, not {}", kMaxNeedle,
                      masked_needle.size());
  Scratch scratch;
  auto maps = read_maps(scratch);
  if (!maps) return maps.error();
  UniqueFd mem(::open("/proc/self/mem", O_RDONLY | O_CLOEXEC));
  if (!mem) return errno_error(errno, "open /proc/self/mem");

  UniqueFd pagemap(::open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC));  // optional

  MemoryScanStats st;
  Matcher matcher(masked_needle, mask);
  Scanner scanner(mem.get(), pagemap.get(), matcher, scratch, st);
  bool found = false;
  std::string_view rest = *maps;
  while (!rest.empty() && !found) {
    std::size_t nl = rest.find('\n');
    std::string_view line = rest.substr(0, nl);
    rest.remove_prefix(nl == std::string_view::npos ? rest.size() : nl + 1);
    Mapping m;
    if (!parse_mapping(line, m) || !m.private_writable) continue;
    if (m.end - m.begin > kMaxMapping) {
      ++st.skipped_mappings;
      continue;
    }
    ++st.mappings;
    found = scanner.mapping(m.begin, m.end);
  }
  if (stats != nullptr) *stats = st;
  return found;
}

Result<bool> process_memory_contains(std::span<const std::uint8_t> needle,
                                     MemoryScanStats* stats) {
  return process_memory_contains_masked(needle, 0, stats);
}

}  // namespace wasi_ktls::test
