// The soak's wire format: each message is a 16-byte header (magic, length, seed) and `length`
// payload bytes that are a pure function of (seed, offset). The receiver regenerates every
// byte instead of trusting a checksum, so a corrupted, lost, duplicated or reordered byte is
// found where it happened, and neither side ever holds a whole message (up to 1 MiB each, on
// 512 connections) in memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <span>

namespace wasi_ktls::soak {

inline constexpr std::size_t kHeaderSize = 16;

struct MessageHeader {
  std::uint32_t length = 0;
  std::uint64_t seed = 0;
};

void encode_header(const MessageHeader& h, std::span<std::uint8_t, kHeaderSize> out);
// nullopt when the magic is wrong: the stream is out of step or corrupted.
std::optional<MessageHeader> decode_header(std::span<const std::uint8_t, kHeaderSize> in);

// Payload bytes [offset, offset + out.size()) of the message with `seed`.
void fill_payload(std::uint64_t seed, std::uint64_t offset, std::span<std::uint8_t> out);
// How many bytes of `got` differ from payload bytes [offset, offset + got.size()).
std::size_t count_mismatches(std::uint64_t seed, std::uint64_t offset,
                             std::span<const std::uint8_t> got);

// A length from 1 to `max`, log-uniform: as many 1-100 B messages as 100 KiB-1 MiB ones, so
// record boundaries, partial records and multi-record writes all occur often.
std::uint32_t pick_length(std::mt19937_64& rng, std::uint32_t max);

// The reply to a request with `seed` carries this seed: a different byte stream of the same
// length, so an echo that only reflects bytes would not pass.
inline std::uint64_t reply_seed(std::uint64_t seed) { return ~seed * 0x9E3779B97F4A7C15ull; }

}  // namespace wasi_ktls::soak
