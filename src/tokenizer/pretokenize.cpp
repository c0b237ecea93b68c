#include "tokenizer/pretokenize.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <string>
#include <utility>

#include "tokenizer/unicode.h"

namespace tern::tokenizer_detail {
namespace {

// llama.cpp's regexes per pre-tokenizer (src/llama-vocab.cpp). GPT-2's own pattern ends in
// "|\s+"; llama.cpp drops it but keeps unmatched gaps as words, which splits identically.
constexpr const char* kGpt2 =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
// Meta's Llama 3 pattern with (?i:'s|...) spelled as explicit ASCII case pairs, as llama.cpp
// does: PCRE2's caseless mode would also fold U+017F (long s) into 's'.
constexpr const char* kLlama3 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* kQwen2 =
    R"((?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|)"
    R"(\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

struct Family {
  std::vector<std::string_view> names;
  std::vector<const char*> stages;
};

const std::vector<Family>& families() {
  static const std::vector<Family> table = {
      {{"gpt-2", "gpt2", "mpt", "olmo", "phi-2", "jais", "roberta-bpe"}, {kGpt2}},
      {{"llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe"}, {kLlama3}},
      {{"qwen2"}, {kQwen2}},
      {{"starcoder", "refact", "smollm"}, {R"(\p{N})", kGpt2}},
      {{"default"}, {R"([\p{P}\$\+<=>\^~\|]+)", kGpt2, R"(\p{N}+)", R"([0-9][0-9][0-9])"}},
  };
  return table;
}

const Family* find_family(std::string_view name) {
  for (const Family& f : families()) {
    if (std::find(f.names.begin(), f.names.end(), name) != f.names.end()) return &f;
  }
  return nullptr;
}

// Rewrites \s and \S as Unicode White_Space classes (see the header for why).
std::string spell_out_whitespace(std::string_view pattern) {
  constexpr std::string_view kWs = R"(\t-\r\x{85}\p{Z})";
  std::string out;
  bool in_class = false;
  for (size_t i = 0; i < pattern.size(); ++i) {
    const char c = pattern[i];
    if (c == '\\' && i + 1 < pattern.size()) {
      const char e = pattern[i + 1];
      ++i;
      if (e == 's') {
        out += in_class ? std::string(kWs) : "[" + std::string(kWs) + "]";
      } else if (e == 'S' && !in_class) {
        out += "[^" + std::string(kWs) + "]";
      } else {
        out += c;
        out += e;
      }
      continue;
    }
    if (c == '[' && !in_class) {
      in_class = true;
      out += c;
      if (i + 1 < pattern.size() && pattern[i + 1] == '^') out += pattern[++i];
      if (i + 1 < pattern.size() && pattern[i + 1] == ']') out += pattern[++i];  // literal ]
      continue;
    }
    if (c == ']' && in_class) in_class = false;
    out += c;
  }
  return out;
}

using Span = std::pair<size_t, size_t>;  // [begin, end) byte offsets

}  // namespace

struct PreTokenizer::Stage {
  pcre2_code* code = nullptr;
  ~Stage() { pcre2_code_free(code); }
};

bool PreTokenizer::is_supported(std::string_view name) {
  return find_family(name) != nullptr;
}

Result<PreTokenizer> PreTokenizer::create(std::string_view name) {
  const Family* family = find_family(name);
  if (family == nullptr) {
    return Status::Error("pre-tokenizer '" + std::string(name) +
                         "' is not supported (supported: gpt-2, llama-bpe, qwen2, starcoder, "
                         "default and their aliases)");
  }
  PreTokenizer pre;
  for (const char* raw : family->stages) {
    const std::string pattern = spell_out_whitespace(raw);
    int error = 0;
    PCRE2_SIZE offset = 0;
    auto stage = std::make_shared<Stage>();
    stage->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
    // The patterns are compiled-in constants, so a failure is a bug, not bad input.
    TERN_CHECK(stage->code != nullptr, "PCRE2 rejected pre-tokenizer regex at offset ", offset,
               " (error ", error, "): ", pattern);
    // JIT is an optimization only; the interpreter gives the same matches.
    (void)pcre2_jit_compile(stage->code, PCRE2_JIT_COMPLETE);
    pre.stages_.push_back(std::move(stage));
  }
  return pre;
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& words) const {
  if (text.empty()) return;

  // PCRE2 needs valid UTF-8: run it on a copy with each invalid byte replaced by U+FFFD and
  // map offsets back. Only chunk boundaries are mapped, and those fall on character starts.
  std::string clean;
  std::vector<size_t> to_original;
  std::string_view subject = text;
  if (!is_valid_utf8(text)) {
    clean.reserve(text.size() + 16);
    to_original.reserve(text.size() + 16);
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t len = valid_utf8_len(text, pos);
      if (len == 0) {
        for (size_t k = 0; k < kReplacementChar.size(); ++k) to_original.push_back(pos);
        clean += kReplacementChar;
        ++pos;
      } else {
        for (size_t k = 0; k < len; ++k) to_original.push_back(pos + k);
        clean.append(text.substr(pos, len));
        pos += len;
      }
    }
    to_original.push_back(text.size());
    subject = clean;
  }

  std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> match(
      pcre2_match_data_create(1, nullptr), pcre2_match_data_free);
  TERN_CHECK(match != nullptr, "out of memory creating PCRE2 match data");

  std::vector<Span> chunks = {{0, subject.size()}};
  std::vector<Span> next;
  for (const auto& stage : stages_) {
    next.clear();
    for (const auto& [begin, end] : chunks) {
      const auto* base = reinterpret_cast<PCRE2_SPTR>(subject.data() + begin);
      const size_t len = end - begin;
      size_t emitted = 0;  // chunk-relative end of what has been pushed
      size_t start = 0;
      while (start < len) {
        const int rc =
            pcre2_match(stage->code, base, len, start, PCRE2_NO_UTF_CHECK, match.get(), nullptr);
        // No match, or a matching error (limits): the rest of the chunk becomes one gap.
        if (rc < 0) break;
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match.get());
        const size_t mb = ov[0], me = ov[1];
        if (me <= mb) {  // empty match: step over one character, it joins the next gap
          if (mb >= len) break;
          start = mb + std::max<size_t>(1, valid_utf8_len(subject.substr(begin, len), mb));
          continue;
        }
        if (mb > emitted) next.emplace_back(begin + emitted, begin + mb);
        next.emplace_back(begin + mb, begin + me);
        emitted = start = me;
      }
      if (emitted < len) next.emplace_back(begin + emitted, end);
    }
    chunks.swap(next);
  }

  words.reserve(words.size() + chunks.size());
  for (const auto& [begin, end] : chunks) {
    if (to_original.empty()) {
      words.push_back(text.substr(begin, end - begin));
    } else {
      const size_t b = to_original[begin], e = to_original[end];
      words.push_back(text.substr(b, e - b));
    }
  }
}

}  // namespace tern::tokenizer_detail
