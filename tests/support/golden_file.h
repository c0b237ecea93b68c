// Reader for the golden files written by tests/ref/make_golden.py (".tgld").
//
// Layout (little-endian): magic "TERNGLD\0", u32 version (1), u32 record count;
// per record: u32 name length, name, u32 dtype (0 f32, 1 i32, 2 i8, 3 utf-8 text),
// u32 ndim (≤ 4), ndim × u64 dims, then the elements. Every count and size is
// checked against the file length; a bad file yields a Status naming the offset.
#pragma once

#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"
#include "model/weight_source.h"

namespace tern::testing {

enum class GoldenType : uint32_t { kF32 = 0, kI32 = 1, kI8 = 2, kText = 3 };

struct GoldenRecord {
  GoldenType type = GoldenType::kF32;
  std::vector<int64_t> dims;
  std::vector<uint8_t> bytes;  // raw little-endian elements

  std::span<const float> f32() const;
  std::span<const int32_t> i32() const;
  std::span<const int8_t> i8() const;
  std::string text() const;
  int64_t elements() const;
};

class GoldenFile {
 public:
  static Result<GoldenFile> load(const std::string& path);

  bool has(const std::string& name) const { return records_.contains(name); }
  // CHECKs presence: tests name records they know exist.
  const GoldenRecord& get(const std::string& name) const;
  const std::map<std::string, GoldenRecord>& records() const { return records_; }

 private:
  std::map<std::string, GoldenRecord> records_;
};

// Serves tensors "<prefix><name>" of a golden file as model weights.
class GoldenWeightSource final : public WeightSource {
 public:
  GoldenWeightSource(const GoldenFile& file, std::string prefix)
      : file_(file), prefix_(std::move(prefix)) {}
  Status read(std::string_view name, std::span<const int64_t> shape, std::span<float> out) override;

 private:
  const GoldenFile& file_;
  std::string prefix_;
};

}  // namespace tern::testing
