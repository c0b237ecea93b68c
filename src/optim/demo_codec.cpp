#include "optim/demo_codec.h"

#include <bit>
#include <cmath>
#include <cstring>
#include <string>

#include "core/check.h"
#include "format/ggml_quants.h"

namespace tern {
namespace {

constexpr uint8_t kMagic[4] = {'T', 'D', 'M', 'O'};
constexpr size_t kTableHashBytes = 16;
constexpr size_t kDigestBytes = 32;
constexpr size_t kFixedHeader = 4 + 1 + 1 + 8 + kTableHashBytes;

// Bits needed to store a value in [0, n): ⌈log2 n⌉ (0 for n ≤ 1).
int bits_for(int64_t n) {
  return n <= 1 ? 0 : std::bit_width(static_cast<uint64_t>(n - 1));
}

void put_varint(std::vector<uint8_t>& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<uint8_t>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<uint8_t>(v));
}

class BitWriter {
 public:
  void put(uint64_t value, int bits) {
    for (int i = 0; i < bits; ++i) {
      if (used_ % 8 == 0) bytes_.push_back(0);
      if ((value >> i) & 1u) bytes_.back() |= static_cast<uint8_t>(1u << (used_ % 8));
      ++used_;
    }
  }
  const std::vector<uint8_t>& bytes() const { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
  uint64_t used_ = 0;
};

class BitReader {
 public:
  explicit BitReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  // False when the stream is exhausted.
  bool get(int bits, uint64_t* value) {
    if (static_cast<uint64_t>(bits) > remaining()) return false;
    uint64_t v = 0;
    for (int i = 0; i < bits; ++i, ++pos_) {
      v |= static_cast<uint64_t>((bytes_[pos_ / 8] >> (pos_ % 8)) & 1u) << i;
    }
    *value = v;
    return true;
  }
  uint64_t remaining() const { return bytes_.size() * 8 - pos_; }
  // True when every bit left is zero padding inside the last byte.
  bool only_padding_left() const {
    if (remaining() >= 8) return false;
    uint64_t rest = 0;
    BitReader copy = *this;
    return copy.get(static_cast<int>(remaining()), &rest) && rest == 0;
  }

 private:
  std::span<const uint8_t> bytes_;
  uint64_t pos_ = 0;
};

class ByteReader {
 public:
  explicit ByteReader(std::span<const uint8_t> bytes) : bytes_(bytes) {}
  size_t pos() const { return pos_; }
  size_t left() const { return bytes_.size() - pos_; }
  std::span<const uint8_t> take(size_t n) {
    TERN_CHECK(n <= left());
    std::span<const uint8_t> s = bytes_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  // Shortest-form LEB128 of at most 10 bytes with no bits past 64.
  Status varint(const char* field, uint64_t* value) {
    uint64_t v = 0;
    for (int i = 0; i < 10; ++i) {
      if (pos_ >= bytes_.size()) return error(field, "truncated varint");
      const uint8_t byte = bytes_[pos_++];
      if (i == 9 && byte > 1) return error(field, "varint overflows 64 bits");
      v |= static_cast<uint64_t>(byte & 0x7f) << (7 * i);
      if ((byte & 0x80) == 0) {
        if (byte == 0 && i > 0) return error(field, "varint not in shortest form");
        *value = v;
        return Status::Ok();
      }
    }
    return error(field, "varint longer than 10 bytes");
  }
  Status error(const char* field, const std::string& what) const {
    return Status::Error("decode demo update: " + std::string(field) + " at byte " +
                         std::to_string(pos_) + ": " + what);
  }

 private:
  std::span<const uint8_t> bytes_;
  size_t pos_ = 0;
};

Status bad_payload(const std::string& tensor, int64_t block, const std::string& what) {
  return Status::Error("decode demo update: payload of tensor '" + tensor + "' block " +
                       std::to_string(block) + ": " + what);
}

}  // namespace

std::vector<uint8_t> encode_demo_update(const DemoPlan& plan, const DemoUpdate& update) {
  const Status valid = validate_update(plan, update);
  TERN_CHECK(valid.ok(), valid.message());
  std::vector<uint8_t> out(kMagic, kMagic + 4);
  out.push_back(kDemoWireVersion);
  out.push_back(static_cast<uint8_t>(update.values));
  const auto step = static_cast<uint64_t>(update.step);
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(step >> (8 * i)));
  out.insert(out.end(), plan.table_hash().begin(), plan.table_hash().begin() + kTableHashBytes);
  put_varint(out, update.tensors.size());
  for (const BlockGrid& g : plan.grids()) {
    put_varint(out, static_cast<uint64_t>(g.block_rows));
    put_varint(out, static_cast<uint64_t>(g.block_cols));
  }
  BitWriter bits;
  for (size_t t = 0; t < update.tensors.size(); ++t) {
    const TensorUpdate& tu = update.tensors[t];
    const int count_bits = bits_for(plan.topk(t));
    const int index_bits = bits_for(plan.grids()[t].block_size());
    for (size_t b = 0; b + 1 < tu.block_begin.size(); ++b) {
      const uint32_t begin = tu.block_begin[b];
      const uint32_t count = tu.block_begin[b + 1] - begin;
      bits.put(count > 0 ? 1 : 0, 1);
      if (count == 0) continue;
      bits.put(count - 1, count_bits);
      for (uint32_t e = begin; e < begin + count; ++e) bits.put(tu.indices[e], index_bits);
      for (uint32_t e = begin; e < begin + count; ++e) {
        if (update.values == DemoValues::kSign) {
          bits.put(tu.values[e] < 0.0f ? 1 : 0, 1);
        } else {
          bits.put(fp32_to_fp16(tu.values[e]), 16);
        }
      }
    }
  }
  put_varint(out, bits.bytes().size());
  out.insert(out.end(), bits.bytes().begin(), bits.bytes().end());
  Blake2bHasher hasher;
  hasher.update(std::span<const uint8_t>(out));
  const Blake2bDigest digest = hasher.finish();
  out.insert(out.end(), digest.begin(), digest.end());
  return out;
}

Result<DemoUpdate> decode_demo_update(const DemoPlan& plan, std::span<const uint8_t> bytes) {
  if (bytes.size() < kFixedHeader + 2 + kDigestBytes) {
    return Status::Error("decode demo update: " + std::to_string(bytes.size()) +
                         " bytes is shorter than the smallest update");
  }
  // The hash first: a damaged payload is rejected before anything is parsed.
  const std::span<const uint8_t> body = bytes.first(bytes.size() - kDigestBytes);
  Blake2bHasher hasher;
  hasher.update(body);
  const Blake2bDigest digest = hasher.finish();
  if (std::memcmp(digest.data(), bytes.data() + body.size(), kDigestBytes) != 0) {
    return Status::Error("decode demo update: BLAKE2b hash does not match the " +
                         std::to_string(body.size()) + " bytes it covers");
  }
  ByteReader in(body);
  if (std::memcmp(in.take(4).data(), kMagic, 4) != 0) {
    return in.error("magic", "not \"TDMO\"");
  }
  if (const uint8_t version = in.take(1)[0]; version != kDemoWireVersion) {
    return in.error("version", std::to_string(version) + " (this build reads " +
                                   std::to_string(kDemoWireVersion) + ")");
  }
  DemoUpdate update;
  const uint8_t encoding = in.take(1)[0];
  if (encoding != static_cast<uint8_t>(plan.config().values)) {
    return in.error("value encoding", std::to_string(encoding) + ", the run uses " +
                                          demo_values_name(plan.config().values));
  }
  update.values = plan.config().values;
  uint64_t step = 0;
  const std::span<const uint8_t> step_bytes = in.take(8);
  for (int i = 0; i < 8; ++i) step |= static_cast<uint64_t>(step_bytes[i]) << (8 * i);
  if (step > static_cast<uint64_t>(INT64_MAX)) return in.error("step", std::to_string(step));
  update.step = static_cast<int64_t>(step);
  if (std::memcmp(in.take(kTableHashBytes).data(), plan.table_hash().data(), kTableHashBytes) !=
      0) {
    return in.error("tensor table hash", "the sender's model or DeMo settings differ from ours");
  }
  uint64_t tensors = 0;
  TERN_RETURN_IF_ERROR(in.varint("tensor count", &tensors));
  if (tensors != plan.grids().size()) {
    return in.error("tensor count", std::to_string(tensors) + ", the plan has " +
                                        std::to_string(plan.grids().size()));
  }
  for (size_t t = 0; t < plan.grids().size(); ++t) {
    uint64_t rows = 0;
    uint64_t cols = 0;
    TERN_RETURN_IF_ERROR(in.varint("block rows", &rows));
    TERN_RETURN_IF_ERROR(in.varint("block cols", &cols));
    const BlockGrid& g = plan.grids()[t];
    if (rows != static_cast<uint64_t>(g.block_rows) ||
        cols != static_cast<uint64_t>(g.block_cols)) {
      return in.error("block grid", "tensor '" + plan.layout().at(t).name + "' has " +
                                        std::to_string(rows) + "x" + std::to_string(cols) +
                                        " blocks, the plan " + std::to_string(g.block_rows) + "x" +
                                        std::to_string(g.block_cols));
    }
  }
  uint64_t payload_size = 0;
  TERN_RETURN_IF_ERROR(in.varint("payload length", &payload_size));
  if (payload_size != in.left()) {
    return in.error("payload length", std::to_string(payload_size) + " but " +
                                          std::to_string(in.left()) + " bytes follow");
  }
  BitReader bits(in.take(in.left()));
  update.tensors.resize(plan.grids().size());
  for (size_t t = 0; t < plan.grids().size(); ++t) {
    const BlockGrid& g = plan.grids()[t];
    const std::string& name = plan.layout().at(t).name;
    const int count_bits = bits_for(plan.topk(t));
    const int index_bits = bits_for(g.block_size());
    TensorUpdate& tu = update.tensors[t];
    tu.block_begin.assign(1, 0);
    for (int64_t b = 0; b < g.num_blocks(); ++b) {
      uint64_t flag = 0;
      if (!bits.get(1, &flag)) return bad_payload(name, b, "truncated");
      uint64_t count = 0;
      if (flag == 1) {
        if (!bits.get(count_bits, &count)) return bad_payload(name, b, "truncated");
        ++count;
        if (count > static_cast<uint64_t>(plan.topk(t))) {
          return bad_payload(
              name, b,
              std::to_string(count) + " entries (top-k is " + std::to_string(plan.topk(t)) + ")");
        }
      }
      for (uint64_t e = 0; e < count; ++e) {
        uint64_t index = 0;
        if (!bits.get(index_bits, &index)) return bad_payload(name, b, "truncated");
        if (index >= static_cast<uint64_t>(g.block_size()) ||
            (e > 0 && index <= tu.indices.back())) {
          return bad_payload(
              name, b, "index " + std::to_string(index) + " outside the block or not ascending");
        }
        tu.indices.push_back(static_cast<uint32_t>(index));
      }
      for (uint64_t e = 0; e < count; ++e) {
        uint64_t raw = 0;
        if (update.values == DemoValues::kSign) {
          if (!bits.get(1, &raw)) return bad_payload(name, b, "truncated");
          tu.values.push_back(raw == 1 ? -1.0f : 1.0f);
        } else {
          if (!bits.get(16, &raw)) return bad_payload(name, b, "truncated");
          const float v = fp16_to_fp32(static_cast<uint16_t>(raw));
          if (!std::isfinite(v)) return bad_payload(name, b, "non-finite fp16 value");
          tu.values.push_back(v);
        }
      }
      tu.block_begin.push_back(static_cast<uint32_t>(tu.indices.size()));
    }
  }
  if (!bits.only_padding_left()) {
    return Status::Error("decode demo update: " + std::to_string(bits.remaining()) +
                         " bits after the last block (padding must be under a byte and zero)");
  }
  return update;
}

}  // namespace tern
