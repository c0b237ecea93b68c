// Deterministic mutation fuzzing of the safetensors reader: every variant must either be
// rejected with a Status or load completely (every tensor's bytes are in range and every float
// tensor converts). A crash, hang, sanitizer report or CHECK failure here is a reader bug.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "format/safetensors.h"

namespace tern::safetensors {
namespace {

namespace fs = std::filesystem;

std::vector<uint8_t> with_header(const std::string& header, size_t data_bytes) {
  std::vector<uint8_t> out(8 + header.size() + data_bytes, 0x5a);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  std::memcpy(out.data() + 8, header.data(), header.size());
  return out;
}

// Small hand-written seeds that between them use every dtype, metadata, scalars, zero-size
// tensors and padding; plus the committed fixtures when the source tree is known.
std::vector<std::vector<uint8_t>> seeds() {
  std::vector<std::vector<uint8_t>> out;
  out.push_back(with_header(
      R"({"__metadata__":{"format":"pt","k":"v"},"a":{"dtype":"F32","shape":[2,2],)"
      R"("data_offsets":[0,16]},"b":{"dtype":"F16","shape":[3],"data_offsets":[16,22]},)"
      R"("c":{"dtype":"BF16","shape":[],"data_offsets":[22,24]},"d":{"dtype":"F64","shape":[1],)"
      R"("data_offsets":[24,32]},"e":{"dtype":"U8","shape":[0],"data_offsets":[32,32]}}   )",
      32));
  out.push_back(with_header(
      R"({"i8":{"dtype":"I8","shape":[1],"data_offsets":[0,1]},"u8":{"dtype":"U8","shape":[1,1],)"
      R"("data_offsets":[1,2]},"i16":{"dtype":"I16","shape":[1],"data_offsets":[2,4]},)"
      R"("u16":{"dtype":"U16","shape":[1],"data_offsets":[4,6]},"i32":{"dtype":"I32",)"
      R"("shape":[1],"data_offsets":[6,10]},"u32":{"dtype":"U32","shape":[1],)"
      R"("data_offsets":[10,14]},"i64":{"dtype":"I64","shape":[1],"data_offsets":[14,22]},)"
      R"("u64":{"dtype":"U64","shape":[1],"data_offsets":[22,30]},"bool":{"dtype":"BOOL",)"
      R"("shape":[2],"data_offsets":[30,32]}})",
      32));
  out.push_back(with_header("{}", 0));
#ifdef TERN_SOURCE_DIR
  const fs::path hf = fs::path(TERN_SOURCE_DIR) / "tests" / "fixtures" / "hf";
  for (const char* name :
       {"bitnet_2b4t_packed/model.safetensors", "1bitllm/model.safetensors",
        "llama/model-00002-of-00002.safetensors", "bitnet_2b4t_bf16/expected.safetensors"}) {
    std::ifstream in(hf / name, std::ios::binary);
    if (!in) continue;
    out.emplace_back(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
#endif
  return out;
}

// Everything a caller might do with a loaded file; none of it may fail or crash.
void exercise(const SafetensorsFile& f, size_t file_size) {
  std::vector<float> out;
  for (const TensorInfo& t : f.tensors()) {
    ASSERT_EQ(f.find(t.name), &t);
    const std::span<const uint8_t> b = f.bytes(t);
    ASSERT_LE(b.size(), file_size);
    ASSERT_EQ(b.size(), static_cast<size_t>(t.elements()) * dtype_size(t.dtype));
    uint32_t sum = 0;
    for (const uint8_t x : b) sum += x;  // touches every byte (ASan checks the range)
    (void)sum;
    if (is_float(t.dtype)) {
      out.assign(static_cast<size_t>(t.elements()), 0.0f);
      ASSERT_TRUE(f.read_f32(t, out).ok());
    } else {
      ASSERT_FALSE(f.read_f32(t).ok());
    }
  }
  for (const auto& [k, v] : f.metadata()) (void)(k.size() + v.size());
}

size_t header_end(const std::vector<uint8_t>& file) {
  uint64_t n = 0;
  std::memcpy(&n, file.data(), 8);
  return n > file.size() - 8 ? file.size() : static_cast<size_t>(8 + n);
}

// Characters that matter to the JSON grammar and to the header's numbers.
constexpr char kJsonChars[] =
    "{}[]\":,-.0123456789eE \\u\x01\xff"
    "FBIU";

std::vector<uint8_t> mutate(const std::vector<uint8_t>& seed, std::mt19937_64& rng) {
  std::vector<uint8_t> f = seed;
  const auto pick = [&](size_t n) { return n == 0 ? size_t{0} : static_cast<size_t>(rng() % n); };
  const size_t hend = header_end(f);
  const size_t hlen = hend - 8;
  const int kind = static_cast<int>(rng() % 9);
  switch (kind) {
    case 0: {  // header length field
      uint64_t n = 0;
      std::memcpy(&n, f.data(), 8);
      const uint64_t choices[] = {0,
                                  1,
                                  2,
                                  n - 1,
                                  n + 1,
                                  n + 8,
                                  n / 2,
                                  f.size() - 8,
                                  f.size() - 7,
                                  kMaxHeaderBytes,
                                  kMaxHeaderBytes + 1,
                                  ~uint64_t{0},
                                  uint64_t{1} << 63,
                                  rng()};
      n = choices[pick(std::size(choices))];
      std::memcpy(f.data(), &n, 8);
      break;
    }
    case 1: {  // change a digit in the header (shapes, offsets)
      std::vector<size_t> digits;
      for (size_t i = 8; i < hend; ++i) {
        if (f[i] >= '0' && f[i] <= '9') digits.push_back(i);
      }
      if (digits.empty()) break;
      const int count = 1 + static_cast<int>(rng() % 3);
      for (int c = 0; c < count; ++c) f[digits[pick(digits.size())]] = '0' + rng() % 10;
      break;
    }
    case 2: {  // replace header bytes with grammar characters
      if (hlen == 0) break;
      const int count = 1 + static_cast<int>(rng() % 3);
      for (int c = 0; c < count; ++c) {
        f[8 + pick(hlen)] = static_cast<uint8_t>(kJsonChars[pick(sizeof kJsonChars - 1)]);
      }
      break;
    }
    case 3: {  // delete or insert one header byte, keeping the length field honest
      if (hlen == 0) break;
      const size_t at = 8 + pick(hlen);
      if (rng() % 2) {
        f.erase(f.begin() + static_cast<std::ptrdiff_t>(at));
      } else {
        f.insert(f.begin() + static_cast<std::ptrdiff_t>(at),
                 static_cast<uint8_t>(kJsonChars[pick(sizeof kJsonChars - 1)]));
      }
      uint64_t n = 0;
      std::memcpy(&n, f.data(), 8);
      n = (f.size() > seed.size()) ? n + 1 : n - 1;
      std::memcpy(f.data(), &n, 8);
      break;
    }
    case 4: {  // edit a data_offsets or shape number by a small amount
      const std::string text(f.begin() + 8, f.begin() + static_cast<std::ptrdiff_t>(hend));
      std::vector<size_t> starts;
      for (size_t p = text.find_first_of("[,"); p != std::string::npos;
           p = text.find_first_of("[,", p + 1)) {
        if (p + 1 < text.size() && text[p + 1] >= '0' && text[p + 1] <= '9')
          starts.push_back(p + 1);
      }
      if (starts.empty()) break;
      const size_t s = starts[pick(starts.size())];
      size_t e = s;
      while (e < text.size() && text[e] >= '0' && text[e] <= '9') ++e;
      const long long deltas[] = {-8, -4, -2, -1, 1, 2, 4, 8, 1000000, -1000000};
      long long v = std::stoll(text.substr(s, std::min<size_t>(e - s, 15)));
      v += deltas[pick(std::size(deltas))];
      const std::string repl = std::to_string(v);
      const std::string new_text = text.substr(0, s) + repl + text.substr(e);
      std::vector<uint8_t> g = with_header(new_text, f.size() - hend);
      if (f.size() > hend)
        std::memcpy(g.data() + 8 + new_text.size(), f.data() + hend, f.size() - hend);
      f = std::move(g);
      break;
    }
    case 5:  // truncate the file anywhere
      f.resize(pick(f.size() + 1));
      break;
    case 6: {  // flip bits anywhere (mostly data: such files must still load)
      const int count = 1 + static_cast<int>(rng() % 4);
      for (int c = 0; c < count && !f.empty(); ++c) f[pick(f.size())] ^= 1u << (rng() % 8);
      break;
    }
    case 7: {  // duplicate or drop a region of the header
      if (hlen < 2) break;
      const size_t a = 8 + pick(hlen), len = 1 + pick(std::min<size_t>(40, hend - a));
      std::vector<uint8_t> region(f.begin() + static_cast<std::ptrdiff_t>(a),
                                  f.begin() + static_cast<std::ptrdiff_t>(a + len));
      if (rng() % 2) {
        f.insert(f.begin() + static_cast<std::ptrdiff_t>(a + len), region.begin(), region.end());
      } else {
        f.erase(f.begin() + static_cast<std::ptrdiff_t>(a),
                f.begin() + static_cast<std::ptrdiff_t>(a + len));
      }
      const uint64_t n = hlen + f.size() - seed.size();
      std::memcpy(f.data(), &n, 8);
      break;
    }
    case 8: {  // grow or shrink the data section
      if (rng() % 2) {
        f.resize(f.size() + 1 + pick(16), 0);
      } else if (f.size() > hend) {
        f.resize(f.size() - 1 - pick(std::min<size_t>(16, f.size() - hend)));
      }
      break;
    }
  }
  return f;
}

TEST(safetensorsFuzz, MutatedFilesAreRejectedOrFullyReadable) {
  const std::vector<std::vector<uint8_t>> base = seeds();
  for (const auto& s : base) {
    const auto r = SafetensorsFile::parse(s);
    ASSERT_TRUE(r.ok()) << "seed does not parse: " << r.status().message();
  }
  std::mt19937_64 rng(0x7e57f11e);
  constexpr int kVariants = 12000;
  int loaded = 0, rejected = 0;
  for (int i = 0; i < kVariants; ++i) {
    const auto& seed = base[static_cast<size_t>(i) % base.size()];
    std::vector<uint8_t> f = mutate(seed, rng);
    // Stack a second mutation sometimes, so errors combine.
    if (rng() % 4 == 0) f = mutate(f.size() >= 8 ? f : seed, rng);
    const size_t size = f.size();
    const Result<SafetensorsFile> r = SafetensorsFile::parse(std::move(f));
    if (r.ok()) {
      ++loaded;
      exercise(r.value(), size);
      if (HasFatalFailure()) {
        ADD_FAILURE() << "variant " << i << " loaded but did not read";
        return;
      }
    } else {
      ++rejected;
      EXPECT_FALSE(r.status().message().empty());
      EXPECT_EQ(r.status().message().rfind("safetensors <memory>: ", 0), 0u)
          << r.status().message();
    }
  }
  // Both outcomes must be common, or the mutations are not exploring anything.
  EXPECT_GT(loaded, kVariants / 20);
  EXPECT_GT(rejected, kVariants / 4);
  RecordProperty("loaded", loaded);
  RecordProperty("rejected", rejected);
}

// Every prefix of a real file: all are rejected except the whole file.
TEST(safetensorsFuzz, EveryTruncationOfASeedIsRejected) {
  const std::vector<uint8_t> seed = seeds()[0];
  for (size_t n = 0; n < seed.size(); ++n) {
    const std::vector<uint8_t> prefix(seed.begin(), seed.begin() + static_cast<std::ptrdiff_t>(n));
    EXPECT_FALSE(SafetensorsFile::parse(prefix).ok()) << "prefix of " << n << " bytes";
  }
  EXPECT_TRUE(SafetensorsFile::parse(seed).ok());
}

}  // namespace
}  // namespace tern::safetensors
