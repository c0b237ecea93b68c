#include "data/token_dataset.h"

#include <cmath>
#include <cstring>
#include <string>

namespace tern {

TokenStream TokenStream::owned(std::vector<int32_t> tokens, std::vector<uint8_t> mask) {
  TERN_CHECK(mask.empty() || mask.size() == tokens.size(), "mask and tokens differ in length");
  struct Storage {
    std::vector<int32_t> tokens;
    std::vector<uint8_t> mask;
  };
  auto storage = std::make_shared<Storage>(Storage{std::move(tokens), std::move(mask)});
  TokenStream s;
  s.data_ = reinterpret_cast<const uint8_t*>(storage->tokens.data());
  s.mask_ = storage->mask.empty() ? nullptr : storage->mask.data();
  s.width_ = 4;
  s.count_ = static_cast<int64_t>(storage->tokens.size());
  s.owner_ = std::move(storage);
  return s;
}

TokenStream TokenStream::borrowed(std::shared_ptr<const void> owner, const uint8_t* data, int width,
                                  int64_t count, const uint8_t* mask) {
  TERN_CHECK(width == 2 || width == 4, "token width must be 2 or 4 bytes");
  TERN_CHECK(count >= 0 && (count == 0 || data != nullptr));
  TokenStream s;
  s.owner_ = std::move(owner);
  s.data_ = data;
  s.mask_ = mask;
  s.width_ = width;
  s.count_ = count;
  return s;
}

int32_t TokenStream::token(int64_t i) const {
  TERN_CHECK(i >= 0 && i < count_);
  // Little-endian storage; tern's targets (x86-64, AArch64) are little-endian hosts.
  if (width_ == 2) {
    uint16_t v;
    std::memcpy(&v, data_ + 2 * i, 2);
    return v;
  }
  int32_t v;
  std::memcpy(&v, data_ + 4 * i, 4);
  return v;
}

Result<TokenDataset> TokenDataset::from_bytes(std::string_view text, double val_fraction) {
  std::vector<int32_t> tokens(text.size());
  for (size_t i = 0; i < text.size(); ++i) tokens[i] = static_cast<unsigned char>(text[i]);
  return from_tokens(std::move(tokens), 256, val_fraction);
}

Result<TokenDataset> TokenDataset::from_tokens(std::vector<int32_t> tokens, int64_t vocab,
                                               double val_fraction) {
  if (!(val_fraction > 0.0 && val_fraction < 1.0)) {
    return Status::Error("dataset: validation fraction " + std::to_string(val_fraction) +
                         " must be in (0, 1)");
  }
  const auto n = static_cast<int64_t>(tokens.size());
  const int64_t split = n - static_cast<int64_t>(std::ceil(static_cast<double>(n) * val_fraction));
  std::vector<int32_t> val(tokens.begin() + split, tokens.end());
  tokens.resize(static_cast<size_t>(split));
  return from_streams(TokenStream::owned(std::move(tokens)), TokenStream::owned(std::move(val)),
                      vocab);
}

Result<TokenDataset> TokenDataset::from_streams(TokenStream train, TokenStream val, int64_t vocab) {
  if (vocab < 1) return Status::Error("dataset: vocab " + std::to_string(vocab) + " must be ≥ 1");
  for (const auto& [s, split] : {std::pair{&train, "training"}, std::pair{&val, "validation"}}) {
    for (int64_t i = 0; i < s->size(); ++i) {
      const int32_t t = s->token(i);
      if (t < 0 || t >= vocab) {
        return Status::Error("dataset: token " + std::to_string(t) + " at position " +
                             std::to_string(i) + " of the " + split + " split outside vocab of " +
                             std::to_string(vocab));
      }
    }
  }
  TokenDataset d;
  d.train_ = std::move(train);
  d.val_ = std::move(val);
  d.vocab_ = vocab;
  return d;
}

Status TokenDataset::check_window(int64_t seq) const {
  if (seq <= 0 || train_tokens() < seq + 1 || val_tokens() < seq + 1) {
    return Status::Error("dataset: " + std::to_string(train_tokens()) + " training and " +
                         std::to_string(val_tokens()) +
                         " validation tokens cannot fill a window of " + std::to_string(seq + 1) +
                         " tokens (sequence " + std::to_string(seq) + " + 1)");
  }
  return Status::Ok();
}

int64_t draw_train_window(Rng& rng, int64_t train_tokens, int64_t seq) {
  // The window (seq + 1 tokens) must end inside the split.
  return static_cast<int64_t>(rng.below(static_cast<uint64_t>(train_tokens - seq)));
}

int64_t val_window_start(int64_t w, int64_t windows, int64_t val_tokens, int64_t seq) {
  const int64_t last_start = val_tokens - seq - 1;
  return windows == 1 ? 0 : last_start * w / (windows - 1);
}

void copy_window(const TokenStream& s, int64_t start, int64_t seq, int32_t* tokens,
                 int32_t* labels) {
  TERN_CHECK(start >= 0 && start + seq + 1 <= s.size());
  for (int64_t t = 0; t < seq; ++t) {
    tokens[t] = s.token(start + t);
    labels[t] = s.label(start + t + 1);
  }
}

void TokenDataset::sample_train(Rng& rng, int64_t batch, int64_t seq, std::span<int32_t> tokens,
                                std::span<int32_t> labels) const {
  TERN_CHECK(check_window(seq).ok());
  TERN_CHECK(static_cast<int64_t>(tokens.size()) == batch * seq && labels.size() == tokens.size());
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t start = draw_train_window(rng, train_tokens(), seq);
    copy_window(train_, start, seq, tokens.data() + b * seq, labels.data() + b * seq);
  }
}

void TokenDataset::val_batch(int64_t index, int64_t count, int64_t batch, int64_t seq,
                             std::span<int32_t> tokens, std::span<int32_t> labels) const {
  TERN_CHECK(check_window(seq).ok());
  TERN_CHECK(index >= 0 && index < count);
  TERN_CHECK(static_cast<int64_t>(tokens.size()) == batch * seq && labels.size() == tokens.size());
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t offset = val_window_start(index * batch + b, count * batch, val_tokens(), seq);
    copy_window(val_, offset, seq, tokens.data() + b * seq, labels.data() + b * seq);
  }
}

}  // namespace tern
