// safetensors reader: the committed Hugging Face fixtures (tests/fixtures/hf, written by
// tests/ref/make_hf_checkpoints.py), one hand-built file per validation error (each message must
// name the bad value), exact f16/bf16 conversion, and checkpoint directories.
#include "format/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <span>
#include <string>
#include <thread>
#include <vector>

namespace tern::safetensors {
namespace {

namespace fs = std::filesystem;

// Passes when `text` contains `needle`; on failure prints both.
::testing::AssertionResult Contains(const char* text_expr, const char*, const std::string& text,
                                    const std::string& needle) {
  if (text.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << text_expr << " is \"" << text << "\", which lacks \"" << needle << "\"";
}
#define EXPECT_CONTAINS(text, needle) EXPECT_PRED_FORMAT2(Contains, text, needle)

// ---- building files by hand ----

std::vector<uint8_t> raw_file(const std::string& header, const std::vector<uint8_t>& data = {}) {
  // Sized up front and filled with memcpy: GCC 12 warns falsely about insert() here.
  std::vector<uint8_t> out(8 + header.size() + data.size());
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  if (!header.empty()) std::memcpy(out.data() + 8, header.data(), header.size());
  if (!data.empty()) std::memcpy(out.data() + 8 + header.size(), data.data(), data.size());
  return out;
}

std::vector<uint8_t> raw_file(const std::string& header, size_t data_bytes) {
  return raw_file(header, std::vector<uint8_t>(data_bytes, 0));
}

struct Entry {
  std::string name;
  std::string dtype;
  std::vector<int64_t> shape;
  std::vector<uint8_t> data;
};

// A well-formed file: tensors back to back in the given order.
std::vector<uint8_t> build(const std::vector<Entry>& entries,
                           const std::map<std::string, std::string>& metadata = {}) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<uint8_t> data;
  for (const Entry& e : entries) {
    header[e.name] = {{"dtype", e.dtype},
                      {"shape", e.shape},
                      {"data_offsets", {data.size(), data.size() + e.data.size()}}};
    data.insert(data.end(), e.data.begin(), e.data.end());
  }
  return raw_file(header.dump(), data);
}

template <typename T>
std::vector<uint8_t> le_bytes(const std::vector<T>& values) {
  std::vector<uint8_t> out(values.size() * sizeof(T));
  if (!values.empty()) std::memcpy(out.data(), values.data(), out.size());
  return out;
}

std::string parse_error(const std::vector<uint8_t>& bytes) {
  const Result<SafetensorsFile> r = SafetensorsFile::parse(bytes);
  EXPECT_FALSE(r.ok()) << "expected an error";
  return r.ok() ? std::string() : r.status().message();
}

std::string header_error(const std::string& header, size_t data_bytes = 0) {
  return parse_error(raw_file(header, data_bytes));
}

// ---- fixtures ----

#ifdef TERN_SOURCE_DIR
const fs::path kFixtures = fs::path(TERN_SOURCE_DIR) / "tests" / "fixtures" / "hf";
#else
const fs::path kFixtures;
#endif

#define REQUIRE_FIXTURES()                                                              \
  do {                                                                                  \
    if (kFixtures.empty() || !fs::is_directory(kFixtures)) {                            \
      GTEST_SKIP() << "fixtures not found (build with TERN_SOURCE_DIR): " << kFixtures; \
    }                                                                                   \
  } while (0)

// The HF tensor a tern/GGUF tensor comes from, per the layouts in tests/fixtures/hf/README.md.
std::string hf_name(const std::string& tern, bool bitnet_2b4t_names) {
  if (tern == "token_embd.weight") return "model.embed_tokens.weight";
  if (tern == "output_norm.weight") return "model.norm.weight";
  if (tern == "output.weight") return "lm_head.weight";
  const size_t dot = tern.find('.', 4);
  const std::string layer = tern.substr(4, dot - 4);
  const std::string part = tern.substr(dot + 1);
  static const std::map<std::string, std::string> kParts = {
      {"attn_norm.weight", "input_layernorm.weight"},
      {"ffn_norm.weight", "post_attention_layernorm.weight"},
      {"attn_q.weight", "self_attn.q_proj.weight"},
      {"attn_k.weight", "self_attn.k_proj.weight"},
      {"attn_v.weight", "self_attn.v_proj.weight"},
      {"attn_output.weight", "self_attn.o_proj.weight"},
      {"ffn_gate.weight", "mlp.gate_proj.weight"},
      {"ffn_up.weight", "mlp.up_proj.weight"},
      {"ffn_down.weight", "mlp.down_proj.weight"}};
  std::string hf;
  if (part == "attn_sub_norm.weight") {
    hf = bitnet_2b4t_names ? "self_attn.attn_sub_norm.weight" : "self_attn.inner_attn_ln.weight";
  } else if (part == "ffn_sub_norm.weight") {
    hf = bitnet_2b4t_names ? "mlp.ffn_sub_norm.weight" : "mlp.ffn_layernorm.weight";
  } else {
    hf = kParts.at(part);
  }
  return "model.layers." + layer + "." + hf;
}

// Unpacks BitNet 2B-4T's uint8 weights ([rows/4, cols] → [rows, cols]): packed row p, bits
// 2i..2i+1 hold unpacked row i·(rows/4) + p as the code value + 1.
std::vector<float> unpack_hf_ternary(std::span<const uint8_t> packed, int64_t packed_rows,
                                     int64_t cols) {
  std::vector<float> out(static_cast<size_t>(4 * packed_rows * cols));
  for (int64_t i = 0; i < 4; ++i) {
    for (int64_t p = 0; p < packed_rows; ++p) {
      for (int64_t c = 0; c < cols; ++c) {
        const int code = (packed[p * cols + c] >> (2 * i)) & 3;
        EXPECT_NE(code, 3) << "code 3 is not a ternary value";
        out[(i * packed_rows + p) * cols + c] = static_cast<float>(code - 1);
      }
    }
  }
  return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() &&
         (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

// Converts every HF tensor of `name` the way tests/fixtures/hf/README.md says a converter must
// and compares with expected.safetensors bit for bit; every HF tensor must be used exactly once.
void check_against_expected(const std::string& name, bool bitnet_2b4t_names) {
  const Result<SafetensorsDir> dir = SafetensorsDir::open((kFixtures / name).string());
  ASSERT_TRUE(dir.ok()) << dir.status().message();
  const Result<SafetensorsFile> expected =
      SafetensorsFile::open((kFixtures / name / "expected.safetensors").string());
  ASSERT_TRUE(expected.ok()) << expected.status().message();
  std::set<std::string> unused;
  for (const std::string& n : dir.value().tensor_names()) unused.insert(n);

  for (const TensorInfo& want : expected.value().tensors()) {
    SCOPED_TRACE(name + " " + want.name);
    ASSERT_EQ(want.dtype, DType::kF32);
    const Result<std::vector<float>> want_values = expected.value().read_f32(want);
    ASSERT_TRUE(want_values.ok()) << want_values.status().message();
    const std::string source = hf_name(want.name, bitnet_2b4t_names);
    const SafetensorsFile* file = nullptr;
    const TensorInfo* hf = dir.value().find(source, &file);
    ASSERT_NE(hf, nullptr) << "no " << source;
    ASSERT_NE(file, nullptr);
    unused.erase(source);
    std::vector<float> got;
    if (hf->dtype == DType::kU8) {
      // Packed ternary: codes × weight_scale (AutoBitLinear, see the README).
      const SafetensorsFile* scale_file = nullptr;
      const TensorInfo* scale = dir.value().find(source + "_scale", &scale_file);
      ASSERT_NE(scale, nullptr);
      unused.erase(scale->name);
      ASSERT_EQ(scale->shape, std::vector<int64_t>{1});
      const Result<std::vector<float>> s = scale_file->read_f32(*scale);
      ASSERT_TRUE(s.ok());
      ASSERT_EQ(hf->shape.size(), 2u);
      got = unpack_hf_ternary(file->bytes(*hf), hf->shape[0], hf->shape[1]);
      for (float& v : got) v *= s.value()[0];
      EXPECT_EQ(want.shape, (std::vector<int64_t>{4 * hf->shape[0], hf->shape[1]}));
    } else {
      const Result<std::vector<float>> v = file->read_f32(*hf);
      ASSERT_TRUE(v.ok()) << v.status().message();
      got = v.value();
      EXPECT_EQ(want.shape, hf->shape);
    }
    EXPECT_TRUE(same_bits(got, want_values.value()));
  }
  EXPECT_TRUE(unused.empty()) << "HF tensors with no expected counterpart: "
                              << ::testing::PrintToString(unused);
}

TEST(safetensorsFixtures, BitnetPackedLayout) {
  REQUIRE_FIXTURES();
  const Result<SafetensorsDir> r =
      SafetensorsDir::open((kFixtures / "bitnet_2b4t_packed").string());
  ASSERT_TRUE(r.ok()) << r.status().message();
  const SafetensorsDir& dir = r.value();
  EXPECT_EQ(dir.files().size(), 1u);
  EXPECT_EQ(dir.config().at("architectures")[0], "BitNetForCausalLM");
  EXPECT_EQ(dir.config().at("hidden_act"), "relu2");
  EXPECT_EQ(dir.config().at("tie_word_embeddings"), true);
  EXPECT_EQ(dir.config().at("quantization_config").at("linear_class"), "autobitlinear");
  EXPECT_EQ(dir.config().at("quantization_config").at("quantization_mode"), "offline");
  EXPECT_EQ(dir.files()[0].metadata().at("format"), "pt");
  // Embedding + final norm + 2 layers × (4 norms + 7 linears × (weight, weight_scale)).
  EXPECT_EQ(dir.tensor_names().size(), 2u + 2 * (4 + 14));
  EXPECT_EQ(dir.find("lm_head.weight"), nullptr);  // tied

  const TensorInfo* q = dir.find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::kU8);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{4, 16}));  // 16 output rows packed four per byte
  const TensorInfo* k = dir.find("model.layers.1.self_attn.k_proj.weight");
  ASSERT_NE(k, nullptr);
  EXPECT_EQ(k->shape, (std::vector<int64_t>{2, 16}));  // 2 kv heads × head_dim 4 = 8 rows
  const TensorInfo* down = dir.find("model.layers.0.mlp.down_proj.weight");
  ASSERT_NE(down, nullptr);
  EXPECT_EQ(down->shape, (std::vector<int64_t>{4, 32}));
  const TensorInfo* scale = dir.find("model.layers.0.mlp.down_proj.weight_scale");
  ASSERT_NE(scale, nullptr);
  EXPECT_EQ(scale->dtype, DType::kBF16);
  EXPECT_EQ(scale->shape, std::vector<int64_t>{1});
  const TensorInfo* sub = dir.find("model.layers.1.mlp.ffn_sub_norm.weight");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->dtype, DType::kBF16);
  EXPECT_EQ(sub->shape, std::vector<int64_t>{32});
  const TensorInfo* embd = dir.find("model.embed_tokens.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dtype, DType::kBF16);
  EXPECT_EQ(embd->shape, (std::vector<int64_t>{100, 16}));
  // The packed bytes only use codes 0..2.
  for (const std::string& n : dir.tensor_names()) {
    const SafetensorsFile* f = nullptr;
    const TensorInfo* t = dir.find(n, &f);
    if (t->dtype != DType::kU8) continue;
    for (const uint8_t b : f->bytes(*t)) {
      for (int i = 0; i < 4; ++i) ASSERT_NE((b >> (2 * i)) & 3, 3) << n;
    }
  }
}

TEST(safetensorsFixtures, BitnetPackedMatchesExpected) {
  REQUIRE_FIXTURES();
  check_against_expected("bitnet_2b4t_packed", /*bitnet_2b4t_names=*/true);
}

TEST(safetensorsFixtures, BitnetBf16MatchesExpected) {
  REQUIRE_FIXTURES();
  check_against_expected("bitnet_2b4t_bf16", true);
  const Result<SafetensorsDir> dir =
      SafetensorsDir::open((kFixtures / "bitnet_2b4t_bf16").string());
  ASSERT_TRUE(dir.ok());
  const TensorInfo* q = dir.value().find("model.layers.0.self_attn.q_proj.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->dtype, DType::kBF16);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{16, 16}));
  EXPECT_EQ(dir.value().find("model.layers.0.self_attn.q_proj.weight_scale"), nullptr);
  EXPECT_EQ(dir.value().config().at("quantization_config").at("quantization_mode"), "online");
}

TEST(safetensorsFixtures, OneBitLlmMatchesExpected) {
  REQUIRE_FIXTURES();
  check_against_expected("1bitllm", /*bitnet_2b4t_names=*/false);
  const Result<SafetensorsDir> dir = SafetensorsDir::open((kFixtures / "1bitllm").string());
  ASSERT_TRUE(dir.ok());
  EXPECT_EQ(dir.value().config().at("architectures")[0], "BitnetForCausalLM");
  EXPECT_EQ(dir.value().config().at("hidden_act"), "silu");
  const TensorInfo* sub = dir.value().find("model.layers.1.self_attn.inner_attn_ln.weight");
  ASSERT_NE(sub, nullptr);
  EXPECT_EQ(sub->dtype, DType::kF16);
  const TensorInfo* ffn = dir.value().find("model.layers.0.mlp.ffn_layernorm.weight");
  ASSERT_NE(ffn, nullptr);
  EXPECT_EQ(ffn->shape, std::vector<int64_t>{32});
  const TensorInfo* v = dir.value().find("model.layers.0.self_attn.v_proj.weight");
  ASSERT_NE(v, nullptr);
  EXPECT_EQ(v->shape, (std::vector<int64_t>{16, 16}));  // multi-head: kv heads = heads
}

TEST(safetensorsFixtures, ShardedLlamaMatchesExpected) {
  REQUIRE_FIXTURES();
  check_against_expected("llama", /*bitnet_2b4t_names=*/false);
  const Result<SafetensorsDir> dir = SafetensorsDir::open((kFixtures / "llama").string());
  ASSERT_TRUE(dir.ok());
  ASSERT_EQ(dir.value().files().size(), 2u);
  const SafetensorsFile* file = nullptr;
  const TensorInfo* head = dir.value().find("lm_head.weight", &file);
  ASSERT_NE(head, nullptr);
  EXPECT_EQ(file, &dir.value().files()[1]);
  EXPECT_EQ(head->dtype, DType::kF32);
  EXPECT_EQ(head->shape, (std::vector<int64_t>{64, 16}));
  EXPECT_NE(dir.value().find("model.embed_tokens.weight", &file), nullptr);
  EXPECT_EQ(file, &dir.value().files()[0]);
  EXPECT_EQ(dir.value().find("model.layers.7.mlp.up_proj.weight", &file), nullptr);
  EXPECT_EQ(file, nullptr);
  EXPECT_EQ(dir.value().config().at("tie_word_embeddings"), false);
}

// ---- conversions ----

float reference_f16(uint16_t h) {
  const int sign = h >> 15, exponent = (h >> 10) & 31, mantissa = h & 1023;
  double v;
  if (exponent == 31) {
    v = mantissa == 0 ? INFINITY : NAN;
  } else if (exponent == 0) {
    v = std::ldexp(mantissa, -24);
  } else {
    v = std::ldexp(1024 + mantissa, exponent - 25);
  }
  return static_cast<float>(sign ? -v : v);
}

TEST(safetensorsConvert, F16ExactForAll65536Values) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  const auto r = SafetensorsFile::parse(build({{"h", "F16", {256, 256}, le_bytes(all)}}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto v = r.value().read_f32(r.value().tensors()[0]);
  ASSERT_TRUE(v.ok());
  for (uint32_t i = 0; i < all.size(); ++i) {
    const float want = reference_f16(static_cast<uint16_t>(i));
    const float got = v.value()[i];
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << i;
      // The payload survives (shifted into the fp32 mantissa), as does the sign.
      EXPECT_EQ(std::bit_cast<uint32_t>(got),
                ((i & 0x8000u) << 16) | 0x7f800000u | ((i & 0x3ffu) << 13));
    } else {
      ASSERT_EQ(std::bit_cast<uint32_t>(got), std::bit_cast<uint32_t>(want)) << "f16 bits " << i;
    }
  }
  // Spot values.
  EXPECT_EQ(v.value()[0x3c00], 1.0f);
  EXPECT_EQ(v.value()[0xc000], -2.0f);
  EXPECT_EQ(v.value()[0x7bff], 65504.0f);
  EXPECT_EQ(v.value()[0x0001], std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(v.value()[0x03ff], std::ldexp(1023.0f, -24));
  EXPECT_TRUE(std::signbit(v.value()[0x8000]));
}

TEST(safetensorsConvert, Bf16ExactForAll65536Values) {
  std::vector<uint16_t> all(65536);
  for (uint32_t i = 0; i < all.size(); ++i) all[i] = static_cast<uint16_t>(i);
  const auto r = SafetensorsFile::parse(build({{"b", "BF16", {65536}, le_bytes(all)}}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  const auto v = r.value().read_f32(r.value().tensors()[0]);
  ASSERT_TRUE(v.ok());
  for (uint32_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(std::bit_cast<uint32_t>(v.value()[i]), i << 16) << i;
  }
  EXPECT_EQ(v.value()[0x3f80], 1.0f);
  EXPECT_EQ(v.value()[0xbfc0], -1.5f);
}

TEST(safetensorsConvert, F32AndF64) {
  const std::vector<float> f = {1.5f, -0.0f, 3.0e38f, 1e-45f};
  const std::vector<double> d = {1.0 / 3.0, 1e300, -1e300, 1e-300, 0.1};
  const auto r = SafetensorsFile::parse(
      build({{"f", "F32", {2, 2}, le_bytes(f)}, {"d", "F64", {5}, le_bytes(d)}}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  const SafetensorsFile& file = r.value();
  const auto fv = file.read_f32(*file.find("f"));
  ASSERT_TRUE(fv.ok());
  EXPECT_TRUE(same_bits(fv.value(), f));
  const auto dv = file.read_f32(*file.find("d"));
  ASSERT_TRUE(dv.ok());
  EXPECT_EQ(dv.value()[0], static_cast<float>(1.0 / 3.0));
  EXPECT_EQ(dv.value()[1], INFINITY);
  EXPECT_EQ(dv.value()[2], -INFINITY);
  EXPECT_EQ(dv.value()[3], 0.0f);
  EXPECT_EQ(dv.value()[4], 0.1f);
}

TEST(safetensorsConvert, IntegerDtypesAreNotFloats) {
  const auto r = SafetensorsFile::parse(build({{"codes", "U8", {4}, {1, 2, 3, 4}},
                                               {"ids", "I64", {1}, le_bytes<int64_t>({7})},
                                               {"mask", "BOOL", {2}, {0, 1}}}));
  ASSERT_TRUE(r.ok()) << r.status().message();
  for (const TensorInfo& t : r.value().tensors()) {
    std::vector<float> out(static_cast<size_t>(t.elements()));
    const Status s = r.value().read_f32(t, out);
    ASSERT_FALSE(s.ok());
    EXPECT_CONTAINS(s.message(), "'" + t.name + "'");
    EXPECT_CONTAINS(s.message(), dtype_name(t.dtype));
    EXPECT_FALSE(r.value().read_f32(t).ok());
  }
  EXPECT_EQ(r.value().find("codes")->dtype, DType::kU8);
  const auto b = r.value().bytes(*r.value().find("codes"));
  EXPECT_EQ(std::vector<uint8_t>(b.begin(), b.end()), (std::vector<uint8_t>{1, 2, 3, 4}));
}

TEST(safetensorsConvert, OutputSizeMismatchIsAnError) {
  const auto r = SafetensorsFile::parse(build({{"w", "F32", {3}, le_bytes<float>({1, 2, 3})}}));
  ASSERT_TRUE(r.ok());
  std::vector<float> out(2);
  const Status s = r.value().read_f32(r.value().tensors()[0], out);
  EXPECT_CONTAINS(s.message(), "output has 2 floats, the tensor has 3");
}

// ---- well-formed edge cases ----

TEST(safetensorsFile, AcceptsEdgeCases) {
  // Empty header object, no data.
  ASSERT_TRUE(SafetensorsFile::parse(raw_file("{}")).ok());
  // Trailing space padding (writers pad to 8 bytes), metadata, a scalar, zero-size tensors at
  // the same offset, dims of 0, names in any order.
  const std::string header =
      R"({"__metadata__":{"format":"pt","note":"\u00e9"},"z":{"dtype":"F32","shape":[],)"
      R"("data_offsets":[0,4]},"empty":{"dtype":"BF16","shape":[0,5],"data_offsets":[4,4]},)"
      R"("empty2":{"dtype":"I64","shape":[3,0],"data_offsets":[4,4]},)"
      R"("a":{"dtype":"U8","shape":[2],"data_offsets":[4,6]}}     )";
  const auto r = SafetensorsFile::parse(raw_file(header, 6));
  ASSERT_TRUE(r.ok()) << r.status().message();
  const SafetensorsFile& f = r.value();
  ASSERT_EQ(f.tensors().size(), 4u);
  EXPECT_EQ(f.tensors()[0].name, "a");  // sorted by name
  EXPECT_EQ(f.tensors()[3].name, "z");
  EXPECT_EQ(f.find("z")->elements(), 1);
  EXPECT_EQ(f.find("empty")->elements(), 0);
  EXPECT_EQ(f.metadata().at("note"), "\xc3\xa9");
  EXPECT_EQ(f.find("missing"), nullptr);
  EXPECT_TRUE(f.read_f32(*f.find("empty")).value().empty());
  // A zero dim makes any other dims harmless.
  EXPECT_TRUE(
      SafetensorsFile::parse(raw_file(R"({"h":{"dtype":"F64","shape":)"
                                      R"([4294967296,4294967296,0],"data_offsets":[0,0]}})"))
          .ok());
  EXPECT_EQ(f.bytes(*f.find("empty2")).size(), 0u);
  EXPECT_EQ(f.source(), "safetensors <memory>");
}

TEST(safetensorsFile, CopiesShareBytesAndReadConcurrently) {
  std::vector<float> values(4096);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i);
  SafetensorsFile copy = [&] {
    auto r = SafetensorsFile::parse(build({{"w", "F32", {64, 64}, le_bytes(values)}}));
    EXPECT_TRUE(r.ok());
    return r.value();
  }();
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const auto v = copy.read_f32(copy.tensors()[0]);
      ok[t] = v.ok() && same_bits(v.value(), values);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, std::vector<int>(4, 1));
}

// ---- validation errors: each names the bad value ----

TEST(safetensorsErrors, HeaderLength) {
  EXPECT_CONTAINS(parse_error({1, 2, 3, 4, 5}), "file is 5 bytes");
  std::vector<uint8_t> one = raw_file("{");
  EXPECT_CONTAINS(parse_error(one), "header length 1 is too small");
  std::vector<uint8_t> zero(8, 0);
  EXPECT_CONTAINS(parse_error(zero), "header length 0 is too small");
  std::vector<uint8_t> big = raw_file("{}");
  const uint64_t huge = kMaxHeaderBytes + 1;
  std::memcpy(big.data(), &huge, 8);
  EXPECT_CONTAINS(parse_error(big), "header length 100000001 exceeds the limit");
  std::vector<uint8_t> past = raw_file("{}", 8);
  const uint64_t fifty = 50;
  std::memcpy(past.data(), &fifty, 8);
  EXPECT_CONTAINS(parse_error(past), "header length 50 exceeds the 10 bytes");
  std::vector<uint8_t> max = raw_file("{}");
  const uint64_t all_ones = ~uint64_t{0};
  std::memcpy(max.data(), &all_ones, 8);
  EXPECT_CONTAINS(parse_error(max), "header length 18446744073709551615");
}

TEST(safetensorsErrors, Json) {
  EXPECT_CONTAINS(header_error(R"({"a":)"), "not valid JSON at header byte");
  EXPECT_CONTAINS(header_error(R"({"__metadata__":{}} x)"), "not valid JSON");
  EXPECT_CONTAINS(header_error("{\"\xff\":1}"), "not valid JSON");
  EXPECT_CONTAINS(header_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}{})", 4),
                  "not valid JSON");
  EXPECT_CONTAINS(header_error("[1,2]"), "header is an array, not a JSON object");
  EXPECT_CONTAINS(header_error(R"("x")"), "header is a string");
  EXPECT_CONTAINS(header_error(R"({"__metadata__":{} /*c*/})"), "not valid JSON");
}

TEST(safetensorsErrors, Entries) {
  EXPECT_CONTAINS(header_error(R"({"w":5})"), "tensor 'w' is a number, not an object");
  EXPECT_CONTAINS(header_error(R"({"w":[1]})"), "tensor 'w' is an array, not an object");
  EXPECT_CONTAINS(header_error(R"({"w":null})"), "tensor 'w' is null");
  EXPECT_CONTAINS(header_error(R"({"__metadata__":[]})"), "__metadata__ is an array");
  EXPECT_CONTAINS(header_error(R"({"__metadata__":{"k":1}})"),
                  "__metadata__ value for key 'k' is a number, not a string");
  EXPECT_CONTAINS(header_error(R"({"__metadata__":{"k":{"x":"y"}}})"),
                  "__metadata__ value for key 'k' is an object");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"F32","shape":[1]}})"),
                  "tensor 'w': no data_offsets field");
  EXPECT_CONTAINS(header_error(R"({"w":{"shape":[1],"data_offsets":[0,4]}})", 4),
                  "tensor 'w': no dtype field");
  EXPECT_CONTAINS(
      header_error(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 4),
      "tensor 'w': unknown field 'x'");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"F32","dtype":"F16"}})"),
                  "tensor 'w': field 'dtype' appears twice");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":3}})"),
                  "tensor 'w': dtype is a number, expected a string");
  EXPECT_CONTAINS(header_error(R"({"w":{"shape":{}}})"),
                  "tensor 'w': shape is an object, expected an array");
}

TEST(safetensorsErrors, Dtype) {
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"F8_E4M3","shape":[1],"data_offsets":[0,1]}})", 1),
                  "tensor 'w': unsupported dtype 'F8_E4M3'");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"f32","shape":[1],"data_offsets":[0,4]}})", 4),
                  "unsupported dtype 'f32'");
}

TEST(safetensorsErrors, Shape) {
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"F32","shape":[2,-3],"data_offsets":[0,4]}})", 4),
                  "tensor 'w': shape dim -3 is negative");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,4]}})", 4),
                  "tensor 'w': shape dim '2.5' is not an integer");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"F32","shape":[1e2],"data_offsets":[0,4]}})", 4),
                  "shape dim '1e2' is not an integer");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,4]}})", 4),
                  "tensor 'w': shape dim is a string, not an integer");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"F32","shape":[[2]],"data_offsets":[0,4]}})", 4),
                  "shape dim is an array");
  EXPECT_CONTAINS(
      header_error(R"({"w":{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1],"data_offsets":[0,4]}})", 4),
      "tensor 'w': shape has more than 8 dims");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"U8","shape":[9223372036854775808]}})"),
                  "shape dim 9223372036854775808 does not fit in int64");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"U8","shape":[99999999999999999999]}})"),
                  "shape dim '99999999999999999999' is not an integer");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"U8","shape":[4294967296,4294967296],)"
                               R"("data_offsets":[0,4]}})",
                               4),
                  "tensor 'w': shape [4294967296, 4294967296] has more elements than fit");
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"F32","shape":[4611686018427387904],)"
                               R"("data_offsets":[0,4]}})",
                               4),
                  "F32 [4611686018427387904] needs more than 2^64");
}

TEST(safetensorsErrors, Offsets) {
  const auto one = [](const std::string& offsets, size_t data, const std::string& shape = "[2]") {
    return header_error(
        R"({"w":{"dtype":"F16","shape":)" + shape + R"(,"data_offsets":)" + offsets + "}}", data);
  };
  EXPECT_CONTAINS(one("[4,0]", 4), "tensor 'w': data_offsets [4, 0] are decreasing");
  EXPECT_CONTAINS(one("[0,4]", 3), "data_offsets [0, 4] extend past the 3-byte data");
  EXPECT_CONTAINS(one("[0,6]", 6), "data_offsets [0, 6] hold 6 bytes, but F16 [2] needs 4");
  EXPECT_CONTAINS(one("[0]", 4), "tensor 'w': data_offsets has 1 entries, expected 2");
  EXPECT_CONTAINS(one("[]", 4), "data_offsets has 0 entries");
  EXPECT_CONTAINS(one("[0,4,8]", 8), "data_offsets has more than 2 entries");
  EXPECT_CONTAINS(one("[-1,3]", 4), "data_offsets entry -1 is negative");
  EXPECT_CONTAINS(one("[0,4.0]", 4), "data_offsets entry '4.0' is not an integer");
  EXPECT_CONTAINS(one("[0,\"4\"]", 4), "data_offsets entry is a string");
  EXPECT_CONTAINS(one("{}", 4), "data_offsets is an object, expected an array");
  EXPECT_CONTAINS(one("[0,18446744073709551615]", 4), "extend past the 4-byte");
}

TEST(safetensorsErrors, DuplicateNames) {
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                               R"("w":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                               2),
                  "tensor 'w' appears twice in the header");
  EXPECT_CONTAINS(header_error(R"({"__metadata__":{},"__metadata__":{}})"),
                  "__metadata__ appears twice");
  EXPECT_CONTAINS(header_error(R"({"__metadata__":{"a":"1","a":"2"}})"),
                  "__metadata__ key 'a' appears twice");
  // Escapes spell the same key two ways: still a duplicate.
  EXPECT_CONTAINS(header_error(R"({"w":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},)"
                               R"("\u0077":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}})",
                               2),
                  "tensor 'w' appears twice");
}

TEST(safetensorsErrors, TensorsMustTileTheDataSection) {
  const std::string a = R"("a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  EXPECT_CONTAINS(
      header_error("{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
      "tensors 'a' [0, 8) and 'b' [4, 12) overlap");
  // Aliasing: two names for the same bytes.
  EXPECT_CONTAINS(
      header_error("{" + a + R"(,"b":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8),
      "overlap");
  EXPECT_CONTAINS(
      header_error("{" + a + R"(,"b":{"dtype":"U8","shape":[4],"data_offsets":[12,16]}})", 16),
      "data bytes [8, 12) belong to no tensor (a hole before 'b')");
  EXPECT_CONTAINS(header_error(R"({"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", 8),
                  "data bytes [0, 4) belong to no tensor");
  EXPECT_CONTAINS(header_error("{" + a + "}", 11),
                  "data bytes [8, 11) belong to no tensor (after 'a')");
  EXPECT_CONTAINS(header_error("{}", 3),
                  "data bytes [0, 3) belong to no tensor (the header lists none)");
  // A zero-size tensor inside another tensor's bytes overlaps it.
  EXPECT_CONTAINS(
      header_error("{" + a + R"(,"e":{"dtype":"U8","shape":[0],"data_offsets":[4,4]}})", 8),
      "overlap");
}

TEST(safetensorsErrors, NamesAreQuotedSafely) {
  const std::string msg = header_error("{\"bad\\nname\\u0001\":7}");
  EXPECT_CONTAINS(msg, "tensor 'bad\\x0aname\\x01' is a number");
  const std::string long_name(500, 'x');
  EXPECT_LT(header_error("{\"" + long_name + "\":7}").size(), 200u);
}

// ---- files and directories on disk ----

class TempDir {
 public:
  TempDir() {
    static int counter = 0;
    path_ = fs::temp_directory_path() /
            ("tern_safetensors_test_" + std::to_string(getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::binary) << text;
  }
  void write(const std::string& name, const std::vector<uint8_t>& bytes) const {
    std::ofstream(path_ / name, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()),
               static_cast<std::streamsize>(bytes.size()));
  }

 private:
  fs::path path_;
};

TEST(safetensorsFile, OpenErrorsNameThePath) {
  TempDir tmp;
  const std::string missing = (tmp.path() / "missing.safetensors").string();
  EXPECT_CONTAINS(SafetensorsFile::open(missing).status().message(), "missing.safetensors");
  EXPECT_CONTAINS(SafetensorsFile::open(tmp.path().string()).status().message(),
                  "not a regular file");
  tmp.write("short.safetensors", std::string("abc"));
  EXPECT_CONTAINS(
      SafetensorsFile::open((tmp.path() / "short.safetensors").string()).status().message(),
      "file is 3 bytes");
  tmp.write("empty.safetensors", std::string());
  EXPECT_CONTAINS(
      SafetensorsFile::open((tmp.path() / "empty.safetensors").string()).status().message(),
      "file is 0 bytes");
  tmp.write("bad.safetensors", raw_file(R"({"w":1})"));
  const std::string msg =
      SafetensorsFile::open((tmp.path() / "bad.safetensors").string()).status().message();
  EXPECT_CONTAINS(msg, "bad.safetensors");
  EXPECT_CONTAINS(msg, "tensor 'w' is a number");
  tmp.write("ok.safetensors", build({{"w", "F32", {1}, le_bytes<float>({2.5f})}}));
  const auto ok = SafetensorsFile::open((tmp.path() / "ok.safetensors").string());
  ASSERT_TRUE(ok.ok()) << ok.status().message();
  EXPECT_EQ(ok.value().read_f32(ok.value().tensors()[0]).value(), std::vector<float>{2.5f});
}

std::string dir_error(const TempDir& tmp) {
  const Result<SafetensorsDir> r = SafetensorsDir::open(tmp.path().string());
  EXPECT_FALSE(r.ok());
  return r.ok() ? std::string() : r.status().message();
}

TEST(safetensorsDir, Errors) {
  TempDir tmp;
  EXPECT_CONTAINS(SafetensorsDir::open((tmp.path() / "nope").string()).status().message(),
                  "not a directory");
  EXPECT_CONTAINS(dir_error(tmp), "config.json: cannot open");
  tmp.write("config.json", std::string("{\"a\": [1, 2,}"));
  EXPECT_CONTAINS(dir_error(tmp), "config.json: not valid JSON at byte");
  tmp.write("config.json", std::string("[1]"));
  EXPECT_CONTAINS(dir_error(tmp), "config.json: is a JSON array, not an object");
  tmp.write("config.json", std::string(R"({"hidden_size": 8})"));
  EXPECT_CONTAINS(dir_error(tmp), "neither model.safetensors nor");

  const auto a = build({{"a", "F32", {1}, le_bytes<float>({1})}});
  const auto b = build({{"b", "F32", {1}, le_bytes<float>({2})}});
  tmp.write("s1.safetensors", a);
  tmp.write("s2.safetensors", b);
  const auto index = [&](const std::string& weight_map) {
    tmp.write("model.safetensors.index.json",
              R"({"metadata": {"total_size": 8}, "weight_map": )" + weight_map + "}");
  };
  index("[]");
  EXPECT_CONTAINS(dir_error(tmp), "no \"weight_map\" object");
  index("{}");
  EXPECT_CONTAINS(dir_error(tmp), "weight_map is empty");
  index(R"({"a": 3})");
  EXPECT_CONTAINS(dir_error(tmp), "weight_map entry for 'a' is a number");
  index(R"({"a": "../s1.safetensors"})");
  EXPECT_CONTAINS(dir_error(tmp), "names '../s1.safetensors', not a file in the checkpoint");
  index(R"({"a": ".."})");
  EXPECT_CONTAINS(dir_error(tmp), "names '..'");
  index(R"({"a": "s1.safetensors", "b": "s3.safetensors"})");
  EXPECT_CONTAINS(dir_error(tmp), "s3.safetensors");
  index(R"({"a": "s1.safetensors", "b": "s1.safetensors"})");
  EXPECT_CONTAINS(dir_error(tmp), "lists tensor 'b' in 's1.safetensors', which has no such");
  index(R"({"a": "s1.safetensors"})");
  tmp.write("s1.safetensors", build({{"a", "F32", {1}, le_bytes<float>({1})},
                                     {"extra", "F32", {1}, le_bytes<float>({1})}}));
  EXPECT_CONTAINS(dir_error(tmp),
                  "shard 's1.safetensors' holds tensor 'extra', which the "
                  "index does not list");
  tmp.write("s2.safetensors", build({{"a", "F32", {1}, le_bytes<float>({9})},
                                     {"b", "F32", {1}, le_bytes<float>({2})}}));
  tmp.write("s1.safetensors", a);
  index(R"({"a": "s1.safetensors", "b": "s2.safetensors"})");
  EXPECT_CONTAINS(dir_error(tmp),
                  "tensor 'a' is in both 's2.safetensors' and "
                  "'s1.safetensors'");
  tmp.write("s2.safetensors", raw_file("{bad"));
  EXPECT_CONTAINS(dir_error(tmp), "s2.safetensors");

  // A good index wins over a stray model.safetensors.
  tmp.write("s2.safetensors", b);
  tmp.write("model.safetensors", build({{"zzz", "U8", {1}, {1}}}));
  const auto r = SafetensorsDir::open(tmp.path().string());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value().tensor_names(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(r.value().config().at("hidden_size"), 8);
}

TEST(safetensorsDir, SingleFile) {
  TempDir tmp;
  tmp.write("config.json", std::string(R"({"model_type": "llama"})"));
  tmp.write("model.safetensors", build({{"y", "BF16", {2}, le_bytes<uint16_t>({0x3f80, 0x4000})},
                                        {"x", "U8", {3}, {1, 2, 3}}}));
  const auto r = SafetensorsDir::open(tmp.path().string());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value().tensor_names(), (std::vector<std::string>{"x", "y"}));
  const SafetensorsFile* f = nullptr;
  const TensorInfo* y = r.value().find("y", &f);
  ASSERT_NE(y, nullptr);
  EXPECT_EQ(f->read_f32(*y).value(), (std::vector<float>{1.0f, 2.0f}));
  EXPECT_NE(r.value().find("x"), nullptr);
  EXPECT_EQ(r.value().path(), tmp.path().string());
}

}  // namespace
}  // namespace tern::safetensors
