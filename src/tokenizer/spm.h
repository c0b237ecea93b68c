// SpmModel: SentencePiece-style BPE over escaped text, as llama.cpp's SPM tokenizer does it.
//
// The input is already escaped (spaces are "▁") and carries the dummy prefix if any. It is cut
// into UTF-8 characters (an invalid byte is a character of its own); then, repeatedly, the
// adjacent pair whose concatenation is a token with the highest score is merged, ties going to
// the leftmost pair. Each remaining symbol is emitted as its token, or, if it is not one, as
// byte tokens "<0xNN>" (byte fallback); a symbol with a byte that has no byte token becomes the
// unknown token instead (or, with no unknown token, whichever byte tokens exist).
//
// Speed-up that keeps the output identical: when no token contains a non-"▁" character
// followed by "▁" (true of Llama 2's vocabulary), no merge can cross the start of a "▁" run
// that follows other text, so the text is cut there and each piece is merged on its own (and
// can be cached by the caller). Otherwise the whole text is merged at once, like llama.cpp.
//
// Immutable after create(); encode is thread-safe given per-thread scratch buffers.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/string_map.h"
#include "tokenizer/vocab.h"

namespace tern::tokenizer_detail {

class SpmModel {
 public:
  struct Scratch {
    struct Symbol {
      uint32_t offset;
      uint32_t len;  // 0 once merged away
      int32_t prev;
      int32_t next;
    };
    struct Candidate {
      float score;
      int32_t left;
      int32_t right;
      uint32_t len;  // combined length when queued; detects stale candidates
    };
    std::vector<Symbol> symbols;
    std::vector<Candidate> heap;
  };

  static Result<SpmModel> create(const Vocab& vocab);

  // Whether `text` may be cut into pieces (see the header comment).
  bool splits_words() const { return split_words_; }
  // Appends the pieces of escaped `text` (views into it); one piece if !splits_words().
  void split(std::string_view text, std::vector<std::string_view>& pieces) const;
  // Merges one piece and appends its tokens.
  void encode_piece(std::string_view piece, Scratch& scratch, std::vector<int32_t>& out) const;

 private:
  int32_t find(std::string_view text) const {
    const auto it = text_to_id_.find(text);
    return it == text_to_id_.end() ? -1 : it->second;
  }
  void emit_symbol(std::string_view text, std::vector<int32_t>& out) const;

  StringMap<int32_t> text_to_id_;
  std::vector<float> scores_;
  std::array<int32_t, 256> byte_token_{};
  int32_t unk_id_ = -1;
  bool split_words_ = false;
};

}  // namespace tern::tokenizer_detail
