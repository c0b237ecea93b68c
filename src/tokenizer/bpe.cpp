#include "tokenizer/bpe.h"

#include <algorithm>

#include "tokenizer/unicode.h"

namespace tern::tokenizer_detail {
namespace {

// Lowest rank first, then leftmost: as a max-heap comparator, "a is worse than b".
bool worse(const BpeModel::Scratch::Candidate& a, const BpeModel::Scratch::Candidate& b) {
  return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
}

}  // namespace

Result<BpeModel> BpeModel::create(const Vocab& vocab, bool ignore_merges) {
  BpeModel m;
  m.n_vocab_ = vocab.size();
  m.unk_id_ = vocab.unk_id;
  m.ignore_merges_ = ignore_merges;

  // Symbol ids by mapped text: tokens first, virtual symbols appended on demand.
  StringMap<int32_t> ids;
  ids.reserve(vocab.tokens.size() + vocab.merges.size());
  for (int32_t i = 0; i < m.n_vocab_; ++i) ids.emplace(vocab.tokens[static_cast<size_t>(i)], i);
  auto symbol = [&](std::string_view text) -> int32_t {
    const auto it = ids.find(text);
    if (it != ids.end()) return it->second;
    std::string raw;
    // Mapped text that cannot be turned back into bytes can never be produced from input;
    // an empty byte string makes such a symbol expand to nothing.
    if (!unicode_to_bytes(text, raw)) raw.clear();
    const auto id = static_cast<int32_t>(m.n_vocab_ + m.virtual_bytes_.size());
    m.virtual_bytes_.push_back(std::move(raw));
    ids.emplace(std::string(text), id);
    return id;
  };

  for (int b = 0; b < 256; ++b) {
    m.byte_symbol_[static_cast<size_t>(b)] = symbol(byte_to_unicode(static_cast<uint8_t>(b)));
  }
  m.merges_.reserve(vocab.merges.size());
  for (size_t rank = 0; rank < vocab.merges.size(); ++rank) {
    const std::string& text = vocab.merges[rank];
    const size_t space = text.find(' ', 1);  // validated: present, both sides non-empty
    const std::string_view left(text.data(), space);
    const std::string_view right(text.data() + space + 1, text.size() - space - 1);
    const int32_t a = symbol(left);
    const int32_t b = symbol(right);
    const int32_t result = symbol(std::string(left) + std::string(right));
    // A repeated pair keeps its first (lowest) rank, as llama.cpp's map emplace does.
    m.merges_.emplace(pair_key(a, b), Merge{static_cast<int32_t>(rank), result});
  }

  if (ignore_merges) {
    m.raw_to_id_.reserve(vocab.tokens.size());
    std::string raw;
    for (int32_t i = 0; i < m.n_vocab_; ++i) {
      raw.clear();
      if (unicode_to_bytes(vocab.tokens[static_cast<size_t>(i)], raw)) m.raw_to_id_.emplace(raw, i);
    }
  }
  return m;
}

void BpeModel::emit_symbol(int32_t id, std::vector<int32_t>& out) const {
  if (id < n_vocab_) {
    out.push_back(id);
    return;
  }
  for (const char c : virtual_bytes_[static_cast<size_t>(id - n_vocab_)]) {
    const int32_t b = byte_symbol_[static_cast<uint8_t>(c)];
    if (b < n_vocab_) {
      out.push_back(b);
    } else if (unk_id_ >= 0) {
      out.push_back(unk_id_);
    }
  }
}

void BpeModel::encode_word(std::string_view word, Scratch& s, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    const auto it = raw_to_id_.find(word);
    if (it != raw_to_id_.end()) {
      out.push_back(it->second);
      return;
    }
  }
  const auto n = static_cast<int32_t>(word.size());
  s.symbols.resize(word.size());
  for (int32_t i = 0; i < n; ++i) {
    s.symbols[static_cast<size_t>(i)] = {
        byte_symbol_[static_cast<uint8_t>(word[static_cast<size_t>(i)])], i - 1,
        i + 1 < n ? i + 1 : -1};
  }
  s.heap.clear();
  auto try_add = [&](int32_t left) {
    if (left < 0) return;
    const int32_t right = s.symbols[static_cast<size_t>(left)].next;
    if (right < 0) return;
    const int32_t a = s.symbols[static_cast<size_t>(left)].id;
    const int32_t b = s.symbols[static_cast<size_t>(right)].id;
    const auto it = merges_.find(pair_key(a, b));
    if (it == merges_.end()) return;
    s.heap.push_back({it->second.rank, left, a, b, it->second.result});
    std::push_heap(s.heap.begin(), s.heap.end(), worse);
  };
  for (int32_t i = 0; i + 1 < n; ++i) try_add(i);

  while (!s.heap.empty()) {
    std::pop_heap(s.heap.begin(), s.heap.end(), worse);
    const Scratch::Candidate c = s.heap.back();
    s.heap.pop_back();
    auto& left = s.symbols[static_cast<size_t>(c.left)];
    // Stale if either side changed since the candidate was queued. A symbol's id changes
    // whenever it absorbs a neighbour, and only the left side can absorb the right, so
    // unchanged ids mean the two are still adjacent.
    if (left.id != c.left_id || left.next < 0) continue;
    auto& right = s.symbols[static_cast<size_t>(left.next)];
    if (right.id != c.right_id) continue;
    left.id = c.result;
    right.id = -1;
    left.next = right.next;
    if (right.next >= 0) s.symbols[static_cast<size_t>(right.next)].prev = c.left;
    try_add(left.prev);
    try_add(c.left);
  }
  for (int32_t i = 0; i >= 0; i = s.symbols[static_cast<size_t>(i)].next) {
    emit_symbol(s.symbols[static_cast<size_t>(i)].id, out);
  }
}

}  // namespace tern::tokenizer_detail
