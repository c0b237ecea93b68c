// Shared fixtures for training tests: a one-block byte-level model small enough
// to train in milliseconds, and a repetitive corpus it can learn.
#pragma once

#include <string>

#include "data/token_dataset.h"
#include "model/config.h"

namespace tern::testing {

inline ModelConfig micro_config() {
  ModelConfig c;
  c.hidden = 16;
  c.layers = 1;
  c.heads = 2;
  c.kv_heads = 1;
  c.head_dim = 8;
  c.ffn = 24;
  c.vocab = 256;
  c.max_seq = 16;
  return c;
}

// `sentence` repeated 200 times, byte tokens, 10% validation.
inline TokenDataset repeated_corpus(const std::string& sentence) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += sentence;
  return TokenDataset::from_bytes(text, 0.1).value();
}

}  // namespace tern::testing
