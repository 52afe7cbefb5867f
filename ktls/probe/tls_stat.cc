#include "ktls/probe/tls_stat.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>

#include "base/unique_fd.h"

namespace wasi_ktls {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace

std::optional<std::uint64_t> TlsStat::get(std::string_view name) const {
  for (const auto& [n, v] : counters)
    if (n == name) return v;
  return std::nullopt;
}

Result<TlsStat> parse_tls_stat(std::string_view text) {
  TlsStat stat;
  int line_no = 0;
  while (!text.empty()) {
    ++line_no;
    std::size_t eol = text.find('\n');
    std::string_view line = trim(text.substr(0, eol));
    text.remove_prefix(eol == std::string_view::npos ? text.size() : eol + 1);
    if (line.empty()) continue;

    std::size_t gap = line.find_first_of(" \t");
    if (gap == std::string_view::npos)
      return make_error("tls_stat line {}: expected 'Name value', got '{}'", line_no, line);
    std::string_view name = line.substr(0, gap);
    std::string_view value = trim(line.substr(gap));
    std::uint64_t v = 0;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), v);
    if (ec != std::errc() || end != value.data() + value.size())
      return make_error("tls_stat line {}: '{}' is not a counter value", line_no, value);
    stat.counters.emplace_back(std::string(name), v);
  }
  return stat;
}

Result<TlsStat> read_tls_stat(const char* path) {
  // POSIX reads, so that a missing file reports a real ENOENT.
  UniqueFd fd(::open(path, O_RDONLY | O_CLOEXEC));
  if (!fd) return errno_error(errno, std::string("open ") + path);
  std::string text;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_error(errno, std::string("read ") + path);
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
  }
  auto stat = parse_tls_stat(text);
  if (!stat) return make_error("{}: {}", path, stat.error().message);
  return stat;
}

}  // namespace wasi_ktls
