// vocab_from_gguf() / add_vocab_to_gguf(): the tokenizer.ggml.* metadata keys.
#include "format/gguf.h"
#include "tokenizer/vocab.h"

namespace tern {
namespace {

constexpr const char* kModel = "tokenizer.ggml.model";
constexpr const char* kPre = "tokenizer.ggml.pre";
constexpr const char* kTokens = "tokenizer.ggml.tokens";
constexpr const char* kScores = "tokenizer.ggml.scores";
constexpr const char* kTokenType = "tokenizer.ggml.token_type";
constexpr const char* kMerges = "tokenizer.ggml.merges";
constexpr const char* kBos = "tokenizer.ggml.bos_token_id";
constexpr const char* kEos = "tokenizer.ggml.eos_token_id";
constexpr const char* kUnk = "tokenizer.ggml.unknown_token_id";
constexpr const char* kPad = "tokenizer.ggml.padding_token_id";
constexpr const char* kAddBos = "tokenizer.ggml.add_bos_token";
constexpr const char* kAddEos = "tokenizer.ggml.add_eos_token";
constexpr const char* kAddSpacePrefix = "tokenizer.ggml.add_space_prefix";

Status read_id(const gguf::GgufFile& f, const char* key, int32_t n, int32_t& id) {
  if (!f.has(key)) return Status::Ok();
  TERN_ASSIGN_OR_RETURN(const int64_t value, f.get_int(key));
  // llama.cpp writes "no such token" as -1, which lands on disk as u32 0xFFFFFFFF
  // (stories260K's padding id, for one).
  if (value == -1 || value == 0xFFFFFFFFll) {
    id = -1;
    return Status::Ok();
  }
  if (value < 0 || value >= n) {
    return Status::Error(std::string(key) + " = " + std::to_string(value) +
                         " is outside the vocabulary of " + std::to_string(n) + " tokens");
  }
  id = static_cast<int32_t>(value);
  return Status::Ok();
}

Status read_bool(const gguf::GgufFile& f, const char* key, bool& value) {
  if (!f.has(key)) return Status::Ok();
  TERN_ASSIGN_OR_RETURN(value, f.get_bool(key));
  return Status::Ok();
}

Result<Vocab> read_vocab(const gguf::GgufFile& f) {
  Vocab v;
  TERN_ASSIGN_OR_RETURN(const std::string model, f.get_string(kModel));
  if (model == "gpt2") {
    v.model = VocabModel::kBpe;
  } else if (model == "llama") {
    v.model = VocabModel::kSpm;
  } else {
    return Status::Error(std::string(kModel) + " = '" + model +
                         "' is not supported (supported: gpt2, llama)");
  }
  if (f.has(kPre)) {
    TERN_ASSIGN_OR_RETURN(v.pre, f.get_string(kPre));
  }
  TERN_ASSIGN_OR_RETURN(v.tokens, f.get_string_array(kTokens));
  if (v.tokens.empty()) return Status::Error(std::string(kTokens) + " is empty");
  if (v.tokens.size() > static_cast<size_t>(INT32_MAX)) {
    return Status::Error(std::string(kTokens) + " has " + std::to_string(v.tokens.size()) +
                         " entries, more than int32 ids allow");
  }
  const int32_t n = v.size();
  for (int32_t i = 0; i < n; ++i) {
    // llama.cpp's rename, so lookups by text stay unambiguous.
    if (v.tokens[static_cast<size_t>(i)].empty()) {
      v.tokens[static_cast<size_t>(i)] = "[EMPTY_" + std::to_string(i) + "]";
    }
  }

  if (f.has(kScores)) {
    TERN_ASSIGN_OR_RETURN(v.scores, f.get_float_array(kScores));
    if (v.scores.size() != v.tokens.size()) {
      return Status::Error(std::string(kScores) + " has " + std::to_string(v.scores.size()) +
                           " entries for " + std::to_string(n) + " tokens");
    }
  } else {
    v.scores.assign(v.tokens.size(), 0.0f);
  }
  if (f.has(kTokenType)) {
    TERN_ASSIGN_OR_RETURN(const std::vector<int64_t> types, f.get_int_array(kTokenType));
    if (types.size() != v.tokens.size()) {
      return Status::Error(std::string(kTokenType) + " has " + std::to_string(types.size()) +
                           " entries for " + std::to_string(n) + " tokens");
    }
    v.token_types.reserve(types.size());
    for (size_t i = 0; i < types.size(); ++i) {
      if (types[i] < 0 || types[i] > 6) {
        return Status::Error(std::string(kTokenType) + "[" + std::to_string(i) +
                             "] = " + std::to_string(types[i]) + " is not a token type (0..6)");
      }
      v.token_types.push_back(static_cast<TokenType>(types[i]));
    }
  } else {
    v.token_types.assign(v.tokens.size(), TokenType::kNormal);
  }
  if (v.model == VocabModel::kBpe) {
    // llama.cpp refuses a gpt2 vocabulary without merges.
    TERN_ASSIGN_OR_RETURN(v.merges, f.get_string_array(kMerges));
  }

  // llama.cpp's defaults, then the file's keys.
  if (v.model == VocabModel::kSpm) {
    v.bos_id = n > 1 ? 1 : -1;
    v.eos_id = n > 2 ? 2 : -1;
    v.unk_id = 0;
    v.add_bos = v.bos_id >= 0;
    v.add_space_prefix = true;
  } else {
    v.add_bos = v.pre == "llama-bpe" || v.pre == "llama3" || v.pre == "llama-v3";
  }
  TERN_RETURN_IF_ERROR(read_id(f, kBos, n, v.bos_id));
  TERN_RETURN_IF_ERROR(read_id(f, kEos, n, v.eos_id));
  TERN_RETURN_IF_ERROR(read_id(f, kUnk, n, v.unk_id));
  TERN_RETURN_IF_ERROR(read_id(f, kPad, n, v.pad_id));
  TERN_RETURN_IF_ERROR(read_bool(f, kAddBos, v.add_bos));
  TERN_RETURN_IF_ERROR(read_bool(f, kAddEos, v.add_eos));
  TERN_RETURN_IF_ERROR(read_bool(f, kAddSpacePrefix, v.add_space_prefix));
  if (v.add_bos && v.bos_id < 0) {
    return Status::Error(std::string(kAddBos) + " is true but " + kBos + " is not set");
  }
  if (v.add_eos && v.eos_id < 0) {
    return Status::Error(std::string(kAddEos) + " is true but " + kEos + " is not set");
  }
  TERN_RETURN_IF_ERROR(v.validate());
  return v;
}

}  // namespace

Result<Vocab> vocab_from_gguf(const gguf::GgufFile& file) {
  Result<Vocab> v = read_vocab(file);
  if (!v.ok()) return v.status().with_context("tokenizer vocabulary from GGUF");
  return v;
}

void add_vocab_to_gguf(const Vocab& vocab, gguf::GgufWriter& w) {
  w.set_string(kModel, std::string(vocab_model_name(vocab.model)));
  w.set_string(kPre, vocab.pre);
  w.set_string_array(kTokens, vocab.tokens);
  w.set_f32_array(kScores, vocab.scores);
  std::vector<int32_t> types;
  types.reserve(vocab.token_types.size());
  for (const TokenType t : vocab.token_types) types.push_back(static_cast<int32_t>(t));
  w.set_i32_array(kTokenType, std::move(types));
  if (vocab.model == VocabModel::kBpe) w.set_string_array(kMerges, vocab.merges);
  auto set_id = [&](const char* key, int32_t id) {
    if (id >= 0) {
      w.set_u32(key, static_cast<uint32_t>(id));
    } else {
      w.remove_key(key);
    }
  };
  set_id(kBos, vocab.bos_id);
  set_id(kEos, vocab.eos_id);
  set_id(kUnk, vocab.unk_id);
  set_id(kPad, vocab.pad_id);
  w.set_bool(kAddBos, vocab.add_bos);
  w.set_bool(kAddEos, vocab.add_eos);
  w.set_bool(kAddSpacePrefix, vocab.add_space_prefix);
}

}  // namespace tern
