#include "format/gguf.h"

#include "core/file_io.h"
#include "core/mapped_file.h"
#include "core/text.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <limits>
#include <numeric>
#include <system_error>

namespace tern::gguf {

// ---------------------------------------------------------------------------------------------
// Shared helpers

namespace {

constexpr uint32_t kMaxValueType = static_cast<uint32_t>(ValueType::kF64);

// Bytes of one fixed-size element; 0 for strings and arrays.
uint64_t fixed_size(ValueType type) {
  switch (type) {
    case ValueType::kU8:
    case ValueType::kI8:
    case ValueType::kBool:
      return 1;
    case ValueType::kU16:
    case ValueType::kI16:
      return 2;
    case ValueType::kU32:
    case ValueType::kI32:
    case ValueType::kF32:
      return 4;
    case ValueType::kU64:
    case ValueType::kI64:
    case ValueType::kF64:
      return 8;
    case ValueType::kString:
    case ValueType::kArray:
      return 0;
  }
  return 0;
}

bool is_integer(ValueType type) {
  switch (type) {
    case ValueType::kU8:
    case ValueType::kI8:
    case ValueType::kU16:
    case ValueType::kI16:
    case ValueType::kU32:
    case ValueType::kI32:
    case ValueType::kU64:
    case ValueType::kI64:
      return true;
    default:
      return false;
  }
}

// Smallest encoding of one array element: what a count is checked against.
uint64_t min_element_bytes(ValueType type) {
  if (type == ValueType::kString) return 8;     // u64 length, no bytes
  if (type == ValueType::kArray) return 4 + 8;  // element type and count, no elements
  return fixed_size(type);
}

// Reads `size` little-endian bytes at p as an integer, sign-extending signed types.
int64_t load_int(ValueType type, const uint8_t* p) {
  switch (type) {
    case ValueType::kU8:
      return p[0];
    case ValueType::kI8:
      return static_cast<int8_t>(p[0]);
    case ValueType::kU16: {
      uint16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case ValueType::kI16: {
      int16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case ValueType::kU32: {
      uint32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case ValueType::kI32: {
      int32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case ValueType::kI64:
    case ValueType::kU64: {  // the caller range-checks u64
      int64_t v;
      std::memcpy(&v, p, 8);
      return v;
    }
    default:
      TERN_CHECK(false, "load_int of non-integer type");
      return 0;
  }
}

std::string quote(std::string_view text) {
  return quote_for_message(text);
}

std::string dims_text(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(dims[i]);
  }
  return out + "]";
}

bool is_power_of_two(uint64_t v) {
  return v != 0 && (v & (v - 1)) == 0;
}

uint64_t align_up(uint64_t v, uint64_t alignment) {
  return (v + alignment - 1) / alignment * alignment;  // callers ensure no overflow
}

// Byte size of a tensor, or an error text; shared by the reader (untrusted) and writer (CHECK).
Result<uint64_t> tensor_byte_size(GgmlType type, const std::vector<int64_t>& dims) {
  if (dims.empty() || dims.size() > static_cast<size_t>(kMaxDims)) {
    return Status::Error("has " + std::to_string(dims.size()) + " dims (must be 1.." +
                         std::to_string(kMaxDims) + ")");
  }
  int64_t rows = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] < 1) {
      return Status::Error("has dims " + dims_text(dims) + ": dim " + std::to_string(i) + " is " +
                           std::to_string(dims[i]) + " (must be >= 1)");
    }
    if (i == 0) continue;
    if (rows > std::numeric_limits<int64_t>::max() / dims[i]) {
      return Status::Error("has dims " + dims_text(dims) + ": element count overflows int64");
    }
    rows *= dims[i];
  }
  if (rows > std::numeric_limits<int64_t>::max() / dims[0]) {
    return Status::Error("has dims " + dims_text(dims) + ": element count overflows int64");
  }
  Result<uint64_t> row = row_bytes(type, dims[0]);
  if (!row.ok())
    return Status::Error("has dims " + dims_text(dims) + ": " + row.status().message());
  if (row.value() != 0 &&
      static_cast<uint64_t>(rows) > std::numeric_limits<uint64_t>::max() / row.value()) {
    return Status::Error("has dims " + dims_text(dims) + ": byte size overflows 64 bits");
  }
  return row.value() * static_cast<uint64_t>(rows);
}

int array_depth(const Value& v) {
  if (!v.is_array()) return 0;
  int deepest = 0;
  if (v.array_type() == ValueType::kArray) {
    for (const Value& e : v.arrays()) deepest = std::max(deepest, array_depth(e));
  }
  return 1 + deepest;
}

}  // namespace

const char* value_type_name(ValueType type) {
  switch (type) {
    case ValueType::kU8:
      return "u8";
    case ValueType::kI8:
      return "i8";
    case ValueType::kU16:
      return "u16";
    case ValueType::kI16:
      return "i16";
    case ValueType::kU32:
      return "u32";
    case ValueType::kI32:
      return "i32";
    case ValueType::kF32:
      return "f32";
    case ValueType::kBool:
      return "bool";
    case ValueType::kString:
      return "string";
    case ValueType::kArray:
      return "array";
    case ValueType::kU64:
      return "u64";
    case ValueType::kI64:
      return "i64";
    case ValueType::kF64:
      return "f64";
  }
  return "?";
}

// ---------------------------------------------------------------------------------------------
// Value

// Builds and encodes Values; the only code that touches their representation besides Value.
struct ValueCodec {
  static Value scalar(ValueType type, uint64_t bits) {
    Value v;
    v.type_ = type;
    v.scalar_ = bits;
    return v;
  }

  static void put_u32(std::vector<uint8_t>* out, uint32_t v) {
    const size_t at = out->size();
    out->resize(at + 4);
    std::memcpy(out->data() + at, &v, 4);
  }
  static void put_u64(std::vector<uint8_t>* out, uint64_t v) {
    const size_t at = out->size();
    out->resize(at + 8);
    std::memcpy(out->data() + at, &v, 8);
  }
  static void put_string(std::vector<uint8_t>* out, std::string_view s) {
    put_u64(out, s.size());
    out->insert(out->end(), s.begin(), s.end());
  }

  // The value's bytes after its type tag.
  static void put_payload(std::vector<uint8_t>* out, const Value& v) {
    switch (v.type_) {
      case ValueType::kString:
        put_string(out, v.strings_.at(0));
        return;
      case ValueType::kArray:
        put_u32(out, static_cast<uint32_t>(v.element_type_));
        put_u64(out, v.count_);
        if (v.element_type_ == ValueType::kString) {
          for (const std::string& s : v.strings_) put_string(out, s);
        } else if (v.element_type_ == ValueType::kArray) {
          for (const Value& e : v.arrays_) put_payload(out, e);
        } else {
          out->insert(out->end(), v.raw_.begin(), v.raw_.end());
        }
        return;
      default: {
        const size_t at = out->size();
        const uint64_t size = fixed_size(v.type_);
        out->resize(at + size);
        std::memcpy(out->data() + at, &v.scalar_, size);
        return;
      }
    }
  }

  static Value numeric_array(ValueType element_type, const void* data, size_t count) {
    TERN_CHECK(fixed_size(element_type) != 0, "numeric_array of ", value_type_name(element_type));
    Value v;
    v.type_ = ValueType::kArray;
    v.element_type_ = element_type;
    v.count_ = count;
    const auto* p = static_cast<const uint8_t*>(data);
    v.raw_.assign(p, p + count * fixed_size(element_type));
    return v;
  }

  static Value string_array(std::vector<std::string> elements) {
    Value v;
    v.type_ = ValueType::kArray;
    v.element_type_ = ValueType::kString;
    v.count_ = elements.size();
    v.strings_ = std::move(elements);
    return v;
  }

  static Value array_of_arrays(std::vector<Value> elements) {
    Value v;
    v.type_ = ValueType::kArray;
    v.element_type_ = ValueType::kArray;
    v.count_ = elements.size();
    v.arrays_ = std::move(elements);
    return v;
  }

  static Value string(std::string s) {
    Value v;
    v.type_ = ValueType::kString;
    v.strings_.push_back(std::move(s));
    return v;
  }

  static const std::vector<uint8_t>& raw(const Value& v) { return v.raw_; }
};

namespace {
Value scalar_of(ValueType type, uint64_t bits) {
  return ValueCodec::scalar(type, bits);
}
}  // namespace

Value Value::u8(uint8_t v) {
  return scalar_of(ValueType::kU8, v);
}
Value Value::i8(int8_t v) {
  return scalar_of(ValueType::kI8, static_cast<uint8_t>(v));
}
Value Value::u16(uint16_t v) {
  return scalar_of(ValueType::kU16, v);
}
Value Value::i16(int16_t v) {
  return scalar_of(ValueType::kI16, static_cast<uint16_t>(v));
}
Value Value::u32(uint32_t v) {
  return scalar_of(ValueType::kU32, v);
}
Value Value::i32(int32_t v) {
  return scalar_of(ValueType::kI32, static_cast<uint32_t>(v));
}
Value Value::u64(uint64_t v) {
  return scalar_of(ValueType::kU64, v);
}
Value Value::i64(int64_t v) {
  return scalar_of(ValueType::kI64, static_cast<uint64_t>(v));
}
Value Value::f32(float v) {
  return scalar_of(ValueType::kF32, std::bit_cast<uint32_t>(v));
}
Value Value::f64(double v) {
  return scalar_of(ValueType::kF64, std::bit_cast<uint64_t>(v));
}
Value Value::boolean(bool v) {
  return scalar_of(ValueType::kBool, v ? 1 : 0);
}
Value Value::string(std::string v) {
  return ValueCodec::string(std::move(v));
}

Value Value::numeric_array(ValueType element_type, const void* data, size_t count) {
  return ValueCodec::numeric_array(element_type, data, count);
}

Value Value::string_array(std::vector<std::string> elements) {
  return ValueCodec::string_array(std::move(elements));
}

Value Value::array_of_arrays(std::vector<Value> elements) {
  for (const Value& e : elements)
    TERN_CHECK(e.is_array(), "array_of_arrays element is ", e.describe());
  return ValueCodec::array_of_arrays(std::move(elements));
}

Value Value::empty_array(ValueType element_type) {
  if (element_type == ValueType::kString) return string_array({});
  if (element_type == ValueType::kArray) return ValueCodec::array_of_arrays({});
  return numeric_array(element_type, nullptr, 0);
}

ValueType Value::array_type() const {
  TERN_CHECK(is_array(), "array_type() of ", describe());
  return element_type_;
}

uint64_t Value::array_size() const {
  TERN_CHECK(is_array(), "array_size() of ", describe());
  return count_;
}

const std::vector<Value>& Value::arrays() const {
  TERN_CHECK(is_array() && element_type_ == ValueType::kArray, "arrays() of ", describe());
  return arrays_;
}

std::string Value::describe() const {
  if (!is_array()) return value_type_name(type_);
  return std::string("array<") + value_type_name(element_type_) + ">[" + std::to_string(count_) +
         "]";
}

Result<int64_t> Value::as_int() const {
  if (!is_integer(type_)) return Status::Error("is " + describe() + ", not an integer");
  if (type_ == ValueType::kU64 && scalar_ > static_cast<uint64_t>(INT64_MAX)) {
    return Status::Error("is u64 " + std::to_string(scalar_) + ", beyond int64");
  }
  uint8_t bytes[8];
  std::memcpy(bytes, &scalar_, 8);
  return load_int(type_, bytes);
}

Result<double> Value::as_float() const {
  if (type_ == ValueType::kF32) {
    return static_cast<double>(std::bit_cast<float>(static_cast<uint32_t>(scalar_)));
  }
  if (type_ == ValueType::kF64) return std::bit_cast<double>(scalar_);
  return Status::Error("is " + describe() + ", not f32 or f64");
}

Result<bool> Value::as_bool() const {
  if (type_ != ValueType::kBool) return Status::Error("is " + describe() + ", not a bool");
  return scalar_ != 0;
}

Result<std::string> Value::as_string() const {
  if (type_ != ValueType::kString) return Status::Error("is " + describe() + ", not a string");
  return strings_.at(0);
}

Result<std::vector<std::string>> Value::as_string_array() const {
  if (!is_array() || element_type_ != ValueType::kString) {
    return Status::Error("is " + describe() + ", not an array of strings");
  }
  return strings_;
}

Result<std::vector<float>> Value::as_float_array() const {
  if (!is_array() || (element_type_ != ValueType::kF32 && element_type_ != ValueType::kF64)) {
    return Status::Error("is " + describe() + ", not an array of f32 or f64");
  }
  std::vector<float> out(count_);
  for (uint64_t i = 0; i < count_; ++i) {
    if (element_type_ == ValueType::kF32) {
      std::memcpy(&out[i], raw_.data() + 4 * i, 4);
    } else {
      double d;
      std::memcpy(&d, raw_.data() + 8 * i, 8);
      out[i] = static_cast<float>(d);
    }
  }
  return out;
}

Result<std::vector<int64_t>> Value::as_int_array() const {
  if (!is_array() || !is_integer(element_type_)) {
    return Status::Error("is " + describe() + ", not an array of integers");
  }
  const uint64_t size = fixed_size(element_type_);
  std::vector<int64_t> out(count_);
  for (uint64_t i = 0; i < count_; ++i) {
    const uint8_t* p = raw_.data() + size * i;
    if (element_type_ == ValueType::kU64) {
      uint64_t u;
      std::memcpy(&u, p, 8);
      if (u > static_cast<uint64_t>(INT64_MAX)) {
        return Status::Error("is " + describe() + " whose element " + std::to_string(i) + " is " +
                             std::to_string(u) + ", beyond int64");
      }
    }
    out[i] = load_int(element_type_, p);
  }
  return out;
}

bool Value::operator==(const Value& other) const {
  return type_ == other.type_ && scalar_ == other.scalar_ && element_type_ == other.element_type_ &&
         count_ == other.count_ && raw_ == other.raw_ && strings_ == other.strings_ &&
         arrays_ == other.arrays_;
}

int64_t TensorInfo::elements() const {
  int64_t n = 1;
  for (const int64_t d : dims) n *= d;
  return n;
}

// ---------------------------------------------------------------------------------------------
// Reader

struct GgufFile::Storage {
  std::string source;  // "gguf '<path>'" or "gguf <memory>", the prefix of every error
  std::shared_ptr<const MappedFile> file;
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};

// A bounds-checked cursor over the file plus the parsing steps.
struct Parser {
  const GgufFile::Storage& s;
  uint64_t pos = 0;

  Status error(uint64_t at, const std::string& message) const {
    return Status::Error(s.source + ": at offset " + std::to_string(at) + ": " + message);
  }
  uint64_t remaining() const { return s.size - pos; }

  Status need(uint64_t n, const std::string& what) const {
    if (n > remaining()) {
      return error(pos, what + " needs " + std::to_string(n) + " bytes but the file has " +
                            std::to_string(remaining()) + " left (truncated?)");
    }
    return Status::Ok();
  }

  template <typename T>
  Status read(T* out, const std::string& what) {
    TERN_RETURN_IF_ERROR(need(sizeof(T), what));
    std::memcpy(out, s.data + pos, sizeof(T));
    pos += sizeof(T);
    return Status::Ok();
  }

  Status read_string(std::string* out, const std::string& what) {
    const uint64_t at = pos;
    uint64_t length = 0;
    TERN_RETURN_IF_ERROR(read(&length, what + " length"));
    if (length > remaining()) {
      return error(at, what + " has length " + std::to_string(length) + " but only " +
                           std::to_string(remaining()) + " bytes follow");
    }
    out->assign(reinterpret_cast<const char*>(s.data + pos), static_cast<size_t>(length));
    pos += length;
    return Status::Ok();
  }

  // A count of elements that each take at least min_bytes must fit in what is left; this is
  // what keeps a forged count from making us reserve gigabytes.
  Status check_count(uint64_t at, uint64_t count, uint64_t min_bytes, const std::string& what) {
    if (min_bytes != 0 && count > remaining() / min_bytes) {
      return error(at, what + " claims " + std::to_string(count) + " entries of at least " +
                           std::to_string(min_bytes) + " bytes, but only " +
                           std::to_string(remaining()) + " bytes are left");
    }
    return Status::Ok();
  }

  Status read_value_type(ValueType* out, const std::string& what) {
    const uint64_t at = pos;
    uint32_t raw = 0;
    TERN_RETURN_IF_ERROR(read(&raw, what));
    if (raw > kMaxValueType) {
      return error(at, what + " is " + std::to_string(raw) + ", not a GGUF value type (0..12)");
    }
    *out = static_cast<ValueType>(raw);
    return Status::Ok();
  }

  // Names the array element an error happened in (built only on error: arrays can be huge).
  static Status in_element(Status status, uint64_t i) {
    if (status.ok()) return status;
    return Status::Error(status.message() + " (in array element " + std::to_string(i) + ")");
  }

  // The bytes after a value's type tag. `depth` counts the arrays already entered.
  Status read_payload(ValueType type, int depth, const std::string& what, Value* out) {
    const uint64_t at = pos;
    switch (type) {
      case ValueType::kString: {
        std::string text;
        TERN_RETURN_IF_ERROR(read_string(&text, what));
        *out = ValueCodec::string(std::move(text));
        return Status::Ok();
      }
      case ValueType::kBool: {
        uint8_t b = 0;
        TERN_RETURN_IF_ERROR(read(&b, what));
        if (b > 1)
          return error(at,
                       what + " is a bool with byte " + std::to_string(b) + " (must be 0 or 1)");
        *out = ValueCodec::scalar(type, b);
        return Status::Ok();
      }
      case ValueType::kArray:
        return read_array(depth + 1, what, out);
      default: {
        const uint64_t size = fixed_size(type);
        TERN_RETURN_IF_ERROR(need(size, what));
        uint64_t bits = 0;
        std::memcpy(&bits, s.data + pos, size);
        pos += size;
        *out = ValueCodec::scalar(type, bits);
        return Status::Ok();
      }
    }
  }

  Status read_array(int depth, const std::string& what, Value* out) {
    const uint64_t at = pos;
    if (depth > kMaxArrayDepth) {
      return error(at, what + " nests arrays " + std::to_string(depth) + " deep (max " +
                           std::to_string(kMaxArrayDepth) + ")");
    }
    ValueType element_type;
    TERN_RETURN_IF_ERROR(read_value_type(&element_type, what + " element type"));
    uint64_t count = 0;
    TERN_RETURN_IF_ERROR(read(&count, what + " element count"));
    TERN_RETURN_IF_ERROR(check_count(at, count, min_element_bytes(element_type),
                                     what + " (array<" + value_type_name(element_type) + ">)"));
    if (element_type == ValueType::kString) {
      std::vector<std::string> elements(static_cast<size_t>(count));
      for (uint64_t i = 0; i < count; ++i) {
        TERN_RETURN_IF_ERROR(in_element(read_string(&elements[i], what), i));
      }
      *out = ValueCodec::string_array(std::move(elements));
    } else if (element_type == ValueType::kArray) {
      // Grown as elements parse (each took ≥ 12 bytes) rather than sized from the count.
      std::vector<Value> elements;
      for (uint64_t i = 0; i < count; ++i) {
        elements.emplace_back();
        TERN_RETURN_IF_ERROR(in_element(read_array(depth + 1, what, &elements.back()), i));
      }
      *out = ValueCodec::array_of_arrays(std::move(elements));
    } else {
      const uint64_t bytes = count * fixed_size(element_type);  // ≤ remaining(): no overflow
      if (element_type == ValueType::kBool) {
        for (uint64_t i = 0; i < count; ++i) {
          if (s.data[pos + i] > 1) {
            return error(pos + i, what + " element " + std::to_string(i) + " is a bool with byte " +
                                      std::to_string(s.data[pos + i]) + " (must be 0 or 1)");
          }
        }
      }
      *out = ValueCodec::numeric_array(element_type, s.data + pos, static_cast<size_t>(count));
      pos += bytes;
    }
    return Status::Ok();
  }

  Status parse(GgufFile* f) {
    uint32_t magic = 0;
    TERN_RETURN_IF_ERROR(read(&magic, "magic"));
    if (magic != kMagic) {
      std::string shown(reinterpret_cast<const char*>(s.data), 4);
      return error(0, "magic is " + quote(shown) + ", not 'GGUF' (not a GGUF file)");
    }
    TERN_RETURN_IF_ERROR(read(&f->version_, "version"));
    if (f->version_ != 2 && f->version_ != 3) {
      std::string hint;
      if (f->version_ != 0 && (f->version_ & 0xffffu) == 0) {
        hint = " (a big-endian file? tern reads little-endian only)";
      }
      if (f->version_ == 1) hint = " (GGUF v1 is obsolete)";
      return error(4,
                   "version " + std::to_string(f->version_) + " is not supported (2 or 3)" + hint);
    }
    uint64_t tensor_count = 0;
    uint64_t kv_count = 0;
    TERN_RETURN_IF_ERROR(read(&tensor_count, "tensor count"));
    TERN_RETURN_IF_ERROR(read(&kv_count, "metadata count"));
    // Smallest key/value: u64 key length, 1 key byte, u32 type, a 1-byte value.
    TERN_RETURN_IF_ERROR(check_count(16, kv_count, 8 + 1 + 4 + 1, "metadata count"));

    // Entries are far bigger in memory than their 14-byte minimum on disk, so grow as they parse.
    f->kv_.reserve(static_cast<size_t>(std::min<uint64_t>(kv_count, 1024)));
    for (uint64_t i = 0; i < kv_count; ++i) {
      const uint64_t at = pos;
      std::string key;
      TERN_RETURN_IF_ERROR(read_string(&key, "key " + std::to_string(i)));
      if (key.empty()) return error(at, "key " + std::to_string(i) + " is empty");
      const std::string what = "key " + quote(key);
      if (f->kv_index_.count(key) != 0) return error(at, what + " appears twice");
      ValueType type;
      TERN_RETURN_IF_ERROR(read_value_type(&type, what + " type"));
      Value value;
      TERN_RETURN_IF_ERROR(read_payload(type, 0, what, &value));
      f->kv_index_.emplace(key, f->kv_.size());
      f->kv_.emplace_back(std::move(key), std::move(value));
    }

    if (const Value* a = f->find_or_null(kAlignmentKey)) {
      if (a->type() != ValueType::kU32) {
        return error(
            pos, std::string("key '") + kAlignmentKey + "' is " + a->describe() + ", must be u32");
      }
      const uint64_t alignment = static_cast<uint64_t>(a->as_int().value());
      if (!is_power_of_two(alignment)) {
        return error(pos, std::string("key '") + kAlignmentKey + "' is " +
                              std::to_string(alignment) + ", not a nonzero power of two");
      }
      f->alignment_ = alignment;
    }

    // Smallest tensor info: name length + 1 byte, n_dims, one dim, type, offset.
    TERN_RETURN_IF_ERROR(check_count(8, tensor_count, 8 + 1 + 4 + 8 + 4 + 8, "tensor count"));
    f->tensors_.reserve(static_cast<size_t>(tensor_count));
    for (uint64_t i = 0; i < tensor_count; ++i) {
      TERN_RETURN_IF_ERROR(read_tensor_info(f, i));
    }

    const uint64_t header_end = pos;
    if (header_end > std::numeric_limits<uint64_t>::max() - f->alignment_) {
      return error(pos, "header end overflows");  // unreachable for real sizes
    }
    f->data_offset_ = align_up(header_end, f->alignment_);
    if (tensor_count == 0) {
      f->data_offset_ = std::min(f->data_offset_, s.size);
      return Status::Ok();
    }
    if (f->data_offset_ > s.size) {
      return error(header_end, "data section would start at " + std::to_string(f->data_offset_) +
                                   " (alignment " + std::to_string(f->alignment_) +
                                   "), past the end of the " + std::to_string(s.size) +
                                   "-byte file");
    }
    return check_placement(f);
  }

  Status read_tensor_info(GgufFile* f, uint64_t index) {
    const uint64_t at = pos;
    TensorInfo t;
    TERN_RETURN_IF_ERROR(read_string(&t.name, "tensor " + std::to_string(index) + " name"));
    if (t.name.empty() || t.name.size() > kMaxTensorName) {
      return error(at, "tensor " + std::to_string(index) + " name " + quote(t.name) + " has " +
                           std::to_string(t.name.size()) + " bytes (must be 1.." +
                           std::to_string(kMaxTensorName) + ")");
    }
    const std::string what = "tensor " + quote(t.name);
    if (f->tensor_index_.count(t.name) != 0) return error(at, what + " appears twice");

    const uint64_t dims_at = pos;
    uint32_t n_dims = 0;
    TERN_RETURN_IF_ERROR(read(&n_dims, what + " n_dims"));
    if (n_dims < 1 || n_dims > static_cast<uint32_t>(kMaxDims)) {
      return error(dims_at, what + " has n_dims " + std::to_string(n_dims) + " (must be 1.." +
                                std::to_string(kMaxDims) + ")");
    }
    t.dims.resize(n_dims);
    for (uint32_t d = 0; d < n_dims; ++d) {
      TERN_RETURN_IF_ERROR(read(&t.dims[d], what + " dim " + std::to_string(d)));
    }
    const uint64_t type_at = pos;
    uint32_t type_id = 0;
    TERN_RETURN_IF_ERROR(read(&type_id, what + " type"));
    TERN_RETURN_IF_ERROR(read(&t.offset, what + " offset"));

    // Shape errors come before type errors so that a garbage shape is reported as such.
    for (size_t d = 0; d < t.dims.size(); ++d) {
      if (t.dims[d] < 1) {
        return error(dims_at, what + " has dims " + dims_text(t.dims) + ": dim " +
                                  std::to_string(d) + " is " + std::to_string(t.dims[d]) +
                                  " (must be >= 1)");
      }
    }
    Result<GgmlType> type = parse_ggml_type(type_id);
    if (!type.ok()) return error(type_at, what + ": " + type.status().message());
    t.type = type.value();
    Result<uint64_t> bytes = tensor_byte_size(t.type, t.dims);
    if (!bytes.ok()) {
      return error(dims_at, what + " (" + type_name(t.type) + ") " + bytes.status().message());
    }
    t.bytes = bytes.value();
    f->tensor_index_.emplace(t.name, f->tensors_.size());
    f->tensors_.push_back(std::move(t));
    return Status::Ok();
  }

  // Alignment, bounds and overlap of every tensor's data.
  Status check_placement(GgufFile* f) const {
    const uint64_t data_size = s.size - f->data_offset_;
    for (const TensorInfo& t : f->tensors_) {
      if (t.offset % f->alignment_ != 0) {
        return Status::Error(s.source + ": tensor " + quote(t.name) + " offset " +
                             std::to_string(t.offset) + " is not a multiple of the alignment " +
                             std::to_string(f->alignment_));
      }
      if (t.offset > data_size || t.bytes > data_size - t.offset) {
        return Status::Error(s.source + ": tensor " + quote(t.name) + " data [" +
                             std::to_string(t.offset) + ", +" + std::to_string(t.bytes) +
                             ") runs past the end of the data section (" +
                             std::to_string(data_size) + " bytes at file offset " +
                             std::to_string(f->data_offset_) + "; truncated?)");
      }
    }
    std::vector<size_t> order(f->tensors_.size());
    std::iota(order.begin(), order.end(), size_t{0});
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return f->tensors_[a].offset < f->tensors_[b].offset; });
    for (size_t i = 1; i < order.size(); ++i) {
      const TensorInfo& prev = f->tensors_[order[i - 1]];
      const TensorInfo& next = f->tensors_[order[i]];
      if (prev.offset + prev.bytes > next.offset) {
        return Status::Error(s.source + ": tensors " + quote(prev.name) + " [" +
                             std::to_string(prev.offset) + ", +" + std::to_string(prev.bytes) +
                             ") and " + quote(next.name) + " [" + std::to_string(next.offset) +
                             ", +" + std::to_string(next.bytes) + ") overlap");
      }
    }
    return Status::Ok();
  }
};

Result<GgufFile> GgufFile::open(const std::string& path) {
  auto storage = std::make_shared<Storage>();
  storage->source = "gguf " + quote(path);
  TERN_ASSIGN_OR_RETURN(storage->file, MappedFile::open(path, storage->source));
  storage->data = storage->file->bytes().data();
  storage->size = storage->file->bytes().size();
  if (storage->size == 0) {
    return Status::Error(storage->source + ": file is empty (0 bytes), not GGUF");
  }
  return parse_storage(std::move(storage));
}

Result<GgufFile> GgufFile::parse(std::vector<uint8_t> bytes) {
  auto storage = std::make_shared<Storage>();
  storage->source = "gguf <memory>";
  storage->file = MappedFile::from_buffer(std::move(bytes));
  storage->data = storage->file->bytes().data();
  storage->size = storage->file->bytes().size();
  return parse_storage(std::move(storage));
}

Result<GgufFile> GgufFile::parse_storage(std::shared_ptr<const Storage> storage) {
  GgufFile f;
  f.storage_ = storage;
  Parser parser{*storage};
  TERN_RETURN_IF_ERROR(parser.parse(&f));
  return f;
}

std::span<const uint8_t> GgufFile::bytes() const {
  return {storage_->data, static_cast<size_t>(storage_->size)};
}

const Value* GgufFile::find_or_null(std::string_view key) const {
  const auto it = kv_index_.find(key);
  return it == kv_index_.end() ? nullptr : &kv_[it->second].second;
}

const Value* GgufFile::find(std::string_view key) const {
  return find_or_null(key);
}

std::vector<std::string> GgufFile::keys() const {
  std::vector<std::string> out;
  out.reserve(kv_.size());
  for (const auto& [key, value] : kv_) out.push_back(key);
  return out;
}

Result<const Value*> GgufFile::require(std::string_view key) const {
  const Value* v = find_or_null(key);
  if (v == nullptr) return Status::Error(storage_->source + ": no key " + quote(key));
  return v;
}

namespace {
// Runs a typed Value read and prefixes its error with the source and key.
template <typename T>
Result<T> typed(const std::string& source, std::string_view key, Result<T> r) {
  if (r.ok()) return r;
  return Status::Error(source + ": key " + quote(key) + " " + r.status().message());
}
}  // namespace

Result<std::string> GgufFile::get_string(std::string_view key) const {
  TERN_ASSIGN_OR_RETURN(const Value* v, require(key));
  return typed(storage_->source, key, v->as_string());
}
Result<int64_t> GgufFile::get_int(std::string_view key) const {
  TERN_ASSIGN_OR_RETURN(const Value* v, require(key));
  return typed(storage_->source, key, v->as_int());
}
Result<double> GgufFile::get_float(std::string_view key) const {
  TERN_ASSIGN_OR_RETURN(const Value* v, require(key));
  return typed(storage_->source, key, v->as_float());
}
Result<bool> GgufFile::get_bool(std::string_view key) const {
  TERN_ASSIGN_OR_RETURN(const Value* v, require(key));
  return typed(storage_->source, key, v->as_bool());
}
Result<std::vector<std::string>> GgufFile::get_string_array(std::string_view key) const {
  TERN_ASSIGN_OR_RETURN(const Value* v, require(key));
  return typed(storage_->source, key, v->as_string_array());
}
Result<std::vector<float>> GgufFile::get_float_array(std::string_view key) const {
  TERN_ASSIGN_OR_RETURN(const Value* v, require(key));
  return typed(storage_->source, key, v->as_float_array());
}
Result<std::vector<int64_t>> GgufFile::get_int_array(std::string_view key) const {
  TERN_ASSIGN_OR_RETURN(const Value* v, require(key));
  return typed(storage_->source, key, v->as_int_array());
}

const TensorInfo* GgufFile::find_tensor(std::string_view name) const {
  const auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::span<const uint8_t> GgufFile::tensor_bytes(const TensorInfo& info) const {
  const uint64_t data_size = storage_->size - data_offset_;
  TERN_CHECK(info.offset <= data_size && info.bytes <= data_size - info.offset, "tensor '",
             info.name, "' [", info.offset, ", +", info.bytes, ") is not inside this file");
  return {storage_->data + data_offset_ + info.offset, static_cast<size_t>(info.bytes)};
}

Status GgufFile::read_tensor_f32(const TensorInfo& info, std::span<float> out) const {
  const Result<uint64_t> expected = tensor_byte_size(info.type, info.dims);
  TERN_CHECK(expected.ok() && expected.value() == info.bytes, "tensor '", info.name,
             "' info is inconsistent (not from a parsed file?)");
  const int64_t n = info.elements();
  if (out.size() != static_cast<size_t>(n)) {
    return Status::Error(storage_->source + ": read tensor " + quote(info.name) + ": output has " +
                         std::to_string(out.size()) + " floats, the tensor has " +
                         std::to_string(n) + " elements");
  }
  dequantize_row(info.type, tensor_bytes(info).data(), n, out.data());
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Writer

GgufWriter GgufWriter::from_file(const GgufFile& file) {
  GgufWriter w;
  w.version_ = file.version_;
  w.kv_ = file.kv_;
  w.keep_alive_ = file.storage_;
  w.tensors_.reserve(file.tensors_.size());
  for (const TensorInfo& t : file.tensors_) {
    Tensor copy;
    copy.name = t.name;
    copy.type = t.type;
    copy.dims = t.dims;
    copy.borrowed = file.tensor_bytes(t);
    w.tensors_.push_back(std::move(copy));
  }
  return w;
}

void GgufWriter::set_value(std::string key, Value v) {
  TERN_CHECK(!key.empty(), "empty GGUF key");
  TERN_CHECK(array_depth(v) <= kMaxArrayDepth, "key '", key, "': arrays nest deeper than ",
             kMaxArrayDepth);
  if (key == kAlignmentKey) {
    TERN_CHECK(v.type() == ValueType::kU32 && is_power_of_two(v.as_int().value()), kAlignmentKey,
               " must be a u32 nonzero power of two, got ", v.describe());
  }
  for (auto& [k, value] : kv_) {
    if (k == key) {
      value = std::move(v);
      return;
    }
  }
  kv_.emplace_back(std::move(key), std::move(v));
}

void GgufWriter::set_string(std::string key, std::string v) {
  set_value(std::move(key), Value::string(std::move(v)));
}
void GgufWriter::set_u32(std::string key, uint32_t v) {
  set_value(std::move(key), Value::u32(v));
}
void GgufWriter::set_i32(std::string key, int32_t v) {
  set_value(std::move(key), Value::i32(v));
}
void GgufWriter::set_u64(std::string key, uint64_t v) {
  set_value(std::move(key), Value::u64(v));
}
void GgufWriter::set_f32(std::string key, float v) {
  set_value(std::move(key), Value::f32(v));
}
void GgufWriter::set_bool(std::string key, bool v) {
  set_value(std::move(key), Value::boolean(v));
}
void GgufWriter::set_string_array(std::string key, std::vector<std::string> v) {
  set_value(std::move(key), Value::string_array(std::move(v)));
}
void GgufWriter::set_f32_array(std::string key, std::vector<float> v) {
  set_value(std::move(key), Value::array(v));
}
void GgufWriter::set_i32_array(std::string key, std::vector<int32_t> v) {
  set_value(std::move(key), Value::array(v));
}

bool GgufWriter::remove_key(std::string_view key) {
  const auto it =
      std::find_if(kv_.begin(), kv_.end(), [&](const auto& kv) { return kv.first == key; });
  if (it == kv_.end()) return false;
  kv_.erase(it);
  return true;
}

const Value* GgufWriter::find(std::string_view key) const {
  for (const auto& [k, v] : kv_) {
    if (k == key) return &v;
  }
  return nullptr;
}

void GgufWriter::add_tensor(std::string name, GgmlType type, std::vector<int64_t> dims,
                            std::vector<uint8_t> data) {
  TERN_CHECK(!name.empty() && name.size() <= kMaxTensorName, "tensor name '", name, "' has ",
             name.size(), " bytes (must be 1..", kMaxTensorName, ")");
  for (const Tensor& t : tensors_) TERN_CHECK(t.name != name, "duplicate tensor '", name, "'");
  const Result<uint64_t> bytes = tensor_byte_size(type, dims);
  TERN_CHECK(bytes.ok(), "tensor '", name, "' ", bytes.status().message());
  TERN_CHECK(data.size() == bytes.value(), "tensor '", name, "' ", type_name(type), dims_text(dims),
             " needs ", bytes.value(), " bytes, got ", data.size());
  Tensor t;
  t.name = std::move(name);
  t.type = type;
  t.dims = std::move(dims);
  t.owned = std::move(data);
  tensors_.push_back(std::move(t));
}

uint64_t GgufWriter::alignment() const {
  const Value* a = find(kAlignmentKey);
  return a == nullptr ? kDefaultAlignment : static_cast<uint64_t>(a->as_int().value());
}

void GgufWriter::emit(const std::function<void(const uint8_t*, size_t)>& sink) const {
  const uint64_t align = alignment();
  static constexpr uint8_t kZeros[256] = {};
  const auto pad = [&](uint64_t written) {
    uint64_t n = align_up(written, align) - written;
    while (n > 0) {
      const uint64_t chunk = std::min<uint64_t>(n, sizeof(kZeros));
      sink(kZeros, chunk);
      n -= chunk;
    }
  };

  std::vector<uint8_t> head;
  ValueCodec::put_u32(&head, kMagic);
  ValueCodec::put_u32(&head, version_);
  ValueCodec::put_u64(&head, tensors_.size());
  ValueCodec::put_u64(&head, kv_.size());
  for (const auto& [key, value] : kv_) {
    ValueCodec::put_string(&head, key);
    ValueCodec::put_u32(&head, static_cast<uint32_t>(value.type()));
    ValueCodec::put_payload(&head, value);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    ValueCodec::put_string(&head, t.name);
    ValueCodec::put_u32(&head, static_cast<uint32_t>(t.dims.size()));
    for (const int64_t d : t.dims) ValueCodec::put_u64(&head, static_cast<uint64_t>(d));
    ValueCodec::put_u32(&head, static_cast<uint32_t>(t.type));
    ValueCodec::put_u64(&head, offset);
    offset = align_up(offset + t.data().size(), align);
  }
  sink(head.data(), head.size());
  // Without tensors there is no data section to align. gguf-py ends such files (vocab-only
  // GGUFs) right here, ggml's writer pads them; both read the same, and stopping here lets
  // tern reproduce llama.cpp's published vocab files byte for byte.
  if (tensors_.empty()) return;
  pad(head.size());
  for (const Tensor& t : tensors_) {
    const std::span<const uint8_t> data = t.data();
    if (!data.empty()) sink(data.data(), data.size());
    pad(data.size());  // the data section starts aligned, so this aligns the file offset
  }
}

std::vector<uint8_t> GgufWriter::serialize() const {
  std::vector<uint8_t> out;
  emit([&](const uint8_t* p, size_t n) { out.insert(out.end(), p, p + n); });
  return out;
}

namespace {

// Writes everything or remembers the first error; small pieces are gathered into one buffer.
class FdWriter {
 public:
  explicit FdWriter(int fd) : fd_(fd) { buffer_.reserve(kBufferBytes); }

  void append(const uint8_t* p, size_t n) {
    if (!status_.ok()) return;
    if (buffer_.size() + n > kBufferBytes) flush();
    if (n >= kBufferBytes) {
      write_all(p, n);
    } else {
      buffer_.insert(buffer_.end(), p, p + n);
    }
  }
  Status finish() {
    flush();
    return status_;
  }

 private:
  static constexpr size_t kBufferBytes = size_t{1} << 20;

  void flush() {
    if (!buffer_.empty()) write_all(buffer_.data(), buffer_.size());
    buffer_.clear();
  }
  void write_all(const uint8_t* p, size_t n) {
    if (!status_.ok()) return;
    size_t written = 0;
    status_ = tern::write_all(fd_, p, n, written);
  }

  int fd_;
  std::vector<uint8_t> buffer_;
  Status status_;
};

}  // namespace

Status GgufWriter::write(const std::string& path) const {
  return write_file_atomically(path, "write gguf " + quote(path), [&](int fd) {
    FdWriter writer(fd);
    emit([&](const uint8_t* p, size_t n) { writer.append(p, n); });
    return writer.finish();
  });
}

}  // namespace tern::gguf
