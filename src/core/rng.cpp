#include "core/rng.h"

#include <cmath>
#include <numbers>

#include "core/check.h"
#include "core/portable_math.h"
#include "core/thread_pool.h"

namespace tern {
namespace {

uint64_t splitmix64(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

uint64_t rotl(uint64_t x, int k) {
  return (x << k) | (x >> (64 - k));
}

}  // namespace

// portable_log and portable_sincos, not libm's: the seeded initial weights must
// have the same bits on every platform.
NormalPair box_muller(double u1, double u2) {
  const double radius = std::sqrt(-2.0 * portable_log(u1));
  const SinCos angle = portable_sincos(2.0 * std::numbers::pi * u2);
  return {radius * angle.cos, radius * angle.sin};
}

void box_muller_pairs(double* slots, int64_t pairs) {
  parallel_for(
      pairs,
      [&](int64_t begin, int64_t end) {
        for (int64_t k = begin; k < end; ++k) {
          const NormalPair pair = box_muller(slots[2 * k], slots[2 * k + 1]);
          slots[2 * k] = pair.first;
          slots[2 * k + 1] = pair.second;
        }
      },
      1024);
}

Rng::Rng(uint64_t seed) {
  uint64_t state = seed;
  for (uint64_t& word : s_) word = splitmix64(state);
}

uint64_t Rng::next_u64() {
  const uint64_t result = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return result;
}

double Rng::uniform() {
  return static_cast<double>(next_u64() >> 11) * 0x1.0p-53;
}

uint64_t Rng::below(uint64_t bound) {
  TERN_CHECK(bound > 0);
  // Reject the top partial range so every residue is equally likely.
  const uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
  uint64_t x;
  do {
    x = next_u64();
  } while (x >= limit);
  return x % bound;
}

double Rng::normal() {
  if (has_spare_) {
    has_spare_ = false;
    return spare_;
  }
  double u1;
  do {
    u1 = uniform();
  } while (u1 <= 0.0);
  const NormalPair pair = box_muller(u1, uniform());
  spare_ = pair.second;
  has_spare_ = true;
  return pair.first;
}

void Rng::normals(std::span<double> out) {
  normals(out, box_muller_pairs);
}

void Rng::normals(std::span<double> out, BoxMullerPairsFn transform) {
  size_t first = 0;
  if (has_spare_ && !out.empty()) {
    out[0] = spare_;
    has_spare_ = false;
    first = 1;
  }
  // Whole pairs: each pair's slots hold its two uniforms, drawn in normal()'s
  // order, until the transform replaces them with its two normals.
  const auto pairs = static_cast<int64_t>((out.size() - first) / 2);
  double* slot = out.data() + first;
  for (int64_t k = 0; k < pairs; ++k) {
    double u1;
    do {
      u1 = uniform();
    } while (u1 <= 0.0);
    slot[2 * k] = u1;
    slot[2 * k + 1] = uniform();
  }
  transform(slot, pairs);
  // An odd count ends with half a pair, whose other half becomes the spare.
  if ((out.size() - first) % 2 == 1) out.back() = normal();
}

Rng::State Rng::state() const {
  return {{s_[0], s_[1], s_[2], s_[3]}, has_spare_, spare_};
}

void Rng::restore(const State& state) {
  for (int i = 0; i < 4; ++i) s_[i] = state.words[i];
  has_spare_ = state.has_spare;
  spare_ = state.spare;
}

uint64_t derive_seed(uint64_t base_seed, std::string_view stream_name) {
  // FNV-1a over the name, mixed with the base seed through splitmix64.
  uint64_t hash = 0xcbf29ce484222325ull;
  for (unsigned char c : stream_name) {
    hash ^= c;
    hash *= 0x100000001b3ull;
  }
  uint64_t state = base_seed ^ hash;
  return splitmix64(state);
}

}  // namespace tern
