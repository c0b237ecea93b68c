// Fixtures shared by the swarm tests that run real members: a scratch
// directory, deterministic identities and random token shards.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>

#include "core/rng.h"
#include "data/shards.h"
#include "net/identity.h"

namespace tern::swarm::testing {

// A fresh directory under /tmp, removed with everything in it at scope exit.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    char pattern[] = "/tmp/tern_swarm_XXXXXX";
    path = ::mkdtemp(pattern);
  }
  ~TempDir() { std::filesystem::remove_all(path); }
};

// The identity whose 32-byte seed is `n` repeated: the same keys every run.
inline net::Identity seeded_identity(uint8_t n) {
  std::array<uint8_t, 32> seed{};
  seed.fill(n);
  return net::Identity::from_seed(seed);
}

// Shards of vocabulary 512 with uniformly random tokens below `token_range`:
// `train_docs` and `val_docs` documents of 500 tokens each.
inline void write_random_shards(const std::string& dir, int32_t token_range, size_t train_docs,
                                size_t val_docs, uint64_t seed) {
  ShardContents c;
  c.vocab = 512;
  c.tokenizer_hash = std::string(64, 'a');
  Rng rng(seed);
  auto fill = [&](ShardSplit& split, size_t docs) {
    for (size_t d = 0; d < docs; ++d) {
      split.document_starts.push_back(split.tokens.size());
      for (size_t i = 0; i < 500; ++i) {
        split.tokens.push_back(static_cast<int32_t>(rng.below(static_cast<uint64_t>(token_range))));
      }
    }
  };
  fill(c.train, train_docs);
  fill(c.val, val_docs);
  ASSERT_TRUE(write_shard_set(dir, c).ok());
}

}  // namespace tern::swarm::testing
