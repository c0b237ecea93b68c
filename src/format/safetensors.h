// safetensors reader, and Hugging Face checkpoint directories built from it.
//
// Layout: a u64 little-endian header length N, N bytes of UTF-8 JSON, then the data section.
// The JSON is one object mapping each tensor name to {"dtype": "F32", "shape": [..],
// "data_offsets": [begin, end]} (offsets relative to the data section), plus an optional
// "__metadata__" object of string → string. Writers pad the JSON with trailing spaces.
//
// Every byte is untrusted. Before open()/parse() returns, the whole header is checked and any
// problem is a Status naming the source, the tensor and the bad value: N must be 2..100 MB
// (the reference implementation's limit) and fit in the file; the JSON must parse (the error
// gives the byte position) and be an object; no name may appear twice (JSON parsers silently
// keep one of two duplicates; we see the raw key stream and reject them, also inside
// "__metadata__" and inside a tensor entry); every tensor entry is an object with exactly the
// fields dtype, shape and data_offsets; dtype is one of those below (F8, F4 and other
// sub-byte types are rejected as unsupported); shape has at most kMaxDims non-negative integer
// dims whose product fits in int64 (zero-size tensors are allowed); data_offsets are two
// integers begin ≤ end inside the data section with end − begin = elements × dtype size;
// metadata values are strings. Like the reference implementation (and because the format says
// the data section is "entirely indexed, and cannot contain holes"), the tensors must tile the
// data section exactly: sorted by offset they start at 0, each begins where the previous ended
// and the last ends at the end of the file; so no two tensors overlap (no aliasing), no byte is
// unaccounted for, and nothing trails the data. Parsing the header builds no JSON tree (a SAX
// pass), so memory stays a small multiple of the header size whatever it contains.
//
// Values are little-endian and row-major; shapes are listed outermost first (PyTorch order,
// the reverse of GGUF's ne0-first dims). Tensor data need not be aligned in the file: readers
// here copy element by element.
//
// SafetensorsFile and SafetensorsDir are immutable after open()/parse() and safe to read from
// many threads at once. Copies share the underlying bytes (an mmap or a buffer).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tern::safetensors {

inline constexpr uint64_t kMaxHeaderBytes = 100'000'000;
inline constexpr size_t kMaxDims = 8;

enum class DType { kF32, kF16, kBF16, kF64, kI8, kU8, kI16, kU16, kI32, kU32, kI64, kU64, kBool };

// The name used in files: "F32", "BF16", "U8", "BOOL", …
const char* dtype_name(DType dtype);
// Bytes per element (BOOL is one byte).
size_t dtype_size(DType dtype);
// Whether read_f32 converts this dtype (F32, F16, BF16, F64).
bool is_float(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;  // outermost first; empty for a scalar
  uint64_t begin = 0;          // byte offsets into the data section, end − begin = bytes
  uint64_t end = 0;
  int64_t elements() const;  // product of the dims (1 for a scalar, 0 if any dim is 0)
};

class SafetensorsFile {
 public:
  // Maps the file read-only and validates it. Errors start with "safetensors '<path>'".
  static Result<SafetensorsFile> open(const std::string& path);
  // Same, from memory (tests, fuzzing); errors start with "safetensors <memory>".
  static Result<SafetensorsFile> parse(std::vector<uint8_t> bytes);

  // "safetensors '<path>'" or "safetensors <memory>", as in error messages.
  const std::string& source() const;
  // All tensors, sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorInfo* find(std::string_view name) const;
  // The "__metadata__" strings (empty when the file has none).
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor's raw little-endian bytes. `info` must be one of tensors() (CHECKed).
  std::span<const uint8_t> bytes(const TensorInfo& info) const;
  // Converts F32/F16/BF16 exactly and F64 by rounding to nearest into `out`, whose size must
  // equal info.elements(). Integer and bool dtypes are an error naming the tensor and dtype.
  Status read_f32(const TensorInfo& info, std::span<float> out) const;
  // read_f32 into a new vector.
  Result<std::vector<float>> read_f32(const TensorInfo& info) const;

 private:
  struct Storage;
  SafetensorsFile() = default;
  static Result<SafetensorsFile> parse_storage(std::shared_ptr<const Storage> storage);

  std::shared_ptr<const Storage> storage_;
  uint64_t data_offset_ = 0;  // 8 + header length
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// A Hugging Face checkpoint directory: config.json plus either model.safetensors or the shards
// named by model.safetensors.index.json ({"weight_map": {tensor: file}, "metadata": {...}}).
// The index wins when both exist (as in transformers). open() validates everything: config.json
// must be a JSON object; shard names must be plain file names in the directory (no '/', no
// "..": the index is untrusted); every indexed tensor must be in the shard the index names,
// and every tensor of every shard must be in the index, so no tensor is silently lost or found
// twice.
class SafetensorsDir {
 public:
  static Result<SafetensorsDir> open(const std::string& dir);

  const std::string& path() const { return dir_; }
  // The tensor and (if `file` is not null) the shard holding it; nullptr when absent.
  const TensorInfo* find(std::string_view name, const SafetensorsFile** file = nullptr) const;
  // Every tensor name across all shards, sorted.
  std::vector<std::string> tensor_names() const;
  // The shards, in file-name order (one for a single model.safetensors).
  const std::vector<SafetensorsFile>& files() const { return files_; }
  // config.json, parsed. Include <nlohmann/json.hpp> to use it.
  const nlohmann::json& config() const { return *config_; }

 private:
  SafetensorsDir() = default;

  std::string dir_;
  std::shared_ptr<const nlohmann::json> config_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t, std::less<>> index_;  // tensor name → files_ index
};

}  // namespace tern::safetensors
