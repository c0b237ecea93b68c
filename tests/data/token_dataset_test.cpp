#include <gtest/gtest.h>

#include <vector>

#include "data/token_dataset.h"

namespace tern {
namespace {

TEST(TokenDatasetTest, WindowsAreShiftedAndStayInTheirSplit) {
  std::string text;
  for (int i = 0; i < 1000; ++i) text.push_back(static_cast<char>('a' + i % 26));
  const TokenDataset d = TokenDataset::from_bytes(text, 0.1).value();
  EXPECT_EQ(d.train_tokens(), 900);
  EXPECT_EQ(d.val_tokens(), 100);
  Rng rng(3);
  std::vector<int32_t> tokens(4 * 16), labels(4 * 16);
  for (int trial = 0; trial < 50; ++trial) {
    d.sample_train(rng, 4, 16, tokens, labels);
    for (size_t i = 0; i < tokens.size(); ++i) {
      EXPECT_EQ(labels[i], 'a' + (tokens[i] - 'a' + 1) % 26);  // next byte
    }
  }
  std::vector<int32_t> t1(tokens.size()), l1(tokens.size());
  d.val_batch(1, 2, 4, 16, tokens, labels);
  d.val_batch(1, 2, 4, 16, t1, l1);
  EXPECT_EQ(tokens, t1);  // fixed validation batches
}

TEST(TokenDatasetTest, ErrorsNameTheProblem) {
  EXPECT_NE(TokenDataset::from_bytes("abc", 1.5).status().message().find("1.5"), std::string::npos);
  const TokenDataset small = TokenDataset::from_bytes("abcdefghij", 0.5).value();
  EXPECT_NE(small.check_window(8).message().find("window of 9 tokens"), std::string::npos);
  EXPECT_NE(TokenDataset::from_tokens({1, 2, 300}, 256, 0.1)
                .status()
                .message()
                .find("token 300 at position 0 of the validation split"),
            std::string::npos);
}

}  // namespace
}  // namespace tern
