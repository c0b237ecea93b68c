// `tern tokenizer`: train a SentencePiece BPE vocabulary into a GGUF file, and
// encode text with any GGUF vocabulary (tern's or llama.cpp's).
#include <cstdio>
#include <memory>
#include <sstream>

#include "cli/commands.h"
#include "cli/train_flags.h"
#include "data/gcide.h"
#include "format/gguf.h"
#include "tokenizer/spm_trainer.h"
#include "tokenizer/tokenizer.h"

namespace tern::cli {
namespace tokenizer_cmd {
namespace {

struct TokenizerArgs {
  std::string text_file;
  std::string gcide_dir = kDefaultGcideDir;
  size_t max_bytes = 8 << 20;
  int vocab_size = 4096;
  std::string output;
  std::string vocab_file;
  std::string text;
  bool special = false;
};

int run_train(const TokenizerArgs& a) {
  Result<std::string> corpus = load_corpus(a.text_file, a.gcide_dir, a.max_bytes);
  if (!corpus.ok()) return fail("tokenizer train", corpus.status());
  std::vector<std::string> lines;
  std::istringstream in(corpus.value());
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  SpmTrainOptions options;
  options.vocab_size = a.vocab_size;
  Result<std::string> model = train_sentencepiece(lines, options);
  if (!model.ok()) return fail("tokenizer train", model.status());
  Result<Vocab> vocab = vocab_from_sentencepiece(model.value());
  if (!vocab.ok()) return fail("tokenizer train", vocab.status());
  gguf::GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  writer.set_string("general.name", "tern tokenizer");
  add_vocab_to_gguf(vocab.value(), writer);
  const Status written = writer.write(a.output);
  if (!written.ok()) return fail("tokenizer train", written);
  std::printf("trained a %d-token SentencePiece BPE vocabulary on %zu lines -> %s\n",
              vocab.value().size(), lines.size(), a.output.c_str());
  return 0;
}

int run_encode(const TokenizerArgs& a) {
  Result<gguf::GgufFile> file = gguf::GgufFile::open(a.vocab_file);
  if (!file.ok()) return fail("tokenizer encode", file.status());
  Result<Vocab> vocab = vocab_from_gguf(file.value());
  if (!vocab.ok()) return fail("tokenizer encode", vocab.status().with_context(a.vocab_file));
  Result<Tokenizer> tokenizer = Tokenizer::create(std::move(vocab).value());
  if (!tokenizer.ok()) return fail("tokenizer encode", tokenizer.status());
  for (int32_t id : tokenizer.value().encode(a.text, a.special, a.special)) std::printf("%d ", id);
  std::printf("\n");
  return 0;
}

}  // namespace
}  // namespace tokenizer_cmd

Command add_tokenizer_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand("tokenizer", "Train or run tokenizers (GGUF vocabularies)");
  app->require_subcommand(1);
  auto args = std::make_shared<tokenizer_cmd::TokenizerArgs>();
  CLI::App* train = app->add_subcommand(
      "train", "Train a SentencePiece BPE vocabulary (libsentencepiece) and save it as GGUF");
  train->add_option("--text", args->text_file, "Training text (default: the GCIDE dictionary)");
  train->add_option("--gcide-dir", args->gcide_dir, "Where dict-gcide installed its files")
      ->capture_default_str();
  train->add_option("--max-bytes", args->max_bytes, "Use at most this many bytes of text")
      ->capture_default_str();
  train->add_option("--vocab-size", args->vocab_size, "Tokens in the vocabulary")
      ->capture_default_str();
  train->add_option("-o,--output", args->output, "GGUF file to write")->required();
  CLI::App* encode = app->add_subcommand("encode", "Print the token ids of a text");
  encode->add_option("--vocab", args->vocab_file, "GGUF file with tokenizer metadata")->required();
  encode->add_option("text", args->text, "Text to encode")->required();
  encode->add_flag("--special", args->special, "Add BOS/EOS and parse special tokens");
  return {app, [args, train]() -> int {
            return train->parsed() ? tokenizer_cmd::run_train(*args)
                                   : tokenizer_cmd::run_encode(*args);
          }};
}

}  // namespace tern::cli
