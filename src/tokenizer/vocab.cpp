#include "tokenizer/vocab.h"

#include <cmath>
#include <unordered_set>

namespace tern {
namespace {

std::string quoted(std::string_view s) {
  constexpr size_t kMax = 60;  // keep messages short for long texts
  std::string out = "'";
  out += s.substr(0, kMax);
  if (s.size() > kMax) out += "...";
  out += "'";
  return out;
}

Status check_id(const char* name, int32_t id, int32_t n) {
  if (id < -1 || id >= n) {
    return Status::Error(std::string("vocab: ") + name + " " + std::to_string(id) +
                         " outside the vocabulary of " + std::to_string(n) + " tokens");
  }
  return Status::Ok();
}

}  // namespace

std::string_view vocab_model_name(VocabModel model) {
  switch (model) {
    case VocabModel::kBpe:
      return "gpt2";
    case VocabModel::kSpm:
      return "llama";
  }
  return "?";
}

Status Vocab::validate() const {
  const int32_t n = size();
  if (tokens.empty()) return Status::Error("vocab: no tokens");
  if (tokens.size() > static_cast<size_t>(INT32_MAX)) {
    return Status::Error("vocab: " + std::to_string(tokens.size()) + " tokens do not fit int32");
  }
  if (scores.size() != tokens.size()) {
    return Status::Error("vocab: " + std::to_string(scores.size()) + " scores for " +
                         std::to_string(n) + " tokens");
  }
  if (token_types.size() != tokens.size()) {
    return Status::Error("vocab: " + std::to_string(token_types.size()) + " token types for " +
                         std::to_string(n) + " tokens");
  }
  TERN_RETURN_IF_ERROR(check_id("bos id", bos_id, n));
  TERN_RETURN_IF_ERROR(check_id("eos id", eos_id, n));
  TERN_RETURN_IF_ERROR(check_id("unk id", unk_id, n));
  TERN_RETURN_IF_ERROR(check_id("pad id", pad_id, n));
  if (add_bos && bos_id < 0) return Status::Error("vocab: add_bos is set but there is no bos id");
  if (add_eos && eos_id < 0) return Status::Error("vocab: add_eos is set but there is no eos id");

  std::unordered_set<std::string_view> seen;
  seen.reserve(tokens.size());
  for (int32_t i = 0; i < n; ++i) {
    const std::string& t = tokens[static_cast<size_t>(i)];
    if (t.empty()) return Status::Error("vocab: token " + std::to_string(i) + " is empty");
    if (!seen.insert(t).second) {
      return Status::Error("vocab: token " + std::to_string(i) + " " + quoted(t) +
                           " duplicates an earlier token");
    }
    if (std::isnan(scores[static_cast<size_t>(i)])) {
      return Status::Error("vocab: score of token " + std::to_string(i) + " is NaN");
    }
    const auto type = static_cast<int32_t>(token_types[static_cast<size_t>(i)]);
    if (type < 0 || type > 6) {
      return Status::Error("vocab: token " + std::to_string(i) + " has type " +
                           std::to_string(type) + " (valid: 0..6)");
    }
  }
  if (model == VocabModel::kSpm && !merges.empty()) {
    return Status::Error("vocab: a SentencePiece (llama) vocabulary has " +
                         std::to_string(merges.size()) + " merges; it ranks pairs by score");
  }
  for (size_t i = 0; i < merges.size(); ++i) {
    // Split like llama.cpp: at the first space after the first byte.
    const std::string& m = merges[i];
    const size_t space = m.size() > 1 ? m.find(' ', 1) : std::string::npos;
    if (space == std::string::npos || space + 1 >= m.size()) {
      return Status::Error("vocab: merge " + std::to_string(i) + " " + quoted(m) +
                           " is not 'left right'");
    }
  }
  return Status::Ok();
}

std::vector<std::string> llama3_special_tokens() {
  std::vector<std::string> names = {
      "<|begin_of_text|>",
      "<|end_of_text|>",
      "<|reserved_special_token_0|>",
      "<|reserved_special_token_1|>",
      "<|finetune_right_pad_id|>",
      "<|step_id|>",
      "<|start_header_id|>",
      "<|end_header_id|>",
      "<|eom_id|>",
      "<|eot_id|>",
      "<|python_tag|>",
      "<|image|>",
  };
  for (int i = 2; names.size() < 256; ++i) {
    names.push_back("<|reserved_special_token_" + std::to_string(i) + "|>");
  }
  return names;
}

}  // namespace tern
