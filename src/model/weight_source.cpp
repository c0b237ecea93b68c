#include "model/weight_source.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "format/ggml_quants.h"
#include "kernels/cpu/box_muller.h"

namespace tern {

Result<ref::TernaryMatrix> WeightSource::read_ternary(std::string_view name, int64_t rows,
                                                      int64_t cols) {
  const int64_t shape[2] = {rows, cols};
  std::vector<float> weights(static_cast<size_t>(rows * cols));
  TERN_RETURN_IF_ERROR(read(name, shape, weights));
  ref::TernaryMatrix packed;
  ref::quantize_weights_absmean(&packed, weights.data(), rows, cols);
  return packed;
}

StoredType WeightSource::stored_type(std::string_view) const {
  return StoredType::kF32;
}

Status WeightSource::read_f16(std::string_view name, std::span<const int64_t> shape,
                              std::span<uint16_t> out) {
  std::vector<float> values(out.size());
  TERN_RETURN_IF_ERROR(read(name, shape, values));
  for (size_t i = 0; i < values.size(); ++i) {
    out[i] = fp32_to_fp16(values[i]);
    const float back = fp16_to_fp32(out[i]);
    if (back != values[i] && !(std::isnan(back) && std::isnan(values[i]))) {
      return Status::Error("read '" + std::string(name) + "' as F16: value " +
                           std::to_string(values[i]) + " at index " + std::to_string(i) +
                           " is not representable");
    }
  }
  return Status::Ok();
}

void ternary_latents(const ref::TernaryMatrix& m, std::span<float> out) {
  TERN_CHECK(static_cast<int64_t>(out.size()) == m.rows * m.cols);
  std::vector<int8_t> row(static_cast<size_t>(m.cols));
  int64_t nonzero = 0;
  for (int64_t r = 0; r < m.rows; ++r) {
    m.unpack_row(r, row.data());
    for (int64_t c = 0; c < m.cols; ++c) {
      out[static_cast<size_t>(r * m.cols + c)] = static_cast<float>(row[static_cast<size_t>(c)]);
      nonzero += row[static_cast<size_t>(c)] != 0;
    }
  }
  if (nonzero == 0) {
    std::fill(out.begin(), out.end(), 0.0f);
    return;
  }
  // absmean sees nonzero·m / n (the sum is exact in double); pick the float m,
  // among the neighbours of γ·n/nonzero, for which that rounds back to γ exactly.
  const auto n = static_cast<double>(out.size());
  const auto k = static_cast<double>(nonzero);
  auto gamma_of = [&](float m) { return static_cast<float>(k * static_cast<double>(m) / n); };
  float magnitude = static_cast<float>(static_cast<double>(m.scale) * n / k);
  for (int step = 0; step < 8 && gamma_of(magnitude) != m.scale; ++step) {
    magnitude = std::nextafter(magnitude, gamma_of(magnitude) < m.scale ? INFINITY : 0.0f);
  }
  for (float& v : out) v *= magnitude;
}

namespace {

int64_t element_count(std::string_view name, std::span<const int64_t> shape, size_t out_size) {
  int64_t size = 1;
  for (int64_t d : shape) size *= d;
  TERN_CHECK(static_cast<int64_t>(out_size) == size, "buffer for '", name, "' has wrong size");
  return size;
}

bool is_norm(std::string_view name) {
  return name.ends_with("norm.weight");
}

}  // namespace

// The `count` values of one tensor, in order, a block at a time. The normals
// come from Rng::normals (the same values as one normal() at a time), which
// spreads their log/sin/cos over the thread pool, and the pool also scales
// and rounds them: that work is most of a random init.
class RandomInitSource::Stream {
 public:
  Stream(const RandomInitSource& source, std::string_view name, int64_t count)
      : rng_(derive_seed(source.seed_, name)),
        stddev_(source.stddev_),
        f16_(source.f16_),
        left_(count) {}

  // The next min(kBlock, values left) values; empty at the end. Valid until
  // the next call.
  std::span<const float> next_block() {
    const auto n = static_cast<size_t>(std::min(kBlock, left_));
    left_ -= static_cast<int64_t>(n);
    normals_.resize(n);
    values_.resize(n);
    rng_.normals(normals_, cpu::box_muller_pairs);
    parallel_for(
        static_cast<int64_t>(n),
        [&](int64_t begin, int64_t end) {
          for (int64_t i = begin; i < end; ++i) {
            const auto v = static_cast<float>(normals_[static_cast<size_t>(i)] * stddev_);
            values_[static_cast<size_t>(i)] = f16_ ? fp16_to_fp32(fp32_to_fp16(v)) : v;
          }
        },
        4096);
    return values_;
  }

  // Calls fn(offset, block) for every block, offset = index of its first value.
  template <typename Fn>
  void for_each_block(Fn&& fn) {
    for (int64_t offset = 0;;) {
      const std::span<const float> block = next_block();
      if (block.empty()) return;
      fn(offset, block);
      offset += static_cast<int64_t>(block.size());
    }
  }

 private:
  static constexpr int64_t kBlock = int64_t{1} << 16;

  Rng rng_;
  float stddev_;
  bool f16_;
  int64_t left_;
  std::vector<double> normals_;
  std::vector<float> values_;
};

Status RandomInitSource::read(std::string_view name, std::span<const int64_t> shape,
                              std::span<float> out) {
  element_count(name, shape, out.size());
  if (is_norm(name)) {
    for (float& v : out) v = 1.0f;
    return Status::Ok();
  }
  Stream(*this, name, static_cast<int64_t>(out.size()))
      .for_each_block([&](int64_t offset, std::span<const float> block) {
        std::copy(block.begin(), block.end(), out.begin() + offset);
      });
  return Status::Ok();
}

Result<ref::TernaryMatrix> RandomInitSource::read_ternary(std::string_view name, int64_t rows,
                                                          int64_t cols) {
  TERN_CHECK(rows > 0 && cols > 0 && !is_norm(name));
  // The absmean rule of ref::quantize_weights_absmean, streamed: pass 1 sums |w|
  // in double in storage order, pass 2 replays the stream and packs it.
  // ModelTest/RandomSourceTernaryMatchesQuantizer pins the equality.
  const int64_t count = rows * cols;
  double abs_sum = 0.0;
  Stream(*this, name, count).for_each_block([&](int64_t, std::span<const float> block) {
    for (float v : block) abs_sum += std::fabs(static_cast<double>(v));
  });
  ref::TernaryMatrix m;
  m.reset(rows, cols,
          std::max(static_cast<float>(abs_sum / static_cast<double>(count)), ref::kWeightScaleEps));
  // A block's codes are computed and packed on the pool, split into units of
  // one row's 128-column group: the codes of a group share its 32 bytes, those
  // of different groups never share one, and blocks run one after another.
  constexpr int64_t kGroupCols = ref::TernaryMatrix::kGroupCols;
  const int64_t groups_per_row = (cols + kGroupCols - 1) / kGroupCols;
  auto unit_of = [&](int64_t position) {
    return position / cols * groups_per_row + position % cols / kGroupCols;
  };
  Stream(*this, name, count).for_each_block([&](int64_t offset, std::span<const float> block) {
    const int64_t end = offset + static_cast<int64_t>(block.size());
    const int64_t first_unit = unit_of(offset);
    parallel_for(
        unit_of(end - 1) + 1 - first_unit,
        [&](int64_t u_begin, int64_t u_end) {
          for (int64_t u = first_unit + u_begin; u < first_unit + u_end; ++u) {
            const int64_t r = u / groups_per_row;
            const int64_t group_col = u % groups_per_row * kGroupCols;
            // The unit's columns inside this block (the first and last unit
            // may continue in the neighbouring blocks).
            const int64_t c_begin = std::max(group_col, offset - r * cols);
            const int64_t c_end = std::min({group_col + kGroupCols, cols, end - r * cols});
            for (int64_t c = c_begin; c < c_end; ++c) {
              const float w = block[static_cast<size_t>(r * cols + c - offset)];
              m.set_code(r, c,
                         static_cast<int>(std::clamp(std::nearbyint(w / m.scale), -1.0f, 1.0f)));
            }
          }
        },
        32);
  });
  return m;
}

StoredType RandomInitSource::stored_type(std::string_view name) const {
  return f16_ && !is_norm(name) ? StoredType::kF16 : StoredType::kF32;
}

Status RandomInitSource::read_f16(std::string_view name, std::span<const int64_t> shape,
                                  std::span<uint16_t> out) {
  element_count(name, shape, out.size());
  TERN_CHECK(stored_type(name) == StoredType::kF16, "'", name, "' is not an F16 tensor");
  Stream(*this, name, static_cast<int64_t>(out.size()))
      .for_each_block([&](int64_t offset, std::span<const float> block) {
        for (size_t i = 0; i < block.size(); ++i) {
          out[static_cast<size_t>(offset) + i] = fp32_to_fp16(block[i]);
        }
      });
  return Status::Ok();
}

}  // namespace tern
