// BpeModel: byte-level BPE merging for one pre-tokenized word, as llama.cpp does it.
//
// A word's bytes start as one symbol each (the token for the byte's GPT-2 mapped character).
// The adjacent pair with the lowest merge rank is merged, ties going to the leftmost pair,
// until no pair has a merge; each remaining symbol is emitted as its token. With
// `ignore_merges` (the Llama 3 pre-tokenizers) a word that is itself a token is emitted whole.
//
// Symbols are integer ids: token ids, plus "virtual" ids above the vocabulary for strings that
// occur in merges (or as a single byte) but are not tokens, so merges are looked up by id pair
// instead of by string. A well-formed vocabulary never leaves a virtual symbol at the end; if
// one does, it is emitted byte by byte (each byte's token, or the unknown token if the byte has
// none). llama.cpp instead emits the tokens of the single bytes of its mapped text and silently
// drops the rest.
//
// Immutable after create(); encode_word() is thread-safe given a per-thread Scratch.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/status.h"
#include "tokenizer/string_map.h"
#include "tokenizer/vocab.h"

namespace tern::tokenizer_detail {

class BpeModel {
 public:
  // Reusable buffers for encode_word (avoid reallocating per word).
  struct Scratch {
    struct Symbol {
      int32_t id;  // -1 once merged away
      int32_t prev;
      int32_t next;
    };
    struct Candidate {
      int32_t rank;
      int32_t left;  // symbol index
      int32_t left_id;
      int32_t right_id;
      int32_t result;  // id of the merged symbol
    };
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
  };

  static Result<BpeModel> create(const Vocab& vocab, bool ignore_merges);

  // Appends the tokens of one word (raw bytes, not mapped).
  void encode_word(std::string_view word, Scratch& scratch, std::vector<int32_t>& out) const;

 private:
  struct Merge {
    int32_t rank;
    int32_t result;
  };
  static uint64_t pair_key(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  void emit_symbol(int32_t id, std::vector<int32_t>& out) const;

  int32_t n_vocab_ = 0;
  int32_t unk_id_ = -1;
  bool ignore_merges_ = false;
  std::array<int32_t, 256> byte_symbol_{};
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<std::string> virtual_bytes_;  // raw bytes of symbol n_vocab_ + i
  // Raw bytes of every token whose text is fully in the byte mapping -> id (ignore_merges).
  StringMap<int32_t> raw_to_id_;
};

}  // namespace tern::tokenizer_detail
