// DeMo (decoupled momentum) optimization with DCT top-k compression: what each
// node computes, sends and applies (docs/optimizer.md has the algorithm, the
// defaults and the wire format).
//
// Per trainable tensor, at step t with learning rate η, decay β, weight decay λ:
//   encode (each node, its own gradient g and momentum δ):
//     δ ← βδ + ηg;  C = blockDCT(δ);  keep the top-k |C| of each block (ties: the
//     lower index wins; exact zeros are never kept, so a block may keep fewer);
//     δ ← δ − IDCT(kept), with the unquantized kept values (error feedback);
//     send indices and values: sign(C) as ±1 (1 bit), or C rounded to fp16.
//   apply (every node, the same updates in the same canonical order):
//     A[index] = mean over the peers that sent that index of their values, summed
//     in canonical order in fp32 and divided by the count;  Δ = IDCT(A);
//     θ ← θ(1 − ηλ) (tensors of rank ≥ 2 only, as AdamW here);
//     θ ← θ − η·sign(Δ), with sign(0) = 0, so blocks nobody touched stay put.
// Weight decay is applied together with the aggregate: the two orders give the
// same bits because encode never reads θ.
//
// One-step-delayed overlap (as in Psyche's DisTrO): the aggregate of step t is
// applied at the start of step t+2 while step t+1 computes its gradient on the
// look-ahead θ − η·sign(δ) (demo_lookahead), written to a separate buffer so the
// canonical θ is never touched by it: "undoing" it is exact by construction.
//
// DemoPlan is immutable and thread-safe; a DemoOptimizer belongs to one node
// and is not synchronized. Kernels split tensors over the default pool, with
// per-block work, so the bits do not depend on the thread count.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/flat_buffer.h"
#include "core/hash.h"
#include "core/status.h"
#include "optim/dct.h"

namespace tern {

enum class DemoValues : uint8_t { kSign = 0, kFp16 = 1 };

struct DemoConfig {
  int64_t chunk = 64;   // DCT block edge
  int64_t topk = 4;     // coefficients kept per block
  double beta = 0.999;  // momentum decay
  double weight_decay = 0.0;
  DemoValues values = DemoValues::kSign;

  // Names the bad field: "demo config: topk = 0 (must be ≥ 1)".
  Status validate() const;
};

Result<DemoValues> parse_demo_values(std::string_view name);  // "sign" | "fp16"
const char* demo_values_name(DemoValues values);

// How each tensor of a layout is blocked, and the hash that both ends of a link
// check before they exchange updates.
class DemoPlan {
 public:
  // Fails on an invalid config.
  static Result<DemoPlan> create(const TensorLayout& layout, const DemoConfig& config);

  const TensorLayout& layout() const { return layout_; }
  const DemoConfig& config() const { return config_; }
  const std::vector<BlockGrid>& grids() const { return grids_; }
  // Coefficients kept per block of tensor t: min(topk, block size).
  int64_t topk(size_t tensor) const;
  // BLAKE2b-256 over names, shapes, grids, topk and the value encoding.
  const Blake2bDigest& table_hash() const { return table_hash_; }
  // One line per tensor: name, shape, grid, kept coefficients / parameters.
  std::string describe() const;
  // Most coefficients one node can send per step, over all tensors.
  int64_t max_kept() const;

 private:
  DemoPlan() = default;
  TensorLayout layout_;
  DemoConfig config_;
  std::vector<BlockGrid> grids_;
  Blake2bDigest table_hash_{};
};

// One tensor's kept coefficients: block b holds entries [block_begin[b],
// block_begin[b+1]), indices strictly ascending within a block.
struct TensorUpdate {
  std::vector<uint32_t> block_begin;  // num_blocks + 1
  std::vector<uint32_t> indices;      // coefficient index within its block
  std::vector<float> values;          // ±1 (sign) or fp16-representable
  bool operator==(const TensorUpdate&) const = default;
};

// What one node sends for one step (in layout order).
struct DemoUpdate {
  int64_t step = 0;
  DemoValues values = DemoValues::kSign;
  std::vector<TensorUpdate> tensors;
  bool operator==(const DemoUpdate&) const = default;

  int64_t kept() const;  // total coefficients
};

// The top-k selection of encode: indices (ascending) of the k largest |coeffs|,
// ties to the lower index, exact zeros never chosen (so fewer than k may come back).
void select_top_k(std::span<const float> coeffs, int64_t k, std::vector<uint32_t>& out);

// Checks an update against a plan: tensor and block counts, indices ascending and
// inside their block, at most topk per block, values as the encoding allows.
Status validate_update(const DemoPlan& plan, const DemoUpdate& update);

class DemoOptimizer {
 public:
  explicit DemoOptimizer(const DemoPlan& plan);

  // δ ← βδ + η·grads, extract, error feedback. grads must be finite (CHECK).
  DemoUpdate encode(const FlatBuffer& grads, double lr, int64_t step);

  FlatBuffer& momentum() { return delta_; }
  const FlatBuffer& momentum() const { return delta_; }
  const DemoPlan& plan() const { return *plan_; }

 private:
  const DemoPlan* plan_;
  FlatBuffer delta_;
};

// θ ← θ(1 − ηλ) − η·sign(IDCT(mean of the updates)); `updates` in canonical order
// (the caller sorts by batch id), each valid for the plan (validate_update).
void demo_apply(const DemoPlan& plan, std::span<const DemoUpdate* const> updates, double lr,
                FlatBuffer& params);

// The dense direction Δ = IDCT(mean of the updates) for every tensor, in the
// layout's buffer shape (exposed for tests and the PyTorch parity check).
void demo_aggregate_direction(const DemoPlan& plan, std::span<const DemoUpdate* const> updates,
                              FlatBuffer& direction);

// working ← canonical − η·sign(δ): the overlap mode's stand-in for the aggregate
// that is still in flight.
void demo_lookahead(const DemoPlan& plan, const FlatBuffer& canonical, const FlatBuffer& momentum,
                    double lr, FlatBuffer& working);

}  // namespace tern
