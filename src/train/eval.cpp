#include "train/eval.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <vector>

#include "core/mapped_file.h"
#include "core/portable_math.h"
#include "kernels/cpu/cross_entropy.h"

namespace tern {
namespace {

// The tokenizer's input limit is 512 MiB; smaller pieces keep its working
// memory modest.
constexpr size_t kMaxPiece = size_t{16} << 20;

}  // namespace

Result<EvalResult> evaluate_stream(BitNetModel& model, const TokenStream& stream,
                                   const EvalOptions& options) {
  const ModelConfig& c = model.config();
  if (options.seq < 1 || options.seq > c.max_seq) {
    return Status::Error("eval: window length " + std::to_string(options.seq) + " outside [1, " +
                         std::to_string(c.max_seq) + "]");
  }
  if (options.batch < 1) {
    return Status::Error("eval: batch " + std::to_string(options.batch) + " must be ≥ 1");
  }
  if (stream.size() < 2) {
    return Status::Error("eval: " + std::to_string(stream.size()) +
                         " tokens, need at least 2 (one prediction)");
  }
  const int64_t seq = options.seq;
  const int64_t predictions = stream.size() - 1;
  const int64_t windows = (predictions + seq - 1) / seq;
  const int64_t batch = std::min(options.batch, windows);
  std::vector<int32_t> tokens(static_cast<size_t>(batch * seq));  // [batch, seq]
  std::vector<int32_t> labels(tokens.size());                     // [batch, seq]
  double nll_sum = 0.0;
  int64_t counted = 0;
  for (int64_t first = 0; first < windows; first += batch) {
    const int64_t rows = std::min(batch, windows - first);
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t start = (first + r) * seq;
      const int64_t len = std::min(seq, predictions - start);
      int32_t* t = tokens.data() + r * seq;
      int32_t* y = labels.data() + r * seq;
      copy_window(stream, start, len, t, y);
      std::fill(t + len, t + seq, 0);  // padding: after the real inputs, ignored
      std::fill(y + len, y + seq, -1);
    }
    const size_t n = static_cast<size_t>(rows * seq);
    const std::span<const int32_t> batch_tokens(tokens.data(), n);
    const std::span<const int32_t> batch_labels(labels.data(), n);
    const Status valid = model.check_batch(batch_tokens, batch_labels, rows, seq);
    if (!valid.ok()) {
      return valid.with_context("eval: windows from stream offset " + std::to_string(first * seq));
    }
    model.forward(batch_tokens, {}, rows, seq);
    // Summed here rather than taken from forward's float mean, so batches of
    // different sizes add up exactly.
    const ref::CrossEntropyTotals totals =
        cpu::cross_entropy_forward(model.logits().data(), batch_labels.data(), rows * seq, c.vocab);
    nll_sum += totals.loss_sum;
    counted += totals.count;
  }
  if (counted == 0) {
    return Status::Error("eval: none of the " + std::to_string(predictions) +
                         " predicted tokens is a target (the loss mask excludes them all)");
  }
  EvalResult result;
  result.tokens = counted;
  result.mean_nll = nll_sum / static_cast<double>(counted);
  result.perplexity = portable_exp(result.mean_nll);
  return result;
}

std::vector<int32_t> tokenize_eval_text(const Tokenizer& tokenizer, std::string_view text) {
  std::vector<int32_t> tokens;
  const Vocab& vocab = tokenizer.vocab();
  if (vocab.add_bos && vocab.bos_id >= 0) tokens.push_back(vocab.bos_id);
  while (!text.empty()) {
    size_t len = std::min(text.size(), kMaxPiece);
    if (len < text.size()) {
      const size_t newline = text.rfind('\n', len - 1);
      if (newline != std::string_view::npos) len = newline + 1;
    }
    const std::vector<int32_t> piece =
        tokenizer.encode(text.substr(0, len), /*add_special=*/false, /*parse_special=*/false);
    tokens.insert(tokens.end(), piece.begin(), piece.end());
    text.remove_prefix(len);
  }
  return tokens;
}

Result<EvalResult> evaluate_text_file(BitNetModel& model, const Tokenizer& tokenizer,
                                      const std::string& path, const EvalOptions& options) {
  const std::string label = "eval text '" + path + "'";
  TERN_ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> file, MappedFile::open(path, label));
  const std::span<const uint8_t> bytes = file->bytes();
  const std::string_view text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  Result<EvalResult> result =
      evaluate_stream(model, TokenStream::owned(tokenize_eval_text(tokenizer, text)), options);
  if (!result.ok()) return result.status().with_context(label);
  return result;
}

}  // namespace tern
