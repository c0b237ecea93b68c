// vocab_from_tiktoken(): tiktoken ranks file -> byte-level BPE Vocab with derived merges.
#include <algorithm>
#include <charconv>
#include <fstream>
#include <sstream>
#include <string_view>

#include "core/text.h"
#include "tokenizer/string_map.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace tern {
namespace {

using tokenizer_detail::bytes_to_unicode;

// Standard base64 with '=' padding; false on any malformed input.
bool decode_base64(std::string_view in, std::string& out) {
  out.clear();
  if (in.empty() || in.size() % 4 != 0) return false;
  size_t pad = 0;
  if (in.back() == '=') ++pad;
  if (in.size() >= 2 && in[in.size() - 2] == '=') ++pad;
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < in.size() - pad; ++i) {
    const int v = base64_digit(in[i]);
    if (v < 0) return false;
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xFF));
    }
  }
  // Leftover bits must be zero padding, otherwise the encoding was not canonical.
  return (acc & ((1u << bits) - 1)) == 0;
}

using RankMap = tokenizer_detail::StringMap<int32_t>;

// BPE of `token` using only merges whose result ranks below `max_rank`; lowest rank first,
// leftmost on ties. Returns the part boundaries (offsets into token, including 0 and size).
std::vector<size_t> bpe_parts(std::string_view token, const RankMap& ranks, int32_t max_rank) {
  std::vector<size_t> cut(token.size() + 1);
  for (size_t i = 0; i <= token.size(); ++i) cut[i] = i;
  while (cut.size() > 2) {
    int32_t best_rank = max_rank;
    size_t best = 0;
    for (size_t i = 0; i + 2 < cut.size(); ++i) {
      // Adjacent parts are contiguous in token, so their concatenation is a substring.
      const auto it = ranks.find(token.substr(cut[i], cut[i + 2] - cut[i]));
      if (it != ranks.end() && it->second < best_rank) {
        best_rank = it->second;
        best = i + 1;
      }
    }
    if (best == 0) break;
    cut.erase(cut.begin() + static_cast<std::ptrdiff_t>(best));
  }
  return cut;
}

}  // namespace

Result<Vocab> vocab_from_tiktoken(const std::string& path, const TiktokenOptions& options) {
  const std::string where = "tiktoken '" + path + "'";
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error(where + ": cannot open");
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string data = buffer.str();

  std::vector<std::string> by_rank;  // raw token bytes, index = rank
  std::vector<bool> have;
  RankMap ranks;
  size_t line_no = 0;
  size_t pos = 0;
  std::string bytes;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    std::string_view line(data.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const std::string at = where + " line " + std::to_string(line_no);
    const size_t space = line.find(' ');
    if (space == std::string_view::npos) {
      return Status::Error(at + ": expected 'base64 rank', got '" + std::string(line) + "'");
    }
    const std::string_view b64 = line.substr(0, space);
    const std::string_view rank_text = line.substr(space + 1);
    int64_t rank = -1;
    const auto [ptr, ec] =
        std::from_chars(rank_text.data(), rank_text.data() + rank_text.size(), rank);
    if (ec != std::errc() || ptr != rank_text.data() + rank_text.size() || rank < 0 ||
        rank >= (int64_t{1} << 30)) {
      return Status::Error(at + ": bad rank '" + std::string(rank_text) + "'");
    }
    if (!decode_base64(b64, bytes)) {
      return Status::Error(at + ": bad base64 '" + std::string(b64) + "'");
    }
    const auto r = static_cast<size_t>(rank);
    if (r >= by_rank.size()) {
      by_rank.resize(r + 1);
      have.resize(r + 1, false);
    }
    if (have[r]) return Status::Error(at + ": rank " + std::to_string(rank) + " repeated");
    if (!ranks.emplace(bytes, static_cast<int32_t>(rank)).second) {
      return Status::Error(at + ": token '" + std::string(b64) + "' repeated");
    }
    have[r] = true;
    by_rank[r] = bytes;
  }
  if (by_rank.empty()) return Status::Error(where + ": no tokens");
  for (size_t r = 0; r < have.size(); ++r) {
    if (!have[r]) {
      return Status::Error(where + ": rank " + std::to_string(r) + " missing (ranks must be 0.." +
                           std::to_string(have.size() - 1) + ")");
    }
  }

  Vocab v;
  v.model = VocabModel::kBpe;
  v.pre = options.pre;
  const size_t n_ranks = by_rank.size();
  v.tokens.reserve(n_ranks + options.special_tokens.size());
  for (const std::string& t : by_rank) v.tokens.push_back(bytes_to_unicode(t));
  v.token_types.assign(n_ranks, TokenType::kNormal);
  for (size_t r = 0; r < n_ranks; ++r) {
    const std::string& t = by_rank[r];
    if (t.size() < 2) continue;
    const std::vector<size_t> cut = bpe_parts(t, ranks, static_cast<int32_t>(r));
    if (cut.size() != 3) continue;
    v.merges.push_back(bytes_to_unicode(std::string_view(t).substr(0, cut[1])) + " " +
                       bytes_to_unicode(std::string_view(t).substr(cut[1])));
  }
  for (const std::string& s : options.special_tokens) {
    v.tokens.push_back(s);
    v.token_types.push_back(TokenType::kControl);
  }
  v.scores.assign(v.tokens.size(), 0.0f);

  auto find_special = [&](const std::string& name, int32_t& id) -> Status {
    if (name.empty()) return Status::Ok();
    const auto it = std::find(options.special_tokens.begin(), options.special_tokens.end(), name);
    if (it == options.special_tokens.end()) {
      return Status::Error(where + ": special token '" + name + "' is not in the special tokens");
    }
    id = static_cast<int32_t>(n_ranks + static_cast<size_t>(it - options.special_tokens.begin()));
    return Status::Ok();
  };
  TERN_RETURN_IF_ERROR(find_special(options.bos_token, v.bos_id));
  TERN_RETURN_IF_ERROR(find_special(options.eos_token, v.eos_id));
  v.add_bos = options.add_bos;
  v.add_eos = options.add_eos;
  TERN_RETURN_IF_ERROR(v.validate().with_context(where));
  return v;
}

}  // namespace tern
