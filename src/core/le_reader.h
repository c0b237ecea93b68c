// LeReader: the bounds-checked counterpart of LeWriter, for decoding tern's
// canonical little-endian encodings from untrusted bytes. Every read checks
// the bytes left first, and every failure is a Status naming the encoding
// ("decode <what>"), the field and its byte offset; counts are checked against
// the bytes that follow before anything is allocated.
//
// Not synchronized: one reader per decode; the bytes must outlive it.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

class LeReader {
 public:
  LeReader(std::span<const uint8_t> bytes, const char* what) : bytes_(bytes), what_(what) {}

  Status need(size_t n, const char* field) const {
    if (bytes_.size() - pos_ < n) {
      return Status::Error(std::string("decode ") + what_ + ": truncated at " + field +
                           " (offset " + std::to_string(pos_) + ", needs " + std::to_string(n) +
                           " bytes, " + std::to_string(bytes_.size() - pos_) + " left)");
    }
    return Status::Ok();
  }
  Status error(const char* field, size_t offset, const std::string& problem) const {
    return Status::Error(std::string("decode ") + what_ + ": " + field + " at offset " +
                         std::to_string(offset) + " " + problem);
  }

  Result<uint8_t> u8(const char* field) {
    TERN_RETURN_IF_ERROR(need(1, field));
    return bytes_[pos_++];
  }
  Result<uint16_t> u16(const char* field) {
    TERN_RETURN_IF_ERROR(need(2, field));
    const auto v = static_cast<uint16_t>(bytes_[pos_] | (bytes_[pos_ + 1] << 8));
    pos_ += 2;
    return v;
  }
  Result<uint32_t> u32(const char* field) {
    TERN_RETURN_IF_ERROR(need(4, field));
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v |= uint32_t{bytes_[pos_ + i]} << (8 * i);
    pos_ += 4;
    return v;
  }
  Result<uint64_t> u64(const char* field) {
    TERN_RETURN_IF_ERROR(need(8, field));
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v |= uint64_t{bytes_[pos_ + i]} << (8 * i);
    pos_ += 8;
    return v;
  }
  template <size_t N>
  Result<std::array<uint8_t, N>> fixed(const char* field) {
    TERN_RETURN_IF_ERROR(need(N, field));
    std::array<uint8_t, N> a{};
    for (size_t i = 0; i < N; ++i) a[i] = bytes_[pos_ + i];
    pos_ += N;
    return a;
  }
  Result<std::array<uint8_t, 32>> bytes32(const char* field) { return fixed<32>(field); }
  // A u32 length, then that many bytes (at most max_len).
  Result<std::vector<uint8_t>> byte_string(const char* field, size_t max_len) {
    const size_t at = pos_;
    TERN_ASSIGN_OR_RETURN(uint32_t n, count(field, 1));
    if (n > max_len) {
      return error(
          field, at,
          "is " + std::to_string(n) + " bytes long (at most " + std::to_string(max_len) + ")");
    }
    std::vector<uint8_t> v(bytes_.begin() + static_cast<std::ptrdiff_t>(pos_),
                           bytes_.begin() + static_cast<std::ptrdiff_t>(pos_ + n));
    pos_ += n;
    return v;
  }
  Result<bool> boolean(const char* field) {
    const size_t at = pos_;
    TERN_ASSIGN_OR_RETURN(uint8_t v, u8(field));
    if (v > 1) return error(field, at, "is " + std::to_string(v) + " (expected 0 or 1)");
    return v == 1;
  }
  // A u32 item count whose items (item_size bytes each) must fit in what is left,
  // so a forged count cannot make us allocate.
  Result<uint32_t> count(const char* field, size_t item_size) {
    const size_t at = pos_;
    TERN_ASSIGN_OR_RETURN(uint32_t n, u32(field));
    if (uint64_t{n} * item_size > bytes_.size() - pos_) {
      return error(field, at,
                   "is " + std::to_string(n) + " items of " + std::to_string(item_size) +
                       " bytes, but only " + std::to_string(bytes_.size() - pos_) +
                       " bytes follow");
    }
    return n;
  }
  Status finish() const {
    if (pos_ != bytes_.size()) {
      return Status::Error(std::string("decode ") + what_ + ": " +
                           std::to_string(bytes_.size() - pos_) + " trailing bytes at offset " +
                           std::to_string(pos_));
    }
    return Status::Ok();
  }
  size_t pos() const { return pos_; }

 private:
  std::span<const uint8_t> bytes_;
  const char* what_;
  size_t pos_ = 0;
};

}  // namespace tern
