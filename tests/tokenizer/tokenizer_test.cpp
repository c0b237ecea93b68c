// Tokenizer tests: llama.cpp's own conformance vectors (gpt-2, llama-spm, llama-bpe via the
// Llama 3 tiktoken ranks), Meta's Llama 3 check, decode round trips, special tokens, streaming
// decode, invalid UTF-8, and error paths on small hand-made vocabularies (these need no data).
//
// The conformance data lives in ../shared/data (see its SOURCES.md); tests that need it skip
// with a message when it is absent.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "format/gguf.h"
#include "support/files.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer/vocab.h"

namespace tern {
namespace {

const std::string kDataDir = TERN_SOURCE_DIR "/../shared/data";
const std::string kVocabDir = kDataDir + "/llama.cpp-vocab";
const std::string kGpt2Gguf = kVocabDir + "/ggml-vocab-gpt-2.gguf";
const std::string kSpmGguf = kVocabDir + "/ggml-vocab-llama-spm.gguf";
const std::string kLlamaBpeBase = kVocabDir + "/ggml-vocab-llama-bpe.gguf";
const std::string kLlama3Model = kDataDir + "/llama3-tokenizer/tokenizer.model";

#define SKIP_IF_MISSING(path)                                                             \
  do {                                                                                    \
    if (!std::filesystem::exists(path)) {                                                 \
      GTEST_SKIP() << "../shared is missing: " << (path)                                  \
                   << " not found (tokenizer test data lives in ../shared/data, see its " \
                      "SOURCES.md)";                                                      \
    }                                                                                     \
  } while (0)

using testing::read_file;

// llama.cpp's .inp format: every case is followed by "\n__ggml_vocab_test__\n".
std::vector<std::string> read_cases(const std::string& path) {
  const std::string text = read_file(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> cases;
  size_t pos = 0;
  for (size_t next = text.find(sep, pos); next != std::string::npos; next = text.find(sep, pos)) {
    cases.push_back(text.substr(pos, next - pos));
    pos = next + sep.size();
  }
  EXPECT_EQ(pos, text.size()) << "text after the last separator in " << path;
  return cases;
}

// .out format: one line of space-separated ids (with a leading space) per case.
std::vector<std::vector<int32_t>> read_expected(const std::string& path) {
  std::vector<std::vector<int32_t>> lines;
  std::istringstream in(read_file(path));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ids(line);
    std::vector<int32_t> row;
    int32_t id;
    while (ids >> id) row.push_back(id);
    lines.push_back(std::move(row));
  }
  return lines;
}

std::string ids_to_string(const std::vector<int32_t>& ids) {
  std::string s;
  for (const int32_t id : ids) {
    s += ' ';  // appended separately: GCC 12's -Wrestrict misfires on " " + to_string at -O3
    s += std::to_string(id);
  }
  return s;
}

std::string escape(const std::string& s) {
  std::string out;
  for (const char c : s) {
    const auto b = static_cast<unsigned char>(c);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (b < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", b);
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

// Encodes every case of <base>.inp and compares with <base>.out; prints "name: N/46".
void check_conformance(const Tokenizer& tok, const std::string& base, const char* name) {
  std::vector<std::string> cases = read_cases(base + ".inp");
  const std::vector<std::vector<int32_t>> expected = read_expected(base + ".out");
  ASSERT_EQ(cases.size(), 46u);
  ASSERT_EQ(expected.size(), cases.size());
  size_t passed = 0;
  std::string first_diff;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<int32_t> got = tok.encode(cases[i], false, false);
    if (got == expected[i]) {
      ++passed;
    } else if (first_diff.empty()) {
      first_diff = "case " + std::to_string(i) + " '" + escape(cases[i]) +
                   "'\n  expected:" + ids_to_string(expected[i]) +
                   "\n  got:     " + ids_to_string(got);
    }
  }
  std::printf("[ tokenizer ] %s: %zu/%zu\n", name, passed, cases.size());
  EXPECT_EQ(passed, cases.size()) << "first difference: " << first_diff;
}

const Tokenizer* gpt2() {
  static const std::optional<Tokenizer> tok = []() -> std::optional<Tokenizer> {
    if (!std::filesystem::exists(kGpt2Gguf)) return std::nullopt;
    auto file = gguf::GgufFile::open(kGpt2Gguf);
    EXPECT_TRUE(file.ok()) << file.status().message();
    if (!file.ok()) return std::nullopt;
    auto vocab = vocab_from_gguf(file.value());
    EXPECT_TRUE(vocab.ok()) << vocab.status().message();
    if (!vocab.ok()) return std::nullopt;
    auto t = Tokenizer::create(std::move(vocab).value());
    EXPECT_TRUE(t.ok()) << t.status().message();
    if (!t.ok()) return std::nullopt;
    return std::move(t).value();
  }();
  return tok ? &*tok : nullptr;
}

const Tokenizer* spm() {
  static const std::optional<Tokenizer> tok = []() -> std::optional<Tokenizer> {
    if (!std::filesystem::exists(kSpmGguf)) return std::nullopt;
    auto file = gguf::GgufFile::open(kSpmGguf);
    EXPECT_TRUE(file.ok()) << file.status().message();
    if (!file.ok()) return std::nullopt;
    auto vocab = vocab_from_gguf(file.value());
    EXPECT_TRUE(vocab.ok()) << vocab.status().message();
    if (!vocab.ok()) return std::nullopt;
    auto t = Tokenizer::create(std::move(vocab).value());
    EXPECT_TRUE(t.ok()) << t.status().message();
    if (!t.ok()) return std::nullopt;
    return std::move(t).value();
  }();
  return tok ? &*tok : nullptr;
}

const Vocab* llama3_vocab() {
  static const std::optional<Vocab> vocab = []() -> std::optional<Vocab> {
    if (!std::filesystem::exists(kLlama3Model)) return std::nullopt;
    auto v = vocab_from_tiktoken(kLlama3Model);
    EXPECT_TRUE(v.ok()) << v.status().message();
    if (!v.ok()) return std::nullopt;
    return std::move(v).value();
  }();
  return vocab ? &*vocab : nullptr;
}

const Tokenizer* llama3() {
  static const std::optional<Tokenizer> tok = []() -> std::optional<Tokenizer> {
    const Vocab* v = llama3_vocab();
    if (v == nullptr) return std::nullopt;
    auto t = Tokenizer::create(*v);
    EXPECT_TRUE(t.ok()) << t.status().message();
    if (!t.ok()) return std::nullopt;
    return std::move(t).value();
  }();
  return tok ? &*tok : nullptr;
}

#define GPT2_OR_SKIP()           \
  SKIP_IF_MISSING(kGpt2Gguf);    \
  const Tokenizer* tok = gpt2(); \
  ASSERT_NE(tok, nullptr)
#define SPM_OR_SKIP()           \
  SKIP_IF_MISSING(kSpmGguf);    \
  const Tokenizer* tok = spm(); \
  ASSERT_NE(tok, nullptr)
#define LLAMA3_OR_SKIP()           \
  SKIP_IF_MISSING(kLlama3Model);   \
  const Tokenizer* tok = llama3(); \
  ASSERT_NE(tok, nullptr)

// ---- small hand-made vocabularies (no data needed) ----

// Byte-level BPE over all 256 bytes plus `extra` tokens and `merges` (mapped form).
Vocab tiny_bpe(const std::vector<std::string>& extra, const std::vector<std::string>& merges) {
  Vocab v;
  v.model = VocabModel::kBpe;
  v.pre = "gpt-2";
  for (int b = 0; b < 256; ++b) {
    v.tokens.emplace_back(tokenizer_detail::byte_to_unicode(static_cast<uint8_t>(b)));
  }
  for (const std::string& t : extra) v.tokens.push_back(t);
  v.merges = merges;
  v.scores.assign(v.tokens.size(), 0.0f);
  v.token_types.assign(v.tokens.size(), TokenType::kNormal);
  return v;
}

// SentencePiece vocabulary: <unk>, <s>, </s>, the 256 byte tokens, then `pieces` with scores.
Vocab tiny_spm(const std::vector<std::pair<std::string, float>>& pieces) {
  Vocab v;
  v.model = VocabModel::kSpm;
  v.tokens = {"<unk>", "<s>", "</s>"};
  v.token_types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    v.tokens.push_back(name);
    v.token_types.push_back(TokenType::kByte);
  }
  v.scores.assign(v.tokens.size(), 0.0f);
  for (const auto& [text, score] : pieces) {
    v.tokens.push_back(text);
    v.scores.push_back(score);
    v.token_types.push_back(TokenType::kNormal);
  }
  v.bos_id = 1;
  v.eos_id = 2;
  v.unk_id = 0;
  v.add_bos = true;
  v.add_space_prefix = true;
  return v;
}

// ---- conformance with llama.cpp's vectors ----

TEST(TokenizerConformance, tokenizer_gpt2_46_cases) {
  GPT2_OR_SKIP();
  SKIP_IF_MISSING(kVocabDir + "/ggml-vocab-gpt-2.gguf.inp");
  EXPECT_EQ(tok->vocab().model, VocabModel::kBpe);
  EXPECT_EQ(tok->vocab().pre, "gpt-2");
  EXPECT_EQ(tok->n_tokens(), 50257);
  check_conformance(*tok, kVocabDir + "/ggml-vocab-gpt-2.gguf", "gpt-2");
}

TEST(TokenizerConformance, tokenizer_llama_spm_46_cases) {
  SPM_OR_SKIP();
  SKIP_IF_MISSING(kVocabDir + "/ggml-vocab-llama-spm.gguf.inp");
  EXPECT_EQ(tok->vocab().model, VocabModel::kSpm);
  EXPECT_EQ(tok->n_tokens(), 32000);
  EXPECT_TRUE(tok->vocab().add_space_prefix);
  check_conformance(*tok, kVocabDir + "/ggml-vocab-llama-spm.gguf", "llama-spm");
}

TEST(TokenizerConformance, tokenizer_llama_bpe_46_cases_from_tiktoken) {
  LLAMA3_OR_SKIP();
  SKIP_IF_MISSING(kLlamaBpeBase + ".inp");
  EXPECT_EQ(tok->n_tokens(), 128256);
  EXPECT_EQ(tok->vocab().pre, "llama-bpe");
  check_conformance(*tok, kLlamaBpeBase, "llama-bpe (tiktoken)");
}

// The tiktoken-built vocabulary written to GGUF and read back must behave identically: this
// is the llama-bpe GGUF path that upstream's missing ggml-vocab-llama-bpe.gguf would test.
TEST(TokenizerConformance, tokenizer_llama_bpe_46_cases_through_gguf) {
  SKIP_IF_MISSING(kLlama3Model);
  SKIP_IF_MISSING(kLlamaBpeBase + ".inp");
  const Vocab* v = llama3_vocab();
  ASSERT_NE(v, nullptr);
  gguf::GgufWriter writer;
  writer.set_string("general.architecture", "llama");
  add_vocab_to_gguf(*v, writer);
  auto file = gguf::GgufFile::parse(writer.serialize());
  ASSERT_TRUE(file.ok()) << file.status().message();
  auto back = vocab_from_gguf(file.value());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back.value().tokens, v->tokens);
  EXPECT_EQ(back.value().merges, v->merges);
  EXPECT_EQ(back.value().token_types, v->token_types);
  EXPECT_EQ(back.value().bos_id, 128000);
  EXPECT_EQ(back.value().eos_id, 128001);
  EXPECT_TRUE(back.value().add_bos);
  auto tok = Tokenizer::create(std::move(back).value());
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  check_conformance(tok.value(), kLlamaBpeBase, "llama-bpe (tiktoken -> gguf)");
}

// Meta's own unit test for the Llama 3 tokenizer.
TEST(TokenizerLlama3, tokenizer_meta_check_with_bos_and_eos) {
  SKIP_IF_MISSING(kLlama3Model);
  const Vocab* v = llama3_vocab();
  ASSERT_NE(v, nullptr);
  Vocab with_eos = *v;
  with_eos.add_eos = true;
  auto tok = Tokenizer::create(std::move(with_eos));
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok.value().encode("This is a test sentence.", true, false),
            (std::vector<int32_t>{128000, 2028, 374, 264, 1296, 11914, 13, 128001}));
  // The stock vocabulary adds BOS only, like Llama 3's tokenizer_config.
  EXPECT_EQ(llama3()->encode("This is a test sentence.", true, false),
            (std::vector<int32_t>{128000, 2028, 374, 264, 1296, 11914, 13}));
}

TEST(TokenizerLlama3, tokenizer_derived_merges_and_special_tokens) {
  LLAMA3_OR_SKIP();
  const Vocab& v = tok->vocab();
  // 127,744 multi-byte tokens, of which 678 (".:.:", " việc", ...) do not reduce to two parts
  // under lower-ranked merges: tiktoken only ever emits those as whole words, and so do we.
  // (Checked independently with Hugging Face's tiktoken-conversion algorithm in Python.)
  EXPECT_EQ(v.merges.size(), 127066u);
  EXPECT_EQ(v.tokens[128000], "<|begin_of_text|>");
  EXPECT_EQ(v.tokens[128001], "<|end_of_text|>");
  EXPECT_EQ(v.tokens[128004], "<|finetune_right_pad_id|>");
  EXPECT_EQ(v.tokens[128006], "<|start_header_id|>");
  EXPECT_EQ(v.tokens[128009], "<|eot_id|>");
  EXPECT_EQ(v.tokens[128011], "<|image|>");
  EXPECT_EQ(v.tokens[128012], "<|reserved_special_token_2|>");
  EXPECT_EQ(v.tokens[128255], "<|reserved_special_token_245|>");
  EXPECT_EQ(v.token_types[128255], TokenType::kControl);
  EXPECT_EQ(v.token_types[1000], TokenType::kNormal);
  EXPECT_EQ(tok->token_id("Ġthe"), 279);  // stored GPT-2-mapped
  EXPECT_EQ(tok->token_to_piece(279), " the");
}

// ---- decode ----

TEST(TokenizerDecode, tokenizer_round_trips_all_46_cases) {
  SKIP_IF_MISSING(kVocabDir + "/ggml-vocab-gpt-2.gguf.inp");
  const std::vector<std::string> cases = read_cases(kVocabDir + "/ggml-vocab-gpt-2.gguf.inp");
  const std::vector<std::pair<const char*, const Tokenizer*>> tokenizers = {
      {"gpt-2", std::filesystem::exists(kGpt2Gguf) ? gpt2() : nullptr},
      {"llama-spm", std::filesystem::exists(kSpmGguf) ? spm() : nullptr},
      {"llama-bpe", std::filesystem::exists(kLlama3Model) ? llama3() : nullptr}};
  for (const auto& [name, tok] : tokenizers) {
    if (tok == nullptr) continue;
    for (const std::string& s : cases) {
      // SentencePiece's dummy prefix is added by encode and dropped by decode, so this is exact
      // for all three.
      EXPECT_EQ(tok->decode(tok->encode(s, false, false)), s) << name << ": '" << escape(s) << "'";
      EXPECT_EQ(tok->decode(tok->encode(s, true, false)), s) << name << ": '" << escape(s) << "'";
    }
  }
}

TEST(TokenizerDecode, tokenizer_spm_pieces_and_prefix_rule) {
  SPM_OR_SKIP();
  const std::vector<int32_t> ids = tok->encode("Hello world", true, false);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 15043, 3186}));
  EXPECT_EQ(tok->token_to_piece(15043), " Hello");
  EXPECT_EQ(tok->token_to_piece(1), "<s>");
  EXPECT_EQ(tok->token_to_piece(13), "\n");  // <0x0A>
  EXPECT_EQ(tok->decode(ids), "Hello world");
  EXPECT_EQ(tok->decode(ids, /*render_special=*/true), "<s>Hello world");
  // A leading space in the text survives: only the dummy prefix is dropped.
  EXPECT_EQ(tok->decode(tok->encode(" Hello", false, false)), " Hello");
  EXPECT_EQ(tok->token_to_piece(-1), "");
  EXPECT_EQ(tok->token_to_piece(32000), "");
  EXPECT_EQ(tok->decode(std::vector<int32_t>{15043, -5, 99999, 3186}), "Hello world");
}

TEST(TokenizerDecode, tokenizer_byte_level_pieces) {
  GPT2_OR_SKIP();
  EXPECT_EQ(tok->token_to_piece(tok->token_id("Ġworld")), " world");
  EXPECT_EQ(tok->token_to_piece(50256), "<|endoftext|>");
  const std::vector<int32_t> ids = {15496, 50256, 995};  // "Hello", <|endoftext|>, " world"
  EXPECT_EQ(tok->decode(ids), "Hello world");
  EXPECT_EQ(tok->decode(ids, true), "Hello<|endoftext|> world");
}

// ---- special tokens ----

TEST(TokenizerSpecial, tokenizer_parse_special_llama3) {
  LLAMA3_OR_SKIP();
  const std::string text = "<|begin_of_text|>Hello<|eot_id|>";
  const std::vector<int32_t> parsed = tok->encode(text, false, true);
  EXPECT_EQ(parsed, (std::vector<int32_t>{128000, 9906, 128009}));
  EXPECT_EQ(tok->decode(parsed, true), text);
  EXPECT_EQ(tok->decode(parsed), "Hello");
  // Without parse_special the markers are plain text.
  const std::vector<int32_t> plain = tok->encode(text, false, false);
  for (const int32_t id : plain) EXPECT_LT(id, 128000);
  EXPECT_EQ(tok->decode(plain), text);
  // add_special adds BOS in front of a parsed BOS too (llama.cpp only warns).
  EXPECT_EQ(tok->encode(text, true, true), (std::vector<int32_t>{128000, 128000, 9906, 128009}));
}

TEST(TokenizerSpecial, tokenizer_parse_special_spm_prefixes_after_special) {
  SPM_OR_SKIP();
  // Text after a special token gets the dummy prefix again (llama.cpp's is_prev_special).
  const std::vector<int32_t> ids = tok->encode("<s>Hello</s>", false, true);
  EXPECT_EQ(ids, (std::vector<int32_t>{1, 15043, 2}));
  EXPECT_EQ(tok->decode(ids, true), "<s>Hello</s>");
  EXPECT_EQ(tok->encode("Hello", true, false), (std::vector<int32_t>{1, 15043}));
  EXPECT_TRUE(tok->encode("", false, false).empty());
  EXPECT_EQ(tok->encode("", true, false), (std::vector<int32_t>{1}));
  // <unk> is only parsed with parse_special.
  EXPECT_EQ(tok->encode("<unk>", false, true), (std::vector<int32_t>{0}));
  EXPECT_NE(tok->encode("<unk>", false, false), (std::vector<int32_t>{0}));
}

// ---- streaming decode ----

// Pushes every token and checks that each chunk is valid UTF-8 and that the chunks add up.
std::string stream_all(const Tokenizer& tok, const std::vector<int32_t>& ids, int* held_back) {
  StreamingDecoder dec(tok);
  std::string all;
  *held_back = 0;
  for (const int32_t id : ids) {
    const std::string chunk = dec.push(id);
    EXPECT_TRUE(tokenizer_detail::is_valid_utf8(chunk)) << escape(chunk);
    if (chunk.empty()) ++*held_back;
    all += chunk;
  }
  all += dec.finish();
  return all;
}

TEST(TokenizerStreaming, tokenizer_streaming_holds_split_characters) {
  if (!std::filesystem::exists(kGpt2Gguf) && !std::filesystem::exists(kSpmGguf) &&
      !std::filesystem::exists(kLlama3Model)) {
    GTEST_SKIP() << "../shared is missing: no vocabulary found under " << kDataDir;
  }
  const std::string text = "Llamas 🦙 and 😀, naïve café, 日本語 ok";
  int held = 0;
  if (std::filesystem::exists(kSpmGguf)) {
    const Tokenizer* tok = spm();
    ASSERT_NE(tok, nullptr);
    const std::vector<int32_t> ids = tok->encode(text, false, false);
    EXPECT_EQ(stream_all(*tok, ids, &held), text);
    EXPECT_GE(held, 3);  // 🦙 and 😀 are byte-fallback tokens: 3 pushes each give nothing
  }
  if (std::filesystem::exists(kGpt2Gguf)) {
    const Tokenizer* tok = gpt2();
    ASSERT_NE(tok, nullptr);
    const std::vector<int32_t> ids = tok->encode(text, false, false);
    EXPECT_EQ(stream_all(*tok, ids, &held), text);
    EXPECT_GE(held, 1);  // GPT-2 splits emoji bytes across tokens
  }
  if (std::filesystem::exists(kLlama3Model)) {
    const Tokenizer* tok = llama3();
    ASSERT_NE(tok, nullptr);
    EXPECT_EQ(stream_all(*tok, tok->encode(text, false, false), &held), text);
  }
}

TEST(TokenizerStreaming, tokenizer_streaming_replaces_invalid_bytes) {
  auto made = Tokenizer::create(tiny_spm({{"▁Hello", -1}}));
  ASSERT_TRUE(made.ok()) << made.status().message();
  const Tokenizer* tok = &made.value();
  auto byte = [&](int b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    return tok->token_id(name);
  };
  const int32_t hello = tok->token_id("▁Hello");
  StreamingDecoder dec(*tok);
  EXPECT_EQ(dec.push(byte(0xE2)), "");
  EXPECT_EQ(dec.push(byte(0x82)), "");
  EXPECT_EQ(dec.push(byte(0xAC)), "€");
  EXPECT_EQ(dec.push(byte(0xE2)), "");
  EXPECT_EQ(dec.push(byte(0x82)), "");
  // 'A' cannot continue the character: the two held bytes become one U+FFFD.
  EXPECT_EQ(dec.push(byte(0x41)),
            "\xEF\xBF\xBD"
            "A");
  EXPECT_EQ(dec.push(byte(0xFF)), "\xEF\xBF\xBD");  // never valid
  EXPECT_EQ(dec.push(1), "");                       // <s> is not rendered by default
  EXPECT_EQ(dec.push(byte(0xF0)), "");
  EXPECT_EQ(dec.finish(), "\xEF\xBF\xBD");  // incomplete at the end
  EXPECT_EQ(dec.finish(), "");
  // After finish() the decoder starts a new sequence: the dummy-prefix space is dropped again.
  EXPECT_EQ(dec.push(hello), "Hello");
  EXPECT_EQ(dec.push(hello), " Hello");
  StreamingDecoder continuing(*tok, false, /*sequence_start=*/false);
  EXPECT_EQ(continuing.push(hello), " Hello");
  StreamingDecoder with_special(*tok, /*render_special=*/true);
  EXPECT_EQ(with_special.push(1), "<s>");
  EXPECT_EQ(with_special.push(hello), "Hello");  // the dummy prefix follows a special token
}

// ---- invalid UTF-8 and robustness ----

TEST(TokenizerRobustness, tokenizer_invalid_utf8_round_trips) {
  const std::vector<std::string> inputs = {
      std::string("abc\xFF\xFE def", 9),
      "truncated \xE2\x82",
      "\xC3(x \xED\xA0\x80 surrogate \xC0\xAF overlong",
      "\x80\x80\x80",
      std::string("nul\0byte", 8),
      "caf\xC3\xA9 \xF0\x9F\x98",
  };
  auto tiny_bpe_tok = Tokenizer::create(tiny_bpe({"ab"}, {"a b"}));
  auto tiny_spm_tok = Tokenizer::create(tiny_spm({{"▁", -2}, {"▁a", -1}}));
  ASSERT_TRUE(tiny_bpe_tok.ok() && tiny_spm_tok.ok());
  for (const auto& [name, tok] : std::vector<std::pair<const char*, const Tokenizer*>>{
           {"tiny bpe", &tiny_bpe_tok.value()},
           {"tiny spm", &tiny_spm_tok.value()},
           {"gpt-2", std::filesystem::exists(kGpt2Gguf) ? gpt2() : nullptr},
           {"llama-spm", std::filesystem::exists(kSpmGguf) ? spm() : nullptr},
           {"llama-bpe", std::filesystem::exists(kLlama3Model) ? llama3() : nullptr}}) {
    if (tok == nullptr) continue;
    for (const std::string& s : inputs) {
      const std::vector<int32_t> ids = tok->encode(s, true, true);
      EXPECT_EQ(tok->decode(ids), s) << name << ": '" << escape(s) << "'";
      EXPECT_EQ(tok->encode(s, true, true), ids) << "deterministic";
    }
  }
}

TEST(TokenizerRobustness, tokenizer_long_inputs_and_threads) {
  LLAMA3_OR_SKIP();
  // Long whitespace runs exercise the \s+(?!\S) look-ahead's backtracking.
  std::string spaces(100000, ' ');
  spaces += "x\n\n";
  spaces += std::string(50000, '\n');
  EXPECT_EQ(tok->decode(tok->encode(spaces, false, false)), spaces);
  std::string letters(200000, 'a');
  EXPECT_EQ(tok->decode(tok->encode(letters, false, false)), letters);

  std::string text;
  for (int i = 0; i < 200; ++i) text += "The quick brown fox " + std::to_string(i) + " jumps. ";
  const std::vector<int32_t> expected = tok->encode(text, true, true);
  std::vector<std::vector<int32_t>> got(4);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < got.size(); ++t) {
    threads.emplace_back([&, t] { got[t] = tok->encode(text, true, true); });
  }
  for (auto& th : threads) th.join();
  for (const auto& g : got) EXPECT_EQ(g, expected);
}

// ---- pre-tokenizer (no data needed) ----

std::vector<std::string> split_words(const char* pre, const std::string& text) {
  auto p = tokenizer_detail::PreTokenizer::create(pre);
  EXPECT_TRUE(p.ok()) << p.status().message();
  std::vector<std::string_view> views;
  p.value().split(text, views);
  std::string joined;
  std::vector<std::string> words;
  for (const std::string_view w : views) {
    EXPECT_FALSE(w.empty());
    joined += w;
    words.emplace_back(w);
  }
  EXPECT_EQ(joined, text) << "words must cover the text exactly";
  return words;
}

TEST(TokenizerPre, tokenizer_llama3_regex_words) {
  using W = std::vector<std::string>;
  EXPECT_EQ(split_words("llama-bpe", "Hello  world\n\n 123456 ſ's 'S"),
            (W{"Hello", " ", " world", "\n\n", " ", "123", "456", " ſ", "'s", " '", "S"}));
  // NBSP and NEL are whitespace (Unicode White_Space, as in llama.cpp): the first one is a
  // \s+(?!\S) word, the second prefixes the letters.
  EXPECT_EQ(split_words("llama-bpe", "a\u00A0\u00A0b"), (W{"a", "\u00A0", "\u00A0b"}));
  EXPECT_EQ(split_words("llama-bpe", "a\u0085\u0085b"), (W{"a", "\u0085", "\u0085b"}));
  // Case-insensitive contractions are ASCII only.
  EXPECT_EQ(split_words("llama-bpe", "I'LL it's"), (W{"I", "'LL", " it", "'s"}));
  // Invalid bytes act like U+FFFD (a symbol) but come back unchanged.
  EXPECT_EQ(split_words("llama-bpe",
                        "ab\xFF\xFE"
                        "cd  "),
            (W{"ab", "\xFF\xFE", "cd", "  "}));
}

TEST(TokenizerPre, tokenizer_gpt2_regex_words) {
  using W = std::vector<std::string>;
  EXPECT_EQ(split_words("gpt-2", "Hello world's  12345 !!\tx   "),
            (W{"Hello", " world", "'s", " ", " 12345", " !!", "\t", "x", "   "}));
  EXPECT_EQ(split_words("gpt-2", ""), W{});
  EXPECT_FALSE(tokenizer_detail::PreTokenizer::create("tekken").ok());
  for (const char* name : {"default", "qwen2", "starcoder", "llama3", "mpt"}) {
    EXPECT_TRUE(tokenizer_detail::PreTokenizer::is_supported(name)) << name;
    EXPECT_EQ(split_words(name, "Hi there, 2024!").size() > 1, true) << name;
  }
}

// ---- hand-made vocabularies ----

TEST(TokenizerBpe, tokenizer_merges_by_rank_leftmost_first) {
  Vocab v = tiny_bpe({"aa", "ab", "abc", "Ġa"}, {"a a", "a b", "ab c", "Ġ a"});
  auto tok = Tokenizer::create(v);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  auto id = [&](const char* t) { return tok.value().token_id(t); };
  // "aaa": the leftmost "a a" merges first.
  EXPECT_EQ(tok.value().encode("aaa", false, false), (std::vector<int32_t>{id("aa"), 'a'}));
  EXPECT_EQ(tok.value().encode("abc", false, false), (std::vector<int32_t>{id("abc")}));
  // "aab": "a a" (rank 0) beats "a b" (rank 1).
  EXPECT_EQ(tok.value().encode("aab", false, false), (std::vector<int32_t>{id("aa"), 'b'}));
  // Pre-tokenization keeps words apart: " a" is one word.
  EXPECT_EQ(tok.value().encode("a a", false, false), (std::vector<int32_t>{'a', id("Ġa")}));
  EXPECT_EQ(tok.value().decode(tok.value().encode("x aab\n", false, false)), "x aab\n");
}

TEST(TokenizerBpe, tokenizer_merge_to_non_token_falls_back_to_bytes) {
  // "b c" produces "bc", which is not a token; "a bc" then makes "abc".
  Vocab v = tiny_bpe({"abc"}, {"b c", "a bc"});
  auto tok = Tokenizer::create(v);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok.value().encode("abc", false, false),
            (std::vector<int32_t>{tok.value().token_id("abc")}));
  EXPECT_EQ(tok.value().encode("bc", false, false), (std::vector<int32_t>{'b', 'c'}));
}

TEST(TokenizerSpm, tokenizer_merges_by_score_with_byte_fallback) {
  Vocab v = tiny_spm(
      {{"▁", -1}, {"a", -2}, {"b", -2}, {"ab", -3}, {"▁a", -1.5f}, {"▁ab", -0.5f}, {"ba", -3}});
  auto made = Tokenizer::create(v);
  ASSERT_TRUE(made.ok()) << made.status().message();
  const Tokenizer& tok = made.value();
  auto id = [&](const char* t) { return tok.token_id(t); };
  EXPECT_EQ(tok.encode("ab", false, false), (std::vector<int32_t>{id("▁ab")}));
  // "ç" has no token: byte fallback to <0xC3><0xA7>.
  EXPECT_EQ(tok.encode("ç", false, false),
            (std::vector<int32_t>{id("▁"), id("<0xC3>"), id("<0xA7>")}));
  // "aba" (no dummy prefix case via add_space_prefix=false below): "ab" and "ba" tie at -3,
  // the leftmost wins.
  Vocab no_prefix = v;
  no_prefix.add_space_prefix = false;
  auto plain = Tokenizer::create(no_prefix);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain.value().encode("aba", false, false), (std::vector<int32_t>{id("ab"), id("a")}));
  EXPECT_EQ(tok.decode(tok.encode("ab ç ba", true, false)), "ab ç ba");
}

// SpmModel cuts the text at "▁" runs when no token spans one; adding a token that does
// ("x▁y") turns that off. Both must give identical ids (llama.cpp merges the whole text).
TEST(TokenizerSpm, tokenizer_word_split_matches_whole_text_merging) {
  SPM_OR_SKIP();
  SKIP_IF_MISSING(kVocabDir + "/ggml-vocab-llama-spm.gguf.inp");
  Vocab v = tok->vocab();
  v.tokens.push_back("x▁y");
  v.scores.push_back(-1e9f);
  v.token_types.push_back(TokenType::kNormal);
  auto whole = Tokenizer::create(std::move(v));
  ASSERT_TRUE(whole.ok()) << whole.status().message();
  std::vector<std::string> texts = read_cases(kVocabDir + "/ggml-vocab-llama-spm.gguf.inp");
  const std::string shakespeare = kDataDir + "/tinyshakespeare/input.txt";
  if (std::filesystem::exists(shakespeare))
    texts.push_back(read_file(shakespeare).substr(0, 50000));
  for (const std::string& text : texts) {
    EXPECT_EQ(whole.value().encode(text, true, false), tok->encode(text, true, false))
        << "'" << escape(text.substr(0, 80)) << "'";
  }
}

TEST(TokenizerSpm, tokenizer_unknown_without_byte_tokens) {
  Vocab v;
  v.model = VocabModel::kSpm;
  v.tokens = {"<unk>", "▁", "a"};
  v.token_types = {TokenType::kUnknown, TokenType::kNormal, TokenType::kNormal};
  v.scores = {0, -1, -1};
  v.unk_id = 0;
  v.add_space_prefix = true;
  auto tok = Tokenizer::create(v);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  EXPECT_EQ(tok.value().encode("aé", false, false), (std::vector<int32_t>{1, 2, 0}));
}

// ---- validation and loader errors ----

std::string error_of(const Vocab& v) {
  auto tok = Tokenizer::create(v);
  return tok.ok() ? "" : tok.status().message();
}

TEST(TokenizerVocab, tokenizer_validation_names_the_problem) {
  const Vocab good = tiny_bpe({"ab"}, {"a b"});
  EXPECT_EQ(error_of(good), "");
  Vocab v = good;
  v.tokens[300 % v.tokens.size()] = v.tokens[0];
  EXPECT_NE(error_of(v).find("duplicates"), std::string::npos) << error_of(v);
  v = good;
  v.bos_id = 5000;
  EXPECT_NE(error_of(v).find("bos id 5000"), std::string::npos) << error_of(v);
  v = good;
  v.add_eos = true;
  EXPECT_NE(error_of(v).find("add_eos"), std::string::npos) << error_of(v);
  v = good;
  v.scores.pop_back();
  EXPECT_NE(error_of(v).find("scores"), std::string::npos) << error_of(v);
  v = good;
  v.merges.push_back("nospace");
  EXPECT_NE(error_of(v).find("'nospace'"), std::string::npos) << error_of(v);
  v = good;
  v.scores[3] = std::nanf("");
  EXPECT_NE(error_of(v).find("NaN"), std::string::npos) << error_of(v);
  v = good;
  v.tokens[7].clear();
  EXPECT_NE(error_of(v).find("token 7 is empty"), std::string::npos) << error_of(v);
  v = good;
  v.pre = "no-such-pre";
  EXPECT_NE(error_of(v).find("'no-such-pre'"), std::string::npos) << error_of(v);
}

std::string write_temp(const std::string& name, const std::string& content) {
  const std::string path =
      (std::filesystem::temp_directory_path() / ("tern_tokenizer_test_" + name)).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

TEST(TokenizerVocab, tokenizer_tiktoken_errors) {
  TiktokenOptions opt;
  opt.special_tokens = {"<s>", "</s>"};
  opt.bos_token = "<s>";
  opt.eos_token = "</s>";
  // "YQ==" a, "Yg==" b, "YWI=" ab.
  auto ok = vocab_from_tiktoken(write_temp("ok", "YQ== 0\nYg== 1\nYWI= 2\n"), opt);
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok.value().tokens, (std::vector<std::string>{"a", "b", "ab", "<s>", "</s>"}));
  EXPECT_EQ(ok.value().merges, (std::vector<std::string>{"a b"}));
  EXPECT_EQ(ok.value().bos_id, 3);

  auto message = [&](const std::string& name, const std::string& content) {
    auto r = vocab_from_tiktoken(write_temp(name, content), opt);
    return r.ok() ? std::string() : r.status().message();
  };
  EXPECT_NE(message("b64", "YQ== 0\n!!!! 1\n").find("line 2: bad base64 '!!!!'"),
            std::string::npos);
  EXPECT_NE(message("rank", "YQ== 0\nYg== x\n").find("line 2: bad rank 'x'"), std::string::npos);
  EXPECT_NE(message("gap", "YQ== 0\nYg== 2\n").find("rank 1 missing"), std::string::npos);
  EXPECT_NE(message("dup", "YQ== 0\nYQ== 1\n").find("repeated"), std::string::npos);
  EXPECT_NE(message("nospace", "YQ==\n").find("expected 'base64 rank'"), std::string::npos);
  EXPECT_NE(message("empty", "").find("no tokens"), std::string::npos);
  opt.bos_token = "<nope>";
  EXPECT_NE(message("ok2", "YQ== 0\n").find("'<nope>'"), std::string::npos);
  EXPECT_FALSE(vocab_from_tiktoken("/nonexistent/tokenizer.model").ok());
}

Result<Vocab> vocab_from_writer(const gguf::GgufWriter& w) {
  auto file = gguf::GgufFile::parse(w.serialize());
  if (!file.ok()) return file.status();
  return vocab_from_gguf(file.value());
}

TEST(TokenizerVocab, tokenizer_gguf_errors_name_key_and_value) {
  const Vocab base = tiny_spm({{"▁a", -1}});
  gguf::GgufWriter w;
  add_vocab_to_gguf(base, w);
  auto back = vocab_from_writer(w);
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_EQ(back.value().tokens, base.tokens);
  EXPECT_EQ(back.value().scores, base.scores);
  EXPECT_EQ(back.value().token_types, base.token_types);
  EXPECT_EQ(back.value().unk_id, 0);
  EXPECT_TRUE(back.value().add_space_prefix);

  auto message = [&](const std::function<void(gguf::GgufWriter&)>& edit) {
    gguf::GgufWriter copy = w;
    edit(copy);
    auto r = vocab_from_writer(copy);
    return r.ok() ? std::string() : r.status().message();
  };
  std::string m = message([](gguf::GgufWriter& c) { c.remove_key("tokenizer.ggml.model"); });
  EXPECT_NE(m.find("tokenizer.ggml.model"), std::string::npos) << m;
  m = message([](gguf::GgufWriter& c) { c.set_string("tokenizer.ggml.model", "bert"); });
  EXPECT_NE(m.find("'bert'"), std::string::npos) << m;
  m = message([](gguf::GgufWriter& c) { c.set_u32("tokenizer.ggml.bos_token_id", 70000); });
  EXPECT_NE(m.find("tokenizer.ggml.bos_token_id = 70000"), std::string::npos) << m;
  m = message([](gguf::GgufWriter& c) { c.set_f32_array("tokenizer.ggml.scores", {1, 2}); });
  EXPECT_NE(m.find("tokenizer.ggml.scores has 2 entries"), std::string::npos) << m;
  m = message([&](gguf::GgufWriter& c) {
    std::vector<int32_t> types(base.tokens.size(), 1);
    types[5] = 9;
    c.set_i32_array("tokenizer.ggml.token_type", types);
  });
  EXPECT_NE(m.find("tokenizer.ggml.token_type[5] = 9"), std::string::npos) << m;
  m = message([](gguf::GgufWriter& c) { c.set_string("tokenizer.ggml.tokens", "x"); });
  EXPECT_NE(m.find("tokenizer.ggml.tokens"), std::string::npos) << m;
  m = message([](gguf::GgufWriter& c) {
    c.set_string("tokenizer.ggml.model", "gpt2");  // needs merges
  });
  EXPECT_NE(m.find("tokenizer.ggml.merges"), std::string::npos) << m;
  m = message([](gguf::GgufWriter& c) {
    c.set_bool("tokenizer.ggml.add_eos_token", true);
    c.remove_key("tokenizer.ggml.eos_token_id");
  });
  // llama's default EOS (2) applies when the key is absent, so this one is fine.
  EXPECT_EQ(m, "");
}

TEST(TokenizerVocab, tokenizer_gguf_test_vocabularies_metadata) {
  SKIP_IF_MISSING(kSpmGguf);
  SKIP_IF_MISSING(kGpt2Gguf);
  const Tokenizer* s = spm();
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->vocab().bos_id, 1);
  EXPECT_EQ(s->vocab().eos_id, 2);
  EXPECT_EQ(s->vocab().unk_id, 0);
  EXPECT_TRUE(s->vocab().add_bos);
  EXPECT_FALSE(s->vocab().add_eos);
  EXPECT_EQ(s->vocab().token_types[3], TokenType::kByte);
  const Tokenizer* g = gpt2();
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->vocab().bos_id, 50256);
  EXPECT_EQ(g->vocab().eos_id, 50256);
  EXPECT_FALSE(g->vocab().add_bos);
  EXPECT_EQ(g->vocab().merges.size(), 50000u);
  EXPECT_EQ(g->vocab().token_types[50256], TokenType::kControl);
}

}  // namespace
}  // namespace tern
