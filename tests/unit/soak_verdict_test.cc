// The soak's flatness verdict (bench/soak/verdict.h): warm-up forgiven, a leak or a late burst
// not.
#define DOCTEST_CONFIG_IMPLEMENT_WITH_MAIN
#include "bench/soak/verdict.h"

#include <doctest/doctest.h>

using wasi_ktls::soak::judge_flat;

TEST_CASE("growth during the first half is warm-up; a steady second half is flat") {
  auto f = judge_flat({50, 80, 95, 100, 101, 100, 102, 101}, 0.05);
  CHECK(f.flat);
  CHECK(f.first == 50);
  CHECK(f.last == 101);
  CHECK(f.max == 102);
}

TEST_CASE("a steady leak is drift, even when each step is small") {
  CHECK_FALSE(judge_flat({100, 101, 102, 103, 104, 105, 106, 107, 108, 109}, 0.03).flat);
}

TEST_CASE("one late spike off the median fails") {
  CHECK_FALSE(judge_flat({100, 100, 100, 100, 100, 100, 130, 100}, 0.05).flat);
}

TEST_CASE("too few samples is no verdict of flatness") {
  auto f = judge_flat({100, 100, 100}, 0.05);
  CHECK_FALSE(f.flat);
  CHECK(f.why.find("only") != std::string::npos);
}

TEST_CASE("a small count gets an absolute band: a few units are no leak, a steady climb is") {
  CHECK_FALSE(judge_flat({76, 76, 76, 76, 72, 76, 76, 76}, 0.05).flat);
  CHECK(judge_flat({76, 76, 76, 76, 72, 76, 76, 76}, 0.05, 8).flat);
  CHECK_FALSE(judge_flat({76, 79, 82, 85, 88, 91, 94, 97, 100, 103}, 0.05, 8).flat);
}
