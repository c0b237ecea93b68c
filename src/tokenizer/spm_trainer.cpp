#include "tokenizer/spm_trainer.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <sstream>
#include <unordered_map>

namespace tern {
namespace {

// Feeds in-memory sentences to the trainer (no temporary files).
class VectorIterator final : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& sentences) : sentences_(sentences) {}
  bool done() const override { return index_ >= sentences_.size(); }
  void Next() override { ++index_; }
  const std::string& value() const override { return sentences_[index_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& sentences_;
  size_t index_ = 0;
};

}  // namespace

Result<std::string> train_sentencepiece(const std::vector<std::string>& sentences,
                                        const SpmTrainOptions& options) {
  if (options.vocab_size < 300 || options.vocab_size > 1'000'000) {
    return Status::Error("tokenizer train: vocab size " + std::to_string(options.vocab_size) +
                         " must be in [300, 1000000] (256 byte tokens + specials + merges)");
  }
  if (sentences.empty()) return Status::Error("tokenizer train: the corpus has no lines");
  // The settings of Llama's SentencePiece tokenizer: BPE, raw bytes for anything
  // unseen, no normalization, whitespace kept as is.
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", "bpe"},
      {"vocab_size", std::to_string(options.vocab_size)},
      {"character_coverage", "1.0"},
      {"byte_fallback", "true"},
      {"normalization_rule_name", "identity"},
      {"remove_extra_whitespaces", "false"},
      {"add_dummy_prefix", "true"},
      {"split_digits", "true"},
      {"allow_whitespace_only_pieces", "true"},
      {"max_sentence_length", std::to_string(options.max_sentence_length)},
      {"input_sentence_size", std::to_string(options.input_sentence_size)},
      {"shuffle_input_sentence", "false"},
      {"num_threads", "1"},
      {"unk_id", "0"},
      {"bos_id", "1"},
      {"eos_id", "2"},
      {"pad_id", "-1"},
      {"minloglevel", "2"},
  };
  VectorIterator iterator(sentences);
  std::string model;
  const sentencepiece::util::Status status =
      sentencepiece::SentencePieceTrainer::Train(args, &iterator, &model);
  if (!status.ok()) return Status::Error("tokenizer train: sentencepiece: " + status.ToString());
  return model;
}

Result<Vocab> vocab_from_sentencepiece(const std::string& serialized_model) {
  sentencepiece::SentencePieceProcessor sp;
  const sentencepiece::util::Status status = sp.LoadFromSerializedProto(serialized_model);
  if (!status.ok()) {
    return Status::Error("sentencepiece model: " + status.ToString());
  }
  Vocab v;
  v.model = VocabModel::kSpm;
  v.pre = "default";
  const int n = sp.GetPieceSize();
  for (int id = 0; id < n; ++id) {
    v.tokens.push_back(sp.IdToPiece(id));
    v.scores.push_back(sp.GetScore(id));
    TokenType type = TokenType::kNormal;
    if (sp.IsUnknown(id)) {
      type = TokenType::kUnknown;
    } else if (sp.IsControl(id)) {
      type = TokenType::kControl;
    } else if (sp.IsByte(id)) {
      type = TokenType::kByte;
    } else if (sp.IsUnused(id)) {
      type = TokenType::kUnused;
    }
    v.token_types.push_back(type);
  }
  v.unk_id = sp.unk_id();
  v.bos_id = sp.bos_id();
  v.eos_id = sp.eos_id();
  v.pad_id = sp.pad_id();
  v.add_bos = true;
  v.add_eos = false;
  v.add_space_prefix = true;
  TERN_RETURN_IF_ERROR(v.validate().with_context("sentencepiece model"));
  return v;
}

Result<Vocab> train_vocab_on_documents(const std::vector<std::string>& documents, int vocab_size,
                                       size_t max_lines) {
  std::vector<std::string> lines;
  for (const std::string& doc : documents) {
    std::istringstream in(doc);
    for (std::string line; lines.size() < max_lines && std::getline(in, line);) {
      if (!line.empty()) lines.push_back(line);
    }
  }
  SpmTrainOptions options;
  options.vocab_size = vocab_size;
  TERN_ASSIGN_OR_RETURN(std::string model, train_sentencepiece(lines, options));
  return vocab_from_sentencepiece(model);
}

}  // namespace tern
