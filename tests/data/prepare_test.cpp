// `tern data prepare`'s library: text, JSONL and chat inputs round-trip through
// token shards, the split is deterministic, the chat loss mask covers exactly
// the assistant replies, and every kind of bad input gets one error naming the
// file and line or offset while leaving an existing output untouched.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "data/prepare.h"
#include "format/gguf.h"
#include "support/files.h"
#include "tokenizer/spm_trainer.h"
#include "tokenizer/tokenizer_hash.h"
#include "tokenizer/unicode.h"

namespace tern::prepare_test {
namespace {

namespace fs = std::filesystem;
using testing::read_file;
using testing::write_file;

// Every file of a directory, by name.
std::map<std::string, std::string> snapshot(const std::string& dir) {
  std::map<std::string, std::string> files;
  for (const auto& entry : fs::directory_iterator(dir)) {
    files[entry.path().filename().string()] = read_file(entry.path().string());
  }
  return files;
}

class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name)
      : path_((fs::temp_directory_path() /
               ("tern_prepare_" + name + "_" + std::to_string(::getpid())))
                  .string()) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ScratchDir() { fs::remove_all(path_); }
  std::string file(const std::string& name, const std::string& bytes) const {
    write_file(path_ + "/" + name, bytes);
    return path_ + "/" + name;
  }
  std::string path(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Byte-level BPE over the 256 bytes (no merges, so every byte is one token) plus
// `extra` tokens, `merges` and an EOS control token at the end.
Vocab byte_vocab(const std::vector<std::string>& extra = {},
                 const std::vector<std::string>& merges = {}) {
  Vocab v;
  v.model = VocabModel::kBpe;
  v.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) {
    v.tokens.emplace_back(tokenizer_detail::byte_to_unicode(static_cast<uint8_t>(b)));
  }
  for (const std::string& t : extra) v.tokens.push_back(t);
  v.tokens.push_back("<|end|>");
  v.merges = merges;
  v.scores.assign(v.tokens.size(), 0.0f);
  v.token_types.assign(v.tokens.size(), TokenType::kNormal);
  v.token_types.back() = TokenType::kControl;
  v.eos_id = v.size() - 1;
  return v;
}

const Tokenizer& byte_tokenizer() {
  static const Tokenizer tokenizer = Tokenizer::create(byte_vocab()).value();
  return tokenizer;
}

// A SentencePiece vocabulary (dummy-prefix "▁", byte fallback) trained in code,
// where tokenizing chat pieces separately matters.
const Tokenizer& spm_tokenizer() {
  static const Tokenizer tokenizer = [] {
    std::vector<std::string> lines;
    const char* words[] = {"the", "cell", "heart", "blood", "lung",   "is",       "a",      "of",
                           "and", "what", "does",  "do",    "answer", "question", "system", "user"};
    for (int i = 0; i < 400; ++i) {
      std::string line;
      for (int w = 0; w < 8; ++w) line += std::string(w ? " " : "") + words[(i * 7 + w * 3) % 16];
      lines.push_back(line);
    }
    SpmTrainOptions options;
    options.vocab_size = 320;
    Result<std::string> model = train_sentencepiece(lines, options);
    TERN_CHECK(model.ok(), model.status().message());
    return Tokenizer::create(vocab_from_sentencepiece(model.value()).value()).value();
  }();
  return tokenizer;
}

struct Split {
  std::vector<std::vector<int32_t>> documents;  // tokens, separator included
  std::vector<std::vector<uint8_t>> masks;      // empty without a loss mask
};

uint64_t le64(const std::string& bytes, size_t at) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= uint64_t{static_cast<uint8_t>(bytes[at + i])} << (8 * i);
  return v;
}

// One split of an opened shard directory, cut into documents by its index file.
Split read_split(const ShardSet& set, const std::string& dir, bool val) {
  const TokenStream& s = val ? set.dataset().val() : set.dataset().train();
  const std::string idx = read_file(dir + (val ? "/val.idx" : "/train.idx"));
  Split split;
  for (size_t d = 0; d + 8 < idx.size(); d += 8) {
    std::vector<int32_t> tokens;
    std::vector<uint8_t> mask;
    for (uint64_t i = le64(idx, d); i < le64(idx, d + 8); ++i) {
      tokens.push_back(s.token(static_cast<int64_t>(i)));
      if (s.has_mask()) mask.push_back(s.is_target(static_cast<int64_t>(i)) ? 1 : 0);
    }
    split.documents.push_back(std::move(tokens));
    split.masks.push_back(std::move(mask));
  }
  return split;
}

// Texts of a split's documents; checks each ends with the separator.
std::vector<std::string> texts(const Tokenizer& tok, const Split& split) {
  std::vector<std::string> out;
  for (const std::vector<int32_t>& doc : split.documents) {
    EXPECT_FALSE(doc.empty());
    if (doc.empty()) continue;
    EXPECT_EQ(doc.back(), tok.vocab().eos_id);
    out.push_back(tok.decode(std::span(doc).first(doc.size() - 1)));
  }
  return out;
}

// Both splits' documents must be exactly `want`, each split in input order.
void expect_documents(const Tokenizer& tok, const std::string& dir,
                      const std::vector<std::string>& want) {
  Result<ShardSet> set = ShardSet::open(dir);
  ASSERT_TRUE(set.ok()) << set.status().message();
  const std::vector<std::string> train = texts(tok, read_split(set.value(), dir, false));
  const std::vector<std::string> val = texts(tok, read_split(set.value(), dir, true));
  EXPECT_FALSE(train.empty());
  EXPECT_FALSE(val.empty());
  for (const std::vector<std::string>* part : {&train, &val}) {
    auto it = want.begin();
    for (const std::string& doc : *part) {  // a subsequence of `want`
      it = std::find(it, want.end(), doc);
      ASSERT_NE(it, want.end()) << "unexpected or out-of-order document " << doc;
      ++it;
    }
  }
  std::vector<std::string> all = train;
  all.insert(all.end(), val.begin(), val.end());
  std::vector<std::string> sorted_want = want;
  std::sort(all.begin(), all.end());
  std::sort(sorted_want.begin(), sorted_want.end());
  EXPECT_EQ(all, sorted_want);
  EXPECT_FALSE(set.value().manifest().has_loss_mask);
  EXPECT_EQ(set.value().manifest().tokenizer_hash, tokenizer_hash(tok.vocab()));
}

PrepareOptions half_split() {
  PrepareOptions o;
  o.val_fraction = 0.5;
  return o;
}

TEST(PrepareTest, text_round_trip_in_every_document_mode) {
  ScratchDir scratch("text");
  const std::string body =
      "First document,\r\nline two.\n\n \t\nSecond: caf\xC3\xA9 \xE2\x82\xAC.\n"
      "  indented\n\n\n\nThird\nend";
  const std::string in = scratch.file("corpus.txt", body);
  const std::string out = scratch.path("out");
  const Tokenizer& tok = byte_tokenizer();

  ASSERT_TRUE(prepare_shards({in}, tok, out, half_split()).ok());
  expect_documents(tok, out,
                   {"First document,\r\nline two.", "Second: caf\xC3\xA9 \xE2\x82\xAC.\n  indented",
                    "Third\nend"});

  PrepareOptions per_line = half_split();
  per_line.text_split = TextSplit::kLine;
  ASSERT_TRUE(prepare_shards({in}, tok, out, per_line).ok());
  expect_documents(tok, out,
                   {"First document,", "line two.", "Second: caf\xC3\xA9 \xE2\x82\xAC.",
                    "  indented", "Third", "end"});

  // Whole files: two inputs, two documents, bytes exactly as in the files.
  PrepareOptions whole = half_split();
  whole.text_split = TextSplit::kWholeFile;
  const std::string other = scratch.file("other.md", "# Title\n\nbody\n");
  ASSERT_TRUE(prepare_shards({in, other}, tok, out, whole).ok());
  expect_documents(tok, out, {body, "# Title\n\nbody\n"});
  EXPECT_EQ(ShardSet::open(out).value().manifest().sources, (std::vector<std::string>{in, other}));
}

TEST(PrepareTest, jsonl_round_trip) {
  ScratchDir scratch("jsonl");
  const std::string in = scratch.file(
      "data.jsonl",
      "{\"text\": \"alpha beta\", \"id\": 1}\n\n{\"text\": \"\\u00e9t\\u00e9\\nline\"}\r\n"
      "  {\"text\": \"gamma\"}  \n{\"text\": \"delta\"}");
  const std::string out = scratch.path("out");
  ASSERT_TRUE(prepare_shards({in}, byte_tokenizer(), out, half_split()).ok());
  expect_documents(byte_tokenizer(), out,
                   {"alpha beta", "\xC3\xA9t\xC3\xA9\nline", "gamma", "delta"});
  // --format jsonl reads a file whatever its name.
  const std::string renamed = scratch.file("data.txt", read_file(in));
  PrepareOptions forced = half_split();
  forced.format = InputFormat::kJsonl;
  ASSERT_TRUE(prepare_shards({renamed}, byte_tokenizer(), out, forced).ok());
  expect_documents(byte_tokenizer(), out,
                   {"alpha beta", "\xC3\xA9t\xC3\xA9\nline", "gamma", "delta"});
}

// Decodes each maximal run of mask-1 tokens (the separator renders as nothing).
std::vector<std::string> masked_runs(const Tokenizer& tok, const Split& split) {
  std::vector<std::string> runs;
  for (size_t d = 0; d < split.documents.size(); ++d) {
    std::vector<int32_t> run;
    for (size_t i = 0; i <= split.documents[d].size(); ++i) {
      if (i < split.documents[d].size() && split.masks[d][i]) {
        run.push_back(split.documents[d][i]);
      } else if (!run.empty()) {
        runs.push_back(tok.decode(run));
        run.clear();
      }
    }
  }
  return runs;
}

TEST(PrepareTest, chat_mask_covers_exactly_the_assistant_replies) {
  ScratchDir scratch("chat");
  const std::string in = scratch.file(
      "chat.jsonl",
      R"({"messages": [{"role": "system", "content": "the system"}, {"role": "user", "content": "what is a cell"}, {"role": "assistant", "content": "a cell is the answer"}, {"role": "user", "content": "and blood"}, {"role": "assistant", "content": "blood of the heart"}]})"
      "\n"
      R"({"messages": [{"role": "user", "content": "what does the lung do"}, {"role": "assistant", "content": "the lung does blood"}, {"role": "user", "content": "question"}]})"
      "\n"
      R"({"messages": [{"role": "user", "content": "heart"}, {"role": "assistant", "content": ""}]})"
      "\n"
      R"({"messages": []})"
      "\n");
  for (const Tokenizer* tok : {&byte_tokenizer(), &spm_tokenizer()}) {
    const std::string out = scratch.path("out");
    PrepareOptions options = half_split();
    options.assistant_only = true;
    Result<ShardManifest> m = prepare_shards({in}, *tok, out, options);
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_TRUE(m.value().has_loss_mask);
    EXPECT_EQ(m.value().train_documents + m.value().val_documents, 3);  // the empty one is skipped
    const ShardSet set = ShardSet::open(out).value();
    std::vector<std::string> runs;
    std::vector<std::vector<int32_t>> docs;
    std::vector<std::vector<uint8_t>> masks;
    for (const bool val : {false, true}) {
      const Split split = read_split(set, out, val);
      const std::vector<std::string> r = masked_runs(*tok, split);
      runs.insert(runs.end(), r.begin(), r.end());
      docs.insert(docs.end(), split.documents.begin(), split.documents.end());
      masks.insert(masks.end(), split.masks.begin(), split.masks.end());
    }
    std::sort(runs.begin(), runs.end());
    // Separators of conversations that end with the assistant are targets of
    // their own (after the unmasked "\n"), so they decode to "": one for the
    // first conversation and one for the empty reply, which has no tokens.
    EXPECT_EQ(runs, (std::vector<std::string>{"", "", "a cell is the answer", "blood of the heart",
                                              "the lung does blood"}));
    for (size_t d = 0; d < docs.size(); ++d) {
      ASSERT_EQ(docs[d].back(), tok->vocab().eos_id);
      const bool ends_with_user = tok->decode(docs[d]).find("lung") != std::string::npos;
      EXPECT_EQ(masks[d].back(), ends_with_user ? 0 : 1);
    }
    // The rendered text is the documented template, whole.
    std::vector<std::string> rendered;
    for (const auto& doc : docs) rendered.push_back(tok->decode(doc));
    const std::string first =
        "### System:\nthe system\n### User:\nwhat is a cell\n### Assistant:\na cell is the "
        "answer\n### User:\nand blood\n### Assistant:\nblood of the heart\n";
    if (tok == &byte_tokenizer()) {
      EXPECT_NE(std::find(rendered.begin(), rendered.end(), first), rendered.end());
    }
  }
  // Without --assistant-only every token is a target and no mask is written.
  const std::string out = scratch.path("plain");
  Result<ShardManifest> plain = prepare_shards({in}, byte_tokenizer(), out, half_split());
  ASSERT_TRUE(plain.ok()) << plain.status().message();
  EXPECT_FALSE(plain.value().has_loss_mask);
  EXPECT_FALSE(fs::exists(out + "/train.mask"));
  EXPECT_FALSE(ShardSet::open(out).value().dataset().train().has_mask());
}

TEST(PrepareTest, encode_chat_tokenizes_pieces_separately) {
  const Tokenizer& tok = spm_tokenizer();
  const std::vector<ChatMessage> chat = {{ChatRole::kUser, "what is a cell"},
                                         {ChatRole::kAssistant, "a cell"}};
  const EncodedDocument doc = encode_chat(tok, chat);
  std::vector<int32_t> want;
  std::vector<uint8_t> mask;
  for (const auto& [text, m] : std::vector<std::pair<std::string, uint8_t>>{{"### User:\n", 0},
                                                                            {"what is a cell", 0},
                                                                            {"\n", 0},
                                                                            {"### Assistant:\n", 0},
                                                                            {"a cell", 1},
                                                                            {"\n", 0}}) {
    const std::vector<int32_t> ids = tok.encode(text, false, false);
    want.insert(want.end(), ids.begin(), ids.end());
    mask.insert(mask.end(), ids.size(), m);
  }
  EXPECT_EQ(doc.tokens, want);
  EXPECT_EQ(doc.mask, mask);
  EXPECT_EQ(chat_header(ChatRole::kSystem), "### System:\n");
}

TEST(PrepareTest, split_is_deterministic_and_seeded) {
  ScratchDir scratch("split");
  std::string lines;
  for (int i = 0; i < 60; ++i) lines += "document number " + std::to_string(i) + "\n";
  const std::string in = scratch.file("lines.txt", lines);
  PrepareOptions o;
  o.text_split = TextSplit::kLine;
  o.val_fraction = 0.25;
  auto val_docs = [&](uint64_t seed, const std::string& name) {
    o.seed = seed;
    const std::string out = scratch.path(name);
    EXPECT_TRUE(prepare_shards({in}, byte_tokenizer(), out, o).ok());
    return texts(byte_tokenizer(), read_split(ShardSet::open(out).value(), out, true));
  };
  const std::vector<std::string> a = val_docs(1, "a");
  EXPECT_EQ(val_docs(1, "b"), a);
  EXPECT_EQ(snapshot(scratch.path("a")), snapshot(scratch.path("b")));  // byte for byte
  EXPECT_NE(val_docs(2, "c"), a);
  // The documented rule: document i is in validation iff split_draw(seed, i) < fraction.
  std::vector<std::string> want;
  for (int i = 0; i < 60; ++i) {
    if (split_draw(1, static_cast<uint64_t>(i)) < 0.25) {
      want.push_back("document number " + std::to_string(i));
    }
  }
  EXPECT_EQ(a, want);
  EXPECT_GT(a.size(), 5u);
  EXPECT_LT(a.size(), 25u);

  // With two documents each split gets one, whatever the fraction.
  const std::string two = scratch.file("two.txt", "one\ntwo\n");
  for (const double fraction : {1e-12, 0.5, 1.0 - 1e-12}) {
    o.val_fraction = fraction;
    Result<ShardManifest> m = prepare_shards({two}, byte_tokenizer(), scratch.path("two"), o);
    ASSERT_TRUE(m.ok()) << m.status().message();
    EXPECT_EQ(m.value().train_documents, 1) << fraction;
    EXPECT_EQ(m.value().val_documents, 1) << fraction;
  }
  // A single document trains.
  Result<ShardManifest> one =
      prepare_shards({scratch.file("one.txt", "only")}, byte_tokenizer(), scratch.path("one"), o);
  ASSERT_TRUE(one.ok());
  EXPECT_EQ(one.value().train_documents, 1);
  EXPECT_EQ(one.value().val_documents, 0);
}

TEST(PrepareTest, large_vocabulary_uses_four_byte_tokens) {
  std::vector<std::string> filler;
  for (int i = 0; i < 65536; ++i) filler.push_back("filler" + std::to_string(i));
  filler.push_back("ab");
  const Tokenizer tok = Tokenizer::create(byte_vocab(filler, {"a b"})).value();
  const int32_t ab = tok.token_id("ab");
  ASSERT_GT(ab, 65535);
  ScratchDir scratch("wide");
  const std::string in = scratch.file("wide.txt", "ab ab\n\nab\n\nxab");
  const std::string out = scratch.path("out");
  Result<ShardManifest> m = prepare_shards({in}, tok, out, half_split());
  ASSERT_TRUE(m.ok()) << m.status().message();
  EXPECT_EQ(m.value().token_bytes, 4);
  EXPECT_EQ(m.value().vocab, 65536 + 256 + 2);
  expect_documents(tok, out, {"ab ab", "ab", "xab"});
  const ShardSet set = ShardSet::open(out).value();
  int seen = 0;
  for (const TokenStream* s : {&set.dataset().train(), &set.dataset().val()}) {
    for (int64_t i = 0; i < s->size(); ++i) seen += s->token(i) == ab;
  }
  EXPECT_EQ(seen, 4);  // " ab" is "Ġ" + "ab" and "xab" is "x" + "ab"
}

TEST(PrepareTest, vocabulary_round_trips_through_gguf_with_the_same_hash) {
  const Vocab v = spm_tokenizer().vocab();
  gguf::GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  add_vocab_to_gguf(v, writer);
  const gguf::GgufFile file = gguf::GgufFile::parse(writer.serialize()).value();
  EXPECT_EQ(tokenizer_hash(vocab_from_gguf(file).value()), tokenizer_hash(v));
}

struct BadInput {
  std::string name;
  std::string bytes;
  InputFormat format;
  std::vector<std::string> want;  // substrings of the error besides the file name
};

TEST(PrepareTest, bad_inputs_are_named_and_leave_the_output_untouched) {
  ScratchDir scratch("bad");
  const std::string out = scratch.path("out");
  ASSERT_TRUE(
      prepare_shards({scratch.file("good.txt", "one\n\ntwo\n")}, byte_tokenizer(), out, {}).ok());
  const std::map<std::string, std::string> before = snapshot(out);
  const auto text = InputFormat::kText, jsonl = InputFormat::kJsonl, chat = InputFormat::kChat,
             detect = InputFormat::kAuto;
  const std::vector<BadInput> cases = {
      {"empty.txt", "", text, {"empty file"}},
      {"nul.txt",
       std::string("abc\ndef\0ghi", 11),
       text,
       {"binary content", "byte offset 7", "line 2"}},
      {"utf8.txt",
       "ok\nok\nbad \xC3\x28 here",
       text,
       {"invalid UTF-8", "byte offset 10", "line 3"}},
      {"overlong.txt", "\xC0\xAF", text, {"invalid UTF-8", "byte offset 0", "line 1"}},
      {"surrogate.txt", "x\xED\xA0\x80", text, {"invalid UTF-8", "byte offset 1"}},
      {"truncated.txt", "abc\xE2\x82", text, {"invalid UTF-8", "byte offset 3"}},
      {"blank.txt", "  \n\t\r\n\n", text, {"no documents"}},
      {"blank.jsonl", "\n\n", detect, {"no documents"}},
      {"notjson.jsonl",
       "{\"text\": \"a\"}\n{\"text\": \"b\"\n",
       jsonl,
       {"line 2", "not valid JSON"}},
      {"notobject.jsonl", "{\"text\": \"a\"}\n\n[1, 2]\n", jsonl, {"line 3", "not a JSON object"}},
      {"notext.jsonl", "{\"txt\": \"a\"}\n", jsonl, {"line 1", "has no \"text\""}},
      {"numtext.jsonl",
       "{\"text\": \"a\"}\n{\"text\": 5}\n",
       jsonl,
       {"line 2", "\"text\" is a number, not a string"}},
      {"nomessages.jsonl", "{\"text\": \"a\"}\n", chat, {"line 1", "has no \"messages\""}},
      {"messages.jsonl",
       "{\"messages\": {}}\n",
       detect,
       {"line 1", "\"messages\" is a object, not an array"}},
      {"msgtype.jsonl", "{\"messages\": [3]}\n", detect, {"line 1", "message 0 is a number"}},
      {"norole.jsonl",
       "{\"messages\": [{\"content\": \"x\"}]}\n",
       detect,
       {"line 1", "message 0 has no \"role\""}},
      {"badcontent.jsonl",
       "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}\n"
       "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"user\", "
       "\"content\": null}]}\n",
       detect,
       {"line 2", "message 1 \"content\" is a null, not a string"}},
      {"role.jsonl",
       "{\"messages\": [{\"role\": \"robot\", \"content\": \"x\"}]}\n",
       detect,
       {"line 1", "unknown role 'robot'"}},
      {"deep.jsonl", std::string(100000, '[') + "\n", jsonl, {"line 1", "not"}},
      {"firstline.jsonl", "nope\n", detect, {"line 1", "not valid JSON"}},
  };
  for (const BadInput& c : cases) {
    const std::string path = scratch.file(c.name, c.bytes);
    PrepareOptions o;
    o.format = c.format;
    Result<ShardManifest> r = prepare_shards({path}, byte_tokenizer(), out, o);
    ASSERT_FALSE(r.ok()) << c.name;
    const std::string error = r.status().message();
    EXPECT_NE(error.find(c.name), std::string::npos) << error;
    for (const std::string& want : c.want) {
      EXPECT_NE(error.find(want), std::string::npos) << c.name << ": " << error;
    }
    EXPECT_EQ(snapshot(out), before) << c.name;
  }
  // The first bad file stops preparation even after good ones.
  const std::string good = scratch.file("good2.txt", "fine");
  Result<ShardManifest> r =
      prepare_shards({good, scratch.path("nul.txt")}, byte_tokenizer(), out, {});
  EXPECT_NE(r.status().message().find("nul.txt"), std::string::npos);
  EXPECT_NE(prepare_shards({scratch.path("missing.txt")}, byte_tokenizer(), out, {})
                .status()
                .message()
                .find("missing.txt"),
            std::string::npos);
  PrepareOptions assistant_only;
  assistant_only.assistant_only = true;
  EXPECT_NE(prepare_shards({good}, byte_tokenizer(), out, assistant_only)
                .status()
                .message()
                .find("not chat data"),
            std::string::npos);
  PrepareOptions bad_fraction;
  bad_fraction.val_fraction = 1.0;
  EXPECT_NE(prepare_shards({good}, byte_tokenizer(), out, bad_fraction)
                .status()
                .message()
                .find("validation fraction 1"),
            std::string::npos);
  Vocab no_separator = byte_vocab();
  no_separator.eos_id = -1;
  EXPECT_NE(prepare_shards({good}, Tokenizer::create(no_separator).value(), out, {})
                .status()
                .message()
                .find("neither an EOS nor a BOS"),
            std::string::npos);
  EXPECT_EQ(snapshot(out), before);
  // BOS separates when there is no EOS.
  Vocab bos_only = byte_vocab();
  bos_only.bos_id = bos_only.eos_id;
  bos_only.eos_id = -1;
  ASSERT_TRUE(prepare_shards({good}, Tokenizer::create(bos_only).value(), out, {}).ok());
  const ShardSet set = ShardSet::open(out).value();
  EXPECT_EQ(set.dataset().train().token(set.dataset().train().size() - 1), bos_only.bos_id);
}

}  // namespace
}  // namespace tern::prepare_test
