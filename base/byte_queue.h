// Bytes appended at the back and consumed from the front, in one contiguous buffer whose
// free space a reader can fill directly (recv straight into it: no staging copy).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <span>

namespace wasi_ktls {

class ByteQueue {
 public:
  std::size_t size() const { return end_ - begin_; }
  bool empty() const { return begin_ == end_; }
  std::span<const std::uint8_t> readable() const { return {data_.get() + begin_, size()}; }

  void consume(std::size_t n) {
    begin_ += n < size() ? n : size();
    if (begin_ == end_) begin_ = end_ = 0;
  }

  // At least `n` writable bytes after the data (uninitialized); then commit() what was written.
  std::span<std::uint8_t> space(std::size_t n) {
    if (capacity_ - end_ < n) make_room(n);
    return {data_.get() + end_, n};
  }
  void commit(std::size_t n) { end_ += n; }

  void append(std::span<const std::uint8_t> bytes) {
    if (bytes.empty()) return;
    std::memcpy(space(bytes.size()).data(), bytes.data(), bytes.size());
    commit(bytes.size());
  }

 private:
  void make_room(std::size_t n) {
    const std::size_t live = size();
    if (capacity_ - live >= n && live <= capacity_ / 2) {  // compacting is enough
      std::memmove(data_.get(), data_.get() + begin_, live);
    } else {
      std::size_t cap = capacity_ == 0 ? 16384 : capacity_;
      while (cap - live < n) cap *= 2;
      std::unique_ptr<std::uint8_t[]> bigger(new std::uint8_t[cap]);  // uninitialized
      if (live > 0) std::memcpy(bigger.get(), data_.get() + begin_, live);
      data_ = std::move(bigger);
      capacity_ = cap;
    }
    begin_ = 0;
    end_ = live;
  }

  std::unique_ptr<std::uint8_t[]> data_;
  std::size_t capacity_ = 0;
  std::size_t begin_ = 0;
  std::size_t end_ = 0;
};

}  // namespace wasi_ktls
