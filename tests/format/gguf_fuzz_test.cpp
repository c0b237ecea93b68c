// Deterministic mutation fuzzing of the GGUF reader: every variant must either be rejected with
// a Status or load completely (every tensor decodes, the file re-serializes and parses again).
// A crash, hang, sanitizer report or CHECK failure here is a reader bug.
#include "format/gguf.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

namespace tern::gguf {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> quantized_ramp(GgmlType type, int64_t n) {
  std::vector<float> x(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>((i * 29) % 23 - 11) * 0.125f;
  std::vector<uint8_t> out(row_bytes(type, n).value());
  quantize_row(type, x.data(), n, out.data());
  return out;
}

// Small files that between them use every value type and every tensor type.
std::vector<std::vector<uint8_t>> tern_seeds() {
  std::vector<std::vector<uint8_t>> seeds;

  GgufWriter all;
  all.set_string("general.architecture", "bitnet");
  all.set_value("u8", Value::u8(1));
  all.set_value("i8", Value::i8(-1));
  all.set_value("u16", Value::u16(2));
  all.set_value("i16", Value::i16(-2));
  all.set_u32("u32", 3);
  all.set_i32("i32", -3);
  all.set_f32("f32", 0.5f);
  all.set_bool("bool", true);
  all.set_u64("u64", 4);
  all.set_value("i64", Value::i64(-4));
  all.set_value("f64", Value::f64(0.25));
  all.set_string_array("tokens", {"<s>", "</s>", "a", "b"});
  all.set_f32_array("scores", {0.0f, -1.0f, -2.0f, -3.0f});
  all.set_i32_array("types", {3, 3, 1, 1});
  all.set_value("bools", Value::array(std::vector<bool>{true, false}));
  all.set_value("u64s", Value::array(std::vector<uint64_t>{1, 2}));
  all.set_value("nested", Value::array_of_arrays(
                              {Value::array(std::vector<uint8_t>{1}), Value::string_array({"z"})}));
  all.add_tensor("f32", GgmlType::kF32, {4, 2}, quantized_ramp(GgmlType::kF32, 8));
  all.add_tensor("f16", GgmlType::kF16, {3}, quantized_ramp(GgmlType::kF16, 3));
  all.add_tensor("bf16", GgmlType::kBF16, {2, 1, 2}, quantized_ramp(GgmlType::kBF16, 4));
  all.add_tensor("q8_0", GgmlType::kQ8_0, {32, 2}, quantized_ramp(GgmlType::kQ8_0, 64));
  all.add_tensor("tq1_0", GgmlType::kTQ1_0, {256}, quantized_ramp(GgmlType::kTQ1_0, 256));
  all.add_tensor("tq2_0", GgmlType::kTQ2_0, {256, 1, 1, 1}, quantized_ramp(GgmlType::kTQ2_0, 256));
  seeds.push_back(all.serialize());

  GgufWriter aligned;
  aligned.set_u32(kAlignmentKey, 64);
  aligned.set_value("deep", Value::array_of_arrays({Value::array_of_arrays(
                                {Value::array_of_arrays({Value::empty_array(ValueType::kI32)})})}));
  aligned.add_tensor("blk.0.attn_q.weight", GgmlType::kTQ2_0, {256, 2},
                     quantized_ramp(GgmlType::kTQ2_0, 512));
  aligned.add_tensor("blk.0.attn_norm.weight", GgmlType::kF32, {5},
                     quantized_ramp(GgmlType::kF32, 5));
  seeds.push_back(aligned.serialize());

  GgufWriter metadata_only;
  metadata_only.set_string("tokenizer.ggml.model", "gpt2");
  metadata_only.set_string_array("tokenizer.ggml.merges", {"a b", "ab c"});
  seeds.push_back(metadata_only.serialize());
  return seeds;
}

// Everything a caller might do with a loaded file; none of it may fail or crash.
void exercise(const GgufFile& f) {
  for (const auto& [key, value] : f.metadata()) {
    (void)value.describe();
    (void)value.as_int();
    (void)value.as_float();
    (void)value.as_bool();
    (void)value.as_string();
    (void)value.as_string_array();
    (void)value.as_float_array();
    (void)value.as_int_array();
    ASSERT_EQ(f.find(key), &value);
  }
  for (const TensorInfo& t : f.tensors()) {
    ASSERT_EQ(f.tensor_bytes(t).size(), t.bytes);
    std::vector<float> out(static_cast<size_t>(t.elements()));
    ASSERT_TRUE(f.read_tensor_f32(t, out).ok()) << t.name;
  }
  // Anything tern accepts, tern can write back, and that file parses to the same content.
  const Result<GgufFile> again = GgufFile::parse(GgufWriter::from_file(f).serialize());
  ASSERT_TRUE(again.ok()) << again.status().message();
  ASSERT_EQ(again.value().metadata().size(), f.metadata().size());
  for (size_t i = 0; i < f.metadata().size(); ++i) {
    ASSERT_TRUE(again.value().metadata()[i].second == f.metadata()[i].second);
  }
  ASSERT_EQ(again.value().tensors().size(), f.tensors().size());
  for (size_t i = 0; i < f.tensors().size(); ++i) {
    const std::span<const uint8_t> a = f.tensor_bytes(f.tensors()[i]);
    const std::span<const uint8_t> b = again.value().tensor_bytes(again.value().tensors()[i]);
    ASSERT_TRUE(std::equal(a.begin(), a.end(), b.begin(), b.end()));
  }
}

struct Tally {
  int variants = 0;
  int loaded = 0;
  int rejected = 0;
};

void check_variant(std::vector<uint8_t> bytes, Tally* tally) {
  ++tally->variants;
  const Result<GgufFile> f = GgufFile::parse(std::move(bytes));
  if (!f.ok()) {
    ++tally->rejected;
    ASSERT_EQ(f.status().message().rfind("gguf <memory>: ", 0), 0u) << f.status().message();
    return;
  }
  ++tally->loaded;
  exercise(f.value());
}

// Where the header ends (tensor data is less interesting to mutate); the whole file if unknown.
size_t header_end(const std::vector<uint8_t>& seed) {
  const Result<GgufFile> f = GgufFile::parse(seed);
  if (!f.ok() || f.value().tensors().empty()) return seed.size();
  return std::max<size_t>(1, static_cast<size_t>(f.value().data_offset()));
}

class Mutator {
 public:
  explicit Mutator(uint64_t seed) : rng_(seed) {}

  std::vector<uint8_t> mutate(const std::vector<uint8_t>& seed, size_t hot_end) {
    std::vector<uint8_t> out = seed;
    const int steps = 1 + static_cast<int>(below(4));
    for (int s = 0; s < steps; ++s) mutate_once(&out, hot_end);
    return out;
  }

 private:
  uint64_t below(uint64_t n) { return n == 0 ? 0 : rng_() % n; }

  // Mostly inside the header, sometimes anywhere.
  size_t position(const std::vector<uint8_t>& v, size_t hot_end) {
    if (v.empty()) return 0;
    const size_t limit = below(5) == 0 ? v.size() : std::min(hot_end, v.size());
    return static_cast<size_t>(below(limit));
  }

  void mutate_once(std::vector<uint8_t>* v, size_t hot_end) {
    static constexpr uint8_t kBytes[] = {0x00, 0xff, 0x7f, 0x80, 0x01, 0x02, 0x09, 0x0c, 0x20};
    static constexpr uint64_t kWords[] = {0,
                                          1,
                                          2,
                                          4,
                                          13,
                                          31,
                                          33,
                                          0x7f,
                                          0xff,
                                          0xffff,
                                          0x7fffffff,
                                          0x80000000,
                                          0xffffffff,
                                          uint64_t{1} << 32,
                                          uint64_t{1} << 40,
                                          uint64_t{1} << 62,
                                          uint64_t{1} << 63,
                                          ~uint64_t{0},
                                          ~uint64_t{0} - 31};
    const size_t at = position(*v, hot_end);
    switch (below(7)) {
      case 0:  // bit flip
        if (!v->empty()) (*v)[at] ^= static_cast<uint8_t>(1u << below(8));
        break;
      case 1:  // interesting byte
        if (!v->empty()) (*v)[at] = kBytes[below(std::size(kBytes))];
        break;
      case 2:    // interesting u32 or u64 (counts, lengths, dims, offsets, types)
      case 3: {  // twice as likely: this is where parsers break
        const uint64_t word =
            below(8) == 0 ? v->size() + below(64) : kWords[below(std::size(kWords))];
        const size_t width = below(2) == 0 ? 4 : 8;
        for (size_t i = 0; i < width && at + i < v->size(); ++i) {
          (*v)[at + i] = static_cast<uint8_t>(word >> (8 * i));
        }
        break;
      }
      case 4:  // truncate
        v->resize(at);
        break;
      case 5: {  // insert bytes
        const size_t n = 1 + below(16);
        std::vector<uint8_t> extra(n);
        for (uint8_t& b : extra) b = static_cast<uint8_t>(below(2) == 0 ? 0 : rng_());
        v->insert(v->begin() + static_cast<std::ptrdiff_t>(std::min(at, v->size())), extra.begin(),
                  extra.end());
        break;
      }
      default: {  // delete bytes
        const size_t n = std::min<size_t>(1 + below(16), v->size() - std::min(at, v->size()));
        v->erase(v->begin() + static_cast<std::ptrdiff_t>(at),
                 v->begin() + static_cast<std::ptrdiff_t>(at + n));
        break;
      }
    }
  }

  std::mt19937_64 rng_;
};

TEST(ggufFuzzTest, SeedsAreValid) {
  for (const std::vector<uint8_t>& seed : tern_seeds()) {
    const Result<GgufFile> f = GgufFile::parse(seed);
    ASSERT_TRUE(f.ok()) << f.status().message();
    exercise(f.value());
  }
}

TEST(ggufFuzzTest, TruncationAtEveryLength) {
  Tally tally;
  for (const std::vector<uint8_t>& seed : tern_seeds()) {
    for (size_t n = 0; n < seed.size(); ++n) {
      check_variant(
          std::vector<uint8_t>(seed.begin(), seed.begin() + static_cast<std::ptrdiff_t>(n)),
          &tally);
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_GT(tally.variants, 1500);
  EXPECT_GT(tally.rejected, 0);
  std::printf("truncations: %d variants, %d loaded, %d rejected\n", tally.variants, tally.loaded,
              tally.rejected);
}

TEST(ggufFuzzTest, RandomMutationsOfTernFiles) {
  Tally tally;
  Mutator mutator(20240611);
  for (const std::vector<uint8_t>& seed : tern_seeds()) {
    const size_t hot = header_end(seed);
    for (int i = 0; i < 5000; ++i) {
      check_variant(mutator.mutate(seed, hot), &tally);
      if (HasFatalFailure()) return;
    }
  }
  EXPECT_EQ(tally.variants, 15000);
  EXPECT_GT(tally.loaded, 100);  // mutations must not all be rejected at the magic
  EXPECT_GT(tally.rejected, 1000);
  std::printf("tern files: %d variants, %d loaded, %d rejected\n", tally.variants, tally.loaded,
              tally.rejected);
}

// The real files are large (≈1–2 MB), so fewer variants each; mutations still aim at the header.
TEST(ggufFuzzTest, RandomMutationsOfSharedFiles) {
#ifdef TERN_SOURCE_DIR
  const fs::path data = fs::path(TERN_SOURCE_DIR) / ".." / "shared" / "data";
#else
  const fs::path data;
#endif
  const std::pair<const char*, int> files[] = {
      {"tiny-models/stories260K.gguf", 400},
      {"tiny-models/llama-2-tiny-random.gguf", 24},
      {"llama.cpp-vocab/ggml-vocab-gpt-2.gguf", 16},
  };
  Tally tally;
  Mutator mutator(777);
  int found = 0;
  for (const auto& [relative, count] : files) {
    const fs::path path = data / relative;
    if (data.empty() || !fs::exists(path)) continue;
    ++found;
    const Result<GgufFile> original = GgufFile::open(path.string());
    ASSERT_TRUE(original.ok()) << original.status().message();
    const std::span<const uint8_t> bytes = original.value().bytes();
    const std::vector<uint8_t> seed(bytes.begin(), bytes.end());
    const size_t hot = header_end(seed);
    for (int i = 0; i < count; ++i) {
      check_variant(mutator.mutate(seed, hot), &tally);
      if (HasFatalFailure()) return;
    }
  }
  if (found == 0) GTEST_SKIP() << "shared tiny models not found under " << data.string();
  EXPECT_GT(tally.loaded, 0);
  EXPECT_GT(tally.rejected, 0);
  std::printf("shared files: %d variants, %d loaded, %d rejected\n", tally.variants, tally.loaded,
              tally.rejected);
}

}  // namespace
}  // namespace tern::gguf
