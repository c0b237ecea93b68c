#include "support/golden_file.h"

#include <cstring>
#include <fstream>
#include <iterator>

namespace tern::testing {

std::span<const float> GoldenRecord::f32() const {
  TERN_CHECK(type == GoldenType::kF32);
  return {reinterpret_cast<const float*>(bytes.data()), bytes.size() / 4};
}
std::span<const int32_t> GoldenRecord::i32() const {
  TERN_CHECK(type == GoldenType::kI32);
  return {reinterpret_cast<const int32_t*>(bytes.data()), bytes.size() / 4};
}
std::span<const int8_t> GoldenRecord::i8() const {
  TERN_CHECK(type == GoldenType::kI8);
  return {reinterpret_cast<const int8_t*>(bytes.data()), bytes.size()};
}
std::string GoldenRecord::text() const {
  TERN_CHECK(type == GoldenType::kText);
  return {bytes.begin(), bytes.end()};
}
int64_t GoldenRecord::elements() const {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

namespace {

class Cursor {
 public:
  Cursor(const std::vector<uint8_t>& data, const std::string& path) : data_(data), path_(path) {}
  Status read(void* out, size_t n, const char* what) {
    if (n > data_.size() - pos_) {
      return Status::Error("golden file '" + path_ + "': truncated reading " + what +
                           " at offset " + std::to_string(pos_));
    }
    std::memcpy(out, data_.data() + pos_, n);
    pos_ += n;
    return Status::Ok();
  }
  size_t pos() const { return pos_; }
  size_t remaining() const { return data_.size() - pos_; }

 private:
  const std::vector<uint8_t>& data_;
  const std::string& path_;
  size_t pos_ = 0;
};

}  // namespace

Result<GoldenFile> GoldenFile::load(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::Error("golden file '" + path + "': cannot open");
  const std::vector<uint8_t> data((std::istreambuf_iterator<char>(in)),
                                  std::istreambuf_iterator<char>());
  Cursor cur(data, path);
  char magic[8];
  TERN_RETURN_IF_ERROR(cur.read(magic, 8, "magic"));
  if (std::memcmp(magic, "TERNGLD\0", 8) != 0) {
    return Status::Error("golden file '" + path + "': bad magic");
  }
  uint32_t version = 0, count = 0;
  TERN_RETURN_IF_ERROR(cur.read(&version, 4, "version"));
  if (version != 1) {
    return Status::Error("golden file '" + path + "': version " + std::to_string(version) +
                         " (expected 1)");
  }
  TERN_RETURN_IF_ERROR(cur.read(&count, 4, "record count"));
  GoldenFile file;
  for (uint32_t r = 0; r < count; ++r) {
    uint32_t name_len = 0;
    TERN_RETURN_IF_ERROR(cur.read(&name_len, 4, "name length"));
    if (name_len > cur.remaining()) {
      return Status::Error("golden file '" + path + "': record " + std::to_string(r) +
                           " name length " + std::to_string(name_len) + " exceeds file");
    }
    std::string name(name_len, '\0');
    TERN_RETURN_IF_ERROR(cur.read(name.data(), name_len, "name"));
    GoldenRecord rec;
    uint32_t type = 0, ndim = 0;
    TERN_RETURN_IF_ERROR(cur.read(&type, 4, "dtype"));
    TERN_RETURN_IF_ERROR(cur.read(&ndim, 4, "ndim"));
    if (type > 3 || ndim > 4) {
      return Status::Error("golden file '" + path + "': record '" + name + "' has dtype " +
                           std::to_string(type) + ", ndim " + std::to_string(ndim));
    }
    rec.type = static_cast<GoldenType>(type);
    uint64_t elements = 1;
    for (uint32_t d = 0; d < ndim; ++d) {
      uint64_t dim = 0;
      TERN_RETURN_IF_ERROR(cur.read(&dim, 8, "dims"));
      if (dim > cur.remaining()) {
        return Status::Error("golden file '" + path + "': record '" + name + "' dim " +
                             std::to_string(dim) + " exceeds file");
      }
      elements *= dim;
      rec.dims.push_back(static_cast<int64_t>(dim));
    }
    const uint64_t width = (rec.type == GoldenType::kF32 || rec.type == GoldenType::kI32) ? 4 : 1;
    if (elements > cur.remaining() / width) {
      return Status::Error("golden file '" + path + "': record '" + name + "' data exceeds file");
    }
    rec.bytes.resize(elements * width);
    TERN_RETURN_IF_ERROR(cur.read(rec.bytes.data(), rec.bytes.size(), "data"));
    file.records_.emplace(std::move(name), std::move(rec));
  }
  return file;
}

const GoldenRecord& GoldenFile::get(const std::string& name) const {
  auto it = records_.find(name);
  TERN_CHECK(it != records_.end(), "golden record '", name, "' missing");
  return it->second;
}

Status GoldenWeightSource::read(std::string_view name, std::span<const int64_t> shape,
                                std::span<float> out) {
  const std::string key = prefix_ + std::string(name);
  if (!file_.has(key)) return Status::Error("golden weights: no tensor '" + key + "'");
  const GoldenRecord& rec = file_.get(key);
  if (rec.type != GoldenType::kF32 ||
      !std::equal(rec.dims.begin(), rec.dims.end(), shape.begin(), shape.end())) {
    return Status::Error("golden weights: tensor '" + key + "' has another type or shape");
  }
  const auto values = rec.f32();
  std::copy(values.begin(), values.end(), out.begin());
  return Status::Ok();
}

}  // namespace tern::testing
