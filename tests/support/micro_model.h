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

// A small ternary BitNet block: hidden 32, 4 query heads over 2 kv heads of
// width 8, ffn 48; ternary, ReLU², sub-norms, neox RoPE, tied head (defaults).
inline ModelConfig small_ternary_config(int64_t layers, int64_t vocab, int64_t max_seq) {
  ModelConfig c;
  c.hidden = 32;
  c.layers = layers;
  c.heads = 4;
  c.kv_heads = 2;
  c.head_dim = 8;
  c.ffn = 48;
  c.vocab = vocab;
  c.max_seq = max_seq;
  return c;
}

// The same shape as a plain Llama: dense, SiLU, no sub-norms, untied head,
// interleaved RoPE.
inline ModelConfig as_dense_llama(ModelConfig c) {
  c.linear = LinearKind::kDense;
  c.activation = ref::Activation::kSiLU;
  c.sub_norms = false;
  c.tied_embeddings = false;
  c.rope_style = ref::RopeStyle::kInterleaved;
  return c;
}

// `sentence` repeated 200 times, byte tokens, 10% validation.
inline TokenDataset repeated_corpus(const std::string& sentence) {
  std::string text;
  for (int i = 0; i < 200; ++i) text += sentence;
  return TokenDataset::from_bytes(text, 0.1).value();
}

}  // namespace tern::testing
