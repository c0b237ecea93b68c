// PreTokenizer: splits text into the words a byte-level BPE encodes independently.
//
// A pre-tokenizer is a list of regexes applied in stages, as llama.cpp does: each stage
// splits every chunk from the previous stage into its matches and the gaps between them (gaps
// are kept as words too), and a chunk's end is the end of the subject for look-aheads. The
// regexes are llama.cpp's for each `tokenizer.ggml.pre` name, run with PCRE2 (UTF + UCP).
// Supported names: gpt-2 family ("gpt-2", "gpt2", "mpt", "olmo", "phi-2", "jais",
// "roberta-bpe"), Llama 3 family ("llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe"),
// "qwen2", "starcoder"/"refact"/"smollm", and "default". Only gpt-2 and llama-bpe are checked
// against llama.cpp's test vectors.
//
// \s is spelled out as [\t-\r\x{85}\p{Z}] (Unicode White_Space, which is llama.cpp's
// whitespace set) so the result does not depend on the PCRE2 version's idea of \s.
//
// Invalid UTF-8: each invalid byte is seen by the regexes as U+FFFD (as llama.cpp does), but
// the words returned are slices of the original bytes, so no input byte is lost or altered.
//
// Immutable after create(); split() may be called from many threads at once.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tern::tokenizer_detail {

class PreTokenizer {
 public:
  static Result<PreTokenizer> create(std::string_view name);
  static bool is_supported(std::string_view name);

  // Appends the words of `text` (views into it, in order, non-empty, covering it exactly).
  void split(std::string_view text, std::vector<std::string_view>& words) const;

 private:
  struct Stage;
  std::vector<std::shared_ptr<const Stage>> stages_;
};

}  // namespace tern::tokenizer_detail
