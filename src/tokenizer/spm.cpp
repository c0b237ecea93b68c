#include "tokenizer/spm.h"

#include <algorithm>
#include <cstdio>

#include "tokenizer/unicode.h"

namespace tern::tokenizer_detail {
namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁"

size_t char_len(std::string_view s, size_t pos) {
  return std::max<size_t>(1, valid_utf8_len(s, pos));
}

// Highest score first, then leftmost: as a max-heap comparator, "a is worse than b".
bool worse(const SpmModel::Scratch::Candidate& a, const SpmModel::Scratch::Candidate& b) {
  return a.score < b.score || (a.score == b.score && a.left > b.left);
}

// True if some non-"▁" character is directly followed by "▁" in `s`.
bool has_inner_space(std::string_view s) {
  bool prev_other = false;
  for (size_t pos = 0; pos < s.size();) {
    const bool space = s.substr(pos, kSpace.size()) == kSpace;
    if (space && prev_other) return true;
    prev_other = !space;
    pos += space ? kSpace.size() : char_len(s, pos);
  }
  return false;
}

}  // namespace

Result<SpmModel> SpmModel::create(const Vocab& vocab) {
  SpmModel m;
  m.unk_id_ = vocab.unk_id;
  m.scores_ = vocab.scores;
  m.text_to_id_.reserve(vocab.tokens.size());
  bool inner_space = false;
  for (int32_t i = 0; i < vocab.size(); ++i) {
    const std::string& t = vocab.tokens[static_cast<size_t>(i)];
    m.text_to_id_.emplace(t, i);
    inner_space = inner_space || has_inner_space(t);
  }
  m.split_words_ = !inner_space;
  for (int b = 0; b < 256; ++b) {
    char hex[8];
    std::snprintf(hex, sizeof hex, "<0x%02X>", b);
    int32_t id = m.find(hex);
    if (id < 0) id = m.find(std::string(1, static_cast<char>(b)));  // llama.cpp's fallback
    m.byte_token_[static_cast<size_t>(b)] = id;
  }
  return m;
}

void SpmModel::split(std::string_view text, std::vector<std::string_view>& pieces) const {
  if (text.empty()) return;
  if (!split_words_) {
    pieces.push_back(text);
    return;
  }
  size_t start = 0;
  bool prev_other = false;
  for (size_t pos = 0; pos < text.size();) {
    const bool space = text.substr(pos, kSpace.size()) == kSpace;
    if (space && prev_other) {
      pieces.push_back(text.substr(start, pos - start));
      start = pos;
    }
    prev_other = !space;
    pos += space ? kSpace.size() : char_len(text, pos);
  }
  pieces.push_back(text.substr(start));
}

void SpmModel::emit_symbol(std::string_view text, std::vector<int32_t>& out) const {
  const int32_t id = find(text);
  if (id >= 0) {
    out.push_back(id);
    return;
  }
  const bool all_bytes = std::all_of(
      text.begin(), text.end(), [&](char c) { return byte_token_[static_cast<uint8_t>(c)] >= 0; });
  if (!all_bytes && unk_id_ >= 0) {
    out.push_back(unk_id_);
    return;
  }
  for (const char c : text) {
    const int32_t b = byte_token_[static_cast<uint8_t>(c)];
    if (b >= 0) out.push_back(b);
  }
}

void SpmModel::encode_piece(std::string_view piece, Scratch& s, std::vector<int32_t>& out) const {
  if (piece.empty()) return;
  s.symbols.clear();
  for (size_t pos = 0; pos < piece.size();) {
    const size_t len = char_len(piece, pos);
    const auto index = static_cast<int32_t>(s.symbols.size());
    s.symbols.push_back({static_cast<uint32_t>(pos), static_cast<uint32_t>(len), index - 1,
                         pos + len < piece.size() ? index + 1 : -1});
    pos += len;
  }
  s.heap.clear();
  auto try_add = [&](int32_t left, int32_t right) {
    if (left < 0 || right < 0) return;
    const auto& l = s.symbols[static_cast<size_t>(left)];
    const auto& r = s.symbols[static_cast<size_t>(right)];
    // Symbols are contiguous in the piece, so the pair's text is a substring.
    const int32_t id = find(piece.substr(l.offset, l.len + r.len));
    if (id < 0) return;
    s.heap.push_back({scores_[static_cast<size_t>(id)], left, right, l.len + r.len});
    std::push_heap(s.heap.begin(), s.heap.end(), worse);
  };
  for (size_t i = 1; i < s.symbols.size(); ++i) {
    try_add(static_cast<int32_t>(i - 1), static_cast<int32_t>(i));
  }

  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), worse);
    const Scratch::Candidate c = s.heap.back();
    s.heap.pop_back();
    auto& l = s.symbols[static_cast<size_t>(c.left)];
    auto& r = s.symbols[static_cast<size_t>(c.right)];
    // Symbols only grow or die, so a changed combined length means the candidate is stale.
    if (l.len == 0 || r.len == 0 || l.len + r.len != c.len) continue;
    l.len += r.len;
    r.len = 0;
    l.next = r.next;
    if (r.next >= 0) s.symbols[static_cast<size_t>(r.next)].prev = c.left;
    try_add(l.prev, c.left);
    try_add(c.left, l.next);
  }
  for (int32_t i = 0; i >= 0; i = s.symbols[static_cast<size_t>(i)].next) {
    const auto& sym = s.symbols[static_cast<size_t>(i)];
    emit_symbol(piece.substr(sym.offset, sym.len), out);
  }
}

}  // namespace tern::tokenizer_detail
