#include "data/gcide.h"

#include <gtest/gtest.h>
#include <zlib.h>

#include <unistd.h>
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace tern {
namespace {

namespace fs = std::filesystem;

// The writer's side of dictd base64, used to build synthetic indexes.
std::string encode_dictd_base64(uint64_t value) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  do {
    out.insert(out.begin(), kAlphabet[value & 63]);
    value >>= 6;
  } while (value != 0);
  return out;
}

TEST(GcideBase64Test, DecodesKnownValues) {
  const std::vector<std::pair<std::string, uint64_t>> cases = {
      {"A", 0},
      {"B", 1},
      {"Z", 25},
      {"a", 26},
      {"z", 51},
      {"0", 52},
      {"9", 61},
      {"+", 62},
      {"/", 63},
      {"BA", 64},
      {"//", 4095},
      {"5I", 3656},
      {"AAAAAAAAAAAAB", 1},
      {"BAA", 4096},
      {"P//////////", UINT64_MAX},  // 11 digits, 4 + 60 bits: the largest value
  };
  for (const auto& [digits, expected] : cases) {
    const Result<uint64_t> got = decode_dictd_base64(digits);
    ASSERT_TRUE(got.ok()) << digits << ": " << got.status().message();
    EXPECT_EQ(got.value(), expected) << digits;
  }
}

TEST(GcideBase64Test, RoundTripsThroughEncoder) {
  for (const uint64_t v : {uint64_t{0}, uint64_t{63}, uint64_t{64}, uint64_t{39952321},
                           uint64_t{1} << 40, UINT64_MAX - 1}) {
    const Result<uint64_t> got = decode_dictd_base64(encode_dictd_base64(v));
    ASSERT_TRUE(got.ok()) << v;
    EXPECT_EQ(got.value(), v);
  }
}

TEST(GcideBase64Test, RejectsBadInput) {
  const Result<uint64_t> empty = decode_dictd_base64("");
  ASSERT_FALSE(empty.ok());
  EXPECT_NE(empty.status().message().find("empty"), std::string::npos);

  const Result<uint64_t> bad_char = decode_dictd_base64("B=A");
  ASSERT_FALSE(bad_char.ok());
  EXPECT_NE(bad_char.status().message().find("'='"), std::string::npos)
      << bad_char.status().message();
  EXPECT_NE(bad_char.status().message().find("position 1"), std::string::npos);

  for (const std::string& bad :
       std::vector<std::string>{"A B", "-", "A\n", std::string("A\0", 2), "\xff", "Zz_"}) {
    EXPECT_FALSE(decode_dictd_base64(bad).ok()) << bad;
  }

  // 2^64 needs 65 bits; so does any 12-digit number with a nonzero leading digit.
  const Result<uint64_t> overflow = decode_dictd_base64("Q//////////");
  ASSERT_FALSE(overflow.ok());
  EXPECT_NE(overflow.status().message().find("64 bits"), std::string::npos);
  EXPECT_FALSE(decode_dictd_base64("BAAAAAAAAAAA").ok());
}

TEST(GcideFieldLabelsTest, ExtractsDistinctLabelsInOrder) {
  const std::string text =
      "Abdomen \\Ab*do\"men\\, n. [L.]\n"
      "   1. (Anat.) The belly. (Med.) A cavity.\n"
      "   2. (Anat.) Again, and (Zool.) in insects.\n";
  EXPECT_EQ(extract_field_labels(text), (std::vector<std::string>{"Anat.", "Med.", "Zool."}));
}

TEST(GcideFieldLabelsTest, JoinsLabelsWrappedAcrossLines) {
  EXPECT_EQ(extract_field_labels("a thing. (Nat.\n   Hist.) more"),
            (std::vector<std::string>{"Nat. Hist."}));
  EXPECT_EQ(extract_field_labels("(R. C. Ch.) (Bot. & Zool.)"),
            (std::vector<std::string>{"R. C. Ch.", "Bot. & Zool."}));
}

TEST(GcideFieldLabelsTest, RejectsNonLabels) {
  EXPECT_TRUE(extract_field_labels("").empty());
  EXPECT_TRUE(extract_field_labels("(").empty());
  EXPECT_TRUE(extract_field_labels("()").empty());
  EXPECT_TRUE(extract_field_labels("(.)").empty());              // too short
  EXPECT_TRUE(extract_field_labels("(Anat)").empty());           // no final dot
  EXPECT_TRUE(extract_field_labels("(anat.)").empty());          // lowercase start
  EXPECT_TRUE(extract_field_labels("(Zo[\"o]l.)").empty());      // GCIDE markup
  EXPECT_TRUE(extract_field_labels("(Anat. & Zool.)").empty());  // 13 chars
  EXPECT_TRUE(extract_field_labels("(See {Abdomen}.)").empty());
  EXPECT_TRUE(extract_field_labels("(Anat.").empty());  // unterminated
  EXPECT_TRUE(extract_field_labels("(1913 Webster.)").empty());
  // A long parenthetical is skipped without swallowing the label after it.
  EXPECT_EQ(extract_field_labels("(a very long aside that never quite ends, see Anat.) (Med.)"),
            (std::vector<std::string>{"Med."}));
  // Nested parentheses: the inner one is still a label.
  EXPECT_EQ(extract_field_labels("((Anat.))"), (std::vector<std::string>{"Anat."}));
  EXPECT_EQ(extract_field_labels("(Med.)"), (std::vector<std::string>{"Med."}));
}

// A throwaway dictd directory under the test temp dir.
class GcideDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    dir_ = fs::path(::testing::TempDir()) /
           ("gcide_test_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  std::string dir() const { return dir_.string(); }

  void write_dict(const std::string& text) {
    const std::string path = (dir_ / "gcide.dict.dz").string();
    gzFile gz = gzopen(path.c_str(), "wb9");
    ASSERT_NE(gz, nullptr);
    ASSERT_EQ(gzwrite(gz, text.data(), static_cast<unsigned>(text.size())),
              static_cast<int>(text.size()));
    ASSERT_EQ(gzclose(gz), Z_OK);
  }
  void write_raw(const std::string& name, const std::string& bytes) {
    std::ofstream out(dir_ / name, std::ios::binary);
    out << bytes;
  }
  std::string read_raw(const std::string& name) {
    std::ifstream in(dir_ / name, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  // Builds text + index from (headword, entry text) pairs; aliases reuse an earlier text.
  void write_dictionary() {
    const std::string meta = "00-database-short\n   Test dictionary\n";
    const std::string abdomen =
        "Abdomen \\Ab*do\"men\\, n. [L.]\n"
        "   1. (Anat.) The belly. (Med.) Also (Anat.) again.\n";
    const std::string cat = "Cat \\Cat\\, n.\n   1. (Zool.) A small animal.\n";
    text_ = "\n" + meta + "\n" + abdomen + cat;
    const size_t meta_at = text_.find(meta);
    const size_t abdomen_at = text_.find(abdomen);
    const size_t cat_at = text_.find(cat);
    auto line = [](const std::string& head, size_t at, size_t len) {
      return head + "\t" + encode_dictd_base64(at) + "\t" + encode_dictd_base64(len) + "\n";
    };
    index_ = line("00-database-short", meta_at, meta.size()) +
             line("Abdomen", abdomen_at, abdomen.size()) +
             line("Abdominal cavity", abdomen_at, abdomen.size()) +  // alias, dictd style
             line("Cat", cat_at, cat.size());
    write_dict(text_);
    write_raw("gcide.index", index_);
  }

  fs::path dir_;
  std::string text_;
  std::string index_;
};

TEST_F(GcideDirTest, ReadsSyntheticDictionary) {
  write_dictionary();
  const Result<std::string> text = read_gcide_text(dir());
  ASSERT_TRUE(text.ok()) << text.status().message();
  EXPECT_EQ(text.value(), text_);

  const Result<std::vector<GcideEntry>> entries = read_gcide_entries(dir());
  ASSERT_TRUE(entries.ok()) << entries.status().message();
  const std::vector<GcideEntry>& e = entries.value();
  ASSERT_EQ(e.size(), 3u);  // the meta entry is skipped
  EXPECT_EQ(e[0].headword, "Abdomen");
  EXPECT_TRUE(e[0].text.starts_with("Abdomen \\Ab*do\"men\\, n. [L.]\n"));
  EXPECT_TRUE(e[0].text.ends_with("again.\n"));
  EXPECT_EQ(e[0].fields, (std::vector<std::string>{"Anat.", "Med."}));
  EXPECT_EQ(e[1].headword, "Abdominal cavity");
  EXPECT_EQ(e[1].text, e[0].text);
  EXPECT_EQ(e[1].fields, e[0].fields);
  EXPECT_EQ(e[2].headword, "Cat");
  EXPECT_EQ(e[2].text, "Cat \\Cat\\, n.\n   1. (Zool.) A small animal.\n");
  EXPECT_EQ(e[2].fields, (std::vector<std::string>{"Zool."}));
}

TEST_F(GcideDirTest, CorpusJoinsWholeEntriesOnce) {
  write_dictionary();
  const std::string abdomen =
      "Abdomen \\Ab*do\"men\\, n. [L.]\n   1. (Anat.) The belly. (Med.) Also (Anat.) again.";
  const std::string cat = "Cat \\Cat\\, n.\n   1. (Zool.) A small animal.";
  const std::string full = abdomen + "\n\n" + cat;

  const Result<std::string> all = gcide_corpus(dir(), 0);
  ASSERT_TRUE(all.ok()) << all.status().message();
  EXPECT_EQ(all.value(), full);  // the alias does not repeat Abdomen

  EXPECT_EQ(gcide_corpus(dir(), full.size()).value(), full);
  EXPECT_EQ(gcide_corpus(dir(), full.size() - 1).value(), abdomen);
  EXPECT_EQ(gcide_corpus(dir(), abdomen.size()).value(), abdomen);
  EXPECT_EQ(gcide_corpus(dir(), abdomen.size() - 1).value(), "");
  EXPECT_EQ(gcide_corpus(dir(), 1).value(), "");
}

TEST_F(GcideDirTest, MissingFilesNameThePath) {
  const Result<std::string> text = read_gcide_text(dir());
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("read gcide: cannot open '" + dir() + "/gcide.dict.dz'"),
            std::string::npos)
      << text.status().message();

  write_dict("x\n");  // dict present, index absent
  const Result<std::vector<GcideEntry>> entries = read_gcide_entries(dir());
  ASSERT_FALSE(entries.ok());
  EXPECT_NE(entries.status().message().find("cannot open '" + dir() + "/gcide.index'"),
            std::string::npos)
      << entries.status().message();

  EXPECT_FALSE(read_gcide_entries(dir() + "/nonexistent").ok());
  EXPECT_FALSE(gcide_corpus(dir() + "/nonexistent", 0).ok());
}

TEST_F(GcideDirTest, RejectsBadGzip) {
  write_raw("gcide.dict.dz", "plain text, not gzip\n");
  Result<std::string> text = read_gcide_text(dir());
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("not gzip"), std::string::npos) << text.status().message();

  write_raw("gcide.dict.dz", "");
  EXPECT_FALSE(read_gcide_text(dir()).ok());

  // Truncated stream.
  write_dict(std::string(100000, 'a') + "some text that compresses\n");
  const std::string good = read_raw("gcide.dict.dz");
  write_raw("gcide.dict.dz", good.substr(0, good.size() / 2));
  text = read_gcide_text(dir());
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("gzip error"), std::string::npos)
      << text.status().message();

  // Corrupt CRC in the trailer (bytes [size-8, size-4)).
  std::string bad_crc = good;
  bad_crc[bad_crc.size() - 6] ^= 0x55;
  write_raw("gcide.dict.dz", bad_crc);
  text = read_gcide_text(dir());
  ASSERT_FALSE(text.ok());
  EXPECT_NE(text.status().message().find("gzip error"), std::string::npos)
      << text.status().message();

  // Garbage in the middle of the deflate data.
  std::string scrambled = good;
  for (size_t i = 20; i < scrambled.size() - 8; i += 7) scrambled[i] ^= 0xa5;
  write_raw("gcide.dict.dz", scrambled);
  EXPECT_FALSE(read_gcide_text(dir()).ok());
}

TEST_F(GcideDirTest, BadIndexLinesNameLineAndValue) {
  write_dictionary();
  const std::string index_path = dir() + "/gcide.index";
  struct Case {
    std::string bad_line;
    std::vector<std::string> expected;  // substrings of the message
  };
  const size_t text_size = text_.size();
  const std::vector<Case> cases = {
      {"Zebra\t" + encode_dictd_base64(text_size) + "\tB\n",
       {"line 3", "'Zebra'", "offset " + std::to_string(text_size), "past the end"}},
      {"Zebra\tA\t" + encode_dictd_base64(text_size + 1) + "\n", {"line 3", "past the end"}},
      {"Zebra\t" + encode_dictd_base64(text_size - 1) + "\tC\n", {"line 3", "length 2"}},
      {"Zebra\t/////\t/////\n", {"line 3", "past the end"}},
      {"Zebra\tP//////////\tP//////////\n", {"line 3", "past the end"}},  // would wrap
      {"garbage without tabs\n", {"line 3", "'garbage without tabs'"}},
      {"Zebra\tA\n", {"line 3", "expected"}},
      {"Zebra\tA\tB\tC\n", {"line 3", "expected"}},
      {"\tA\tB\n", {"line 3", "expected"}},
      {"Zebra\tB!\tB\n", {"line 3", "bad offset", "'B!'", "'!'"}},
      {"Zebra\tB\t\n", {"line 3", "bad length", "empty"}},
      {"Zebra\tB\tQ//////////\n", {"line 3", "bad length", "64 bits"}},
      {"Zebra\t\x01\tB\n", {"line 3", "bad offset", "\\x01"}},
  };
  for (const Case& c : cases) {
    // A good line and a blank one first: the bad line is line 3, so blank lines must count.
    std::string index = index_.substr(0, index_.find('\n') + 1) + "\n" + c.bad_line + index_;
    write_raw("gcide.index", index);
    const Result<std::vector<GcideEntry>> entries = read_gcide_entries(dir());
    ASSERT_FALSE(entries.ok()) << c.bad_line;
    const std::string message = entries.status().message();  // status() is a temporary
    EXPECT_NE(message.find("read gcide: '" + index_path + "'"), std::string::npos) << message;
    for (const std::string& want : c.expected) {
      EXPECT_NE(message.find(want), std::string::npos) << "want '" << want << "' in: " << message;
    }
    EXPECT_FALSE(gcide_corpus(dir(), 0).ok());
  }
}

TEST_F(GcideDirTest, BadMetaLineIsStillAnError) {
  write_dictionary();
  write_raw("gcide.index", "00-database-info\tZZZZ\tB\n" + index_);
  const Result<std::vector<GcideEntry>> entries = read_gcide_entries(dir());
  ASSERT_FALSE(entries.ok());
  EXPECT_NE(entries.status().message().find("line 1"), std::string::npos);
}

TEST_F(GcideDirTest, ToleratesCrlfAndMissingFinalNewline) {
  write_dictionary();
  std::string crlf;
  for (const char c : index_) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  crlf.pop_back();  // no final newline
  write_raw("gcide.index", crlf);
  const Result<std::vector<GcideEntry>> entries = read_gcide_entries(dir());
  ASSERT_TRUE(entries.ok()) << entries.status().message();
  ASSERT_EQ(entries.value().size(), 3u);
  EXPECT_EQ(entries.value()[2].headword, "Cat");
}

TEST(GcideRealDataTest, ReadsInstalledDictionary) {
  if (!fs::exists(std::string(kDefaultGcideDir) + "/gcide.index")) {
    GTEST_SKIP() << "dict-gcide is not installed (no " << kDefaultGcideDir
                 << "/gcide.index); apt-get install dict-gcide to run this test";
  }
  const Result<std::vector<GcideEntry>> result = read_gcide_entries();
  ASSERT_TRUE(result.ok()) << result.status().message();
  const std::vector<GcideEntry>& entries = result.value();
  EXPECT_GT(entries.size(), 100000u);

  const auto abdomen = std::find_if(entries.begin(), entries.end(),
                                    [](const GcideEntry& e) { return e.headword == "Abdomen"; });
  ASSERT_NE(abdomen, entries.end());
  EXPECT_TRUE(abdomen->text.starts_with("Abdomen \\Ab*do\"men\\")) << abdomen->text;
  EXPECT_NE(std::find(abdomen->fields.begin(), abdomen->fields.end(), "Anat."),
            abdomen->fields.end());

  const std::vector<std::string> medical = {"Anat.", "Med.", "Physiol.", "Pathol."};
  size_t medical_count = 0;
  for (const GcideEntry& e : entries) {
    EXPECT_FALSE(e.headword.starts_with("00-")) << e.headword;
    const bool is_medical = std::any_of(e.fields.begin(), e.fields.end(), [&](const auto& f) {
      return std::find(medical.begin(), medical.end(), f) != medical.end();
    });
    medical_count += is_medical ? 1 : 0;
  }
  std::printf("gcide: %zu entries, %zu with Anat./Med./Physiol./Pathol.\n", entries.size(),
              medical_count);
  EXPECT_GT(medical_count, 1000u);
}

}  // namespace
}  // namespace tern
