// Vocab: a tokenizer vocabulary as llama.cpp stores it in GGUF metadata.
//
// Two model kinds:
//  * kBpe (GGUF "gpt2"): byte-level BPE. Token texts are in the GPT-2 byte->unicode mapped form
//    (a space is "Ġ"), merges are "left right" strings in that form and a merge's rank is its
//    index. `pre` names the pre-tokenizer regex ("gpt-2", "llama-bpe", ...).
//  * kSpm (GGUF "llama"): SentencePiece BPE. Spaces are "▁" (U+2581), `scores` rank merges,
//    "<0xNN>" byte tokens give the byte fallback; `add_space_prefix` adds the dummy-prefix "▁".
//
// Loaders: vocab_from_gguf() reads the tokenizer.ggml.* keys; vocab_from_tiktoken() builds a
// byte-level BPE vocabulary from a tiktoken ranks file (Llama 3's tokenizer.model) plus
// special tokens, deriving the merges from the ranks.
//
// Both loaders treat their input as untrusted: malformed data gives an error Status naming the
// key (or line) and the bad value; validate() checks the invariants Tokenizer relies on.
// Plain value type; not synchronized.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tern {

namespace gguf {
class GgufFile;
class GgufWriter;
}  // namespace gguf

enum class VocabModel {
  kBpe,  // "gpt2": byte-level BPE
  kSpm,  // "llama": SentencePiece BPE with byte fallback
};

// GGUF / llama.cpp name of the model kind ("gpt2" or "llama").
std::string_view vocab_model_name(VocabModel model);

// Token types with llama.cpp's values (tokenizer.ggml.token_type).
enum class TokenType : int32_t {
  kUndefined = 0,
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6,
};

struct Vocab {
  VocabModel model = VocabModel::kBpe;
  std::string pre = "default";         // pre-tokenizer name (tokenizer.ggml.pre)
  std::vector<std::string> tokens;     // id -> text, non-empty and distinct
  std::vector<float> scores;           // id -> score (SPM merge priority); same size as tokens
  std::vector<TokenType> token_types;  // id -> type; same size as tokens
  std::vector<std::string> merges;     // BPE only: "left right", rank = index
  int32_t bos_id = -1;                 // -1: none
  int32_t eos_id = -1;
  int32_t unk_id = -1;
  int32_t pad_id = -1;
  bool add_bos = false;           // encode(add_special=true) prepends BOS
  bool add_eos = false;           // encode(add_special=true) appends EOS
  bool add_space_prefix = false;  // SPM: "▁" before the text and after special tokens

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }

  // Checks sizes, ids, flags, token texts (non-empty, distinct), scores (not NaN) and merge
  // syntax. The message names the field and the bad value.
  Status validate() const;
};

// Reads tokenizer.ggml.{model, pre, tokens, scores, token_type, merges, bos_token_id,
// eos_token_id, unknown_token_id, padding_token_id, add_bos_token, add_eos_token,
// add_space_prefix}. Required: model, tokens, and merges for "gpt2". Defaults follow llama.cpp:
// "llama" has BOS 1, EOS 2, UNK 0 (when in range), add_bos, no add_eos, add_space_prefix;
// "gpt2" has no special ids, and add_bos only for the Llama 3 pre-tokenizers. Missing scores
// are 0, missing types are normal. Empty token texts are renamed "[EMPTY_<id>]" as llama.cpp
// does. An id key outside the vocabulary is an error (llama.cpp only warns).
Result<Vocab> vocab_from_gguf(const gguf::GgufFile& file);

// Writes the tokenizer.ggml.* keys vocab_from_gguf reads (ids as u32, types as i32, only the
// ids that are set, merges only for BPE), so a vocabulary survives a GGUF round trip.
void add_vocab_to_gguf(const Vocab& vocab, gguf::GgufWriter& writer);

// The 256 Llama 3 special tokens, in id order from 128000: <|begin_of_text|>,
// <|end_of_text|>, <|reserved_special_token_0|>, <|reserved_special_token_1|>,
// <|finetune_right_pad_id|>, <|step_id|>, <|start_header_id|>, <|end_header_id|>, <|eom_id|>,
// <|eot_id|>, <|python_tag|>, <|image|>, then <|reserved_special_token_2|> ... _245|>.
std::vector<std::string> llama3_special_tokens();

struct TiktokenOptions {
  // Appended after the ranks as control tokens, ids n_ranks, n_ranks + 1, ...
  std::vector<std::string> special_tokens = llama3_special_tokens();
  std::string pre = "llama-bpe";
  std::string bos_token = "<|begin_of_text|>";  // empty: none
  std::string eos_token = "<|end_of_text|>";    // empty: none
  bool add_bos = true;
  bool add_eos = false;
};

// Builds a byte-level BPE vocabulary from a tiktoken file: one "base64(token bytes) rank" per
// line, ranks 0..N-1 each used once (rank = token id). Tokens are stored GPT-2-mapped, like
// llama.cpp vocabularies. Merges are derived the standard way (as Hugging Face's tiktoken
// converter does): for each multi-byte token in rank order, run BPE on its bytes allowing only
// merges of lower rank; the two parts left are its merge. A token that does not reduce to two
// parts gets no merge (it is still reachable whole, since "llama-bpe" ignores merges for words
// that are tokens).
Result<Vocab> vocab_from_tiktoken(const std::string& path, const TiktokenOptions& options = {});

}  // namespace tern
