// tokenizer_hash: a content identity for a vocabulary, so prepared token shards,
// checkpoints and models can check they were made with the same tokenizer.
//
// The hash is the lowercase hex BLAKE2b-256 of this canonical serialization
// (all integers little-endian; "str" = u64 byte length, then the bytes):
//   str "tern.tokenizer.v1"                 domain tag
//   str model                               "gpt2" or "llama" (vocab_model_name)
//   str pre
//   u64 n, then n × str                     tokens
//   u64 n, then n × u32                     scores as IEEE-754 bit patterns
//   u64 n, then n × i32                     token types
//   u64 n, then n × str                     merges
//   i32 bos_id, eos_id, unk_id, pad_id      (−1 = none)
//   u8 add_bos, add_eos, add_space_prefix   (0 or 1)
// Every field of Vocab is covered, so any change to any of them changes the
// hash; lengths and counts prefix everything, so no two vocabularies share a
// serialization. Pure function: thread-safe.
#pragma once

#include <string>

#include "tokenizer/vocab.h"

namespace tern {

std::string tokenizer_hash(const Vocab& vocab);

}  // namespace tern
