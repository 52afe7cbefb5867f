#include "bench/soak/message.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace wasi_ktls::soak {
namespace {

constexpr std::uint32_t kMagic = 0x4B414F53;  // "SOAK" little-endian

std::uint64_t splitmix64(std::uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void put_le(std::uint8_t* p, std::uint64_t v, int n) {
  for (int i = 0; i < n; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get_le(const std::uint8_t* p, int n) {
  std::uint64_t v = 0;
  for (int i = 0; i < n; ++i) v |= static_cast<std::uint64_t>(p[i]) << (8 * i);
  return v;
}

// Payload byte i is byte (i % 8) of word i / 8, so bytes are made eight at a time.
// Calls f(word_index, first byte in word, bytes in word, out position) across the range.
template <class F>
void for_words(std::uint64_t offset, std::size_t len, F f) {
  std::size_t pos = 0;
  while (pos < len) {
    std::uint64_t i = offset + pos;
    std::size_t in_word = static_cast<std::size_t>(i & 7);
    std::size_t n = std::min<std::size_t>(8 - in_word, len - pos);
    f(i >> 3, in_word, n, pos);
    pos += n;
  }
}

}  // namespace

void encode_header(const MessageHeader& h, std::span<std::uint8_t, kHeaderSize> out) {
  put_le(out.data(), kMagic, 4);
  put_le(out.data() + 4, h.length, 4);
  put_le(out.data() + 8, h.seed, 8);
}

std::optional<MessageHeader> decode_header(std::span<const std::uint8_t, kHeaderSize> in) {
  if (get_le(in.data(), 4) != kMagic) return std::nullopt;
  return MessageHeader{static_cast<std::uint32_t>(get_le(in.data() + 4, 4)), get_le(in.data() + 8, 8)};
}

void fill_payload(std::uint64_t seed, std::uint64_t offset, std::span<std::uint8_t> out) {
  for_words(offset, out.size(), [&](std::uint64_t w, std::size_t first, std::size_t n, std::size_t pos) {
    std::uint64_t word = splitmix64(seed ^ w * 0xD6E8FEB86659FD93ull);
    for (std::size_t k = 0; k < n; ++k) out[pos + k] = static_cast<std::uint8_t>(word >> (8 * (first + k)));
  });
}

std::size_t count_mismatches(std::uint64_t seed, std::uint64_t offset,
                             std::span<const std::uint8_t> got) {
  std::size_t bad = 0;
  for_words(offset, got.size(), [&](std::uint64_t w, std::size_t first, std::size_t n, std::size_t pos) {
    std::uint64_t word = splitmix64(seed ^ w * 0xD6E8FEB86659FD93ull);
    for (std::size_t k = 0; k < n; ++k)
      bad += got[pos + k] != static_cast<std::uint8_t>(word >> (8 * (first + k)));
  });
  return bad;
}

std::uint32_t pick_length(std::mt19937_64& rng, std::uint32_t max) {
  std::uniform_real_distribution<double> u(0.0, std::log2(static_cast<double>(max) + 1));
  double v = std::exp2(u(rng));
  return std::clamp<std::uint32_t>(static_cast<std::uint32_t>(v), 1, max);
}

}  // namespace wasi_ktls::soak
