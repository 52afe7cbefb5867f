// The soak's wire format (bench/soak/message.h): a receiver that regenerates the payload must
// find every changed byte, whatever chunks the stream arrives in.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "bench/soak/message.h"

#include <doctest/doctest.h>

#include <array>
#include <map>
#include <vector>

using namespace wasi_ktls::soak;

TEST_CASE("a header survives encoding, and a wrong magic is refused") {
  std::array<std::uint8_t, kHeaderSize> b{};
  encode_header({1u << 20, 0x0123456789ABCDEFull}, b);
  auto h = decode_header(b);
  REQUIRE(h);
  CHECK(h->length == 1u << 20);
  CHECK(h->seed == 0x0123456789ABCDEFull);
  b[0] ^= 1;
  CHECK_FALSE(decode_header(b));
}

TEST_CASE("the payload is the same however it is cut, and differs between seeds") {
  std::vector<std::uint8_t> whole(1000), pieces(1000), other(1000);
  fill_payload(7, 3, whole);
  // Cuts at odd offsets, across the 8-byte words the bytes are made from.
  std::size_t at = 0;
  for (std::size_t n : {1u, 2u, 5u, 8u, 13u, 971u}) {
    fill_payload(7, 3 + at, std::span(pieces).subspan(at, n));
    at += n;
  }
  CHECK(whole == pieces);
  CHECK(count_mismatches(7, 3, whole) == 0);
  fill_payload(8, 3, other);
  CHECK(count_mismatches(7, 3, other) > 900);
  CHECK(reply_seed(7) != 7);
}

TEST_CASE("every changed byte is counted, at any offset") {
  std::vector<std::uint8_t> b(4096);
  fill_payload(42, 12345, b);
  b[0] ^= 0x80;
  b[7] ^= 1;
  b[4095] = static_cast<std::uint8_t>(b[4095] + 1);
  CHECK(count_mismatches(42, 12345, b) == 3);
  CHECK(count_mismatches(42, 12346, std::span(b).subspan(1)) == 2);
}

TEST_CASE("lengths span 1 B to the maximum, about as many small as large") {
  std::mt19937_64 rng(1);
  std::map<int, int> by_decade;  // floor(log2(len) / 5): 1-31 B, 32 B-1 KiB, ..., 1 MiB
  std::uint32_t lo = ~0u, hi = 0;
  for (int i = 0; i < 20000; ++i) {
    std::uint32_t n = pick_length(rng, 1u << 20);
    lo = std::min(lo, n);
    hi = std::max(hi, n);
    int bits = 0;
    while ((n >> (bits + 1)) != 0) ++bits;
    ++by_decade[bits / 5];
  }
  CHECK(lo == 1);
  CHECK(hi > (1u << 19));
  CHECK(hi <= 1u << 20);
  for (int d = 0; d < 4; ++d) CHECK(by_decade[d] > 4000);
}
