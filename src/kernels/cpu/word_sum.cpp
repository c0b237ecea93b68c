// Compiled once per SIMD target. The sum is associative modulo 2^64, so lane
// order, accumulator count and stream split do not change the result.
#include "kernels/cpu/word_sum.h"

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/word_sum.cpp"
#include <hwy/foreach_target.h>  // IWYU pragma: keep
// Must come after foreach_target.h.
#include <hwy/highway.h>

#include <cstring>

HWY_BEFORE_NAMESPACE();
namespace tern::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// Σ of the whole words of bytes[0, words · 8).
HWY_INLINE uint64_t SumWholeWords(const uint8_t* bytes, int64_t words) {
  uint64_t sum = 0;
  for (int64_t i = 0; i < words; ++i) {
    uint64_t word;
    std::memcpy(&word, bytes + 8 * i, sizeof(word));
    sum += word;
  }
  return sum;
}

uint64_t SumWords(const uint8_t* bytes, int64_t n) {
  uint64_t sum = 0;
  int64_t done = 0;           // bytes summed so far, a multiple of 8
#if HWY_TARGET != HWY_SCALAR  // one-lane vectors would only repeat the word loop
  const hn::ScalableTag<uint64_t> d64;
  const hn::Repartition<uint8_t, decltype(d64)> d8;
  const int64_t step = static_cast<int64_t>(hn::Lanes(d8));  // bytes per vector
  // Two streams of whole 2-vector blocks, then the rest one word at a time.
  const int64_t block = 2 * step;
  const int64_t blocks_per_stream = n / (2 * block);
  const uint8_t* first = bytes;
  const uint8_t* second = bytes + blocks_per_stream * block;
  auto a0 = hn::Zero(d64), a1 = a0, b0 = a0, b1 = a0;
  for (int64_t k = 0; k < blocks_per_stream; ++k) {
    const int64_t at = k * block;
    a0 = hn::Add(a0, hn::BitCast(d64, hn::LoadU(d8, first + at)));
    a1 = hn::Add(a1, hn::BitCast(d64, hn::LoadU(d8, first + at + step)));
    b0 = hn::Add(b0, hn::BitCast(d64, hn::LoadU(d8, second + at)));
    b1 = hn::Add(b1, hn::BitCast(d64, hn::LoadU(d8, second + at + step)));
  }
  // The lanes summed here, not by SumOfLanes: on AVX-512 that becomes GCC's
  // _mm512_reduce_add_epi64, which adds as signed 64-bit (UBSan: overflow).
  HWY_ALIGN uint64_t lanes[hn::MaxLanes(d64)];
  hn::Store(hn::Add(hn::Add(a0, a1), hn::Add(b0, b1)), d64, lanes);
  for (const uint64_t lane : lanes) sum += lane;
  done = 2 * blocks_per_stream * block;
#endif
  const int64_t rest_words = (n - done) / 8;
  sum += SumWholeWords(bytes + done, rest_words);
  const int64_t tail = n - done - 8 * rest_words;
  if (tail > 0) {
    uint64_t word = 0;
    std::memcpy(&word, bytes + n - tail, static_cast<size_t>(tail));
    sum += word;
  }
  return sum;
}

}  // namespace HWY_NAMESPACE
}  // namespace tern::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace tern::cpu {

HWY_EXPORT(SumWords);

uint64_t sum_words(const uint8_t* bytes, int64_t n) {
  return HWY_DYNAMIC_DISPATCH(SumWords)(bytes, n);
}

}  // namespace tern::cpu
#endif  // HWY_ONCE
