#include "ktls/record/record_limit.h"

#include <algorithm>

namespace wasi_ktls {

std::uint64_t default_record_limit(TlsVersion, Cipher c) {
  if (c == Cipher::chacha20_poly1305) return std::uint64_t{1} << 62;
  return 23'726'566;  // floor(2^24.5)
}

std::size_t RecordBudget::sendable_bytes(std::size_t want) const {
  if (used_ + 1 >= limit_) return 0;  // the last record is reserved
  const std::uint64_t records = limit_ - 1 - used_;
  if (records >= records_for_bytes(want)) return want;
  return static_cast<std::size_t>(records * kMaxRecordPlaintext);
}

}  // namespace wasi_ktls
