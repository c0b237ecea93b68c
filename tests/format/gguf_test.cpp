#include "format/gguf.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace tern::gguf {
namespace {

namespace fs = std::filesystem;

// ---- helpers ----

// Little-endian byte builder for hand-made (mostly invalid) files.
struct Bytes {
  std::vector<uint8_t> b;
  Bytes& u8(uint8_t v) {
    b.push_back(v);
    return *this;
  }
  Bytes& u32(uint32_t v) { return raw(&v, 4); }
  Bytes& u64(uint64_t v) { return raw(&v, 8); }
  Bytes& i64(int64_t v) { return raw(&v, 8); }
  Bytes& str(std::string_view s) {
    u64(s.size());
    return raw(s.data(), s.size());
  }
  Bytes& raw(const void* p, size_t n) {
    const auto* c = static_cast<const uint8_t*>(p);
    b.insert(b.end(), c, c + n);
    return *this;
  }
  Bytes& pad_to(size_t alignment) {
    while (b.size() % alignment != 0) b.push_back(0);
    return *this;
  }
  Bytes& zeros(size_t n) {
    b.insert(b.end(), n, 0);
    return *this;
  }
};

Bytes header(uint64_t n_tensors, uint64_t n_kv, uint32_t version = 3) {
  Bytes out;
  out.raw("GGUF", 4).u32(version).u64(n_tensors).u64(n_kv);
  return out;
}

struct RawTensor {
  std::string name;
  std::vector<int64_t> dims;
  uint32_t type;
  uint64_t offset;
};

// A file with the given tensor infos (no metadata), padded to 32, then `data_bytes` zeros.
std::vector<uint8_t> tensor_file(const std::vector<RawTensor>& tensors, size_t data_bytes) {
  Bytes out = header(tensors.size(), 0);
  for (const RawTensor& t : tensors) {
    out.str(t.name).u32(static_cast<uint32_t>(t.dims.size()));
    for (const int64_t d : t.dims) out.i64(d);
    out.u32(t.type).u64(t.offset);
  }
  out.pad_to(32).zeros(data_bytes);
  return out.b;
}

// A file with one metadata entry whose type tag and payload are given raw.
std::vector<uint8_t> kv_file(std::string_view key, uint32_t type, const Bytes& payload) {
  Bytes out = header(0, 1);
  out.str(key).u32(type).raw(payload.b.data(), payload.b.size());
  return out.b;
}

std::string parse_error(std::vector<uint8_t> bytes) {
  const Result<GgufFile> f = GgufFile::parse(std::move(bytes));
  if (f.ok()) return "(parsed fine)";
  return f.status().message();
}

std::vector<float> ramp(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[i] = scale * static_cast<float>((i * 37) % 101 - 50);
  return v;
}

std::vector<uint8_t> quantized(GgmlType type, const std::vector<float>& x) {
  std::vector<uint8_t> out(row_bytes(type, static_cast<int64_t>(x.size())).value());
  quantize_row(type, x.data(), static_cast<int64_t>(x.size()), out.data());
  return out;
}

// Metadata of every value type, including nested and empty arrays.
std::vector<std::pair<std::string, Value>> sample_values() {
  return {
      {"general.architecture", Value::string("bitnet")},
      {"t.u8", Value::u8(200)},
      {"t.i8", Value::i8(-100)},
      {"t.u16", Value::u16(60000)},
      {"t.i16", Value::i16(-30000)},
      {"t.u32", Value::u32(4000000000u)},
      {"t.i32", Value::i32(-2000000000)},
      {"t.f32", Value::f32(0.1f)},
      {"t.bool", Value::boolean(true)},
      {"t.false", Value::boolean(false)},
      {"t.string", Value::string(std::string("with\0nul and ünïcode", 20))},
      {"t.empty_string", Value::string("")},
      {"t.u64", Value::u64(std::numeric_limits<uint64_t>::max())},
      {"t.i64", Value::i64(std::numeric_limits<int64_t>::min())},
      {"t.f64", Value::f64(-1e300)},
      {"t.nan", Value::f32(std::bit_cast<float>(0x7fc01234u))},
      {"a.u8", Value::array(std::vector<uint8_t>{0, 1, 255})},
      {"a.i8", Value::array(std::vector<int8_t>{-128, 127})},
      {"a.u16", Value::array(std::vector<uint16_t>{1, 65535})},
      {"a.i16", Value::array(std::vector<int16_t>{-1, 2})},
      {"a.u32", Value::array(std::vector<uint32_t>{7})},
      {"a.i32", Value::array(std::vector<int32_t>{-7, 8, 9})},
      {"a.u64", Value::array(std::vector<uint64_t>{1, 2})},
      {"a.i64", Value::array(std::vector<int64_t>{-3})},
      {"a.f32", Value::array(std::vector<float>{1.5f, -2.25f})},
      {"a.f64", Value::array(std::vector<double>{0.125, 1e-300})},
      {"a.bool", Value::array(std::vector<bool>{true, false, true})},
      {"a.string", Value::string_array({"a", "", "ccc"})},
      {"a.empty_f32", Value::empty_array(ValueType::kF32)},
      {"a.empty_string", Value::empty_array(ValueType::kString)},
      {"a.nested", Value::array_of_arrays(
                       {Value::array(std::vector<int32_t>{1, 2}), Value::string_array({"x", "y"}),
                        Value::array_of_arrays({Value::array(std::vector<float>{3.0f}),
                                                Value::empty_array(ValueType::kU8)}),
                        Value::empty_array(ValueType::kArray)})},
  };
}

struct SampleTensor {
  std::string name;
  GgmlType type;
  std::vector<int64_t> dims;
  std::vector<float> values;  // what read_tensor_f32 must return
  std::vector<uint8_t> data;
};

// One tensor of every type, with shapes of 1 to 4 dims.
std::vector<SampleTensor> sample_tensors() {
  std::vector<SampleTensor> out;
  const auto add = [&](std::string name, GgmlType type, std::vector<int64_t> dims, float scale) {
    int64_t n = 1;
    for (const int64_t d : dims) n *= d;
    SampleTensor t{std::move(name), type, std::move(dims), {}, {}};
    const std::vector<float> x = ramp(n, scale);
    t.data = quantized(type, x);
    t.values.resize(static_cast<size_t>(n));
    dequantize_row(type, t.data.data(), n, t.values.data());
    out.push_back(std::move(t));
  };
  add("f32", GgmlType::kF32, {8, 3}, 0.5f);
  add("f16", GgmlType::kF16, {5, 2, 3}, 0.01f);
  add("bf16", GgmlType::kBF16, {7}, 3.0f);
  add("q8_0", GgmlType::kQ8_0, {64, 2}, 0.2f);
  add("tq1_0", GgmlType::kTQ1_0, {256, 3}, 1.0f);
  add("blk.0.ffn_down.weight", GgmlType::kTQ2_0, {256, 2, 1, 2}, 1.0f);

  // Exact ternary weights with one scale, packed directly.
  std::mt19937 rng(5);
  std::vector<int8_t> codes(512);
  for (int8_t& c : codes) c = static_cast<int8_t>(static_cast<int>(rng() % 3) - 1);
  SampleTensor t{"ternary", GgmlType::kTQ2_0, {512}, std::vector<float>(512), {}};
  t.data.resize(2 * 66);
  pack_tq2_0(codes.data(), 512, 0.75f, t.data.data());
  for (size_t i = 0; i < codes.size(); ++i) t.values[i] = 0.75f * codes[i];
  out.push_back(std::move(t));
  return out;
}

GgufWriter sample_writer() {
  GgufWriter w;
  for (auto& [key, value] : sample_values()) w.set_value(key, value);
  for (SampleTensor& t : sample_tensors()) w.add_tensor(t.name, t.type, t.dims, t.data);
  return w;
}

GgufFile parse_ok(std::vector<uint8_t> bytes) {
  Result<GgufFile> f = GgufFile::parse(std::move(bytes));
  TERN_CHECK(f.ok(), f.status().message());
  return std::move(f).value();
}

std::vector<uint8_t> read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tern_gguf_XXXXXX").string();
    TERN_CHECK(mkdtemp(pattern.data()) != nullptr, "mkdtemp");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }

 private:
  std::string path_;
};

// ---- metadata and tensors ----

TEST(ggufTest, MetadataRoundTripsEveryValueType) {
  const GgufFile f = parse_ok(sample_writer().serialize());
  const auto expected = sample_values();
  ASSERT_EQ(f.keys().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    EXPECT_EQ(f.keys()[i], expected[i].first);
    const Value* v = f.find(expected[i].first);
    ASSERT_NE(v, nullptr) << expected[i].first;
    EXPECT_TRUE(*v == expected[i].second) << expected[i].first << ": " << v->describe();
  }
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 32u);
  EXPECT_EQ(f.get_string("general.architecture").value(), "bitnet");
  EXPECT_EQ(f.get_string("t.string").value(), std::string("with\0nul and ünïcode", 20));
  EXPECT_EQ(f.get_int("t.u8").value(), 200);
  EXPECT_EQ(f.get_int("t.i8").value(), -100);
  EXPECT_EQ(f.get_int("t.u16").value(), 60000);
  EXPECT_EQ(f.get_int("t.i16").value(), -30000);
  EXPECT_EQ(f.get_int("t.u32").value(), 4000000000);
  EXPECT_EQ(f.get_int("t.i32").value(), -2000000000);
  EXPECT_EQ(f.get_int("t.i64").value(), std::numeric_limits<int64_t>::min());
  EXPECT_EQ(f.get_float("t.f32").value(), static_cast<double>(0.1f));
  EXPECT_EQ(f.get_float("t.f64").value(), -1e300);
  EXPECT_TRUE(f.get_bool("t.bool").value());
  EXPECT_FALSE(f.get_bool("t.false").value());
  EXPECT_EQ(std::bit_cast<uint32_t>(static_cast<float>(f.get_float("t.nan").value())) & 0xffc00000u,
            0x7fc00000u);
  EXPECT_EQ(f.get_int_array("a.u8").value(), (std::vector<int64_t>{0, 1, 255}));
  EXPECT_EQ(f.get_int_array("a.i8").value(), (std::vector<int64_t>{-128, 127}));
  EXPECT_EQ(f.get_int_array("a.u16").value(), (std::vector<int64_t>{1, 65535}));
  EXPECT_EQ(f.get_int_array("a.i16").value(), (std::vector<int64_t>{-1, 2}));
  EXPECT_EQ(f.get_int_array("a.u32").value(), (std::vector<int64_t>{7}));
  EXPECT_EQ(f.get_int_array("a.i32").value(), (std::vector<int64_t>{-7, 8, 9}));
  EXPECT_EQ(f.get_int_array("a.u64").value(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(f.get_int_array("a.i64").value(), (std::vector<int64_t>{-3}));
  EXPECT_EQ(f.get_float_array("a.f32").value(), (std::vector<float>{1.5f, -2.25f}));
  EXPECT_EQ(f.get_float_array("a.f64").value(), (std::vector<float>{0.125f, 0.0f}));
  EXPECT_EQ(f.get_string_array("a.string").value(), (std::vector<std::string>{"a", "", "ccc"}));
  EXPECT_TRUE(f.get_float_array("a.empty_f32").value().empty());
  EXPECT_TRUE(f.get_string_array("a.empty_string").value().empty());

  const Value* nested = f.find("a.nested");
  ASSERT_NE(nested, nullptr);
  EXPECT_EQ(nested->describe(), "array<array>[4]");
  ASSERT_EQ(nested->arrays().size(), 4u);
  EXPECT_EQ(nested->arrays()[0].as_int_array().value(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(nested->arrays()[1].as_string_array().value(), (std::vector<std::string>{"x", "y"}));
  EXPECT_EQ(nested->arrays()[2].arrays()[0].as_float_array().value(), (std::vector<float>{3.0f}));
  EXPECT_EQ(nested->arrays()[2].arrays()[1].array_type(), ValueType::kU8);
  EXPECT_EQ(nested->arrays()[3].array_size(), 0u);
}

TEST(ggufTest, TypedGettersNameKeyAndActualType) {
  const GgufFile f = parse_ok(sample_writer().serialize());
  const std::string missing = f.get_string("no.such.key").status().message();
  EXPECT_NE(missing.find("no key 'no.such.key'"), std::string::npos) << missing;
  EXPECT_FALSE(f.has("no.such.key"));
  EXPECT_EQ(f.find("no.such.key"), nullptr);

  const std::string wrong = f.get_string("t.u32").status().message();
  EXPECT_NE(wrong.find("t.u32"), std::string::npos) << wrong;
  EXPECT_NE(wrong.find("u32"), std::string::npos) << wrong;

  const std::string big = f.get_int("t.u64").status().message();
  EXPECT_NE(big.find("18446744073709551615"), std::string::npos) << big;
  EXPECT_FALSE(f.get_int("t.f32").ok());
  EXPECT_FALSE(f.get_int("t.bool").ok());
  EXPECT_FALSE(f.get_float("t.u32").ok());
  EXPECT_FALSE(f.get_bool("t.u8").ok());
  EXPECT_FALSE(f.get_string_array("a.i32").ok());
  EXPECT_FALSE(f.get_float_array("a.i32").ok());
  EXPECT_FALSE(f.get_int_array("a.f32").ok());
  EXPECT_FALSE(f.get_int_array("a.bool").ok());
  EXPECT_FALSE(f.get_int_array("t.u32").ok());
  const std::string arr = f.get_string("a.string").status().message();
  EXPECT_NE(arr.find("array<string>[3]"), std::string::npos) << arr;

  GgufWriter w;
  w.set_value("big", Value::array(std::vector<uint64_t>{1, uint64_t{1} << 63}));
  const GgufFile g = parse_ok(w.serialize());
  const std::string big_element = g.get_int_array("big").status().message();
  EXPECT_NE(big_element.find("element 1"), std::string::npos) << big_element;
}

TEST(ggufTest, TensorsRoundTripEveryType) {
  const GgufFile f = parse_ok(sample_writer().serialize());
  const std::vector<SampleTensor> expected = sample_tensors();
  ASSERT_EQ(f.tensors().size(), expected.size());
  for (size_t i = 0; i < expected.size(); ++i) {
    const SampleTensor& e = expected[i];
    const TensorInfo& t = f.tensors()[i];
    EXPECT_EQ(t.name, e.name);
    EXPECT_EQ(t.type, e.type) << e.name;
    EXPECT_EQ(t.dims, e.dims) << e.name;
    EXPECT_EQ(t.bytes, e.data.size()) << e.name;
    EXPECT_EQ(t.offset % 32, 0u) << e.name;
    EXPECT_EQ(f.find_tensor(e.name), &t);
    const std::span<const uint8_t> bytes = f.tensor_bytes(t);
    EXPECT_TRUE(std::equal(bytes.begin(), bytes.end(), e.data.begin(), e.data.end())) << e.name;
    std::vector<float> values(static_cast<size_t>(t.elements()));
    ASSERT_TRUE(f.read_tensor_f32(t, values).ok()) << e.name;
    EXPECT_EQ(values, e.values) << e.name;
  }
  EXPECT_EQ(f.find_tensor("nope"), nullptr);

  const TensorInfo& first = f.tensors()[0];
  std::vector<float> wrong_size(3);
  const Status s = f.read_tensor_f32(first, wrong_size);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("24 elements"), std::string::npos) << s.message();
}

// Matches ggml's writer: tensors packed in order, each padded to the alignment with zeros.
TEST(ggufTest, LayoutMatchesGgmlPacking) {
  const std::vector<uint8_t> bytes = sample_writer().serialize();
  EXPECT_EQ(std::memcmp(bytes.data(), "GGUF\x03\0\0\0", 8), 0);
  uint64_t n_tensors = 0;
  uint64_t n_kv = 0;
  std::memcpy(&n_tensors, bytes.data() + 8, 8);
  std::memcpy(&n_kv, bytes.data() + 16, 8);
  EXPECT_EQ(n_tensors, sample_tensors().size());
  EXPECT_EQ(n_kv, sample_values().size());

  const GgufFile f = parse_ok(bytes);
  EXPECT_EQ(f.data_offset() % 32, 0u);
  uint64_t expected_offset = 0;
  for (const TensorInfo& t : f.tensors()) {
    EXPECT_EQ(t.offset, expected_offset) << t.name;
    const uint64_t end = t.offset + t.bytes;
    expected_offset = (end + 31) / 32 * 32;
    for (uint64_t p = end; p < expected_offset; ++p) {
      EXPECT_EQ(bytes[f.data_offset() + p], 0) << t.name << " padding";
    }
  }
  EXPECT_EQ(bytes.size(), f.data_offset() + expected_offset);
}

TEST(ggufTest, ReserializeIsByteIdentical) {
  for (const uint32_t alignment : {0u, 1u, 8u, 64u, 4096u}) {
    GgufWriter w = sample_writer();
    if (alignment != 0) w.set_u32(kAlignmentKey, alignment);
    const std::vector<uint8_t> bytes = w.serialize();
    const GgufFile f = parse_ok(bytes);
    EXPECT_EQ(f.alignment(), alignment == 0 ? 32u : alignment);
    for (const TensorInfo& t : f.tensors()) EXPECT_EQ(t.offset % f.alignment(), 0u);
    EXPECT_EQ(GgufWriter::from_file(f).serialize(), bytes) << "alignment " << alignment;
  }
  // Metadata only.
  GgufWriter w;
  w.set_string("general.architecture", "llama");
  const std::vector<uint8_t> bytes = w.serialize();
  const GgufFile f = parse_ok(bytes);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(GgufWriter::from_file(f).serialize(), bytes);
  // Empty file: header only.
  EXPECT_EQ(GgufWriter().serialize().size(), 24u);
  EXPECT_TRUE(GgufFile::parse(GgufWriter().serialize()).ok());
}

TEST(ggufTest, AcceptsVersion2AndKeepsIt) {
  std::vector<uint8_t> bytes = sample_writer().serialize();
  bytes[4] = 2;
  const GgufFile f = parse_ok(bytes);
  EXPECT_EQ(f.version(), 2u);
  EXPECT_EQ(GgufWriter::from_file(f).serialize(), bytes);
}

TEST(ggufTest, SetValueReplacesInPlaceAndRemoveKey) {
  GgufWriter w;
  w.set_u32("a", 1);
  w.set_string("b", "x");
  w.set_bool("c", true);
  w.set_value("a", Value::string("now a string"));
  w.set_i32("d", -4);
  w.set_u64("e", 5);
  w.set_f32("f", 2.5f);
  w.set_string_array("g", {"p", "q"});
  w.set_f32_array("h", {1.0f});
  w.set_i32_array("i", {-1, 1});
  EXPECT_TRUE(w.remove_key("c"));
  EXPECT_FALSE(w.remove_key("c"));
  ASSERT_NE(w.find("b"), nullptr);
  const GgufFile f = parse_ok(w.serialize());
  EXPECT_EQ(f.keys(), (std::vector<std::string>{"a", "b", "d", "e", "f", "g", "h", "i"}));
  EXPECT_EQ(f.get_string("a").value(), "now a string");
  EXPECT_EQ(f.find("d")->type(), ValueType::kI32);
  EXPECT_EQ(f.find("e")->type(), ValueType::kU64);
  EXPECT_EQ(f.find("h")->array_type(), ValueType::kF32);
  EXPECT_EQ(f.find("i")->array_type(), ValueType::kI32);

  // Editing a copied file keeps everything else identical.
  GgufWriter copy = GgufWriter::from_file(parse_ok(sample_writer().serialize()));
  copy.set_value("t.u8", Value::u8(7));
  const GgufFile edited = parse_ok(copy.serialize());
  EXPECT_EQ(edited.keys(), parse_ok(sample_writer().serialize()).keys());
  EXPECT_EQ(edited.get_int("t.u8").value(), 7);
}

TEST(ggufTest, WriterOutlivesSourceFileAndCopies) {
  std::vector<uint8_t> bytes = sample_writer().serialize();
  GgufWriter w;
  {
    const GgufFile f = parse_ok(bytes);
    w = GgufWriter::from_file(f);
  }
  const GgufWriter copy = w;
  w = GgufWriter();
  EXPECT_EQ(copy.serialize(), bytes);

  GgufWriter owned;
  owned.add_tensor("x", GgmlType::kF32, {2}, {0, 0, 128, 63, 0, 0, 0, 64});
  const GgufWriter owned_copy = owned;
  owned = GgufWriter();
  const GgufFile f = parse_ok(owned_copy.serialize());
  std::vector<float> v(2);
  ASSERT_TRUE(f.read_tensor_f32(f.tensors()[0], v).ok());
  EXPECT_EQ(v, (std::vector<float>{1.0f, 2.0f}));
}

// Misuse of the writer is a bug in tern, so it CHECKs instead of returning a Status.
TEST(ggufTest, WriterMisuseIsACheckFailure) {
  GgufWriter w;
  w.add_tensor("x", GgmlType::kF32, {2}, std::vector<uint8_t>(8));
  EXPECT_DEATH(w.add_tensor("x", GgmlType::kF32, {2}, std::vector<uint8_t>(8)), "duplicate");
  EXPECT_DEATH(w.add_tensor("y", GgmlType::kF32, {2}, std::vector<uint8_t>(7)), "needs 8 bytes");
  EXPECT_DEATH(w.add_tensor("z", GgmlType::kTQ2_0, {100}, std::vector<uint8_t>(66)),
               "multiple of the block size");
  EXPECT_DEATH(w.add_tensor(std::string(64, 'n'), GgmlType::kF32, {1}, std::vector<uint8_t>(4)),
               "1..63");
  EXPECT_DEATH(w.set_u32(kAlignmentKey, 48), "power of two");
  EXPECT_DEATH(w.set_value(kAlignmentKey, Value::u64(32)), "power of two");
  EXPECT_DEATH(
      w.set_value("deep", Value::array_of_arrays({Value::array_of_arrays({Value::array_of_arrays(
                              {Value::array_of_arrays({Value::empty_array(ValueType::kU8)})})})})),
      "nest deeper");
}

// ---- files on disk ----

TEST(ggufTest, WriteThenOpenMapsTheSameBytes) {
  TempDir dir;
  const std::string path = dir.file("model.gguf");
  const GgufWriter w = sample_writer();
  ASSERT_TRUE(w.write(path).ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  EXPECT_EQ(read_file(path), w.serialize());
  const Result<GgufFile> f = GgufFile::open(path);
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f.value().tensors().size(), sample_tensors().size());
  EXPECT_EQ(GgufWriter::from_file(f.value()).serialize(), w.serialize());
  // Overwrite in place with different content.
  GgufWriter small;
  small.set_u32("x", 1);
  ASSERT_TRUE(small.write(path).ok());
  EXPECT_EQ(read_file(path), small.serialize());
}

TEST(ggufTest, FailedWriteLeavesOldFileUntouched) {
  TempDir dir;
  const std::string path = dir.file("model.gguf");
  GgufWriter old;
  old.set_string("version", "old");
  ASSERT_TRUE(old.write(path).ok());
  const std::vector<uint8_t> before = read_file(path);

  // A directory where the temporary file must go makes the write fail, even for root.
  fs::create_directory(path + ".tmp");
  const Status s = sample_writer().write(path);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("model.gguf"), std::string::npos) << s.message();
  EXPECT_EQ(read_file(path), before);

  const Status missing = sample_writer().write(dir.file("no/such/dir/model.gguf"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.message().find("no/such/dir"), std::string::npos) << missing.message();
  EXPECT_FALSE(fs::exists(dir.file("no")));
}

TEST(ggufTest, OpenErrorsNameThePath) {
  TempDir dir;
  const std::string missing = GgufFile::open(dir.file("absent.gguf")).status().message();
  EXPECT_NE(missing.find("absent.gguf"), std::string::npos) << missing;
  const std::string empty_path = dir.file("empty.gguf");
  std::ofstream(empty_path).close();
  const std::string empty = GgufFile::open(empty_path).status().message();
  EXPECT_NE(empty.find("empty"), std::string::npos) << empty;
  const std::string directory = GgufFile::open(dir.file("")).status().message();
  EXPECT_FALSE(directory.empty());
  const std::string junk_path = dir.file("junk.gguf");
  std::ofstream(junk_path) << "this is not a gguf file at all";
  const std::string junk = GgufFile::open(junk_path).status().message();
  EXPECT_NE(junk.find("junk.gguf"), std::string::npos) << junk;
  EXPECT_NE(junk.find("not 'GGUF'"), std::string::npos) << junk;
}

// ---- validation ----

struct BadCase {
  const char* what;
  std::vector<uint8_t> bytes;
  const char* expected;  // a substring of the error
};

std::vector<BadCase> bad_cases() {
  std::vector<BadCase> cases;
  const auto add = [&](const char* what, std::vector<uint8_t> bytes, const char* expected) {
    cases.push_back({what, std::move(bytes), expected});
  };
  add("empty", {}, "magic needs 4 bytes");
  add("bad magic", Bytes().raw("GGUX", 4).u32(3).u64(0).u64(0).b, "not 'GGUF'");
  add("version 1", header(0, 0, 1).b, "version 1");
  add("version 4", header(0, 0, 4).b, "version 4");
  add("big-endian", header(0, 0, 0x03000000).b, "big-endian");
  add("truncated header", Bytes().raw("GGUF", 4).u32(3).u64(0).b, "metadata count needs 8");
  add("huge kv count", header(0, uint64_t{1} << 60).b, "metadata count claims");
  add("huge tensor count", header(uint64_t{1} << 60, 0).b, "tensor count claims");
  add("huge key length", header(0, 1).u64(uint64_t{1} << 62).zeros(16).b, "has length");
  add("empty key", kv_file("", 4, Bytes().u32(1)), "is empty");
  add("unknown value type", kv_file("k", 13, Bytes().u32(1)), "not a GGUF value type");
  add("huge value type", kv_file("k", 0xffffffffu, Bytes().zeros(8)), "4294967295");
  add("truncated u64", kv_file("k", 10, Bytes().u32(1)), "needs 8 bytes");
  add("huge string", kv_file("k", 8, Bytes().u64(1000).raw("abc", 3)), "has length 1000");
  add("bool 2", kv_file("k", 7, Bytes().u8(2)), "bool with byte 2");
  add("bool array 3", kv_file("k", 9, Bytes().u32(7).u64(3).u8(1).u8(0).u8(3)), "element 2");
  add("unknown array type", kv_file("k", 9, Bytes().u32(77).u64(0)), "not a GGUF value type");
  add("huge array", kv_file("k", 9, Bytes().u32(6).u64(uint64_t{1} << 61)), "claims");
  add("huge string array", kv_file("k", 9, Bytes().u32(8).u64(uint64_t{1} << 40)), "claims");
  add("huge array of arrays", kv_file("k", 9, Bytes().u32(9).u64(1000000)), "claims");
  add("array depth 5",
      kv_file(
          "k", 9,
          Bytes().u32(9).u64(1).u32(9).u64(1).u32(9).u64(1).u32(9).u64(1).u32(9).u64(1).u32(4).u64(
              0)),
      "nests arrays 5 deep");
  add("truncated string array", kv_file("k", 9, Bytes().u32(8).u64(2).str("ok").u64(5)),
      "in array element 1");
  {
    Bytes b = header(0, 2);
    b.str("k").u32(4).u32(1).str("k").u32(4).u32(2);
    add("duplicate key", b.b, "appears twice");
  }
  add("alignment u64", kv_file("general.alignment", 10, Bytes().u64(32)), "must be u32");
  add("alignment 0", kv_file("general.alignment", 4, Bytes().u32(0)), "power of two");
  add("alignment 48", kv_file("general.alignment", 4, Bytes().u32(48)), "power of two");

  add("n_dims 0", tensor_file({{"w", {}, 0, 0}}, 64), "n_dims 0");
  add("n_dims 5", tensor_file({{"w", {1, 1, 1, 1, 1}, 0, 0}}, 64), "n_dims 5");
  add("dim 0", tensor_file({{"w", {4, 0}, 0, 0}}, 64), "dim 1 is 0");
  add("dim -3", tensor_file({{"w", {-3}, 0, 0}}, 64), "dim 0 is -3");
  add("element overflow", tensor_file({{"w", {int64_t{1} << 32, int64_t{1} << 32}, 0, 0}}, 64),
      "overflows");
  add("byte overflow", tensor_file({{"w", {int64_t{1} << 62}, 0, 0}}, 64), "overflows");
  add("unsupported type", tensor_file({{"blk.0.attn_q.weight", {256}, 12, 0}}, 256),
      "'blk.0.attn_q.weight': unsupported ggml type 12 (Q4_K)");
  add("row not whole blocks", tensor_file({{"w", {100, 2}, 35, 0}}, 256),
      "multiple of the block size 256");
  add("misaligned offset", tensor_file({{"w", {4}, 0, 4}}, 64), "not a multiple of the alignment");
  add("data past end", tensor_file({{"w", {16}, 0, 32}}, 64), "runs past the end");
  add("huge offset", tensor_file({{"w", {16}, 0, ~uint64_t{31}}}, 64), "runs past the end");
  add("truncated data", tensor_file({{"w", {16}, 0, 0}}, 63), "runs past the end");
  add("overlap", tensor_file({{"a", {16}, 0, 0}, {"b", {16}, 0, 32}}, 128), "overlap");
  add("duplicate tensor", tensor_file({{"a", {4}, 0, 0}, {"a", {4}, 0, 32}}, 64), "appears twice");
  add("empty tensor name", tensor_file({{"", {4}, 0, 0}}, 64), "must be 1..63");
  add("long tensor name", tensor_file({{std::string(64, 'n'), {4}, 0, 0}}, 64), "must be 1..63");
  {
    // A long name so that the cut (inside dim 0) leaves more than the smallest tensor info.
    std::vector<uint8_t> b = tensor_file({{std::string(40, 'w'), {16}, 0, 0}}, 64);
    b.resize(24 + 8 + 40 + 4 + 4);
    add("truncated tensor info", b, "dim 0 needs 8 bytes but the file has 4 left");
  }
  {
    std::vector<uint8_t> b = tensor_file({{"w", {16}, 0, 0}}, 0);
    while (b.size() % 32 == 0) b.pop_back();  // the header's padding is cut short
    add("no data section", b, "data section would start");
  }
  return cases;
}

TEST(ggufTest, RejectsInvalidFilesWithPreciseErrors) {
  for (BadCase& c : bad_cases()) {
    const std::string message = parse_error(c.bytes);
    EXPECT_NE(message.find(c.expected), std::string::npos)
        << c.what << ": expected '" << c.expected << "' in: " << message;
    EXPECT_EQ(message.rfind("gguf <memory>", 0), 0u) << c.what << ": " << message;
  }
}

TEST(ggufTest, AcceptsEdgeCasesThatAreValid) {
  // A 63-byte name (the longest ggml allows), tensors out of offset order with a gap, a 1-byte
  // alignment, and trailing bytes after the data.
  EXPECT_TRUE(GgufFile::parse(tensor_file({{std::string(63, 'n'), {4}, 0, 0}}, 16)).ok());
  const Result<GgufFile> f =
      GgufFile::parse(tensor_file({{"late", {4}, 0, 64}, {"early", {4}, 0, 0}}, 100));
  ASSERT_TRUE(f.ok()) << f.status().message();
  EXPECT_EQ(f.value().tensors()[0].name, "late");
  Bytes b = header(1, 1);
  b.str("general.alignment").u32(4).u32(1);
  b.str("t").u32(1).i64(3).u32(1).u64(0);  // F16 [3] at offset 0, data right after the header
  b.zeros(6);
  const Result<GgufFile> g = GgufFile::parse(b.b);
  ASSERT_TRUE(g.ok()) << g.status().message();
  EXPECT_EQ(g.value().alignment(), 1u);
  EXPECT_EQ(g.value().data_offset(), b.b.size() - 6);
}

// ---- real files from ../shared ----

#ifdef TERN_SOURCE_DIR
constexpr const char* kSourceDir = TERN_SOURCE_DIR;
#else
constexpr const char* kSourceDir = "";
#endif

std::string shared_file(const std::string& relative) {
  return (fs::path(kSourceDir) / ".." / "shared" / "data" / relative).string();
}

#define OPEN_SHARED_OR_SKIP(var, relative)                                                 \
  const std::string var##_path = shared_file(relative);                                    \
  if (std::string(kSourceDir).empty() || !fs::exists(var##_path)) {                        \
    GTEST_SKIP() << "shared test data not found at " << var##_path                         \
                 << " (needs ../shared/data next to the source tree and TERN_SOURCE_DIR)"; \
  }                                                                                        \
  const Result<GgufFile> var##_result = GgufFile::open(var##_path);                        \
  ASSERT_TRUE(var##_result.ok()) << var##_result.status().message();                       \
  const GgufFile& var = var##_result.value()

void expect_reserializes_identically(const GgufFile& f) {
  const std::vector<uint8_t> out = GgufWriter::from_file(f).serialize();
  const std::span<const uint8_t> in = f.bytes();
  ASSERT_EQ(out.size(), in.size());
  EXPECT_TRUE(std::equal(out.begin(), out.end(), in.begin()));
}

void expect_all_tensors_readable(const GgufFile& f) {
  for (const TensorInfo& t : f.tensors()) {
    std::vector<float> values(static_cast<size_t>(t.elements()));
    ASSERT_TRUE(f.read_tensor_f32(t, values).ok()) << t.name;
    for (const float v : values) ASSERT_TRUE(std::isfinite(v)) << t.name;
  }
}

TEST(ggufRealFileTest, Stories260K) {
  OPEN_SHARED_OR_SKIP(f, "tiny-models/stories260K.gguf");
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.get_string("general.architecture").value(), "llama");
  EXPECT_EQ(f.get_int("llama.block_count").value(), 5);
  EXPECT_EQ(f.get_int("llama.embedding_length").value(), 64);
  EXPECT_EQ(f.get_int("llama.feed_forward_length").value(), 172);
  EXPECT_EQ(f.get_int("llama.attention.head_count").value(), 8);
  EXPECT_EQ(f.get_int("llama.attention.head_count_kv").value(), 4);
  EXPECT_NEAR(f.get_float("llama.attention.layer_norm_rms_epsilon").value(), 1e-5, 1e-9);
  EXPECT_EQ(f.get_string("tokenizer.ggml.model").value(), "llama");
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").value().size(), 512u);
  EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores").value().size(), 512u);
  ASSERT_EQ(f.tensors().size(), 48u);
  for (const TensorInfo& t : f.tensors()) EXPECT_EQ(t.type, GgmlType::kF32) << t.name;
  const TensorInfo* embd = f.find_tensor("token_embd.weight");
  ASSERT_NE(embd, nullptr);
  EXPECT_EQ(embd->dims, (std::vector<int64_t>{64, 512}));
  std::vector<float> values(static_cast<size_t>(embd->elements()));
  ASSERT_TRUE(f.read_tensor_f32(*embd, values).ok());
  EXPECT_EQ(std::memcmp(values.data(), f.tensor_bytes(*embd).data(), embd->bytes), 0);
  expect_all_tensors_readable(f);
  expect_reserializes_identically(f);
}

TEST(ggufRealFileTest, Llama2TinyRandomF16) {
  OPEN_SHARED_OR_SKIP(f, "tiny-models/llama-2-tiny-random.gguf");
  EXPECT_EQ(f.get_string("general.architecture").value(), "llama");
  EXPECT_EQ(f.get_int("llama.embedding_length").value(), 8);
  EXPECT_EQ(f.get_int("general.file_type").value(), 1);  // mostly F16
  ASSERT_EQ(f.tensors().size(), 12u);
  const TensorInfo* q = f.find_tensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, GgmlType::kF16);
  EXPECT_EQ(q->dims, (std::vector<int64_t>{8, 8}));
  std::vector<float> values(64);
  ASSERT_TRUE(f.read_tensor_f32(*q, values).ok());
  const std::span<const uint8_t> raw = f.tensor_bytes(*q);
  for (size_t i = 0; i < values.size(); ++i) {
    const auto h = static_cast<uint16_t>(raw[2 * i] | (raw[2 * i + 1] << 8));
    EXPECT_EQ(values[i], fp16_to_fp32(h));
  }
  EXPECT_EQ(f.find_tensor("output_norm.weight")->type, GgmlType::kF32);
  expect_all_tensors_readable(f);
  expect_reserializes_identically(f);
}

TEST(ggufRealFileTest, Gpt2VocabMetadata) {
  OPEN_SHARED_OR_SKIP(f, "llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
  EXPECT_EQ(f.get_string("tokenizer.ggml.model").value(), "gpt2");
  EXPECT_EQ(f.get_string("tokenizer.ggml.pre").value(), "gpt-2");
  const std::vector<std::string> tokens = f.get_string_array("tokenizer.ggml.tokens").value();
  ASSERT_EQ(tokens.size(), 50257u);
  EXPECT_EQ(tokens[0], "!");
  EXPECT_EQ(tokens[50256], "<|endoftext|>");
  EXPECT_EQ(f.get_int_array("tokenizer.ggml.token_type").value().size(), 50257u);
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.merges").value().size(), 50000u);
  EXPECT_EQ(f.get_int("tokenizer.ggml.eos_token_id").value(), 50256);
  EXPECT_TRUE(f.tensors().empty());
  expect_reserializes_identically(f);
}

TEST(ggufRealFileTest, LlamaSpmVocabMetadata) {
  OPEN_SHARED_OR_SKIP(f, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
  EXPECT_EQ(f.get_string("tokenizer.ggml.model").value(), "llama");
  EXPECT_EQ(f.get_string_array("tokenizer.ggml.tokens").value().size(), 32000u);
  EXPECT_EQ(f.get_float_array("tokenizer.ggml.scores").value().size(), 32000u);
  EXPECT_TRUE(f.get_bool("tokenizer.ggml.add_bos_token").value());
  EXPECT_FALSE(f.get_bool("tokenizer.ggml.add_eos_token").value());
  expect_reserializes_identically(f);
}

}  // namespace
}  // namespace tern::gguf
