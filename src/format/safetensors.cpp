#include "format/safetensors.h"

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
#include <fstream>
#include <functional>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <system_error>
#include <tuple>
#include <utility>

namespace tern::safetensors {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; this reader copies it as is");

namespace {

using Json = nlohmann::json;

std::string quote(std::string_view value) {
  return quote_for_message(value);
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i > 0) out += ", ";
    out += std::to_string(shape[i]);
  }
  return out + "]";
}

std::string range_text(uint64_t begin, uint64_t end) {
  return "[" + std::to_string(begin) + ", " + std::to_string(end) + ")";
}

struct DTypeName {
  DType dtype;
  const char* name;
  size_t size;
};

constexpr DTypeName kDTypes[] = {
    {DType::kF32, "F32", 4},   {DType::kF16, "F16", 2}, {DType::kBF16, "BF16", 2},
    {DType::kF64, "F64", 8},   {DType::kI8, "I8", 1},   {DType::kU8, "U8", 1},
    {DType::kI16, "I16", 2},   {DType::kU16, "U16", 2}, {DType::kI32, "I32", 4},
    {DType::kU32, "U32", 4},   {DType::kI64, "I64", 8}, {DType::kU64, "U64", 8},
    {DType::kBool, "BOOL", 1},
};

const DTypeName& dtype_entry(DType dtype) {
  for (const DTypeName& d : kDTypes) {
    if (d.dtype == dtype) return d;
  }
  TERN_CHECK(false, "unknown safetensors dtype ", static_cast<int>(dtype));
  return kDTypes[0];
}

// Overflow-checked element count; nullopt when it does not fit in int64. A zero dim makes
// the count 0 whatever the other dims are.
std::optional<int64_t> checked_elements(const std::vector<int64_t>& shape) {
  if (std::find(shape.begin(), shape.end(), 0) != shape.end()) return 0;
  int64_t n = 1;
  for (const int64_t d : shape) {
    if (__builtin_mul_overflow(n, d, &n)) return std::nullopt;
  }
  return n;
}

// One tensor entry as the header parser collects it, before validation.
struct RawTensor {
  std::string name;
  bool has_dtype = false, has_shape = false, has_offsets = false;
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  std::vector<uint64_t> offsets;
};

// A SAX handler that checks the header's structure while nlohmann tokenizes it, so no JSON
// tree is ever built and duplicate keys (which a tree would silently merge) are visible.
// The first problem stops the parse; error() then holds the message.
class HeaderSax {
 public:
  using number_integer_t = Json::number_integer_t;
  using number_unsigned_t = Json::number_unsigned_t;
  using number_float_t = Json::number_float_t;
  using string_t = Json::string_t;
  using binary_t = Json::binary_t;

  bool null() { return unexpected("null"); }
  bool boolean(bool) { return unexpected("a boolean"); }
  bool number_integer(number_integer_t v) {
    // The lexer hands out "-0" as a signed zero; every other signed value is negative.
    if (v == 0) return number_unsigned(0);
    if (state_ == State::kShape)
      return fail(where() + "shape dim " + std::to_string(v) + " is negative");
    if (state_ == State::kOffsets) {
      return fail(where() + "data_offsets entry " + std::to_string(v) + " is negative");
    }
    return unexpected("a number");
  }
  bool number_unsigned(number_unsigned_t v) {
    if (state_ == State::kShape) {
      if (tensor().shape.size() == kMaxDims) {
        return fail(where() + "shape has more than " + std::to_string(kMaxDims) + " dims");
      }
      if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return fail(where() + "shape dim " + std::to_string(v) + " does not fit in int64");
      }
      tensor().shape.push_back(static_cast<int64_t>(v));
      return true;
    }
    if (state_ == State::kOffsets) {
      if (tensor().offsets.size() == 2)
        return fail(where() + "data_offsets has more than 2 entries");
      tensor().offsets.push_back(v);
      return true;
    }
    return unexpected("a number");
  }
  bool number_float(number_float_t, const string_t& text) {
    if (state_ == State::kShape || state_ == State::kOffsets) {
      return fail(where() + (state_ == State::kShape ? "shape dim " : "data_offsets entry ") +
                  quote(text) + " is not an integer");
    }
    return unexpected("a number");
  }
  bool string(string_t& v) {
    if (state_ == State::kMetadata && pending_) {
      pending_ = false;
      metadata_[key_] = std::move(v);
      return true;
    }
    if (state_ == State::kTensor && pending_ && key_ == "dtype") {
      pending_ = false;
      for (const DTypeName& d : kDTypes) {
        if (v == d.name) {
          tensor().dtype = d.dtype;
          return true;
        }
      }
      return fail(where() + "unsupported dtype " + quote(v) +
                  " (supported: F32 F16 BF16 F64 I8 U8 I16 U16 I32 U32 I64 U64 BOOL)");
    }
    return unexpected("a string");
  }
  bool binary(binary_t&) { return unexpected("a binary value"); }

  bool start_object(std::size_t) {
    if (state_ == State::kStart) {
      state_ = State::kTop;
      return true;
    }
    if (state_ == State::kTop && pending_) {
      pending_ = false;
      if (key_ == "__metadata__") {
        state_ = State::kMetadata;
      } else {
        tensors_.emplace_back();
        tensors_.back().name = key_;
        state_ = State::kTensor;
      }
      return true;
    }
    return unexpected("an object");
  }
  bool key(string_t& k) {
    switch (state_) {
      case State::kTop:
        if (!top_keys_.insert(k).second) {
          return fail(k == "__metadata__" ? "__metadata__ appears twice in the header"
                                          : "tensor " + quote(k) + " appears twice in the header");
        }
        break;
      case State::kMetadata:
        if (metadata_.count(k) != 0) {
          return fail("__metadata__ key " + quote(k) + " appears twice");
        }
        break;
      case State::kTensor: {
        RawTensor& t = tensor();
        bool* seen = k == "dtype"          ? &t.has_dtype
                     : k == "shape"        ? &t.has_shape
                     : k == "data_offsets" ? &t.has_offsets
                                           : nullptr;
        if (seen == nullptr) {
          return fail(where() + "unknown field " + quote(k) +
                      " (expected dtype, shape, data_offsets)");
        }
        if (*seen) return fail(where() + "field " + quote(k) + " appears twice");
        *seen = true;
        break;
      }
      default:
        TERN_CHECK(false, "JSON key outside an object");
    }
    key_ = std::move(k);
    pending_ = true;
    return true;
  }
  bool end_object() {
    switch (state_) {
      case State::kTop:
        state_ = State::kDone;
        return true;
      case State::kMetadata:
        state_ = State::kTop;
        return true;
      case State::kTensor: {
        const RawTensor& t = tensor();
        const char* missing = !t.has_dtype     ? "dtype"
                              : !t.has_shape   ? "shape"
                              : !t.has_offsets ? "data_offsets"
                                               : nullptr;
        if (missing != nullptr) return fail(where() + "no " + missing + " field");
        state_ = State::kTop;
        return true;
      }
      default:
        TERN_CHECK(false, "JSON object end outside an object");
        return false;
    }
  }
  bool start_array(std::size_t) {
    if (state_ == State::kTensor && pending_ && key_ == "shape") {
      pending_ = false;
      state_ = State::kShape;
      return true;
    }
    if (state_ == State::kTensor && pending_ && key_ == "data_offsets") {
      pending_ = false;
      state_ = State::kOffsets;
      return true;
    }
    return unexpected("an array");
  }
  bool end_array() {
    if (state_ == State::kShape) {
      state_ = State::kTensor;
      return true;
    }
    if (state_ == State::kOffsets) {
      if (tensor().offsets.size() != 2) {
        return fail(where() + "data_offsets has " + std::to_string(tensor().offsets.size()) +
                    " entries, expected 2");
      }
      state_ = State::kTensor;
      return true;
    }
    TERN_CHECK(false, "JSON array end outside an array");
    return false;
  }
  bool parse_error(std::size_t position, const std::string& last_token,
                   const nlohmann::json::exception& ex) {
    // nlohmann's message embeds the last token, which may hold any bytes: keep only its prefix
    // up to the token and quote the token ourselves.
    std::string what = ex.what();
    const size_t cut = what.find("; last read:");
    if (cut != std::string::npos) what.resize(cut);
    return fail("header is not valid JSON at header byte " + std::to_string(position) + " (" +
                what + "; last read " + quote(last_token) + ")");
  }

  const std::string& error() const { return error_; }
  bool done() const { return state_ == State::kDone; }
  std::vector<RawTensor>& tensors() { return tensors_; }
  std::map<std::string, std::string>& metadata() { return metadata_; }

 private:
  enum class State { kStart, kTop, kMetadata, kTensor, kShape, kOffsets, kDone };

  RawTensor& tensor() { return tensors_.back(); }
  std::string where() const { return "tensor " + quote(tensors_.back().name) + ": "; }

  bool fail(std::string message) {
    if (error_.empty()) error_ = std::move(message);
    return false;
  }
  // A value of this JSON kind ("a number", "an array", "null") where the grammar has no place
  // for it.
  bool unexpected(const char* kind) {
    const std::string k = kind;
    switch (state_) {
      case State::kStart:
        return fail("header is " + k + ", not a JSON object");
      case State::kTop:
        return fail(key_ == "__metadata__"
                        ? "__metadata__ is " + k + ", not an object"
                        : "tensor " + quote(key_) + " is " + k + ", not an object");
      case State::kMetadata:
        return fail("__metadata__ value for key " + quote(key_) + " is " + k + ", not a string");
      case State::kTensor:
        return fail(where() + key_ + " is " + k + ", expected " +
                    (key_ == "dtype" ? "a string" : "an array"));
      case State::kShape:
        return fail(where() + "shape dim is " + k + ", not an integer");
      case State::kOffsets:
        return fail(where() + "data_offsets entry is " + k + ", not an integer");
      case State::kDone:
        break;
    }
    return fail("unexpected " + k + " after the header object");
  }

  State state_ = State::kStart;
  bool pending_ = false;  // a key was read and its value is next
  std::string key_;
  std::set<std::string> top_keys_;
  std::vector<RawTensor> tensors_;
  std::map<std::string, std::string> metadata_;
  std::string error_;
};

uint64_t read_u64_le(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu;
  const uint32_t mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf, or NaN with its payload
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {
    // Subnormal half: mantissa · 2^-24. Normalise it for fp32, where it is a normal number.
    const int shift = std::countl_zero(mantissa) - 21;  // brings the leading 1 to bit 10
    bits = sign | (static_cast<uint32_t>(113 - shift) << 23) | ((mantissa << shift) & 0x3ffu) << 13;
  }
  return std::bit_cast<float>(bits);
}

float bf16_to_f32(uint16_t h) {
  return std::bit_cast<float>(static_cast<uint32_t>(h) << 16);
}

// Reads a whole small file (JSON configs); `what` names it in errors.
Result<std::string> read_text_file(const std::string& path, const std::string& what,
                                   size_t max_bytes) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const std::string why = errno != 0 ? ": " + errno_text(errno) : "";
    return Status::Error(what + ": cannot open" + why);
  }
  std::string data;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    data.append(buf, static_cast<size_t>(in.gcount()));
    if (data.size() > max_bytes) {
      return Status::Error(what + ": larger than " + std::to_string(max_bytes) + " bytes");
    }
  }
  if (in.bad()) return Status::Error(what + ": read error");
  return data;
}

// Records nlohmann's parse error (position and message) without exceptions; every other event
// is accepted. Used to explain why a JSON file did not parse.
struct ErrorProbeSax : nlohmann::json_sax<Json> {
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t&) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t position, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    std::string what = ex.what();
    const size_t cut = what.find("; last read:");
    if (cut != std::string::npos) what.resize(cut);
    message = "not valid JSON at byte " + std::to_string(position) + " (" + what + ")";
    return false;
  }
  std::string message;
};

// Parses a JSON document that must be an object; `what` names it in errors.
Result<Json> parse_json_object(const std::string& text, const std::string& what) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    ErrorProbeSax probe;
    Json::sax_parse(text, &probe);
    return Status::Error(what + ": " + (probe.message.empty() ? "not valid JSON" : probe.message));
  }
  if (!j.is_object()) {
    return Status::Error(what + ": is a JSON " + std::string(j.type_name()) + ", not an object");
  }
  return j;
}

// A shard file name from the index: a plain name inside the checkpoint directory.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name != ".." &&
         name.find_first_of(std::string_view("/\\\0", 3)) == std::string::npos;
}

}  // namespace

const char* dtype_name(DType dtype) {
  return dtype_entry(dtype).name;
}
size_t dtype_size(DType dtype) {
  return dtype_entry(dtype).size;
}
bool is_float(DType dtype) {
  return dtype == DType::kF32 || dtype == DType::kF16 || dtype == DType::kBF16 ||
         dtype == DType::kF64;
}

int64_t TensorInfo::elements() const {
  const std::optional<int64_t> n = checked_elements(shape);
  TERN_CHECK(n.has_value(), "tensor '", name,
             "' element count overflows (not from a parsed file?)");
  return *n;
}

// The file's bytes: an mmap (open) or an owned buffer (parse).
struct SafetensorsFile::Storage {
  std::string source;
  std::shared_ptr<const MappedFile> file;
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};

Result<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto storage = std::make_shared<Storage>();
  storage->source = "safetensors " + quote(path);
  TERN_ASSIGN_OR_RETURN(storage->file, MappedFile::open(path, storage->source));
  storage->data = storage->file->bytes().data();
  storage->size = storage->file->bytes().size();
  return parse_storage(std::move(storage));
}

Result<SafetensorsFile> SafetensorsFile::parse(std::vector<uint8_t> bytes) {
  auto storage = std::make_shared<Storage>();
  storage->source = "safetensors <memory>";
  storage->file = MappedFile::from_buffer(std::move(bytes));
  storage->data = storage->file->bytes().data();
  storage->size = storage->file->bytes().size();
  return parse_storage(std::move(storage));
}

Result<SafetensorsFile> SafetensorsFile::parse_storage(std::shared_ptr<const Storage> storage) {
  const std::string& src = storage->source;
  const uint64_t size = storage->size;
  if (size < 8) {
    return Status::Error(src + ": file is " + std::to_string(size) +
                         " bytes, too short for the 8-byte header length");
  }
  const uint64_t header_len = read_u64_le(storage->data);
  if (header_len < 2) {
    return Status::Error(src + ": header length " + std::to_string(header_len) +
                         " is too small for a JSON object (min 2)");
  }
  if (header_len > kMaxHeaderBytes) {
    return Status::Error(src + ": header length " + std::to_string(header_len) +
                         " exceeds the limit of " + std::to_string(kMaxHeaderBytes) + " bytes");
  }
  if (header_len > size - 8) {
    return Status::Error(src + ": header length " + std::to_string(header_len) + " exceeds the " +
                         std::to_string(size - 8) + " bytes after the length field");
  }
  const auto* header = reinterpret_cast<const char*>(storage->data + 8);
  HeaderSax sax;
  const bool parsed = Json::sax_parse(header, header + header_len, &sax);
  if (!parsed || !sax.done()) {
    return Status::Error(src + ": " +
                         (sax.error().empty() ? "header is incomplete JSON" : sax.error()));
  }

  SafetensorsFile f;
  f.storage_ = storage;
  f.data_offset_ = 8 + header_len;
  const uint64_t data_size = size - f.data_offset_;
  f.metadata_ = std::move(sax.metadata());
  f.tensors_.reserve(sax.tensors().size());
  for (RawTensor& raw : sax.tensors()) {
    const std::string where = src + ": tensor " + quote(raw.name) + ": ";
    const std::optional<int64_t> elements = checked_elements(raw.shape);
    if (!elements) {
      return Status::Error(where + "shape " + shape_text(raw.shape) +
                           " has more elements than fit in int64");
    }
    const uint64_t begin = raw.offsets[0], end = raw.offsets[1];
    const std::string offsets =
        "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "]";
    if (begin > end) return Status::Error(where + offsets + " are decreasing");
    if (end > data_size) {
      return Status::Error(where + offsets + " extend past the " + std::to_string(data_size) +
                           "-byte data section");
    }
    uint64_t want = 0;
    const bool overflow = __builtin_mul_overflow(static_cast<uint64_t>(*elements),
                                                 uint64_t{dtype_size(raw.dtype)}, &want);
    if (overflow || want != end - begin) {
      return Status::Error(where + offsets + " hold " + std::to_string(end - begin) +
                           " bytes, but " + dtype_name(raw.dtype) + " " + shape_text(raw.shape) +
                           " needs " + (overflow ? "more than 2^64" : std::to_string(want)));
    }
    f.tensors_.push_back(TensorInfo{.name = std::move(raw.name),
                                    .dtype = raw.dtype,
                                    .shape = std::move(raw.shape),
                                    .begin = begin,
                                    .end = end});
  }

  // The tensors must tile the data section: no holes, no overlaps, nothing trailing.
  std::vector<const TensorInfo*> by_offset;
  by_offset.reserve(f.tensors_.size());
  for (const TensorInfo& t : f.tensors_) by_offset.push_back(&t);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return std::tie(a->begin, a->end, a->name) < std::tie(b->begin, b->end, b->name);
  });
  uint64_t pos = 0;
  const TensorInfo* prev = nullptr;
  for (const TensorInfo* t : by_offset) {
    if (t->begin < pos) {
      return Status::Error(src + ": tensors " + quote(prev->name) + " " +
                           range_text(prev->begin, prev->end) + " and " + quote(t->name) + " " +
                           range_text(t->begin, t->end) + " overlap");
    }
    if (t->begin > pos) {
      return Status::Error(src + ": data bytes " + range_text(pos, t->begin) +
                           " belong to no tensor (a hole before " + quote(t->name) + ")");
    }
    pos = t->end;
    prev = t;
  }
  if (pos != data_size) {
    return Status::Error(
        src + ": data bytes " + range_text(pos, data_size) + " belong to no tensor" +
        (prev ? " (after " + quote(prev->name) + ")" : " (the header lists none)"));
  }

  std::sort(f.tensors_.begin(), f.tensors_.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return f;
}

const std::string& SafetensorsFile::source() const {
  return storage_->source;
}

const TensorInfo* SafetensorsFile::find(std::string_view name) const {
  const auto it = std::lower_bound(
      tensors_.begin(), tensors_.end(), name,
      [](const TensorInfo& t, std::string_view n) { return std::string_view(t.name) < n; });
  return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

std::span<const uint8_t> SafetensorsFile::bytes(const TensorInfo& info) const {
  const std::less<const TensorInfo*> before;
  TERN_CHECK(!tensors_.empty() && !before(&info, tensors_.data()) &&
                 before(&info, tensors_.data() + tensors_.size()),
             "tensor '", info.name, "' is not from ", storage_->source);
  return {storage_->data + data_offset_ + info.begin, static_cast<size_t>(info.end - info.begin)};
}

Status SafetensorsFile::read_f32(const TensorInfo& info, std::span<float> out) const {
  const std::string where = storage_->source + ": read tensor " + quote(info.name);
  if (!is_float(info.dtype)) {
    return Status::Error(where + ": dtype " + dtype_name(info.dtype) +
                         " is not a float type (read it with bytes())");
  }
  const int64_t n = info.elements();
  if (out.size() != static_cast<size_t>(n)) {
    return Status::Error(where + ": output has " + std::to_string(out.size()) +
                         " floats, the tensor has " + std::to_string(n) + " elements");
  }
  const uint8_t* p = bytes(info).data();
  const auto count = static_cast<size_t>(n);
  switch (info.dtype) {
    case DType::kF32:
      if (count > 0) std::memcpy(out.data(), p, count * sizeof(float));
      break;
    case DType::kF16:
    case DType::kBF16:
      for (size_t i = 0; i < count; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, sizeof h);
        out[i] = info.dtype == DType::kF16 ? f16_to_f32(h) : bf16_to_f32(h);
      }
      break;
    case DType::kF64:
      for (size_t i = 0; i < count; ++i) {
        double d;
        std::memcpy(&d, p + 8 * i, sizeof d);
        out[i] = static_cast<float>(d);  // IEEE: nearest, ±inf beyond the float range
      }
      break;
    default:
      TERN_CHECK(false, "is_float() and read_f32 disagree");
  }
  return Status::Ok();
}

Result<std::vector<float>> SafetensorsFile::read_f32(const TensorInfo& info) const {
  if (!is_float(info.dtype)) {
    return Status::Error(storage_->source + ": read tensor " + quote(info.name) + ": dtype " +
                         dtype_name(info.dtype) + " is not a float type (read it with bytes())");
  }
  std::vector<float> out(static_cast<size_t>(info.elements()));
  TERN_RETURN_IF_ERROR(read_f32(info, std::span<float>(out)));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Checkpoint directories

namespace {

constexpr size_t kMaxConfigBytes = size_t{16} << 20;
constexpr size_t kMaxIndexBytes = size_t{64} << 20;

}  // namespace

Result<SafetensorsDir> SafetensorsDir::open(const std::string& dir) {
  namespace fs = std::filesystem;
  const std::string src = "checkpoint " + quote(dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return Status::Error(src + ": not a directory");

  SafetensorsDir d;
  d.dir_ = dir;
  const fs::path root(dir);
  {
    const std::string what = src + ": config.json";
    TERN_ASSIGN_OR_RETURN(std::string text,
                          read_text_file((root / "config.json").string(), what, kMaxConfigBytes));
    TERN_ASSIGN_OR_RETURN(Json config, parse_json_object(text, what));
    d.config_ = std::make_shared<const Json>(std::move(config));
  }

  const fs::path index_path = root / "model.safetensors.index.json";
  const fs::path single_path = root / "model.safetensors";
  if (fs::exists(index_path, ec)) {
    const std::string what = src + ": model.safetensors.index.json";
    TERN_ASSIGN_OR_RETURN(std::string text,
                          read_text_file(index_path.string(), what, kMaxIndexBytes));
    TERN_ASSIGN_OR_RETURN(Json index, parse_json_object(text, what));
    const auto wm = index.find("weight_map");
    if (wm == index.end() || !wm->is_object()) {
      return Status::Error(what + ": no \"weight_map\" object");
    }
    // weight_map: tensor → shard file. Open each distinct shard once, in name order.
    std::map<std::string, std::string> weight_map;
    std::map<std::string, size_t> shard_slot;
    for (const auto& [tensor, file] : wm->items()) {
      if (!file.is_string()) {
        return Status::Error(what + ": weight_map entry for " + quote(tensor) + " is a " +
                             file.type_name() + ", not a file name");
      }
      const std::string& name = file.get_ref<const std::string&>();
      if (!is_plain_file_name(name)) {
        return Status::Error(what + ": weight_map entry for " + quote(tensor) + " names " +
                             quote(name) + ", not a file in the checkpoint directory");
      }
      weight_map[tensor] = name;
      shard_slot.emplace(name, 0);
    }
    if (shard_slot.empty()) return Status::Error(what + ": weight_map is empty");
    for (auto& [name, slot] : shard_slot) {
      TERN_ASSIGN_OR_RETURN(SafetensorsFile shard, SafetensorsFile::open((root / name).string()));
      slot = d.files_.size();
      d.files_.push_back(std::move(shard));
    }
    for (const auto& [tensor, name] : weight_map) {
      const size_t slot = shard_slot.at(name);
      if (d.files_[slot].find(tensor) == nullptr) {
        return Status::Error(what + ": lists tensor " + quote(tensor) + " in " + quote(name) +
                             ", which has no such tensor");
      }
      d.index_.emplace(tensor, slot);
    }
    for (const auto& [name, slot] : shard_slot) {
      for (const TensorInfo& t : d.files_[slot].tensors()) {
        const auto it = weight_map.find(t.name);
        if (it == weight_map.end()) {
          return Status::Error(what + ": shard " + quote(name) + " holds tensor " + quote(t.name) +
                               ", which the index does not list");
        }
        if (it->second != name) {
          return Status::Error(what + ": tensor " + quote(t.name) + " is in both " + quote(name) +
                               " and " + quote(it->second));
        }
      }
    }
  } else if (fs::exists(single_path, ec)) {
    TERN_ASSIGN_OR_RETURN(SafetensorsFile file, SafetensorsFile::open(single_path.string()));
    for (const TensorInfo& t : file.tensors()) d.index_.emplace(t.name, 0);
    d.files_.push_back(std::move(file));
  } else {
    return Status::Error(src + ": has neither model.safetensors nor model.safetensors.index.json");
  }
  return d;
}

const TensorInfo* SafetensorsDir::find(std::string_view name, const SafetensorsFile** file) const {
  const auto it = index_.find(name);
  if (it == index_.end()) {
    if (file != nullptr) *file = nullptr;
    return nullptr;
  }
  const SafetensorsFile& f = files_[it->second];
  if (file != nullptr) *file = &f;
  return f.find(name);
}

std::vector<std::string> SafetensorsDir::tensor_names() const {
  std::vector<std::string> names;
  names.reserve(index_.size());
  for (const auto& [name, slot] : index_) names.push_back(name);
  return names;
}

}  // namespace tern::safetensors
