// The DeMo wire format: one node's update for one step as bytes (version 1).
//
//   offset  size  field
//   0       4     magic "TDMO"
//   4       1     version = 1
//   5       1     value encoding: 0 = sign (1 bit per value), 1 = fp16
//   6       8     step, u64 little-endian
//   14      16    tensor table hash: the first 16 bytes of DemoPlan::table_hash()
//   30      v     tensor count (LEB128 varint, shortest form)
//           v     per tensor: block_rows, block_cols (varints)
//           v     payload length in bytes (varint)
//           n     payload: a little-endian bit stream (bit i of the stream is bit
//                 i%8 of byte i/8), per tensor in table order, per block in grid
//                 row-major order:
//                   1 bit    block flag: 0 = zero block (nothing follows)
//                   ⌈log2 k⌉ bits  count − 1 (k = the tensor's top-k)
//                   count × ⌈log2 block_size⌉ bits  indices, strictly ascending
//                   count × 1 bit (1 = negative) or count × 16 bits (fp16)
//                 then zero bits up to the byte boundary
//   end−32  32    BLAKE2b-256 of every byte before it
//
// Encoding is canonical: one update has one byte string, and decode(encode(u))
// == u. decode_demo_update is total: any byte string gives either a Status that
// names the field at fault or an update that validate_update accepts. Pure
// functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "core/status.h"
#include "optim/demo.h"

namespace tern {

inline constexpr uint8_t kDemoWireVersion = 1;

// The update must be valid for the plan (CHECK).
std::vector<uint8_t> encode_demo_update(const DemoPlan& plan, const DemoUpdate& update);

Result<DemoUpdate> decode_demo_update(const DemoPlan& plan, std::span<const uint8_t> bytes);

}  // namespace tern
