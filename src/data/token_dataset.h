// TokenDataset: a training and a validation token stream with batch sampling
// for next-token prediction.
//
// Each stream is a TokenStream: tokens (owned, or borrowed from a memory-mapped
// shard file) and an optional loss mask saying which tokens are prediction
// targets (chat data trains only on assistant tokens). Training batches are
// windows at seeded random offsets in the training stream; validation batches
// are fixed, evenly spaced windows of the validation stream, so every evaluation
// sees the same tokens. A window of seq+1 tokens w gives tokens = w[0, seq) and
// labels = w[1, seq], with a label of −1 (ignored) where the mask says the
// token is not a target.
// Immutable after construction: concurrent reads are safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "core/rng.h"
#include "core/status.h"

namespace tern {

class TokenStream {
 public:
  TokenStream() = default;
  static TokenStream owned(std::vector<int32_t> tokens, std::vector<uint8_t> mask = {});
  // `count` little-endian tokens of `width` bytes (2 or 4) at `data`, and, when
  // `mask` is not null, `count` mask bytes (non-zero = target). `owner` keeps
  // the memory alive (e.g. a MappedFile).
  static TokenStream borrowed(std::shared_ptr<const void> owner, const uint8_t* data, int width,
                              int64_t count, const uint8_t* mask);

  int64_t size() const { return count_; }
  int32_t token(int64_t i) const;
  bool has_mask() const { return mask_ != nullptr; }
  bool is_target(int64_t i) const { return mask_ == nullptr || mask_[i] != 0; }
  // Label of position i as a prediction target: token(i), or −1 if masked out.
  int32_t label(int64_t i) const { return is_target(i) ? token(i) : -1; }

 private:
  std::shared_ptr<const void> owner_;
  const uint8_t* data_ = nullptr;
  const uint8_t* mask_ = nullptr;
  int width_ = 4;
  int64_t count_ = 0;
};

class TokenDataset {
 public:
  // Byte-level tokens (vocab 256): token = byte value. The last val_fraction
  // of the stream is validation.
  static Result<TokenDataset> from_bytes(std::string_view text, double val_fraction);
  static Result<TokenDataset> from_tokens(std::vector<int32_t> tokens, int64_t vocab,
                                          double val_fraction);
  // Two separate streams (e.g. prepared shards); every token is checked < vocab.
  static Result<TokenDataset> from_streams(TokenStream train, TokenStream val, int64_t vocab);

  int64_t vocab() const { return vocab_; }
  int64_t train_tokens() const { return train_.size(); }
  int64_t val_tokens() const { return val_.size(); }
  const TokenStream& train() const { return train_; }
  const TokenStream& val() const { return val_; }

  // Checks that both splits hold at least one window of seq+1 tokens.
  Status check_window(int64_t seq) const;

  // tokens/labels [batch, seq]; windows drawn with rng from the training split.
  void sample_train(Rng& rng, int64_t batch, int64_t seq, std::span<int32_t> tokens,
                    std::span<int32_t> labels) const;
  // The index-th of `count` fixed validation batches.
  void val_batch(int64_t index, int64_t count, int64_t batch, int64_t seq,
                 std::span<int32_t> tokens, std::span<int32_t> labels) const;

 private:
  TokenStream train_;
  TokenStream val_;
  int64_t vocab_ = 0;
};

// Window placement, shared with readers that fetch only the windows they need
// (the swarm's remote batches). The next training window's start: uniform in
// [0, train_tokens − seq), one rng.below() draw; sample_train draws `batch`
// of these in order.
int64_t draw_train_window(Rng& rng, int64_t train_tokens, int64_t seq);
// The start of fixed validation window w of `windows` (evenly spaced over the
// split; val_batch's window index * batch + b).
int64_t val_window_start(int64_t w, int64_t windows, int64_t val_tokens, int64_t seq);

// tokens = s[start, start+seq), labels = s.label(start+1 …): one window.
void copy_window(const TokenStream& s, int64_t start, int64_t seq, int32_t* tokens,
                 int32_t* labels);

}  // namespace tern
