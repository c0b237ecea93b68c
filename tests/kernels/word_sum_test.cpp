// cpu::sum_words (kernels/cpu/word_sum.h) on every attainable target against a
// word-at-a-time sum: every length around the vector and two-stream block sizes,
// every start alignment, and sums that wrap past 2^64.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu/dispatch.h"
#include "kernels/cpu/word_sum.h"

namespace tern {
namespace {

uint64_t sum_words_one_at_a_time(const uint8_t* bytes, int64_t n) {
  uint64_t sum = 0;
  for (int64_t at = 0; at < n; at += 8) {
    uint64_t word = 0;
    std::memcpy(&word, bytes + at, static_cast<size_t>(std::min<int64_t>(8, n - at)));
    sum += word;
  }
  return sum;
}

std::vector<uint8_t> random_bytes(int64_t n, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint8_t> bytes(static_cast<size_t>(n));
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng.next_u64() >> 56);
  return bytes;
}

TEST(WordSumTest, EqualsTheWordSumOnEveryTargetLengthAndAlignment) {
  const std::vector<uint8_t> bytes = random_bytes(1200, 5);
  for (const int64_t target : cpu::attainable_simd_targets()) {
    SCOPED_TRACE(cpu::simd_target_name(target));
    cpu::ScopedSimdTarget pin(target);
    for (int64_t start = 0; start < 8; ++start) {
      for (int64_t n = 0; n <= 1100; ++n) {
        const uint8_t* p = bytes.data() + start;
        ASSERT_EQ(cpu::sum_words(p, n), sum_words_one_at_a_time(p, n))
            << "start " << start << ", " << n << " bytes";
      }
    }
  }
}

TEST(WordSumTest, LargeBuffersAndSumsThatWrap) {
  // All-ones words wrap the sum on every addition; the random buffer is odd-sized
  // and large enough that both streams run many blocks.
  const std::vector<uint8_t> ones(static_cast<size_t>(1 << 16) + 13, 0xFF);
  const std::vector<uint8_t> noise = random_bytes((1 << 20) + 4099, 9);
  for (const int64_t target : cpu::attainable_simd_targets()) {
    SCOPED_TRACE(cpu::simd_target_name(target));
    cpu::ScopedSimdTarget pin(target);
    for (const auto* buffer : {&ones, &noise}) {
      const auto n = static_cast<int64_t>(buffer->size());
      EXPECT_EQ(cpu::sum_words(buffer->data(), n), sum_words_one_at_a_time(buffer->data(), n));
    }
  }
}

}  // namespace
}  // namespace tern
