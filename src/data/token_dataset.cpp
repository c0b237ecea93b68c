#include "data/token_dataset.h"

#include <cmath>
#include <string>

namespace tern {

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
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i] < 0 || tokens[i] >= vocab) {
      return Status::Error("dataset: token " + std::to_string(tokens[i]) + " at position " +
                           std::to_string(i) + " outside vocab of " + std::to_string(vocab));
    }
  }
  TokenDataset d;
  const auto n = static_cast<int64_t>(tokens.size());
  d.split_ = n - static_cast<int64_t>(std::ceil(static_cast<double>(n) * val_fraction));
  d.tokens_ = std::move(tokens);
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

void TokenDataset::copy_window(int64_t start, int64_t seq, int32_t* tokens, int32_t* labels) const {
  TERN_CHECK(start >= 0 && start + seq + 1 <= static_cast<int64_t>(tokens_.size()));
  for (int64_t t = 0; t < seq; ++t) {
    tokens[t] = tokens_[static_cast<size_t>(start + t)];
    labels[t] = tokens_[static_cast<size_t>(start + t + 1)];
  }
}

void TokenDataset::sample_train(Rng& rng, int64_t batch, int64_t seq, std::span<int32_t> tokens,
                                std::span<int32_t> labels) const {
  TERN_CHECK(check_window(seq).ok());
  TERN_CHECK(static_cast<int64_t>(tokens.size()) == batch * seq && labels.size() == tokens.size());
  const auto starts = static_cast<uint64_t>(train_tokens() - seq);  // window must end in train
  for (int64_t b = 0; b < batch; ++b) {
    const auto start = static_cast<int64_t>(rng.below(starts));
    copy_window(start, seq, tokens.data() + b * seq, labels.data() + b * seq);
  }
}

void TokenDataset::val_batch(int64_t index, int64_t count, int64_t batch, int64_t seq,
                             std::span<int32_t> tokens, std::span<int32_t> labels) const {
  TERN_CHECK(check_window(seq).ok());
  TERN_CHECK(index >= 0 && index < count);
  TERN_CHECK(static_cast<int64_t>(tokens.size()) == batch * seq && labels.size() == tokens.size());
  const int64_t windows = count * batch;
  const int64_t last_start = val_tokens() - seq - 1;
  for (int64_t b = 0; b < batch; ++b) {
    const int64_t w = index * batch + b;
    const int64_t offset = windows == 1 ? 0 : last_start * w / (windows - 1);
    copy_window(split_ + offset, seq, tokens.data() + b * seq, labels.data() + b * seq);
  }
}

}  // namespace tern
