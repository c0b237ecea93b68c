// Perplexity of a model over a token stream or a text file.
//
// A stream of S tokens gives S − 1 predictions: token i predicts token i + 1.
// The predictions are cut into non-overlapping windows of `seq` inputs (the
// last window may be shorter and is included); each window is one row of a
// forward pass over [batch, seq] (a short window is padded with ignored
// positions, which causal attention keeps from affecting the real ones). So a
// prediction sees only the context inside its own window. A target whose loss
// mask is off (TokenStream::is_target false, e.g. a user turn of chat data) is
// not counted. The result is the mean negative log-likelihood per counted
// token (natural log), perplexity = exp(mean NLL), and the count. NLL sums are
// accumulated in double in window order, so the result is deterministic; other
// batch sizes change only the grouping of those double sums (last-bit
// differences). The model must not be in use by another thread.
//
// Text: the file is one document. It is encoded with the model's tokenizer in
// pieces of at most 16 MiB cut just after a newline (the tokenizer's input
// limit; only larger files have more than one piece, and a SentencePiece
// dummy-prefix space then starts each piece), special-token text is encoded as
// plain text, BOS is prepended once when the vocabulary asks for it
// (add_bos), and no EOS or separator is added.
// Errors (bad options, a stream too short or without targets, tokens outside
// the model's vocabulary, unreadable files) name the value and the file.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "data/token_dataset.h"
#include "model/bitnet.h"
#include "tokenizer/tokenizer.h"

namespace tern {

struct EvalOptions {
  int64_t seq = 512;  // window length, 1 … config().max_seq
  int64_t batch = 4;  // windows per forward pass, ≥ 1
};

struct EvalResult {
  double mean_nll = 0.0;  // nats per counted token
  double perplexity = 0.0;
  int64_t tokens = 0;  // counted target tokens
};

Result<EvalResult> evaluate_stream(BitNetModel& model, const TokenStream& stream,
                                   const EvalOptions& options);

// The token stream a text becomes, as described above.
std::vector<int32_t> tokenize_eval_text(const Tokenizer& tokenizer, std::string_view text);

Result<EvalResult> evaluate_text_file(BitNetModel& model, const Tokenizer& tokenizer,
                                      const std::string& path, const EvalOptions& options);

}  // namespace tern
