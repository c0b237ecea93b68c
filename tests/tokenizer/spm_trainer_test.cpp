// `tern tokenizer train`'s engine: a vocabulary trained with libsentencepiece,
// run by tern's own SPM tokenizer, must encode held-out text exactly as
// libsentencepiece's encoder does.
#include <gtest/gtest.h>

#include <sentencepiece_processor.h>

#include <filesystem>
#include <sstream>

#include "data/gcide.h"
#include "format/gguf.h"
#include "tokenizer/spm_trainer.h"
#include "tokenizer/tokenizer.h"

namespace tern::spm_trainer_test {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

TEST(SpmTrainerTest, tokenizer_trained_vocab_matches_sentencepiece_on_held_out_lines) {
  if (!std::filesystem::exists(std::string(kDefaultGcideDir) + "/gcide.dict.dz")) {
    GTEST_SKIP() << "dict-gcide is not installed; run scripts/setup.sh";
  }
  const std::vector<std::string> lines = lines_of(gcide_corpus(kDefaultGcideDir, 3 << 20).value());
  ASSERT_GT(lines.size(), 40000u);
  const std::vector<std::string> train(lines.begin(), lines.begin() + 30000);
  const std::vector<std::string> held_out(lines.end() - 5000, lines.end());

  SpmTrainOptions options;
  options.vocab_size = 2000;
  Result<std::string> model = train_sentencepiece(train, options);
  ASSERT_TRUE(model.ok()) << model.status().message();
  Result<Vocab> vocab = vocab_from_sentencepiece(model.value());
  ASSERT_TRUE(vocab.ok()) << vocab.status().message();
  EXPECT_EQ(vocab.value().size(), 2000);
  // Through the GGUF metadata `tern tokenizer train` writes, as the runtime sees it.
  gguf::GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  add_vocab_to_gguf(vocab.value(), writer);
  const gguf::GgufFile file = gguf::GgufFile::parse(writer.serialize()).value();
  const Tokenizer tokenizer = Tokenizer::create(vocab_from_gguf(file).value()).value();

  sentencepiece::SentencePieceProcessor sp;
  ASSERT_TRUE(sp.LoadFromSerializedProto(model.value()).ok());
  size_t same = 0;
  std::string first_diff;
  for (const std::string& line : held_out) {
    std::vector<int> want;
    ASSERT_TRUE(sp.Encode(line, &want).ok());
    const std::vector<int32_t> got = tokenizer.encode(line, false, false);
    if (std::vector<int32_t>(want.begin(), want.end()) == got) {
      ++same;
    } else if (first_diff.empty()) {
      first_diff = line;
    }
  }
  std::cout << "[spm] identical encodings: " << same << "/" << held_out.size() << "\n";
  RecordProperty("identical_lines", std::to_string(same));
  EXPECT_EQ(same, held_out.size()) << "first differing line: " << first_diff;
}

TEST(SpmTrainerTest, tokenizer_train_errors_are_named) {
  EXPECT_NE(train_sentencepiece({"a b c"}, SpmTrainOptions{.vocab_size = 10})
                .status()
                .message()
                .find("vocab size 10"),
            std::string::npos);
  EXPECT_FALSE(train_sentencepiece({}, SpmTrainOptions{}).ok());
  EXPECT_FALSE(vocab_from_sentencepiece("not a model").ok());
}

}  // namespace
}  // namespace tern::spm_trainer_test
