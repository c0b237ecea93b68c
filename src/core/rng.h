// Rng: a small seeded generator (xoshiro256**, seeded through splitmix64).
//
// Used for parameter init, data sampling and dropout-like choices. Same seed,
// same sequence on every platform: no std:: distributions (their output is
// implementation-defined). One instance per thread; not synchronized.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

namespace tern {

class Rng {
 public:
  explicit Rng(uint64_t seed);

  uint64_t next_u64();
  // Uniform in [0, 1) with 53 random bits.
  double uniform();
  // Uniform integer in [0, bound); bound > 0. Unbiased (rejection sampling).
  uint64_t below(uint64_t bound);
  // Standard normal (Box-Muller in double precision, with core/portable_math.h
  // for log, sin and cos, so the same bits on every platform).
  double normal();
  // In place over `pairs` pairs of slots (u1, u2), each becoming
  // box_muller(u1, u2): the Box–Muller step of normals().
  using BoxMullerPairsFn = void (*)(double* slots, int64_t pairs);
  // The next out.size() standard normals: the same values, and the same state
  // afterwards, as that many calls of normal(). The uniforms are drawn in order
  // on the calling thread; `transform` turns them into normals (most of the
  // time). The default, tern::box_muller_pairs, splits the scalar work over the
  // default thread pool; RandomInitSource passes the SIMD cpu::box_muller_pairs,
  // which gives the same bits.
  void normals(std::span<double> out, BoxMullerPairsFn transform);
  void normals(std::span<double> out);

  // The complete generator state, for checkpoints: restoring it continues the
  // exact same sequence.
  struct State {
    uint64_t words[4];
    bool has_spare;
    double spare;
  };
  State state() const;
  void restore(const State& state);

 private:
  uint64_t s_[4];
  bool has_spare_ = false;
  double spare_ = 0.0;
};

// The two standard normals Box–Muller makes from u1 in (0, 1] and u2 in [0, 1):
// first = √(−2 ln u1)·cos 2πu2 (what Rng::normal returns), second = the same
// radius times sin 2πu2 (its spare). Thread-safe (no state).
struct NormalPair {
  double first;
  double second;
};
NormalPair box_muller(double u1, double u2);

// slots[2k], slots[2k + 1] = box_muller(slots[2k], slots[2k + 1]) for k < pairs,
// split over the default thread pool: the scalar reference of
// cpu::box_muller_pairs.
void box_muller_pairs(double* slots, int64_t pairs);

// Derives a seed for a named stream (e.g. one tensor's init) from a base seed,
// so results do not depend on the order in which streams are created.
uint64_t derive_seed(uint64_t base_seed, std::string_view stream_name);

}  // namespace tern
