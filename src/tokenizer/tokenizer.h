// Tokenizer: text <-> token ids for llama.cpp-style vocabularies (byte-level BPE and
// SentencePiece BPE), matching llama.cpp's llama_tokenize / llama_detokenize on its test
// vectors.
//
// encode(text, add_special, parse_special):
//  1. Special tokens. Control and unknown tokens (with parse_special) and user-defined tokens
//     (always, as in llama.cpp and Hugging Face) are cut out of the text as single ids. Longer
//     token texts are matched first (ties: lower id), each over all remaining text, left to
//     right — llama.cpp's order.
//  2. Each remaining text fragment is encoded on its own:
//     byte-level BPE: split by the pre-tokenizer regex (vocab.pre), each word BPE-merged by
//     merge rank; SentencePiece: spaces become "▁", a "▁" is prepended when
//     vocab.add_space_prefix and the fragment starts the text or follows a special token, then
//     pairs are merged by score with byte fallback.
//  3. add_special adds BOS / EOS where vocab.add_bos / vocab.add_eos say so.
//  Deterministic (explicit tie-breaks everywhere). Invalid UTF-8 never fails: an invalid byte
//  is treated as a character of its own (for the BPE regexes it looks like U+FFFD, as in
//  llama.cpp) and is encoded as its byte, so decode(encode(s)) == s still holds. llama.cpp
//  instead replaces such bytes by U+FFFD. Precondition (CHECKed): text.size() < 512 MiB, so
//  32-bit symbol offsets suffice even after SentencePiece's 3-byte "▁" escaping; callers split
//  larger inputs (at document or line boundaries).
//
// decode(tokens, render_special): concatenates token pieces. Byte-level BPE pieces are the
// unmapped bytes; SentencePiece pieces have "▁" turned back into spaces and "<0xNN>" tokens
// give the raw byte. Control and unknown tokens render as their text only with render_special;
// user-defined tokens always do; unused tokens render as nothing (llama.cpp). With
// vocab.add_space_prefix, one leading space is dropped from the first piece of the sequence
// and from the first piece after each special token — the inverse of the dummy prefix (llama.cpp
// strips only at the very start). No clean-up of spaces before punctuation is done (llama.cpp
// does it for some BPE vocabularies), so decode(encode(s, false, false)) == s for any s. Ids
// outside the vocabulary render as nothing. The result is raw bytes: it can be invalid UTF-8
// when the tokens split a character; StreamingDecoder handles that.
//
// token_to_piece(id): the token's bytes as decode renders it mid-sequence, control tokens
// included as text; "" for ids outside the vocabulary.
//
// Tokenizer is cheap to copy (shared immutable state); all methods are const and thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/status.h"
#include "tokenizer/vocab.h"

namespace tern {

class Tokenizer {
 public:
  // Validates the vocabulary and builds the lookup tables. Fails for an invalid vocabulary or
  // an unsupported BPE pre-tokenizer name.
  static Result<Tokenizer> create(Vocab vocab);

  std::vector<int32_t> encode(std::string_view text, bool add_special, bool parse_special) const;
  std::string decode(std::span<const int32_t> tokens, bool render_special = false) const;
  std::string token_to_piece(int32_t token) const;

  // Id of the token with exactly this text (vocabulary form, e.g. "Ġthe"), or -1.
  int32_t token_id(std::string_view text) const;
  const Vocab& vocab() const;
  int32_t n_tokens() const { return vocab().size(); }

 private:
  struct Impl;
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
  friend class StreamingDecoder;
};

// StreamingDecoder: decodes a token stream incrementally (e.g. during generation) and returns
// only complete, valid UTF-8. A multi-byte character split across tokens is held back until it
// completes; bytes that can never form a valid character come out as U+FFFD (one per maximal
// invalid subpart, as WHATWG / Python do). finish() flushes a held-back incomplete character
// as U+FFFD and resets the decoder for a new sequence.
//
// render_special as in Tokenizer::decode. sequence_start: whether the first token pushed
// starts a sequence (then SentencePiece's dummy-prefix space is dropped, as decode does); pass
// false when continuing after a prompt that was decoded separately.
//
// Holds a reference to the tokenizer's shared state, so it may outlive the Tokenizer object.
// Not synchronized: one decoder per stream.
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool render_special = false,
                            bool sequence_start = true);

  std::string push(int32_t token);
  std::string finish();

 private:
  std::shared_ptr<const Tokenizer::Impl> impl_;
  bool render_special_;
  bool sequence_start_;
  bool strip_space_;  // drop one leading space from the next text piece
  std::string pending_;
};

}  // namespace tern
