#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include <doctest/doctest.h>

#include <numeric>
#include <vector>

#include "base/byte_queue.h"

using wasi_ktls::ByteQueue;

TEST_CASE("bytes come out in order across appends, direct fills, compaction and growth") {
  ByteQueue q;
  std::vector<std::uint8_t> expect;
  std::uint8_t next = 0;
  std::size_t consumed = 0;
  for (int round = 0; round < 200; ++round) {
    std::size_t n = static_cast<std::size_t>((round * 7919) % 40000 + 1);
    if (round % 2 == 0) {
      std::vector<std::uint8_t> chunk(n);
      for (auto& b : chunk) b = next++;
      q.append(chunk);
      expect.insert(expect.end(), chunk.begin(), chunk.end());
    } else {
      auto space = q.space(n);
      REQUIRE(space.size() == n);
      std::size_t fill = n / 2 + 1;  // a short read commits less than it asked room for
      for (std::size_t i = 0; i < fill; ++i) space[i] = next++;
      q.commit(fill);
      expect.insert(expect.end(), space.begin(), space.begin() + static_cast<long>(fill));
    }
    std::size_t take = q.size() * (round % 3) / 3;
    auto r = q.readable();
    REQUIRE(r.size() == expect.size() - consumed);
    CHECK(std::equal(r.begin(), r.begin() + static_cast<long>(take),
                     expect.begin() + static_cast<long>(consumed)));
    q.consume(take);
    consumed += take;
  }
  auto r = q.readable();
  CHECK(std::equal(r.begin(), r.end(), expect.begin() + static_cast<long>(consumed)));
  q.consume(q.size() + 5);  // more than there is: empties, no underflow
  CHECK(q.empty());
  CHECK(q.readable().empty());
}
