#include "optim/demo.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/check.h"
#include "core/thread_pool.h"
#include "format/ggml_quants.h"

namespace tern {
namespace {

constexpr float kFp16Max = 65504.0f;

float sign_of(float x) {
  return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
}

// The value a node sends for coefficient c (never zero: zeros are not kept).
float wire_value(float c, DemoValues values) {
  if (values == DemoValues::kSign) return c > 0.0f ? 1.0f : -1.0f;
  // Saturate instead of overflowing to ±inf, so a huge coefficient still
  // decodes to a finite direction.
  return fp16_to_fp32(fp32_to_fp16(std::clamp(c, -kFp16Max, kFp16Max)));
}

void append_u64(Blake2bHasher& h, uint64_t v) {
  uint8_t bytes[8];
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(v >> (8 * i));
  h.update(std::span<const uint8_t>(bytes, 8));
}

// Entries of one block gathered from several updates, to be averaged per index.
struct Entry {
  uint32_t index;
  float value;
};

// Writes the dense direction of one block (IDCT of the per-index means) to out.
void aggregate_block(const BlockGrid& grid, size_t tensor, int64_t block,
                     std::span<const DemoUpdate* const> updates, std::vector<Entry>& entries,
                     std::vector<uint32_t>& indices, std::vector<float>& means, float* out) {
  entries.clear();
  for (const DemoUpdate* u : updates) {
    const TensorUpdate& t = u->tensors[tensor];
    for (uint32_t e = t.block_begin[block]; e < t.block_begin[block + 1]; ++e) {
      entries.push_back({t.indices[e], t.values[e]});
    }
  }
  // Stable: equal indices keep the canonical peer order, so the sums below are
  // fixed-order.
  std::stable_sort(entries.begin(), entries.end(),
                   [](const Entry& a, const Entry& b) { return a.index < b.index; });
  indices.clear();
  means.clear();
  for (size_t e = 0; e < entries.size();) {
    float sum = 0.0f;
    size_t n = 0;
    const uint32_t index = entries[e].index;
    for (; e < entries.size() && entries[e].index == index; ++e, ++n) sum += entries[e].value;
    indices.push_back(index);
    means.push_back(sum / static_cast<float>(n));
  }
  idct_sparse_block(grid, indices, means, out);
}

// Calls fn(tensor, block, direction_of_block, scratch...) for every block of
// every tensor, blocks of a tensor split over the default pool.
template <typename Fn>
void for_each_aggregated_block(const DemoPlan& plan, std::span<const DemoUpdate* const> updates,
                               Fn&& fn) {
  for (size_t t = 0; t < plan.grids().size(); ++t) {
    const BlockGrid& grid = plan.grids()[t];
    parallel_for(
        grid.num_blocks(),
        [&](int64_t begin, int64_t end) {
          std::vector<Entry> entries;
          std::vector<uint32_t> indices;
          std::vector<float> means;
          std::vector<float> block(static_cast<size_t>(grid.block_size()));
          for (int64_t b = begin; b < end; ++b) {
            aggregate_block(grid, t, b, updates, entries, indices, means, block.data());
            fn(t, b, block.data());
          }
        },
        1);
  }
}

}  // namespace

Status DemoConfig::validate() const {
  auto bad = [](const std::string& what) { return Status::Error("demo config: " + what); };
  if (chunk < 1 || chunk > 256) {
    return bad("chunk = " + std::to_string(chunk) + " (must be in [1, 256])");
  }
  if (topk < 1 || topk > 65536) {
    return bad("topk = " + std::to_string(topk) + " (must be in [1, 65536])");
  }
  if (!(beta >= 0.0 && beta < 1.0)) {
    return bad("beta = " + std::to_string(beta) + " (must be in [0, 1))");
  }
  if (!(weight_decay >= 0.0 && weight_decay < 1.0)) {
    return bad("weight_decay = " + std::to_string(weight_decay) + " (must be in [0, 1))");
  }
  if (values != DemoValues::kSign && values != DemoValues::kFp16) {
    return bad("values = " + std::to_string(static_cast<int>(values)) + " (sign or fp16)");
  }
  return Status::Ok();
}

Result<DemoValues> parse_demo_values(std::string_view name) {
  if (name == "sign" || name == "1bit") return DemoValues::kSign;
  if (name == "fp16") return DemoValues::kFp16;
  return Status::Error("demo values '" + std::string(name) + "' (expected sign or fp16)");
}

const char* demo_values_name(DemoValues values) {
  return values == DemoValues::kSign ? "sign" : "fp16";
}

Result<DemoPlan> DemoPlan::create(const TensorLayout& layout, const DemoConfig& config) {
  TERN_RETURN_IF_ERROR(config.validate());
  DemoPlan plan;
  plan.layout_ = layout;
  plan.config_ = config;
  Blake2bHasher hasher;
  hasher.update(std::string_view("tern demo plan v1"));
  append_u64(hasher, static_cast<uint64_t>(config.topk));
  append_u64(hasher, static_cast<uint64_t>(config.values));
  append_u64(hasher, layout.count());
  for (const TensorInfo& info : layout.tensors()) {
    plan.grids_.push_back(make_block_grid(info.shape, config.chunk));
    const BlockGrid& g = plan.grids_.back();
    append_u64(hasher, info.name.size());
    hasher.update(info.name);
    append_u64(hasher, info.shape.size());
    for (int64_t d : info.shape) append_u64(hasher, static_cast<uint64_t>(d));
    for (int64_t v : {g.block_rows, g.block_cols, g.padded_rows, g.padded_cols}) {
      append_u64(hasher, static_cast<uint64_t>(v));
    }
  }
  plan.table_hash_ = hasher.finish();
  return plan;
}

int64_t DemoPlan::topk(size_t tensor) const {
  return std::min(config_.topk, grids_.at(tensor).block_size());
}

int64_t DemoPlan::max_kept() const {
  int64_t total = 0;
  for (size_t t = 0; t < grids_.size(); ++t) total += topk(t) * grids_[t].num_blocks();
  return total;
}

std::string DemoPlan::describe() const {
  std::string out;
  for (size_t t = 0; t < grids_.size(); ++t) {
    const TensorInfo& info = layout_.at(t);
    std::string shape;
    for (int64_t d : info.shape) {
      if (!shape.empty()) shape += 'x';
      shape += std::to_string(d);
    }
    const double density =
        static_cast<double>(topk(t) * grids_[t].num_blocks()) / static_cast<double>(info.size);
    char line[64];
    std::snprintf(line, sizeof(line), "density %.5f", density);
    out += info.name + " [" + shape + "]: " + tern::describe(grids_[t]) + ", top-" +
           std::to_string(topk(t)) + ", " + line + "\n";
  }
  return out;
}

int64_t DemoUpdate::kept() const {
  int64_t n = 0;
  for (const TensorUpdate& t : tensors) n += static_cast<int64_t>(t.indices.size());
  return n;
}

void select_top_k(std::span<const float> coeffs, int64_t k, std::vector<uint32_t>& out) {
  out.clear();
  for (uint32_t i = 0; i < coeffs.size(); ++i) {
    if (coeffs[i] != 0.0f) out.push_back(i);
  }
  // A strict total order, so the chosen set does not depend on the algorithm.
  auto before = [&](uint32_t a, uint32_t b) {
    const float ma = std::fabs(coeffs[a]);
    const float mb = std::fabs(coeffs[b]);
    return ma > mb || (ma == mb && a < b);
  };
  const size_t kept = std::min(static_cast<size_t>(k), out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(kept), out.end(),
                    before);
  out.resize(kept);
  std::sort(out.begin(), out.end());
}

Status validate_update(const DemoPlan& plan, const DemoUpdate& update) {
  auto bad = [&](const std::string& what) {
    return Status::Error("demo update for step " + std::to_string(update.step) + ": " + what);
  };
  if (update.values != plan.config().values) {
    return bad(std::string("values are ") + demo_values_name(update.values) + ", the run uses " +
               demo_values_name(plan.config().values));
  }
  if (update.tensors.size() != plan.grids().size()) {
    return bad(std::to_string(update.tensors.size()) + " tensors, the plan has " +
               std::to_string(plan.grids().size()));
  }
  for (size_t t = 0; t < update.tensors.size(); ++t) {
    const TensorUpdate& tu = update.tensors[t];
    const BlockGrid& g = plan.grids()[t];
    const std::string name = "tensor '" + plan.layout().at(t).name + "'";
    if (tu.block_begin.size() != static_cast<size_t>(g.num_blocks() + 1) ||
        tu.block_begin.front() != 0 || tu.block_begin.back() != tu.indices.size() ||
        tu.values.size() != tu.indices.size()) {
      return bad(name + ": block table does not match its " + std::to_string(g.num_blocks()) +
                 " blocks");
    }
    for (int64_t b = 0; b < g.num_blocks(); ++b) {
      const uint32_t begin = tu.block_begin[b];
      const uint32_t end = tu.block_begin[b + 1];
      if (end < begin || end - begin > plan.topk(t)) {
        return bad(name + " block " + std::to_string(b) + ": " +
                   std::to_string(static_cast<int64_t>(end) - static_cast<int64_t>(begin)) +
                   " entries (top-k is " + std::to_string(plan.topk(t)) + ")");
      }
      for (uint32_t e = begin; e < end; ++e) {
        if (tu.indices[e] >= g.block_size() || (e > begin && tu.indices[e] <= tu.indices[e - 1])) {
          return bad(name + " block " + std::to_string(b) + ": index " +
                     std::to_string(tu.indices[e]) + " out of order or outside the block");
        }
        const float v = tu.values[e];
        const bool ok =
            update.values == DemoValues::kSign ? (v == 1.0f || v == -1.0f) : std::isfinite(v);
        if (!ok) {
          return bad(
              name + " block " + std::to_string(b) + ": value " + std::to_string(v) +
              (update.values == DemoValues::kSign ? " (sign values are ±1)" : " (not finite)"));
        }
      }
    }
  }
  return Status::Ok();
}

DemoOptimizer::DemoOptimizer(const DemoPlan& plan)
    : plan_(&plan), delta_(plan.layout().buffer_size()) {}

DemoUpdate DemoOptimizer::encode(const FlatBuffer& grads, double lr, int64_t step) {
  const DemoPlan& plan = *plan_;
  TERN_CHECK(grads.size() == delta_.size());
  const auto beta = static_cast<float>(plan.config().beta);
  const auto lr_f = static_cast<float>(lr);
  DemoUpdate update;
  update.step = step;
  update.values = plan.config().values;
  update.tensors.resize(plan.grids().size());
  for (size_t t = 0; t < plan.grids().size(); ++t) {
    const TensorInfo& info = plan.layout().at(t);
    const BlockGrid& grid = plan.grids()[t];
    const int64_t k = plan.topk(t);
    const int64_t bs = grid.block_size();
    float* delta = delta_.data() + info.offset;
    const float* g = grads.data() + info.offset;
    for (int64_t i = 0; i < info.size; ++i) {
      TERN_CHECK(std::isfinite(g[i]), "non-finite gradient in '", info.name, "' at ", i);
      delta[i] = delta[i] * beta + g[i] * lr_f;
    }
    // Each block writes its kept entries into its own k slots; compacted below.
    std::vector<uint32_t> slot_index(static_cast<size_t>(grid.num_blocks() * k));
    std::vector<float> slot_value(slot_index.size());
    std::vector<uint32_t> slot_count(static_cast<size_t>(grid.num_blocks()));
    parallel_for(
        grid.num_blocks(),
        [&](int64_t begin, int64_t end) {
          std::vector<float> scratch(static_cast<size_t>(bs));
          std::vector<float> gathered(static_cast<size_t>(bs));
          std::vector<float> coeffs(static_cast<size_t>(bs));
          std::vector<float> removed(static_cast<size_t>(bs));
          std::vector<uint32_t> order;
          std::vector<float> kept_values;
          for (int64_t b = begin; b < end; ++b) {
            gather_block(grid, delta, b, gathered.data());
            dct_forward_block(grid, gathered.data(), coeffs.data(), scratch.data());
            select_top_k(coeffs, k, order);
            const size_t kept = order.size();
            kept_values.resize(kept);
            for (size_t n = 0; n < kept; ++n) {
              kept_values[n] = coeffs[order[n]];
              slot_index[static_cast<size_t>(b * k) + n] = order[n];
              slot_value[static_cast<size_t>(b * k) + n] =
                  wire_value(coeffs[order[n]], plan.config().values);
            }
            slot_count[b] = static_cast<uint32_t>(kept);
            // Error feedback with the unquantized kept values.
            idct_sparse_block(grid, order, kept_values, removed.data());
            for_each_block_element(grid, b,
                                   [&](int64_t ti, int64_t e) { delta[ti] -= removed[e]; });
          }
        },
        1);
    TensorUpdate& tu = update.tensors[t];
    tu.block_begin.assign(1, 0);
    for (int64_t b = 0; b < grid.num_blocks(); ++b) {
      for (uint32_t n = 0; n < slot_count[b]; ++n) {
        tu.indices.push_back(slot_index[static_cast<size_t>(b * k) + n]);
        tu.values.push_back(slot_value[static_cast<size_t>(b * k) + n]);
      }
      tu.block_begin.push_back(static_cast<uint32_t>(tu.indices.size()));
    }
  }
  return update;
}

void demo_aggregate_direction(const DemoPlan& plan, std::span<const DemoUpdate* const> updates,
                              FlatBuffer& direction) {
  TERN_CHECK(direction.size() == plan.layout().buffer_size());
  for_each_aggregated_block(plan, updates, [&](size_t t, int64_t b, const float* block) {
    float* out = direction.data() + plan.layout().at(t).offset;
    for_each_block_element(plan.grids()[t], b, [&](int64_t ti, int64_t e) { out[ti] = block[e]; });
  });
}

void demo_apply(const DemoPlan& plan, std::span<const DemoUpdate* const> updates, double lr,
                FlatBuffer& params) {
  TERN_CHECK(params.size() == plan.layout().buffer_size());
  const auto lr_f = static_cast<float>(lr);
  const auto keep = static_cast<float>(1.0 - lr * plan.config().weight_decay);
  for_each_aggregated_block(plan, updates, [&](size_t t, int64_t b, const float* block) {
    const TensorInfo& info = plan.layout().at(t);
    const bool decay = info.shape.size() >= 2 && plan.config().weight_decay != 0.0;
    float* p = params.data() + info.offset;
    for_each_block_element(plan.grids()[t], b, [&](int64_t ti, int64_t e) {
      if (decay) p[ti] *= keep;
      p[ti] -= lr_f * sign_of(block[e]);
    });
  });
}

void demo_lookahead(const DemoPlan& plan, const FlatBuffer& canonical, const FlatBuffer& momentum,
                    double lr, FlatBuffer& working) {
  const int64_t n = plan.layout().buffer_size();
  TERN_CHECK(canonical.size() == n && momentum.size() == n && working.size() == n);
  const auto lr_f = static_cast<float>(lr);
  const float* p = canonical.data();
  const float* d = momentum.data();
  float* w = working.data();
  parallel_for(
      n,
      [&](int64_t begin, int64_t end) {
        for (int64_t i = begin; i < end; ++i) w[i] = p[i] - lr_f * sign_of(d[i]);
      },
      4096);
}

}  // namespace tern
