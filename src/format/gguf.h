// GGUF (versions 2 and 3) reader and writer.
//
// Layout (little-endian): "GGUF", u32 version, u64 tensor_count, u64 kv_count; kv_count
// key/value pairs (key = string, u32 value type, value); tensor_count tensor infos (string name,
// u32 n_dims, n_dims × i64 ne with ne0 first, u32 ggml type, u64 offset into the data section);
// zero padding to `general.alignment` (u32, default 32); the data section. A string is a u64
// byte count and the bytes (no NUL); an array is a u32 element type, a u64 count and the elements.
// Version 2 has exactly the version-3 layout (v3 only added big-endian files, which tern rejects),
// so both are read; the writer emits the version it was given (3 unless copied from a v2 file).
//
// The reader treats every byte as untrusted. It validates everything before returning: magic,
// version, counts against the bytes that remain (so no count can make it allocate more than a
// small multiple of the file size), string lengths, value types, nesting depth (arrays of arrays
// up to kMaxArrayDepth levels; llama.cpp itself rejects nested arrays), bools other than 0/1,
// empty or duplicate keys, `general.alignment` (must be a u32 nonzero power of two), empty,
// over-long (≥ 64 bytes, ggml's GGML_MAX_NAME) or duplicate tensor names, n_dims in 1..4, every
// dim ≥ 1 (ggml also accepts 0-sized tensors; tern has no use for them), element and byte counts
// that overflow, unsupported tensor types, rows that are not whole blocks, offsets that are not
// aligned, data outside the file, and overlapping tensors. Errors name the source, the byte
// offset, and the key or tensor with its bad value. ggml additionally insists that tensors are
// packed in info order with padding between them; tern accepts any aligned, non-overlapping
// placement, and its writer always produces ggml's packing.
//
// open() maps the file: like any mmap reader, tern assumes nobody truncates the file while it
// is open (that would fault on access, not return an error).
// GgufFile is immutable after open()/parse() and safe to read from many threads at once.
// Copies share the underlying bytes (an mmap or a buffer), which stay alive as long as any copy
// or any GgufWriter made by from_file() holds them.
// GgufWriter is a plain value type; not synchronized.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/status.h"
#include "format/ggml_quants.h"

namespace tern::gguf {

inline constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
inline constexpr uint32_t kVersion = 3;
inline constexpr uint64_t kDefaultAlignment = 32;
inline constexpr int kMaxArrayDepth = 4;      // an array of arrays of … at most 4 levels deep
inline constexpr size_t kMaxTensorName = 63;  // bytes; ggml keeps names in char[64] with a NUL
inline constexpr int kMaxDims = 4;
inline constexpr const char* kAlignmentKey = "general.alignment";

enum class ValueType : uint32_t {
  kU8 = 0,
  kI8 = 1,
  kU16 = 2,
  kI16 = 3,
  kU32 = 4,
  kI32 = 5,
  kF32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kU64 = 10,
  kI64 = 11,
  kF64 = 12,
};

// "u8", "i32", "f32", "bool", "string", "array", …
const char* value_type_name(ValueType type);

// One metadata value with its exact on-disk type: a scalar, a string, or an array whose elements
// all have one type (numbers, bools, strings, or arrays, which may differ from each other).
// Writing a Value back reproduces the bytes it was read from.
class Value {
 public:
  Value() = default;  // u8 0

  static Value u8(uint8_t v);
  static Value i8(int8_t v);
  static Value u16(uint16_t v);
  static Value i16(int16_t v);
  static Value u32(uint32_t v);
  static Value i32(int32_t v);
  static Value u64(uint64_t v);
  static Value i64(int64_t v);
  static Value f32(float v);
  static Value f64(double v);
  static Value boolean(bool v);
  static Value string(std::string v);

  // Arrays of numbers or bools: the element type comes from T (uint8_t … double, bool).
  template <typename T>
  static Value array(const std::vector<T>& elements);
  static Value string_array(std::vector<std::string> elements);
  // An array of arrays; every element must itself be an array (CHECKed), of any element type.
  static Value array_of_arrays(std::vector<Value> elements);
  // An empty array of the given element type.
  static Value empty_array(ValueType element_type);

  ValueType type() const { return type_; }
  bool is_array() const { return type_ == ValueType::kArray; }
  // Arrays only (CHECKed).
  ValueType array_type() const;
  uint64_t array_size() const;
  // Elements of an array of arrays (CHECKed).
  const std::vector<Value>& arrays() const;
  // "u32", "string", "array<f32>[3]", "array<array>[2]": for error messages.
  std::string describe() const;

  // Typed reads. Errors say what the value actually is.
  Result<int64_t> as_int() const;   // any integer type; a u64 above INT64_MAX is an error
  Result<double> as_float() const;  // f32 or f64
  Result<bool> as_bool() const;
  Result<std::string> as_string() const;
  Result<std::vector<std::string>> as_string_array() const;
  Result<std::vector<float>> as_float_array() const;  // f32 or f64 elements (f64 narrowed)
  Result<std::vector<int64_t>> as_int_array() const;  // any integer element type

  // Same type and the same bits (so NaN == NaN when the payloads match).
  bool operator==(const Value& other) const;

 private:
  friend struct ValueCodec;

  static Value numeric_array(ValueType element_type, const void* data, size_t count);

  ValueType type_ = ValueType::kU8;
  uint64_t scalar_ = 0;                      // numeric/bool scalar: its bytes, zero-extended
  ValueType element_type_ = ValueType::kU8;  // arrays
  uint64_t count_ = 0;                       // arrays
  std::vector<uint8_t> raw_;                 // numeric/bool array elements, little-endian
  std::vector<std::string> strings_;         // the string, or a string array's elements
  std::vector<Value> arrays_;                // an array of arrays' elements
};

struct TensorInfo {
  std::string name;
  std::vector<int64_t> dims;  // ne0 first (ne0 is the contiguous row), 1..4 entries, each ≥ 1
  GgmlType type = GgmlType::kF32;
  uint64_t offset = 0;  // relative to the data section; a multiple of the alignment
  uint64_t bytes = 0;   // exact size of the data, without padding
  int64_t elements() const;
};

class GgufFile {
 public:
  // Maps the file read-only and validates it. Errors start with "gguf '<path>'".
  static Result<GgufFile> open(const std::string& path);
  // Same, from memory; errors start with "gguf <memory>".
  static Result<GgufFile> parse(std::vector<uint8_t> bytes);

  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  // Byte offset of the data section from the start of the file.
  uint64_t data_offset() const { return data_offset_; }
  // The whole file.
  std::span<const uint8_t> bytes() const;

  bool has(std::string_view key) const { return find(key) != nullptr; }
  const Value* find(std::string_view key) const;
  std::vector<std::string> keys() const;  // in file order
  // Key/value pairs in file order.
  const std::vector<std::pair<std::string, Value>>& metadata() const { return kv_; }

  // Typed reads; a missing key is "no key 'x'", a wrong type names the key and the actual type.
  Result<std::string> get_string(std::string_view key) const;
  Result<int64_t> get_int(std::string_view key) const;
  Result<double> get_float(std::string_view key) const;
  Result<bool> get_bool(std::string_view key) const;
  Result<std::vector<std::string>> get_string_array(std::string_view key) const;
  Result<std::vector<float>> get_float_array(std::string_view key) const;
  Result<std::vector<int64_t>> get_int_array(std::string_view key) const;

  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const TensorInfo* find_tensor(std::string_view name) const;
  // The tensor's bytes inside the mapped file. `info` must come from this file (CHECKed).
  std::span<const uint8_t> tensor_bytes(const TensorInfo& info) const;
  // Decodes any supported type to fp32. out.size() must equal info.elements().
  Status read_tensor_f32(const TensorInfo& info, std::span<float> out) const;

 private:
  struct Storage;
  friend class GgufWriter;
  friend struct Parser;

  GgufFile() = default;
  static Result<GgufFile> parse_storage(std::shared_ptr<const Storage> storage);
  const Value* find_or_null(std::string_view key) const;
  Result<const Value*> require(std::string_view key) const;

  std::shared_ptr<const Storage> storage_;
  uint32_t version_ = kVersion;
  uint64_t alignment_ = kDefaultAlignment;
  uint64_t data_offset_ = 0;
  std::vector<std::pair<std::string, Value>> kv_;
  std::map<std::string, size_t, std::less<>> kv_index_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> tensor_index_;
};

class GgufWriter {
 public:
  GgufWriter() = default;

  // Copies metadata (order and exact types) and tensors (order, shapes, types, bytes) from
  // `file`. Tensor bytes are not copied: the writer shares the file's mapping. For any file whose
  // tensors are packed the way ggml packs them (tern's own, llama.cpp's, gguf-py's),
  // serialize() reproduces the file byte for byte.
  static GgufWriter from_file(const GgufFile& file);

  // Setters replace an existing key in place (it keeps its position) or append a new one.
  // `general.alignment` must be a u32 nonzero power of two (CHECKed): it sets the alignment.
  void set_value(std::string key, Value v);
  void set_string(std::string key, std::string v);
  void set_u32(std::string key, uint32_t v);
  void set_i32(std::string key, int32_t v);
  void set_u64(std::string key, uint64_t v);
  void set_f32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string_array(std::string key, std::vector<std::string> v);
  void set_f32_array(std::string key, std::vector<float> v);
  void set_i32_array(std::string key, std::vector<int32_t> v);
  // Removes a key if present; returns whether it was.
  bool remove_key(std::string_view key);
  const Value* find(std::string_view key) const;

  // Appends a tensor. CHECKs (bugs, not input errors): the name is 1..63 bytes and unique,
  // 1..4 dims each ≥ 1, ne0 is a multiple of the type's block size, and data.size() is exactly
  // the tensor's byte size.
  void add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims,
                  std::vector<uint8_t> data);

  // The complete file: header, metadata, tensor infos, zero padding to the alignment, then each
  // tensor's data followed by zero padding to the alignment (as ggml and gguf-py write it).
  // A file without tensors ends after its metadata, unpadded (as gguf-py writes vocab files).
  std::vector<uint8_t> serialize() const;
  // Atomic replace: writes path + ".tmp", fsyncs it, renames it over path, fsyncs the directory.
  // On error the temporary file is removed and any existing file at path is untouched.
  Status write(const std::string& path) const;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> dims;
    std::vector<uint8_t> owned;         // data added by add_tensor
    std::span<const uint8_t> borrowed;  // data inside keep_alive_ (from_file)
    std::span<const uint8_t> data() const { return owned.empty() ? borrowed : owned; }
  };

  uint64_t alignment() const;
  // Streams the file to `sink` in order, in pieces.
  void emit(const std::function<void(const uint8_t*, size_t)>& sink) const;

  uint32_t version_ = kVersion;
  std::vector<std::pair<std::string, Value>> kv_;
  std::vector<Tensor> tensors_;
  std::shared_ptr<const void> keep_alive_;  // the source file's bytes after from_file()
};

// ---- implementation details of the Value::array template ----

namespace detail {
template <typename T>
constexpr ValueType value_type_of() {
  if constexpr (std::is_same_v<T, uint8_t>) return ValueType::kU8;
  if constexpr (std::is_same_v<T, int8_t>) return ValueType::kI8;
  if constexpr (std::is_same_v<T, uint16_t>) return ValueType::kU16;
  if constexpr (std::is_same_v<T, int16_t>) return ValueType::kI16;
  if constexpr (std::is_same_v<T, uint32_t>) return ValueType::kU32;
  if constexpr (std::is_same_v<T, int32_t>) return ValueType::kI32;
  if constexpr (std::is_same_v<T, uint64_t>) return ValueType::kU64;
  if constexpr (std::is_same_v<T, int64_t>) return ValueType::kI64;
  if constexpr (std::is_same_v<T, float>) return ValueType::kF32;
  if constexpr (std::is_same_v<T, double>) return ValueType::kF64;
  if constexpr (std::is_same_v<T, bool>) return ValueType::kBool;
}
}  // namespace detail

template <typename T>
Value Value::array(const std::vector<T>& elements) {
  constexpr ValueType kType = detail::value_type_of<T>();
  if constexpr (std::is_same_v<T, bool>) {
    // vector<bool> is packed; GGUF stores one byte (0 or 1) per bool.
    std::vector<uint8_t> bytes(elements.begin(), elements.end());
    return numeric_array(kType, bytes.data(), bytes.size());
  } else {
    static_assert(std::is_arithmetic_v<T>, "Value::array takes numbers or bools");
    return numeric_array(kType, elements.data(), elements.size());
  }
}

}  // namespace tern::gguf
