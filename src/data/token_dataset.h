// TokenDataset: an in-memory token stream with a deterministic train/validation
// split and batch sampling for next-token prediction.
//
// The last `val_fraction` of the stream is validation. Training batches are
// windows at seeded random offsets in the training part; validation batches are
// fixed, evenly spaced windows, so every evaluation sees the same tokens. Each
// window of seq+1 tokens gives tokens = w[0, seq) and labels = w[1, seq].
// Immutable after construction: concurrent reads are safe.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "core/status.h"

namespace tern {

class TokenDataset {
 public:
  // Byte-level tokens (vocab 256): token = byte value.
  static Result<TokenDataset> from_bytes(std::string_view text, double val_fraction);
  static Result<TokenDataset> from_tokens(std::vector<int32_t> tokens, int64_t vocab,
                                          double val_fraction);

  int64_t vocab() const { return vocab_; }
  int64_t train_tokens() const { return split_; }
  int64_t val_tokens() const { return static_cast<int64_t>(tokens_.size()) - split_; }

  // Checks that both splits hold at least one window of seq+1 tokens.
  Status check_window(int64_t seq) const;

  // tokens/labels [batch, seq]; windows drawn with rng from the training split.
  void sample_train(Rng& rng, int64_t batch, int64_t seq, std::span<int32_t> tokens,
                    std::span<int32_t> labels) const;
  // The index-th of `count` fixed validation batches.
  void val_batch(int64_t index, int64_t count, int64_t batch, int64_t seq,
                 std::span<int32_t> tokens, std::span<int32_t> labels) const;

 private:
  void copy_window(int64_t start, int64_t seq, int32_t* tokens, int32_t* labels) const;

  std::vector<int32_t> tokens_;
  int64_t split_ = 0;
  int64_t vocab_ = 0;
};

}  // namespace tern
