// Tokenizer training for models trained from scratch, through Debian's
// libsentencepiece: a SentencePiece BPE vocabulary (byte fallback, no text
// normalization, dummy-prefix ▁) converted to tern's Vocab, which tern's own
// SPM tokenizer then runs. Training is single-threaded and deterministic for a
// given corpus and options. Functions are reentrant.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/vocab.h"

namespace tern {

struct SpmTrainOptions {
  int vocab_size = 4096;
  // Sentences longer than this many bytes are skipped by the trainer.
  int max_sentence_length = 16384;
  // At most this many sentences are used for training (0 = all).
  int input_sentence_size = 0;
};

// Trains on the given sentences (lines); returns the serialized SentencePiece
// model. Errors (too small a corpus for the vocabulary, …) name the cause.
Result<std::string> train_sentencepiece(const std::vector<std::string>& sentences,
                                        const SpmTrainOptions& options);

// tern's view of a SentencePiece model: model "llama", pieces with scores and
// types, <unk>/<s>/</s> ids, dummy-prefix flag.
Result<Vocab> vocab_from_sentencepiece(const std::string& serialized_model);

// Trains a vocabulary on documents: their non-empty lines, at most max_lines of
// them in document order, are the sentences.
Result<Vocab> train_vocab_on_documents(const std::vector<std::string>& documents, int vocab_size,
                                       size_t max_lines = 40000);

}  // namespace tern
