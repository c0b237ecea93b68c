// LeWriter: appends integers little-endian and raw bytes to a growing buffer,
// the building block of tern's canonical encodings (swarm snapshots, ledger
// events). Formats decide their own count widths on top of it.
//
// Not synchronized: one writer per encoding.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/check.h"

namespace tern {

class LeWriter {
 public:
  void u8(uint8_t v) { out_.push_back(v); }
  void u16(uint16_t v) { put(v, 2); }
  void u32(uint32_t v) { put(v, 4); }
  void u64(uint64_t v) { put(v, 8); }
  template <size_t N>
  void bytes(const std::array<uint8_t, N>& a) {
    out_.insert(out_.end(), a.begin(), a.end());
  }
  void bytes(const std::vector<uint8_t>& v) { out_.insert(out_.end(), v.begin(), v.end()); }
  // A u32 item count (lists longer than that are a bug in the caller).
  void count(size_t n) {
    TERN_CHECK(n <= UINT32_MAX, "list of ", n, " items does not fit the u32 count");
    u32(static_cast<uint32_t>(n));
  }
  // The counterpart of LeReader::byte_string: a u32 length, then the bytes.
  template <typename Bytes>
  void byte_string(const Bytes& v) {
    count(v.size());
    out_.insert(out_.end(), v.begin(), v.end());
  }
  std::vector<uint8_t>& out() { return out_; }

 private:
  void put(uint64_t v, int width) {
    for (int i = 0; i < width; ++i) out_.push_back(static_cast<uint8_t>(v >> (8 * i)));
  }
  std::vector<uint8_t> out_;
};

}  // namespace tern
