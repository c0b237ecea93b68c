#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <optional>
#include <utility>

#include "tokenizer/bpe.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/spm.h"
#include "tokenizer/string_map.h"
#include "tokenizer/unicode.h"

namespace tern {
namespace {

using tokenizer_detail::BpeModel;
using tokenizer_detail::PreTokenizer;
using tokenizer_detail::SpmModel;
using tokenizer_detail::StringMap;

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁"

bool is_special(TokenType t) {
  return t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUserDefined;
}

// llama.cpp sets ignore_merges only for these names (its LLAMA3 pre-type); dbrx and smaug-bpe
// share the regex but not the flag.
bool ignores_merges(std::string_view pre) {
  return pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3";
}

// "<0xNN>" -> NN, or -1.
int parse_byte_token(std::string_view t) {
  if (t.size() != 6 || t.substr(0, 3) != "<0x" || t[5] != '>') return -1;
  auto hex = [](char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

// Byte-level BPE token text -> bytes. Characters outside the GPT-2 mapping (possible in
// added tokens) are kept as their UTF-8 instead of failing.
std::string unmap_bpe_text(std::string_view text) {
  std::string raw;
  if (tokenizer_detail::unicode_to_bytes(text, raw)) return raw;
  raw.clear();
  for (size_t pos = 0; pos < text.size();) {
    const auto scan = tokenizer_detail::scan_utf8(text, pos);
    const size_t len = scan.state == tokenizer_detail::Utf8State::kComplete ? scan.len : 1;
    const int b = scan.state == tokenizer_detail::Utf8State::kComplete
                      ? tokenizer_detail::unicode_to_byte(scan.code_point)
                      : -1;
    if (b >= 0) {
      raw.push_back(static_cast<char>(b));
    } else {
      raw.append(text.substr(pos, len));
    }
    pos += len;
  }
  return raw;
}

std::string unescape_spm_text(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    if (text.substr(pos, kSpace.size()) == kSpace) {
      out.push_back(' ');
      pos += kSpace.size();
    } else {
      out.push_back(text[pos++]);
    }
  }
  return out;
}

struct Fragment {
  int32_t token;  // >= 0: a special token; -1: text [begin, end)
  size_t begin;
  size_t end;
};

// Memo of word -> tokens for one encode call; long words are not worth keeping.
class WordCache {
 public:
  template <typename Compute>
  void encode(std::string_view word, std::vector<int32_t>& out, Compute&& compute) {
    constexpr size_t kMaxCachedWord = 128;
    if (word.size() > kMaxCachedWord) {
      compute(word, out);
      return;
    }
    const auto it = map_.find(word);
    if (it != map_.end()) {
      out.insert(out.end(), store_.begin() + it->second.first,
                 store_.begin() + it->second.first + it->second.second);
      return;
    }
    const size_t before = out.size();
    compute(word, out);
    const size_t start = store_.size();
    store_.insert(store_.end(), out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
    map_.emplace(std::string(word), std::make_pair(start, store_.size() - start));
  }

 private:
  StringMap<std::pair<size_t, size_t>> map_;
  std::vector<int32_t> store_;
};

}  // namespace

struct Tokenizer::Impl {
  Vocab vocab;
  bool space_prefix = false;  // SPM dummy prefix (ignored for BPE)
  StringMap<int32_t> text_to_id;
  std::vector<int32_t> special_order;  // matched in this order by encode
  std::vector<std::string> pieces;     // token_to_piece
  std::optional<BpeModel> bpe;
  std::optional<PreTokenizer> pre;
  std::optional<SpmModel> spm;

  std::vector<Fragment> partition(std::string_view text, bool parse_special) const;

  // Appends token `id` as decode renders it; `strip_space` carries the dummy-prefix state.
  void append_piece(int32_t id, bool render_special, bool& strip_space, std::string& out) const {
    if (id < 0 || id >= vocab.size()) return;
    const TokenType type = vocab.token_types[static_cast<size_t>(id)];
    const std::string& piece = pieces[static_cast<size_t>(id)];
    if (is_special(type)) {
      if (render_special || type == TokenType::kUserDefined) out += piece;
      strip_space = space_prefix;
      return;
    }
    if (piece.empty()) return;
    std::string_view view = piece;
    if (strip_space && view.front() == ' ') view.remove_prefix(1);
    strip_space = false;
    out += view;
  }
};

Result<Tokenizer> Tokenizer::create(Vocab vocab) {
  TERN_RETURN_IF_ERROR(vocab.validate().with_context("tokenizer"));
  auto impl = std::make_shared<Impl>();
  const size_t n = vocab.tokens.size();
  impl->text_to_id.reserve(n);
  for (size_t i = 0; i < n; ++i) impl->text_to_id.emplace(vocab.tokens[i], static_cast<int32_t>(i));

  for (size_t i = 0; i < n; ++i) {
    if (is_special(vocab.token_types[i])) impl->special_order.push_back(static_cast<int32_t>(i));
  }
  std::sort(impl->special_order.begin(), impl->special_order.end(), [&](int32_t a, int32_t b) {
    const size_t la = vocab.tokens[static_cast<size_t>(a)].size();
    const size_t lb = vocab.tokens[static_cast<size_t>(b)].size();
    return la != lb ? la > lb : a < b;
  });

  const bool spm = vocab.model == VocabModel::kSpm;
  impl->space_prefix = spm && vocab.add_space_prefix;
  impl->pieces.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const std::string& text = vocab.tokens[i];
    std::string& piece = impl->pieces[i];
    switch (vocab.token_types[i]) {
      case TokenType::kControl:
      case TokenType::kUnknown:
      case TokenType::kUserDefined:
        piece = text;
        break;
      case TokenType::kUnused:
      case TokenType::kUndefined:
        break;  // llama.cpp renders these as nothing
      case TokenType::kByte:
        if (const int b = parse_byte_token(text); spm && b >= 0) {
          piece.assign(1, static_cast<char>(b));
          break;
        }
        [[fallthrough]];
      case TokenType::kNormal:
        piece = spm ? unescape_spm_text(text) : unmap_bpe_text(text);
        break;
    }
  }

  if (spm) {
    TERN_ASSIGN_OR_RETURN(SpmModel model, SpmModel::create(vocab));
    impl->spm.emplace(std::move(model));
  } else {
    TERN_ASSIGN_OR_RETURN(PreTokenizer pre, PreTokenizer::create(vocab.pre));
    impl->pre.emplace(std::move(pre));
    TERN_ASSIGN_OR_RETURN(BpeModel model, BpeModel::create(vocab, ignores_merges(vocab.pre)));
    impl->bpe.emplace(std::move(model));
  }
  impl->vocab = std::move(vocab);
  return Tokenizer(std::move(impl));
}

std::vector<Fragment> Tokenizer::Impl::partition(std::string_view text, bool parse_special) const {
  std::vector<Fragment> fragments;
  if (text.empty()) return fragments;
  fragments.push_back({-1, 0, text.size()});
  std::vector<Fragment> next;
  for (const int32_t id : special_order) {
    if (!parse_special && vocab.token_types[static_cast<size_t>(id)] != TokenType::kUserDefined) {
      continue;
    }
    const std::string& special = vocab.tokens[static_cast<size_t>(id)];
    if (text.find(special) == std::string_view::npos) continue;
    next.clear();
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        next.push_back(f);
        continue;
      }
      const std::string_view window = text.substr(0, f.end);
      size_t pos = f.begin;
      for (size_t match = window.find(special, pos); match != std::string_view::npos;
           match = window.find(special, pos)) {
        if (match > pos) next.push_back({-1, pos, match});
        next.push_back({id, match, match + special.size()});
        pos = match + special.size();
      }
      if (pos < f.end) next.push_back({-1, pos, f.end});
    }
    fragments.swap(next);
  }
  return fragments;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  TERN_CHECK(text.size() < (size_t{1} << 29), "encode: text of ", text.size(),
             " bytes; split it below 512 MiB");
  const Impl& im = *impl_;
  const Vocab& v = im.vocab;
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 4);
  if (add_special && v.add_bos) out.push_back(v.bos_id);

  WordCache cache;
  const std::vector<Fragment> fragments = im.partition(text, parse_special);
  if (im.bpe) {
    BpeModel::Scratch scratch;
    std::vector<std::string_view> words;
    auto compute = [&](std::string_view word, std::vector<int32_t>& dst) {
      im.bpe->encode_word(word, scratch, dst);
    };
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        continue;
      }
      words.clear();
      im.pre->split(text.substr(f.begin, f.end - f.begin), words);
      for (const std::string_view word : words) cache.encode(word, out, compute);
    }
  } else {
    SpmModel::Scratch scratch;
    std::vector<std::string_view> pieces;
    std::string escaped;
    auto compute = [&](std::string_view piece, std::vector<int32_t>& dst) {
      im.spm->encode_piece(piece, scratch, dst);
    };
    bool after_special = true;  // the text start counts as "after a special token"
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        after_special = true;
        continue;
      }
      escaped.clear();
      if (im.space_prefix && after_special) escaped += kSpace;
      for (const char c : text.substr(f.begin, f.end - f.begin)) {
        if (c == ' ') {
          escaped += kSpace;
        } else {
          escaped.push_back(c);
        }
      }
      after_special = false;
      pieces.clear();
      im.spm->split(escaped, pieces);
      for (const std::string_view piece : pieces) cache.encode(piece, out, compute);
    }
  }

  if (add_special && v.add_eos) out.push_back(v.eos_id);
  return out;
}

std::string Tokenizer::decode(std::span<const int32_t> tokens, bool render_special) const {
  std::string out;
  bool strip_space = impl_->space_prefix;
  for (const int32_t id : tokens) impl_->append_piece(id, render_special, strip_space, out);
  return out;
}

std::string Tokenizer::token_to_piece(int32_t token) const {
  if (token < 0 || token >= impl_->vocab.size()) return {};
  return impl_->pieces[static_cast<size_t>(token)];
}

int32_t Tokenizer::token_id(std::string_view text) const {
  const auto it = impl_->text_to_id.find(text);
  return it == impl_->text_to_id.end() ? -1 : it->second;
}

const Vocab& Tokenizer::vocab() const {
  return impl_->vocab;
}

StreamingDecoder::StreamingDecoder(const Tokenizer& tokenizer, bool render_special,
                                   bool sequence_start)
    : impl_(tokenizer.impl_),
      render_special_(render_special),
      sequence_start_(sequence_start),
      strip_space_(sequence_start && impl_->space_prefix) {}

std::string StreamingDecoder::push(int32_t token) {
  impl_->append_piece(token, render_special_, strip_space_, pending_);
  std::string out;
  size_t pos = 0;
  while (pos < pending_.size()) {
    const auto scan = tokenizer_detail::scan_utf8(pending_, pos);
    if (scan.state == tokenizer_detail::Utf8State::kIncomplete) break;  // wait for more bytes
    if (scan.state == tokenizer_detail::Utf8State::kComplete) {
      out.append(pending_, pos, scan.len);
    } else {
      out += tokenizer_detail::kReplacementChar;
    }
    pos += scan.len;
  }
  pending_.erase(0, pos);
  return out;
}

std::string StreamingDecoder::finish() {
  // pending_ only ever holds the valid prefix of one incomplete character.
  std::string out = pending_.empty() ? "" : std::string(tokenizer_detail::kReplacementChar);
  pending_.clear();
  strip_space_ = sequence_start_ && impl_->space_prefix;
  return out;
}

}  // namespace tern
