// core/hash (BLAKE2b-256 known answers), tokenizer_hash, and the token shard
// writer/reader: round trips at both token widths, and ShardSet::open against
// truncated, byte-flipped and malformed directories.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/hash.h"
#include "data/shards.h"
#include "support/files.h"
#include "tokenizer/tokenizer_hash.h"

namespace tern::shards_test {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::write_file;

// A fresh directory under the system temp dir, removed at scope exit.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name)
      : path_(
            (fs::temp_directory_path() / ("tern_shards_" + name + "_" + std::to_string(::getpid())))
                .string()) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// ---- BLAKE2b ----

TEST(HashTest, blake2b_256_known_answers) {
  EXPECT_EQ(blake2b_256_hex(std::string_view()),
            "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8");
  EXPECT_EQ(blake2b_256_hex(std::string_view("abc")),
            "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319");
  const std::vector<uint8_t> abc = {'a', 'b', 'c'};
  EXPECT_EQ(blake2b_256_hex(std::span<const uint8_t>(abc)), blake2b_256_hex("abc"));
}

TEST(HashTest, incremental_equals_one_shot) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data.push_back(static_cast<char>(i * 7 + 3));
  for (const size_t cut :
       {size_t{0}, size_t{1}, size_t{127}, size_t{128}, size_t{129}, size_t{999}, size_t{1000}}) {
    Blake2bHasher h;
    h.update(std::string_view(data).substr(0, cut));
    h.update(std::string_view());  // an empty update changes nothing
    h.update(std::string_view(data).substr(cut));
    EXPECT_EQ(to_hex(h.finish()), blake2b_256_hex(data)) << "split at " << cut;
  }
  EXPECT_NE(blake2b_256_hex(data), blake2b_256_hex(data.substr(1)));
}

// ---- tokenizer hash ----

Vocab sample_vocab() {
  Vocab v;
  v.model = VocabModel::kBpe;
  v.pre = "gpt-2";
  v.tokens = {"a", "b", "ab", "<eos>"};
  v.scores = {0.0f, 0.0f, 0.0f, 0.0f};
  v.token_types = {TokenType::kNormal, TokenType::kNormal, TokenType::kNormal, TokenType::kControl};
  v.merges = {"a b"};
  v.eos_id = 3;
  return v;
}

TEST(TokenizerHashTest, changes_with_every_field_and_is_stable_otherwise) {
  const Vocab base = sample_vocab();
  const std::string h = tokenizer_hash(base);
  EXPECT_EQ(h.size(), 64u);
  EXPECT_EQ(tokenizer_hash(sample_vocab()), h);

  const std::vector<std::pair<const char*, std::function<void(Vocab&)>>> edits = {
      {"model", [](Vocab& v) { v.model = VocabModel::kSpm; }},
      {"pre", [](Vocab& v) { v.pre = "llama-bpe"; }},
      {"token text", [](Vocab& v) { v.tokens[2] = "ba"; }},
      {"token count", [](Vocab& v) { v.tokens.push_back("c"); }},
      // Moving a byte between adjacent strings must change the hash (length prefixes).
      {"token boundary", [](Vocab& v) { v.tokens[0] = "ab", v.tokens[1] = ""; }},
      {"score", [](Vocab& v) { v.scores[1] = 1.0f; }},
      {"score sign of zero", [](Vocab& v) { v.scores[1] = -0.0f; }},
      {"token type", [](Vocab& v) { v.token_types[0] = TokenType::kUserDefined; }},
      {"merge", [](Vocab& v) { v.merges[0] = "b a"; }},
      {"no merges", [](Vocab& v) { v.merges.clear(); }},
      {"bos", [](Vocab& v) { v.bos_id = 3; }},
      {"eos", [](Vocab& v) { v.eos_id = -1; }},
      {"unk", [](Vocab& v) { v.unk_id = 0; }},
      {"pad", [](Vocab& v) { v.pad_id = 0; }},
      {"add_bos", [](Vocab& v) { v.add_bos = true; }},
      {"add_eos", [](Vocab& v) { v.add_eos = true; }},
      {"add_space_prefix", [](Vocab& v) { v.add_space_prefix = true; }},
  };
  std::vector<std::string> seen = {h};
  for (const auto& [name, edit] : edits) {
    Vocab v = base;
    edit(v);
    const std::string changed = tokenizer_hash(v);
    EXPECT_NE(changed, h) << name;
    for (const std::string& other : seen) EXPECT_NE(changed, other) << name;
    seen.push_back(changed);
  }
}

// ---- shard writer and reader ----

ShardContents sample_contents(int64_t vocab, bool mask) {
  ShardContents c;
  c.vocab = vocab;
  c.tokenizer_hash = tokenizer_hash(sample_vocab());
  c.has_loss_mask = mask;
  c.sources = {"a.txt", "b.jsonl"};
  for (int i = 0; i < 300; ++i) c.train.tokens.push_back(static_cast<int32_t>((i * 7919) % vocab));
  c.train.document_starts = {0, 100, 100, 250};  // an empty document is allowed by the format
  for (int i = 0; i < 40; ++i) c.val.tokens.push_back(static_cast<int32_t>(vocab - 1 - i));
  c.val.document_starts = {0, 10};
  if (mask) {
    for (size_t i = 0; i < c.train.tokens.size(); ++i) c.train.mask.push_back(i % 3 == 0);
    for (size_t i = 0; i < c.val.tokens.size(); ++i) c.val.mask.push_back(i % 2);
  }
  return c;
}

void expect_same_stream(const TokenStream& s, const ShardSplit& split, bool mask) {
  ASSERT_EQ(s.size(), static_cast<int64_t>(split.tokens.size()));
  EXPECT_EQ(s.has_mask(), mask);
  for (int64_t i = 0; i < s.size(); ++i) {
    ASSERT_EQ(s.token(i), split.tokens[static_cast<size_t>(i)]) << i;
    if (mask) {
      ASSERT_EQ(s.is_target(i), split.mask[static_cast<size_t>(i)] != 0) << i;
    }
  }
}

TEST(ShardTest, round_trip_at_both_token_widths) {
  ScratchDir scratch("round_trip");
  for (const int64_t vocab : {int64_t{300}, int64_t{65536}, int64_t{65537}, int64_t{200000}}) {
    for (const bool mask : {false, true}) {
      const std::string dir = scratch.path() + "/out";
      const ShardContents c = sample_contents(vocab, mask);
      Result<ShardManifest> written = write_shard_set(dir, c);
      ASSERT_TRUE(written.ok()) << written.status().message();
      const int width = vocab > 65536 ? 4 : 2;
      EXPECT_EQ(written.value().token_bytes, width);
      EXPECT_EQ(fs::file_size(dir + "/train.tokens"), 300u * width);
      EXPECT_EQ(fs::file_size(dir + "/val.idx"), 3u * 8);
      EXPECT_EQ(fs::exists(dir + "/train.mask"), mask);

      Result<ShardSet> set = ShardSet::open(dir);
      ASSERT_TRUE(set.ok()) << set.status().message();
      const ShardManifest& m = set.value().manifest();
      EXPECT_EQ(m.vocab, vocab);
      EXPECT_EQ(m.token_bytes, width);
      EXPECT_EQ(m.train_tokens, 300);
      EXPECT_EQ(m.val_tokens, 40);
      EXPECT_EQ(m.train_documents, 4);
      EXPECT_EQ(m.val_documents, 2);
      EXPECT_EQ(m.has_loss_mask, mask);
      EXPECT_EQ(m.tokenizer_hash, c.tokenizer_hash);
      EXPECT_EQ(m.content_hash, written.value().content_hash);
      EXPECT_EQ(m.sources, c.sources);
      EXPECT_EQ(set.value().dataset().vocab(), vocab);
      expect_same_stream(set.value().dataset().train(), c.train, mask);
      expect_same_stream(set.value().dataset().val(), c.val, mask);
      // Exact bytes of the little-endian layout.
      const std::string idx = read_file(dir + "/train.idx");
      EXPECT_EQ(idx.substr(8, 8), std::string("\x64\0\0\0\0\0\0\0", 8));
      const std::string tokens = read_file(dir + "/val.tokens");
      const auto first = static_cast<uint32_t>(vocab - 1);
      for (int b = 0; b < width; ++b) {
        EXPECT_EQ(static_cast<uint8_t>(tokens[static_cast<size_t>(b)]),
                  static_cast<uint8_t>(first >> (8 * b)));
      }
    }
  }
  // Nothing but the output directory is left behind (no temporary or old copies).
  EXPECT_EQ(std::distance(fs::directory_iterator(scratch.path()), fs::directory_iterator()), 1);
}

TEST(ShardTest, refuses_to_replace_what_is_not_a_shard_directory) {
  ScratchDir scratch("refuse");
  const std::string file = scratch.path() + "/file";
  write_file(file, "keep me");
  const std::string other = scratch.path() + "/other";
  fs::create_directories(other);
  write_file(other + "/notes.txt", "keep me too");
  for (const std::string& target : {file, other}) {
    Result<ShardManifest> r = write_shard_set(target, sample_contents(300, false));
    ASSERT_FALSE(r.ok());
    EXPECT_NE(r.status().message().find("refusing"), std::string::npos) << r.status().message();
  }
  EXPECT_EQ(read_file(file), "keep me");
  EXPECT_EQ(read_file(other + "/notes.txt"), "keep me too");
  // An existing shard directory is replaced, with a trailing slash too.
  const std::string dir = scratch.path() + "/shards";
  ASSERT_TRUE(write_shard_set(dir, sample_contents(300, false)).ok());
  ASSERT_TRUE(write_shard_set(dir + "/", sample_contents(1000, true)).ok());
  EXPECT_EQ(ShardSet::open(dir).value().manifest().vocab, 1000);
  EXPECT_EQ(std::distance(fs::directory_iterator(scratch.path()), fs::directory_iterator()), 3);
}

std::string open_error(const std::string& dir) {
  Result<ShardSet> r = ShardSet::open(dir);
  return r.ok() ? std::string() : r.status().message();
}

TEST(ShardTest, open_rejects_truncated_and_flipped_files) {
  ScratchDir scratch("corrupt");
  const std::string dir = scratch.path() + "/out";
  ASSERT_TRUE(write_shard_set(dir, sample_contents(70000, true)).ok());
  ASSERT_EQ(open_error(dir), "");
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) {
    names.push_back(entry.path().filename().string());
  }
  ASSERT_EQ(names.size(), 7u);
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    const std::string original = read_file(path);
    const size_t n = original.size();
    const bool manifest = name == "manifest.json";
    // Truncations: every one breaks the manifest's JSON (it ends in "}\n") or a file's size.
    for (const size_t keep : {size_t{0}, size_t{1}, n / 2, n - 2}) {
      write_file(path, original.substr(0, keep));
      const std::string error = open_error(dir);
      EXPECT_NE(error, "") << name << " truncated to " << keep;
      EXPECT_NE(error.find(name), std::string::npos) << error;
    }
    // Flips: data files are covered by their hash; a manifest flip may land in
    // a source name (not hashed), which still opens — anything but a crash.
    for (const size_t at : {size_t{0}, n / 3, n / 2, n - 1}) {
      for (const uint8_t mask : {uint8_t{0x01}, uint8_t{0x80}}) {
        std::string flipped = original;
        flipped[at] = static_cast<char>(flipped[at] ^ mask);
        write_file(path, flipped);
        const std::string error = open_error(dir);
        if (!manifest) {
          EXPECT_NE(error.find(name), std::string::npos)
              << name << " flip at " << at << ": " << error;
        }
      }
    }
    write_file(path, original);
    ASSERT_EQ(open_error(dir), "") << "restoring " << name;
  }
  fs::remove(dir + "/val.mask");
  EXPECT_NE(open_error(dir).find("val.mask"), std::string::npos);
  EXPECT_NE(open_error(scratch.path() + "/missing").find("manifest.json"), std::string::npos);
}

// Rewrites manifest.json through `edit` (on its text) and returns open's error.
std::string error_after_manifest_edit(const std::string& dir, const std::string& from,
                                      const std::string& to) {
  const std::string path = dir + "/manifest.json";
  const std::string original = read_file(path);
  const size_t at = original.find(from);
  EXPECT_NE(at, std::string::npos) << from;
  if (at == std::string::npos) return "";
  std::string edited = original;
  edited.replace(at, from.size(), to);
  write_file(path, edited);
  const std::string error = open_error(dir);
  write_file(path, original);
  return error;
}

TEST(ShardTest, manifest_is_read_strictly) {
  ScratchDir scratch("manifest");
  const std::string dir = scratch.path() + "/out";
  ASSERT_TRUE(write_shard_set(dir, sample_contents(300, false)).ok());
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"\"tern.shards\"", "\"other\"", "field 'format'"},
      {"\"version\": 1", "\"version\": 2", "field 'version' is 2"},
      {"\"version\": 1", "\"version\": \"1\"", "field 'version' is a string"},
      {"\"vocab\": 300", "\"vocab\": 0", "field 'vocab' is 0"},
      {"\"vocab\": 300", "\"vocab\": 70000", "field 'token_bytes'"},
      {"\"token_bytes\": 2", "\"token_bytes\": 4", "field 'token_bytes' is 4"},
      {"\"has_loss_mask\": false", "\"has_loss_mask\": true", "files.train.mask' is missing"},
      {"\"has_loss_mask\": false", "\"has_loss_mask\": 0", "field 'has_loss_mask'"},
      {"\"documents\": 4", "\"documents\": 5", "train.idx"},
      {"\"documents\": 4", "\"documentz\": 4", "unknown field 'documentz'"},
      {"\"tokens\": 300", "\"tokens\": 301", "train.tokens"},
      {"\"tokens\": 300", "\"tokens\": -1", "field 'splits.train.tokens' is -1"},
      {"\"tokens\": 300", "\"tokens\": 18446744073709551615", "splits.train.tokens"},
      {"\"tokens\": 300", "\"tokens\": 3e2", "splits.train.tokens' is a number"},
      {"\"content_hash\"", "\"content_hush\"", "unknown field 'content_hush'"},
      {"\"sources\": [", "\"sources\": [1, ", "field 'sources[0]'"},
      {"\"format\"", "\"formats\"", "unknown field 'formats'"},
      {"{", "[", "not valid JSON"},
  };
  for (const auto& [from, to, want] : cases) {
    const std::string error = error_after_manifest_edit(dir, from, to);
    EXPECT_NE(error.find(want), std::string::npos) << from << " -> " << to << ": " << error;
  }
  // A missing field is named.
  const std::string path = dir + "/manifest.json";
  const std::string original = read_file(path);
  const std::vector<std::vector<std::string>> fields = {{"format"},
                                                        {"version"},
                                                        {"tokenizer_hash"},
                                                        {"vocab"},
                                                        {"token_bytes"},
                                                        {"splits"},
                                                        {"files"},
                                                        {"content_hash"},
                                                        {"has_loss_mask"},
                                                        {"sources"},
                                                        {"splits", "val", "documents"},
                                                        {"files", "val.idx"}};
  for (const std::vector<std::string>& field : fields) {
    nlohmann::json manifest = nlohmann::json::parse(original);
    nlohmann::json* parent = &manifest;
    std::string name;
    for (size_t i = 0; i + 1 < field.size(); ++i) {
      parent = &(*parent)[field[i]];
      name += field[i] + ".";
    }
    parent->erase(field.back());
    name += field.back();
    write_file(path, manifest.dump(2));
    const std::string error = open_error(dir);
    EXPECT_NE(error.find("field '" + name + "' is missing"), std::string::npos) << error;
  }
  write_file(path, original);
  ASSERT_EQ(open_error(dir), "");
}

}  // namespace
}  // namespace tern::shards_test
