#include "model/bitnet.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <tuple>

#include "core/rng.h"
#include "core/thread_pool.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/cross_entropy.h"
#include "kernels/cpu/gated_activation.h"
#include "kernels/cpu/ternary.h"
#include "kernels/ref/attention.h"
#include "kernels/ref/embedding.h"
#include "kernels/ref/f16_linear.h"
#include "kernels/ref/linear.h"
#include "kernels/ref/rmsnorm.h"
#include "kernels/ref/rope.h"

namespace tern {
namespace {

// Linears fed by the same normalized input share one activation quantization.
enum InputGroup { kAttnIn, kAttnOut, kFfnIn, kFfnOut, kNumGroups };

InputGroup input_group(LinearId id) {
  switch (id) {
    case LinearId::kQ:
    case LinearId::kK:
    case LinearId::kV:
      return kAttnIn;
    case LinearId::kO:
      return kAttnOut;
    case LinearId::kGate:
    case LinearId::kUp:
      return kFfnIn;
    case LinearId::kDown:
      return kFfnOut;
  }
  TERN_CHECK(false, "bad LinearId");
  return kNumGroups;
}

// Tokens per chunk of the per-token work in kRecompute mode: small enough that
// [chunk, ffn] and [chunk, vocab] scratch stays a few MB, large enough that each
// decoded weight row serves many tokens.
constexpr int64_t kChunkTokens = 32;

// A tensor of the model: where it lives and, when trainable, its gradient.
struct Tensor {
  float* data = nullptr;           // fp32 values; null when stored as F16
  float* grad = nullptr;           // nullptr when frozen
  const uint16_t* half = nullptr;  // frozen F16 values (binary16 bits), or null
};

// A frozen tensor kept as F16.
struct HalfTensor {
  std::vector<int64_t> shape;
  std::vector<uint16_t> bits;
};

struct Linear {
  LinearId id = LinearId::kQ;
  int64_t in = 0;
  int64_t out = 0;
  bool ternary = false;
  Tensor weight;              // fp32: trainable latent, or frozen dense base; null if packed
  ref::TernaryMatrix packed;  // ternary: frozen base (LoRA) or this forward's quantization
  bool has_lora = false;
  Tensor lora_a;  // [rank, in]
  Tensor lora_b;  // [out, rank]
};

struct Layer {
  Tensor attn_norm, attn_sub_norm, ffn_norm, ffn_sub_norm;  // sub-norms null when disabled
  std::array<Linear, kNumLinears> linears;
  Linear& at(LinearId id) { return linears[static_cast<size_t>(id)]; }
};

// An input to a group of linears: fp32 values plus, for ternary models, codes.
struct LinearInput {
  float* x = nullptr;       // [n, dim]
  int8_t* codes = nullptr;  // [n, dim]
  float* scales = nullptr;  // [n]
  int64_t dim = 0;
};

struct LayerCache {
  float* resid_in;     // [N, H] block input
  float* h_attn;       // [N, H] attn_norm output
  float* inv_attn;     // [N]
  float* q;            // [N, heads·hd] after RoPE
  float* k;            // [N, kv·hd] after RoPE
  float* v;            // [N, kv·hd]
  float* probs;        // [B, heads, T, T]
  float* att;          // [N, heads·hd] attention output
  float* att_n;        // [N, heads·hd] attn_sub_norm output (sub-norms only)
  float* inv_att_sub;  // [N]
  float* resid_mid;    // [N, H] after the attention residual
  float* h_ffn;        // [N, H] ffn_norm output
  float* inv_ffn;      // [N]
  float* gate;         // [N, F]
  float* up;           // [N, F]
  float* m;            // [N, F] act(gate)·up
  float* m_n;          // [N, F] ffn_sub_norm output (sub-norms only)
  float* inv_m;        // [N]
  std::array<LinearInput, kNumGroups> inputs;
  std::array<float*, kNumLinears> lora_t;  // [N, rank] x·Aᵀ per LoRA linear
};

// Bump allocator over one FlatBuffer (floats) and one int8 arena; sized by a
// dry run that only counts. rewind() lets buffers that are never live at the
// same time share bytes; the sizes reported are the high-water marks.
class Arena {
 public:
  struct Mark {
    int64_t floats = 0, bytes = 0;
  };
  float* floats(int64_t count) {
    float* p = float_base_ == nullptr ? nullptr : float_base_ + float_used_;
    float_used_ += (count + 15) / 16 * 16;
    float_peak_ = std::max(float_peak_, float_used_);
    return p;
  }
  int8_t* bytes(int64_t count) {
    int8_t* p = byte_base_ == nullptr ? nullptr : byte_base_ + byte_used_;
    byte_used_ += (count + 63) / 64 * 64;
    byte_peak_ = std::max(byte_peak_, byte_used_);
    return p;
  }
  Mark mark() const { return {float_used_, byte_used_}; }
  void rewind(Mark mark) {
    float_used_ = mark.floats;
    byte_used_ = mark.bytes;
  }
  void reset(float* float_base, int8_t* byte_base) {
    float_base_ = float_base;
    byte_base_ = byte_base;
    float_used_ = byte_used_ = float_peak_ = byte_peak_ = 0;
  }
  int64_t float_used() const { return float_peak_; }
  int64_t byte_used() const { return byte_peak_; }

 private:
  float* float_base_ = nullptr;
  int8_t* byte_base_ = nullptr;
  int64_t float_used_ = 0;
  int64_t byte_used_ = 0;
  int64_t float_peak_ = 0;
  int64_t byte_peak_ = 0;
};

// Backward scratch for n rows (all N with kCache, one chunk with kRecompute).
struct Scratch {
  float* dresid = nullptr;     // [N, H] gradient of the residual stream (always all N)
  float* dtmp_h = nullptr;     // [n, H]
  float* dinput = nullptr;     // [n, max_dim] gradient of a group input
  float* dlinear = nullptr;    // [n, max_dim] one linear's input gradient
  float* dgate = nullptr;      // [n, F]
  float* dup = nullptr;        // [n, F]
  float* dpre = nullptr;       // [n, max_dim] gradient before a sub-norm
  float* x_tilde = nullptr;    // [n, max_dim] dequantized activations (full ternary only)
  float* lora_du = nullptr;    // [n, max_dim] (alpha/r)·dy; LoRA's B·t during forward
  float* lora_dt = nullptr;    // [n, rank]
  float* discard = nullptr;    // [max_dim] gradient sink for frozen norm weights
  float* y_tmp = nullptr;      // [n, max_dim] linear output before a residual add
  int8_t* dy_codes = nullptr;  // [n, max_dim] int8 output gradient (TernaryBackward::kInt8)
  float* dy_scales = nullptr;  // [n]
};

// kRecompute: what stays for backward, and the whole-sequence buffers of one block.
struct Recompute {
  int64_t segment = 1;              // blocks per checkpoint segment
  std::vector<float*> checkpoints;  // [ceil(layers/segment)] × [N, H]: input of block s·segment
  std::vector<float*> slots;        // [max(segment−1, 1)] × [N, H]: recomputed block inputs
  float* q = nullptr;               // [N, heads·hd] after RoPE
  float* k = nullptr;               // [N, kv·hd] after RoPE
  float* v = nullptr;               // [N, kv·hd]
  float* att = nullptr;             // [N, heads·hd] attention output, then its gradient
  float* dq = nullptr;              // [N, heads·hd]
  float* dk = nullptr;              // [N, kv·hd]
  float* dv = nullptr;              // [N, kv·hd]
  LayerCache chunk;                 // one chunk's per-token activations (resid_in, q, k, v,
                                    // probs and att unused)
  float* head_logits = nullptr;     // [chunk, V] logits, then their gradient
  float* head_dfinal = nullptr;     // [chunk, H] gradient of the final norm's output
  std::vector<double> row_loss;     // [N]
  FlatBuffer logits;                // [N, V] only when logits() is asked for
  bool logits_ready = false;
};

}  // namespace

struct BitNetModel::Impl {
  Tensor token_embd;   // [V, H]
  Tensor output;       // [V, H]; aliases token_embd when tied
  Tensor output_norm;  // [H]
  std::vector<Layer> layers;
  float lora_scale = 0.0f;
  int64_t lora_rank = 0;
  std::map<std::string, HalfTensor, std::less<>> half;  // frozen F16 tensors by name

  // Shape and mode of the workspace: the policy asked for, and the mode it
  // resolved to (kCache or kRecompute).
  int64_t batch = 0;
  int64_t seq = 0;
  ActivationMemory policy = ActivationMemory::kCache;
  int64_t cache_budget = 0;
  ActivationMemory memory = ActivationMemory::kCache;
  TernaryBackward ternary_backward = TernaryBackward::kExact;
  FlatBuffer act_floats;
  std::vector<int8_t> act_bytes;
  std::vector<LayerCache> caches;  // kCache: one per layer
  Recompute re;                    // kRecompute
  float* resid_final = nullptr;    // [N, H] output of the last block
  float* final_n = nullptr;        // [N, H]
  float* inv_final = nullptr;      // [N]
  float* logits = nullptr;         // [N, V] (kCache)
  Scratch sc;
  // kCache only.
  float* dq = nullptr;         // [N, heads·hd]
  float* dk = nullptr;         // [N, kv·hd]
  float* dv = nullptr;         // [N, kv·hd]
  ref::RopeTable<float> rope;  // [longest seq so far, hd/2], grown by ensure_workspace

  std::vector<int32_t> tokens;
  std::vector<int32_t> labels;
  int64_t label_count = 0;
  bool has_forward = false;
};

BitNetModel::BitNetModel(const ModelConfig& config, bool frozen_base)
    : config_(config),
      frozen_base_(frozen_base),
      memory_(frozen_base ? ActivationMemory::kRecompute : ActivationMemory::kCache),
      impl_(std::make_unique<Impl>()) {}
BitNetModel::BitNetModel(BitNetModel&&) noexcept = default;
BitNetModel& BitNetModel::operator=(BitNetModel&&) noexcept = default;
BitNetModel::~BitNetModel() = default;

Result<BitNetModel> BitNetModel::create_full(const ModelConfig& config, WeightSource& source) {
  TERN_RETURN_IF_ERROR(config.validate());
  BitNetModel model(config, /*frozen_base=*/false);
  TERN_RETURN_IF_ERROR(model.build(source, nullptr, 0));
  return model;
}

Result<BitNetModel> BitNetModel::create_lora(const ModelConfig& config, const LoraConfig& lora,
                                             WeightSource& base, uint64_t seed) {
  TERN_RETURN_IF_ERROR(config.validate());
  TERN_RETURN_IF_ERROR(lora.validate());
  BitNetModel model(config, /*frozen_base=*/true);
  TERN_RETURN_IF_ERROR(model.build(base, &lora, seed));
  return model;
}

Result<BitNetModel> BitNetModel::create_frozen(const ModelConfig& config, WeightSource& base) {
  TERN_RETURN_IF_ERROR(config.validate());
  BitNetModel model(config, /*frozen_base=*/true);
  TERN_RETURN_IF_ERROR(model.build(base, nullptr, 0));
  return model;
}

Status BitNetModel::build(WeightSource& source, const LoraConfig* lora, uint64_t seed) {
  const ModelConfig& c = config_;
  const int64_t q_dim = c.heads * c.head_dim;
  const int64_t kv_dim = c.kv_heads * c.head_dim;
  const bool ternary = c.linear == LinearKind::kTernary;
  Impl& m = *impl_;
  m.layers.resize(static_cast<size_t>(c.layers));

  // Pass 1: decide where each tensor lives. In full mode everything is trainable;
  // in LoRA mode fp32 base tensors are frozen, ternary linears are packed, and the
  // embedding, head and dense linears stay F16 when the source stores them so.
  TensorLayout& base_layout = frozen_base_ ? frozen_layout_ : layout_;
  auto add_big = [&](const std::string& name, std::vector<int64_t> shape) {
    if (frozen_base_ && source.stored_type(name) == StoredType::kF16) {
      m.half[name].shape = std::move(shape);
    } else {
      base_layout.add(name, std::move(shape));
    }
  };
  add_big("token_embd.weight", {c.vocab, c.hidden});
  if (!c.tied_embeddings) add_big("output.weight", {c.vocab, c.hidden});
  base_layout.add("output_norm.weight", {c.hidden});
  auto linear_dims = [&](LinearId id) -> std::pair<int64_t, int64_t> {  // {out, in}
    switch (id) {
      case LinearId::kQ:
        return {q_dim, c.hidden};
      case LinearId::kK:
      case LinearId::kV:
        return {kv_dim, c.hidden};
      case LinearId::kO:
        return {c.hidden, q_dim};
      case LinearId::kGate:
      case LinearId::kUp:
        return {c.ffn, c.hidden};
      case LinearId::kDown:
        return {c.hidden, c.ffn};
    }
    return {0, 0};
  };
  const std::string blk = "blk.";
  for (int64_t l = 0; l < c.layers; ++l) {
    const std::string p = blk + std::to_string(l) + ".";
    base_layout.add(p + "attn_norm.weight", {c.hidden});
    if (c.sub_norms) base_layout.add(p + "attn_sub_norm.weight", {q_dim});
    base_layout.add(p + "ffn_norm.weight", {c.hidden});
    if (c.sub_norms) base_layout.add(p + "ffn_sub_norm.weight", {c.ffn});
    for (int i = 0; i < kNumLinears; ++i) {
      const auto id = static_cast<LinearId>(i);
      const auto [out, in] = linear_dims(id);
      // Packed ternary bases take no fp32 slot at all.
      if (!ternary) {
        add_big(linear_tensor_name(l, id), {out, in});
      } else if (!frozen_base_) {
        base_layout.add(linear_tensor_name(l, id), {out, in});
      }
      if (lora != nullptr && lora->targets_linear(id)) {
        layout_.add(linear_tensor_name(l, id) + ".lora_a", {lora->rank, in});
        layout_.add(linear_tensor_name(l, id) + ".lora_b", {out, lora->rank});
      }
    }
  }
  params_ = FlatBuffer(layout_.buffer_size());
  grads_ = FlatBuffer(layout_.buffer_size());
  frozen_ = FlatBuffer(frozen_layout_.buffer_size());

  // Pass 2: load base tensors and wire up the views.
  FlatBuffer& base_buffer = frozen_base_ ? frozen_ : params_;
  auto bind = [&](const std::string& name) -> Result<Tensor> {
    if (auto it = m.half.find(name); it != m.half.end()) {
      HalfTensor& h = it->second;
      int64_t count = 1;
      for (int64_t d : h.shape) count *= d;
      h.bits.resize(static_cast<size_t>(count));
      TERN_RETURN_IF_ERROR(source.read_f16(name, h.shape, h.bits));
      Tensor t;
      t.half = h.bits.data();
      return t;
    }
    const TensorInfo& info = base_layout.get(name);
    TERN_RETURN_IF_ERROR(source.read(name, info.shape, base_buffer.view(info)));
    Tensor t;
    t.data = base_buffer.view(info).data();
    if (!frozen_base_) t.grad = grads_.view(info).data();
    return t;
  };
  TERN_ASSIGN_OR_RETURN(m.token_embd, bind("token_embd.weight"));
  if (c.tied_embeddings) {
    m.output = m.token_embd;
  } else {
    TERN_ASSIGN_OR_RETURN(m.output, bind("output.weight"));
  }
  TERN_ASSIGN_OR_RETURN(m.output_norm, bind("output_norm.weight"));
  for (int64_t l = 0; l < c.layers; ++l) {
    Layer& layer = m.layers[static_cast<size_t>(l)];
    const std::string p = blk + std::to_string(l) + ".";
    TERN_ASSIGN_OR_RETURN(layer.attn_norm, bind(p + "attn_norm.weight"));
    TERN_ASSIGN_OR_RETURN(layer.ffn_norm, bind(p + "ffn_norm.weight"));
    if (c.sub_norms) {
      TERN_ASSIGN_OR_RETURN(layer.attn_sub_norm, bind(p + "attn_sub_norm.weight"));
      TERN_ASSIGN_OR_RETURN(layer.ffn_sub_norm, bind(p + "ffn_sub_norm.weight"));
    }
    for (int i = 0; i < kNumLinears; ++i) {
      Linear& lin = layer.linears[static_cast<size_t>(i)];
      lin.id = static_cast<LinearId>(i);
      std::tie(lin.out, lin.in) = linear_dims(lin.id);
      lin.ternary = ternary;
      const std::string name = linear_tensor_name(l, lin.id);
      if (frozen_base_ && ternary) {
        TERN_ASSIGN_OR_RETURN(lin.packed, source.read_ternary(name, lin.out, lin.in));
        if (lin.packed.rows != lin.out || lin.packed.cols != lin.in) {
          return Status::Error("load '" + name + "': ternary tensor is [" +
                               std::to_string(lin.packed.rows) + ", " +
                               std::to_string(lin.packed.cols) + "], expected [" +
                               std::to_string(lin.out) + ", " + std::to_string(lin.in) + "]");
        }
      } else {
        TERN_ASSIGN_OR_RETURN(lin.weight, bind(name));
      }
      if (lora != nullptr && lora->targets_linear(lin.id)) {
        lin.has_lora = true;
        const TensorInfo& a = layout_.get(name + ".lora_a");
        const TensorInfo& b = layout_.get(name + ".lora_b");
        lin.lora_a = {params_.view(a).data(), grads_.view(a).data()};
        lin.lora_b = {params_.view(b).data(), grads_.view(b).data()};
        // Standard LoRA start: A uniform in ±1/sqrt(in), B zero, so training
        // starts exactly at the base model.
        Rng rng(derive_seed(seed, a.name));
        const double bound = 1.0 / std::sqrt(static_cast<double>(lin.in));
        for (float& v : params_.view(a))
          v = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
      }
    }
  }
  if (lora != nullptr) {
    lora_ = *lora;
    m.lora_scale = lora->scale();
    m.lora_rank = lora->rank;
  }
  return Status::Ok();
}

std::vector<BitNetModel::BaseTensor> BitNetModel::base_tensors() const {
  const TensorLayout& fp32_layout = frozen_base_ ? frozen_layout_ : layout_;
  const FlatBuffer& fp32_buffer = frozen_base_ ? frozen_ : params_;
  const bool ternary = config_.linear == LinearKind::kTernary;
  std::vector<BaseTensor> out;
  auto add_fp32 = [&](const std::string& name, bool is_linear) {
    if (auto it = impl_->half.find(name); it != impl_->half.end()) {
      out.push_back({name, it->second.shape, {}, nullptr, false, it->second.bits});
      return;
    }
    const TensorInfo& info = fp32_layout.get(name);
    out.push_back({name, info.shape, fp32_buffer.view(info), nullptr, is_linear && ternary, {}});
  };
  add_fp32("token_embd.weight", false);
  add_fp32("output_norm.weight", false);
  if (!config_.tied_embeddings) add_fp32("output.weight", false);
  for (int64_t l = 0; l < config_.layers; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add_fp32(p + "attn_norm.weight", false);
    if (config_.sub_norms) add_fp32(p + "attn_sub_norm.weight", false);
    add_fp32(p + "ffn_norm.weight", false);
    if (config_.sub_norms) add_fp32(p + "ffn_sub_norm.weight", false);
    for (int i = 0; i < kNumLinears; ++i) {
      const auto id = static_cast<LinearId>(i);
      const std::string name = linear_tensor_name(l, id);
      if (frozen_base_ && ternary) {
        const ref::TernaryMatrix& m = packed_weights(l, id);
        out.push_back({name, {m.rows, m.cols}, {}, &m, true, {}});
      } else {
        add_fp32(name, true);
      }
    }
  }
  return out;
}

const LoraConfig& BitNetModel::lora_config() const {
  TERN_CHECK(lora_.has_value(), "lora_config() of a model without LoRA");
  return *lora_;
}

Status BitNetModel::load_trainable(WeightSource& source) {
  for (const TensorInfo& info : layout_.tensors()) {
    TERN_RETURN_IF_ERROR(source.read(info.name, info.shape, params_.view(info)));
  }
  return Status::Ok();
}

Status BitNetModel::check_batch(std::span<const int32_t> tokens, std::span<const int32_t> labels,
                                int64_t batch, int64_t seq) const {
  if (batch <= 0 || seq <= 0 || seq > config_.max_seq) {
    return Status::Error("batch shape [" + std::to_string(batch) + ", " + std::to_string(seq) +
                         "] invalid (seq must be in [1, " + std::to_string(config_.max_seq) + "])");
  }
  const auto n = static_cast<size_t>(batch * seq);
  if (tokens.size() != n || (!labels.empty() && labels.size() != n)) {
    return Status::Error("batch has " + std::to_string(tokens.size()) + " tokens and " +
                         std::to_string(labels.size()) + " labels, expected " + std::to_string(n));
  }
  for (size_t i = 0; i < n; ++i) {
    if (tokens[i] < 0 || tokens[i] >= config_.vocab) {
      return Status::Error("token " + std::to_string(tokens[i]) + " at position " +
                           std::to_string(i) + " outside vocab of " +
                           std::to_string(config_.vocab));
    }
    if (!labels.empty() && labels[i] >= config_.vocab) {
      return Status::Error("label " + std::to_string(labels[i]) + " at position " +
                           std::to_string(i) + " outside vocab of " +
                           std::to_string(config_.vocab));
    }
  }
  return Status::Ok();
}

namespace {

struct Dims {
  int64_t N, H, F, q_dim, kv_dim, max_dim;
  bool ternary;
};

Dims dims_of(const BitNetModel::Impl& m, const ModelConfig& c) {
  const int64_t q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim;
  return {m.batch * m.seq,
          c.hidden,
          c.ffn,
          q_dim,
          kv_dim,
          std::max({c.hidden, q_dim, c.ffn}),
          c.linear == LinearKind::kTernary};
}

// Carves the per-token activations of one block for n rows. Buffers that hold
// whole sequences (resid_in, q, k, v, probs, att) only when `whole_block`.
void carve_layer(LayerCache& k, const BitNetModel::Impl& m, const ModelConfig& c, const Dims& d,
                 size_t layer, bool has_lora, bool whole_block, int64_t n, Arena& a) {
  const int64_t H = d.H, F = d.F, q_dim = d.q_dim;
  k = LayerCache{};
  if (whole_block) {
    k.resid_in = a.floats(n * H);
    k.q = a.floats(n * q_dim);
    k.k = a.floats(n * d.kv_dim);
    k.v = a.floats(n * d.kv_dim);
    k.probs = a.floats(m.batch * c.heads * m.seq * m.seq);
    k.att = a.floats(n * q_dim);
  }
  k.h_attn = a.floats(n * H);
  k.inv_attn = a.floats(n);
  k.att_n = c.sub_norms ? a.floats(n * q_dim) : nullptr;
  k.inv_att_sub = a.floats(n);
  k.resid_mid = a.floats(n * H);
  k.h_ffn = a.floats(n * H);
  k.inv_ffn = a.floats(n);
  k.gate = a.floats(n * F);
  k.up = a.floats(n * F);
  k.m = a.floats(n * F);
  k.m_n = c.sub_norms ? a.floats(n * F) : nullptr;
  k.inv_m = a.floats(n);
  k.inputs[kAttnIn] = {k.h_attn, nullptr, nullptr, H};
  k.inputs[kAttnOut] = {c.sub_norms ? k.att_n : k.att, nullptr, nullptr, q_dim};
  k.inputs[kFfnIn] = {k.h_ffn, nullptr, nullptr, H};
  k.inputs[kFfnOut] = {c.sub_norms ? k.m_n : k.m, nullptr, nullptr, F};
  for (LinearInput& in : k.inputs) {
    if (d.ternary) {
      in.codes = a.bytes(n * in.dim);
      in.scales = a.floats(n);
    }
  }
  for (int i = 0; i < kNumLinears; ++i) {
    const bool lora_here = has_lora && m.layers[layer].linears[static_cast<size_t>(i)].has_lora;
    k.lora_t[static_cast<size_t>(i)] = lora_here ? a.floats(n * m.lora_rank) : nullptr;
  }
}

// Backward scratch for n rows (dresid and discard are carved by the caller).
void carve_scratch(Scratch& s, const Dims& d, bool has_lora, bool weight_grads, int64_t rank,
                   int64_t n, Arena& a) {
  s.dtmp_h = a.floats(n * d.H);
  s.dinput = a.floats(n * d.max_dim);
  s.dlinear = a.floats(n * d.max_dim);
  s.dgate = a.floats(n * d.F);
  s.dup = a.floats(n * d.F);
  s.dpre = a.floats(n * d.max_dim);
  s.x_tilde = d.ternary && weight_grads ? a.floats(n * d.max_dim) : nullptr;
  s.lora_du = has_lora ? a.floats(n * d.max_dim) : nullptr;
  s.lora_dt = has_lora ? a.floats(n * rank) : nullptr;
  s.y_tmp = a.floats(n * d.max_dim);
  s.dy_codes = d.ternary ? a.bytes(n * d.max_dim) : nullptr;
  s.dy_scales = d.ternary ? a.floats(n) : nullptr;
}

// kCache: the activations of every layer and backward scratch for all N tokens.
void carve_cache(BitNetModel::Impl& m, const ModelConfig& c, bool has_lora, bool weight_grads,
                 Arena& a) {
  const Dims d = dims_of(m, c);
  m.caches.resize(static_cast<size_t>(c.layers));
  for (size_t l = 0; l < m.caches.size(); ++l) {
    carve_layer(m.caches[l], m, c, d, l, has_lora, /*whole_block=*/true, d.N, a);
  }
  m.resid_final = a.floats(d.N * d.H);
  m.final_n = a.floats(d.N * d.H);
  m.inv_final = a.floats(d.N);
  m.logits = a.floats(d.N * c.vocab);
  m.sc.dresid = a.floats(d.N * d.H);
  m.sc.discard = a.floats(d.max_dim);
  carve_scratch(m.sc, d, has_lora, weight_grads, m.lora_rank, d.N, a);
  m.dq = a.floats(d.N * d.q_dim);
  m.dk = a.floats(d.N * d.kv_dim);
  m.dv = a.floats(d.N * d.kv_dim);
}

// Blocks per checkpoint segment: minimizes the [N, H] buffers kept,
// ceil(layers/S) checkpoints plus max(S−1, 1) slots; ties go to shorter segments
// (less recomputation).
int64_t segment_length(int64_t layers) {
  int64_t best = 1, best_count = layers + 1;
  for (int64_t s = 1; s <= layers; ++s) {
    const int64_t count = (layers + s - 1) / s + std::max<int64_t>(s - 1, 1);
    if (count < best_count) {
      best = s;
      best_count = count;
    }
  }
  return best;
}

// kRecompute: checkpoints, one block's whole-sequence buffers, one chunk's
// activations and scratch; the head's [chunk, V] logits share bytes with the
// chunk buffers (never live together).
void carve_recompute(BitNetModel::Impl& m, const ModelConfig& c, bool has_lora, Arena& a) {
  const Dims d = dims_of(m, c);
  Recompute& re = m.re;
  const int64_t chunk = std::min(kChunkTokens, d.N);
  re.segment = segment_length(c.layers);
  re.checkpoints.resize(static_cast<size_t>((c.layers + re.segment - 1) / re.segment));
  for (float*& p : re.checkpoints) p = a.floats(d.N * d.H);
  re.slots.resize(static_cast<size_t>(std::max<int64_t>(re.segment - 1, 1)));
  for (float*& p : re.slots) p = a.floats(d.N * d.H);
  m.resid_final = nullptr;  // set by forward: the slot the last block wrote
  m.final_n = a.floats(d.N * d.H);
  m.inv_final = a.floats(d.N);
  m.logits = nullptr;
  re.q = a.floats(d.N * d.q_dim);
  re.k = a.floats(d.N * d.kv_dim);
  re.v = a.floats(d.N * d.kv_dim);
  re.att = a.floats(d.N * d.q_dim);
  re.dq = a.floats(d.N * d.q_dim);
  re.dk = a.floats(d.N * d.kv_dim);
  re.dv = a.floats(d.N * d.kv_dim);
  m.sc.dresid = a.floats(d.N * d.H);
  m.sc.discard = a.floats(d.max_dim);
  const Arena::Mark shared = a.mark();
  carve_scratch(m.sc, d, has_lora, /*weight_grads=*/false, m.lora_rank, chunk, a);
  carve_layer(re.chunk, m, c, d, 0, /*has_lora=*/false, /*whole_block=*/false, chunk, a);
  for (int i = 0; i < kNumLinears; ++i) {  // any layer's LoRA targets: the same linears
    bool any = false;
    for (const Layer& layer : m.layers)
      any |= has_lora && layer.linears[static_cast<size_t>(i)].has_lora;
    re.chunk.lora_t[static_cast<size_t>(i)] = any ? a.floats(chunk * m.lora_rank) : nullptr;
  }
  a.rewind(shared);
  re.head_logits = a.floats(chunk * c.vocab);
  re.head_dfinal = a.floats(chunk * d.H);
  re.row_loss.assign(static_cast<size_t>(d.N), 0.0);
}

// Bytes of an arena's floats and int8s.
int64_t arena_bytes(const Arena& a) {
  return a.float_used() * static_cast<int64_t>(sizeof(float)) + a.byte_used();
}

void ensure_workspace(BitNetModel::Impl& m, const ModelConfig& c, bool has_lora, bool weight_grads,
                      ActivationMemory policy, int64_t cache_budget, int64_t batch, int64_t seq) {
  if (m.batch == batch && m.seq == seq && m.policy == policy && m.cache_budget == cache_budget)
    return;
  m.batch = batch;
  m.seq = seq;
  m.policy = policy;
  m.cache_budget = cache_budget;
  // RoPE rows for the longest sequence seen so far, not all of max_seq: a
  // config's context can be far longer than any batch the model is given.
  if (m.rope.seq < seq) m.rope = ref::make_rope_table<float>(seq, c.head_dim, c.rope_theta);
  m.act_floats = FlatBuffer();  // release the old workspace before sizing the new one
  m.act_bytes = {};
  m.caches.clear();
  m.re = Recompute{};
  ActivationMemory memory = policy;
  if (policy == ActivationMemory::kAuto) {
    Arena probe;
    carve_cache(m, c, has_lora, weight_grads, probe);  // dry run: sizes only
    m.caches.clear();
    memory = arena_bytes(probe) <= cache_budget ? ActivationMemory::kCache
                                                : ActivationMemory::kRecompute;
  }
  m.memory = memory;
  auto carve = [&](Arena& arena) {
    if (memory == ActivationMemory::kCache) {
      carve_cache(m, c, has_lora, weight_grads, arena);
    } else {
      carve_recompute(m, c, has_lora, arena);
    }
  };
  Arena arena;
  carve(arena);  // dry run: sizes only
  m.act_floats = FlatBuffer(arena.float_used());
  m.act_bytes.assign(static_cast<size_t>(arena.byte_used()), 0);
  arena.reset(m.act_floats.data(), m.act_bytes.data());
  carve(arena);
}

// y[n, out] = x[n, in] · Wᵀ for the stored form of a frozen or trainable tensor.
void dense_forward(float* y, const float* x, const Tensor& w, int64_t n, int64_t in, int64_t out) {
  if (w.half != nullptr) {
    cpu::linear_f16_forward(y, x, w.half, n, in, out);
  } else {
    cpu::linear_forward(y, x, w.data, n, in, out);
  }
}

// dx[n, in] = dy[n, out] · W.
void dense_backward_input(float* dx, const float* dy, const Tensor& w, int64_t n, int64_t in,
                          int64_t out) {
  if (w.half != nullptr) {
    cpu::linear_f16_backward_input(dx, dy, w.half, n, in, out);
  } else {
    cpu::linear_backward_input(dx, dy, w.data, n, in, out);
  }
}

// y[n, out] = lin(x); lora_t caches x·Aᵀ for LoRA. Scratch: s.lora_du.
void apply_linear(const BitNetModel::Impl& m, const Scratch& s, const Linear& lin,
                  const LinearInput& in, float* y, float* lora_t, int64_t n) {
  if (lin.ternary) {
    cpu::bitlinear_forward(y, in.codes, in.scales, lin.packed, n);
  } else {
    dense_forward(y, in.x, lin.weight, n, lin.in, lin.out);
  }
  if (lin.has_lora) {
    cpu::linear_forward(lora_t, in.x, lin.lora_a.data, n, lin.in, m.lora_rank);
    float* u = s.lora_du;  // free during forward: [n, out]
    cpu::linear_forward(u, lora_t, lin.lora_b.data, n, m.lora_rank, lin.out);
    const float scale = m.lora_scale;
    for (int64_t i = 0; i < n * lin.out; ++i) y[i] += scale * u[i];
  }
}

void quantize_input(LinearInput& in, int64_t n, bool ternary) {
  if (ternary) cpu::quantize_activations_absmax(in.codes, in.scales, in.x, n, in.dim);
}

// Backward of the linears that read one input: overwrites dx[n, in] with the sum
// of every linear's input gradient, and accumulates the trainable tensors' grads.
// dys[i] is the output gradient of linears[i]; lora_t[id] = x·Aᵀ of its forward.
void linear_group_backward(const BitNetModel::Impl& m, const Scratch& s,
                           const std::array<float*, kNumLinears>& lora_t,
                           std::span<Linear* const> linears, std::span<float* const> dys,
                           const LinearInput& in, float* dx, int64_t n) {
  const int64_t dim = in.dim;
  for (int64_t i = 0; i < n * dim; ++i) dx[i] = 0.0f;
  // STE: the latent weight gradient uses the dequantized activations x̃.
  bool x_tilde_ready = false;
  for (size_t j = 0; j < linears.size(); ++j) {
    const Linear& lin = *linears[j];
    const float* dy = dys[j];
    if (lin.ternary && m.ternary_backward == TernaryBackward::kInt8) {
      cpu::quantize_activations_absmax(s.dy_codes, s.dy_scales, dy, n, lin.out);
      cpu::bitlinear_backward_input_int8(s.dlinear, s.dy_codes, s.dy_scales, lin.packed, n);
    } else if (lin.ternary) {
      cpu::bitlinear_backward_input(s.dlinear, dy, lin.packed, n);
    } else {
      dense_backward_input(s.dlinear, dy, lin.weight, n, lin.in, lin.out);
    }
    if (lin.weight.grad != nullptr) {
      const float* x = in.x;
      if (lin.ternary) {
        if (!x_tilde_ready) {
          ref::dequantize_activations(s.x_tilde, in.codes, in.scales, n, dim);
          x_tilde_ready = true;
        }
        x = s.x_tilde;
      }
      cpu::linear_backward_weight(lin.weight.grad, dy, x, n, lin.in, lin.out);
    }
    for (int64_t i = 0; i < n * dim; ++i) dx[i] += s.dlinear[i];
    if (lin.has_lora) {
      const float* t = lora_t[static_cast<size_t>(lin.id)];
      const int64_t r = m.lora_rank;
      float* du = s.lora_du;  // [n, out] = (alpha/r)·dy
      for (int64_t i = 0; i < n * lin.out; ++i) du[i] = m.lora_scale * dy[i];
      cpu::linear_backward_weight(lin.lora_b.grad, du, t, n, r, lin.out);
      cpu::linear_backward_input(s.lora_dt, du, lin.lora_b.data, n, r, lin.out);
      cpu::linear_backward_weight(lin.lora_a.grad, s.lora_dt, in.x, n, lin.in, r);
      cpu::linear_backward_input(s.dlinear, s.lora_dt, lin.lora_a.data, n, lin.in, r);
      for (int64_t i = 0; i < n * dim; ++i) dx[i] += s.dlinear[i];
    }
  }
}

// dx (overwritten) from dy through y = rmsnorm(x)·w; frozen weights send dw to a sink.
void norm_backward(const Scratch& s, float* dx, const Tensor& w, const float* dy, const float* x,
                   const float* inv, int64_t n, int64_t d) {
  float* dw = w.grad;
  if (dw == nullptr) {
    dw = s.discard;
    for (int64_t i = 0; i < d; ++i) dw[i] = 0.0f;
  }
  ref::rmsnorm_backward(dx, dw, dy, x, w.data, inv, n, d);
}

void embed(const BitNetModel::Impl& m, float* out, int64_t n, int64_t vocab, int64_t dim) {
  if (m.token_embd.half != nullptr) {
    ref::embedding_f16_forward(out, m.token_embd.half, m.tokens.data(), n, vocab, dim);
  } else {
    ref::embedding_forward(out, m.token_embd.data, m.tokens.data(), n, vocab, dim);
  }
}

// ---- kCache: every activation of the batch kept for backward. ----

float forward_cached(BitNetModel::Impl& m, const ModelConfig& c, bool requantize, bool has_labels) {
  const Dims d = dims_of(m, c);
  const int64_t N = d.N, H = d.H, F = d.F, q_dim = d.q_dim;
  const bool ternary = d.ternary;
  const ref::AttentionShape shape{m.batch, m.seq, c.heads, c.kv_heads, c.head_dim};

  // Full training re-quantizes the latent weights (they changed since last step).
  if (requantize) {
    for (Layer& layer : m.layers) {
      for (Linear& lin : layer.linears) {
        ref::quantize_weights_absmean(&lin.packed, lin.weight.data, lin.out, lin.in);
        if (m.ternary_backward == TernaryBackward::kInt8) lin.packed.build_transposed();
      }
    }
  }

  embed(m, m.caches[0].resid_in, N, c.vocab, H);
  for (int64_t l = 0; l < c.layers; ++l) {
    Layer& layer = m.layers[static_cast<size_t>(l)];
    LayerCache& k = m.caches[static_cast<size_t>(l)];
    auto run = [&](LinearId id, float* y) {
      apply_linear(m, m.sc, layer.at(id), k.inputs[input_group(id)], y,
                   k.lora_t[static_cast<size_t>(id)], N);
    };
    // Attention half.
    ref::rmsnorm_forward(k.h_attn, k.inv_attn, k.resid_in, layer.attn_norm.data, N, H, c.norm_eps);
    quantize_input(k.inputs[kAttnIn], N, ternary);
    run(LinearId::kQ, k.q);
    run(LinearId::kK, k.k);
    run(LinearId::kV, k.v);
    ref::rope_forward(k.q, m.rope, c.rope_style, m.batch, m.seq, c.heads, c.head_dim);
    ref::rope_forward(k.k, m.rope, c.rope_style, m.batch, m.seq, c.kv_heads, c.head_dim);
    cpu::attention_forward(k.att, k.probs, k.q, k.k, k.v, shape);
    if (c.sub_norms) {
      ref::rmsnorm_forward(k.att_n, k.inv_att_sub, k.att, layer.attn_sub_norm.data, N, q_dim,
                           c.norm_eps);
    }
    quantize_input(k.inputs[kAttnOut], N, ternary);
    run(LinearId::kO, m.sc.y_tmp);
    for (int64_t i = 0; i < N * H; ++i) k.resid_mid[i] = k.resid_in[i] + m.sc.y_tmp[i];
    // FFN half.
    ref::rmsnorm_forward(k.h_ffn, k.inv_ffn, k.resid_mid, layer.ffn_norm.data, N, H, c.norm_eps);
    quantize_input(k.inputs[kFfnIn], N, ternary);
    run(LinearId::kGate, k.gate);
    run(LinearId::kUp, k.up);
    cpu::gated_activation_forward(k.m, k.gate, k.up, N * F, c.activation);
    if (c.sub_norms) {
      ref::rmsnorm_forward(k.m_n, k.inv_m, k.m, layer.ffn_sub_norm.data, N, F, c.norm_eps);
    }
    quantize_input(k.inputs[kFfnOut], N, ternary);
    run(LinearId::kDown, m.sc.y_tmp);
    float* next = l + 1 < c.layers ? m.caches[static_cast<size_t>(l + 1)].resid_in : m.resid_final;
    for (int64_t i = 0; i < N * H; ++i) next[i] = k.resid_mid[i] + m.sc.y_tmp[i];
  }
  ref::rmsnorm_forward(m.final_n, m.inv_final, m.resid_final, m.output_norm.data, N, H, c.norm_eps);
  dense_forward(m.logits, m.final_n, m.output, N, H, c.vocab);
  if (!has_labels) {
    m.label_count = 0;
    return 0.0f;
  }
  const ref::CrossEntropyTotals totals =
      cpu::cross_entropy_forward(m.logits, m.labels.data(), N, c.vocab);
  m.label_count = totals.count;
  return totals.count == 0 ? 0.0f : static_cast<float>(totals.loss_sum / totals.count);
}

void backward_cached(BitNetModel::Impl& m, const ModelConfig& c, float per_label) {
  const Dims d = dims_of(m, c);
  const int64_t N = d.N, H = d.H, F = d.F, q_dim = d.q_dim;
  const ref::AttentionShape shape{m.batch, m.seq, c.heads, c.kv_heads, c.head_dim};
  const Scratch& s = m.sc;

  // Loss → logits (in place) → final norm → residual stream.
  cpu::cross_entropy_backward(m.logits, m.logits, m.labels.data(), N, c.vocab, per_label);
  float* dfinal_n = s.dtmp_h;  // [N, H]
  dense_backward_input(dfinal_n, m.logits, m.output, N, H, c.vocab);
  if (m.output.grad != nullptr) {
    cpu::linear_backward_weight(m.output.grad, m.logits, m.final_n, N, H, c.vocab);
  }
  norm_backward(s, s.dresid, m.output_norm, dfinal_n, m.resid_final, m.inv_final, N, H);

  for (int64_t l = c.layers - 1; l >= 0; --l) {
    Layer& layer = m.layers[static_cast<size_t>(l)];
    LayerCache& k = m.caches[static_cast<size_t>(l)];
    // FFN half: resid_out = resid_mid + down(m_in). dresid is d(resid_out).
    {
      Linear* down[] = {&layer.at(LinearId::kDown)};
      float* dys[] = {s.dresid};
      linear_group_backward(m, s, k.lora_t, down, dys, k.inputs[kFfnOut], s.dinput, N);
    }
    float* dm = s.dinput;  // [N, F]
    if (c.sub_norms) {
      norm_backward(s, s.dpre, layer.ffn_sub_norm, s.dinput, k.m, k.inv_m, N, F);
      dm = s.dpre;
    }
    cpu::gated_activation_backward(s.dgate, s.dup, dm, k.gate, k.up, N * F, c.activation);
    {
      Linear* gate_up[] = {&layer.at(LinearId::kGate), &layer.at(LinearId::kUp)};
      float* dys[] = {s.dgate, s.dup};
      linear_group_backward(m, s, k.lora_t, gate_up, dys, k.inputs[kFfnIn], s.dinput, N);
    }
    norm_backward(s, s.dtmp_h, layer.ffn_norm, s.dinput, k.resid_mid, k.inv_ffn, N, H);
    for (int64_t i = 0; i < N * H; ++i) s.dresid[i] += s.dtmp_h[i];  // now d(resid_mid)

    // Attention half: resid_mid = resid_in + o(a_in).
    {
      Linear* o[] = {&layer.at(LinearId::kO)};
      float* dys[] = {s.dresid};
      linear_group_backward(m, s, k.lora_t, o, dys, k.inputs[kAttnOut], s.dinput, N);
    }
    float* datt = s.dinput;  // [N, heads·hd]
    if (c.sub_norms) {
      norm_backward(s, s.dpre, layer.attn_sub_norm, s.dinput, k.att, k.inv_att_sub, N, q_dim);
      datt = s.dpre;
    }
    cpu::attention_backward(m.dq, m.dk, m.dv, datt, k.probs, k.q, k.k, k.v, shape);
    ref::rope_backward(m.dq, m.rope, c.rope_style, m.batch, m.seq, c.heads, c.head_dim);
    ref::rope_backward(m.dk, m.rope, c.rope_style, m.batch, m.seq, c.kv_heads, c.head_dim);
    {
      Linear* qkv[] = {&layer.at(LinearId::kQ), &layer.at(LinearId::kK), &layer.at(LinearId::kV)};
      float* dys[] = {m.dq, m.dk, m.dv};
      linear_group_backward(m, s, k.lora_t, qkv, dys, k.inputs[kAttnIn], s.dinput, N);
    }
    norm_backward(s, s.dtmp_h, layer.attn_norm, s.dinput, k.resid_in, k.inv_attn, N, H);
    for (int64_t i = 0; i < N * H; ++i) s.dresid[i] += s.dtmp_h[i];  // now d(resid_in)
  }
  if (m.token_embd.grad != nullptr) {
    ref::embedding_backward(m.token_embd.grad, s.dresid, m.tokens.data(), N, c.vocab, H);
  }
}

// ---- kRecompute: a frozen base, blocks recomputed during backward. ----
//
// Every kernel below is per token (row) except attention, so running rows
// [r0, r0+n) at a time gives the same bits as running all N rows, and weight
// gradients, which add rows in order, see the chunks in row order. Attention
// runs on whole sequences from the block's q, k, v.

// Calls fn(r0, n) for consecutive chunks of rows covering [0, N).
template <typename Fn>
void for_chunks(int64_t N, Fn&& fn) {
  for (int64_t r0 = 0; r0 < N; r0 += kChunkTokens) fn(r0, std::min(kChunkTokens, N - r0));
}

// x·Aᵀ of a LoRA linear for n rows (the t that forward would have cached).
void lora_project(const BitNetModel::Impl& m, const Linear& lin, const float* x, float* t,
                  int64_t n) {
  if (lin.has_lora) cpu::linear_forward(t, x, lin.lora_a.data, n, lin.in, m.lora_rank);
}

// attn_norm of rows [r0, r0+n) of the block input x [N, H] into the chunk.
void attn_norm_rows(BitNetModel::Impl& m, const ModelConfig& c, const Layer& layer, const float* x,
                    int64_t r0, int64_t n) {
  LayerCache& k = m.re.chunk;
  ref::rmsnorm_forward(k.h_attn, k.inv_attn, x + r0 * c.hidden, layer.attn_norm.data, n, c.hidden,
                       c.norm_eps);
}

// q, k, v [N, ·] (after RoPE) and the attention output re.att [N, heads·hd] of
// a block whose input is x [N, H].
void attention_recompute(BitNetModel::Impl& m, const ModelConfig& c, Layer& layer, const float* x) {
  const Dims d = dims_of(m, c);
  Recompute& re = m.re;
  LayerCache& k = re.chunk;
  for_chunks(d.N, [&](int64_t r0, int64_t n) {
    attn_norm_rows(m, c, layer, x, r0, n);
    quantize_input(k.inputs[kAttnIn], n, d.ternary);
    auto run = [&](LinearId id, float* y) {
      apply_linear(m, m.sc, layer.at(id), k.inputs[kAttnIn], y, k.lora_t[static_cast<size_t>(id)],
                   n);
    };
    run(LinearId::kQ, re.q + r0 * d.q_dim);
    run(LinearId::kK, re.k + r0 * d.kv_dim);
    run(LinearId::kV, re.v + r0 * d.kv_dim);
  });
  ref::rope_forward(re.q, m.rope, c.rope_style, m.batch, m.seq, c.heads, c.head_dim);
  ref::rope_forward(re.k, m.rope, c.rope_style, m.batch, m.seq, c.kv_heads, c.head_dim);
  const ref::AttentionShape shape{m.batch, m.seq, c.heads, c.kv_heads, c.head_dim};
  cpu::attention_forward_nocache(re.att, re.q, re.k, re.v, shape);
}

// The rest of the block for rows [r0, r0+n): o, residual, FFN. Reads x and
// re.att rows; fills the chunk's activations. With y, writes the block output
// rows (y may alias x); without, stops at down's input (backward needs no more).
void block_tail_rows(BitNetModel::Impl& m, const ModelConfig& c, Layer& layer, const float* x,
                     float* y, int64_t r0, int64_t n) {
  const Dims d = dims_of(m, c);
  LayerCache& k = m.re.chunk;
  const Scratch& s = m.sc;
  auto run = [&](LinearId id, float* out) {
    apply_linear(m, s, layer.at(id), k.inputs[input_group(id)], out,
                 k.lora_t[static_cast<size_t>(id)], n);
  };
  float* att = m.re.att + r0 * d.q_dim;  // [n, heads·hd]
  const float* x_rows = x + r0 * d.H;
  if (c.sub_norms) {
    ref::rmsnorm_forward(k.att_n, k.inv_att_sub, att, layer.attn_sub_norm.data, n, d.q_dim,
                         c.norm_eps);
  } else {
    k.inputs[kAttnOut].x = att;
  }
  quantize_input(k.inputs[kAttnOut], n, d.ternary);
  run(LinearId::kO, s.y_tmp);
  for (int64_t i = 0; i < n * d.H; ++i) k.resid_mid[i] = x_rows[i] + s.y_tmp[i];
  ref::rmsnorm_forward(k.h_ffn, k.inv_ffn, k.resid_mid, layer.ffn_norm.data, n, d.H, c.norm_eps);
  quantize_input(k.inputs[kFfnIn], n, d.ternary);
  run(LinearId::kGate, k.gate);
  run(LinearId::kUp, k.up);
  cpu::gated_activation_forward(k.m, k.gate, k.up, n * d.F, c.activation);
  if (c.sub_norms) {
    ref::rmsnorm_forward(k.m_n, k.inv_m, k.m, layer.ffn_sub_norm.data, n, d.F, c.norm_eps);
  }
  if (y == nullptr) {
    lora_project(m, layer.at(LinearId::kDown), k.inputs[kFfnOut].x,
                 k.lora_t[static_cast<size_t>(LinearId::kDown)], n);
    return;
  }
  quantize_input(k.inputs[kFfnOut], n, d.ternary);
  run(LinearId::kDown, s.y_tmp);
  float* y_rows = y + r0 * d.H;
  for (int64_t i = 0; i < n * d.H; ++i) y_rows[i] = k.resid_mid[i] + s.y_tmp[i];
}

// y[N, H] = block(x); y may alias x.
void block_forward(BitNetModel::Impl& m, const ModelConfig& c, Layer& layer, const float* x,
                   float* y) {
  attention_recompute(m, c, layer, x);
  for_chunks(m.batch * m.seq,
             [&](int64_t r0, int64_t n) { block_tail_rows(m, c, layer, x, y, r0, n); });
}

// dresid [N, H]: d(block output) in, d(x) out, for the block with input x.
void block_backward(BitNetModel::Impl& m, const ModelConfig& c, Layer& layer, const float* x) {
  const Dims d = dims_of(m, c);
  Recompute& re = m.re;
  LayerCache& k = re.chunk;
  const Scratch& s = m.sc;
  attention_recompute(m, c, layer, x);
  // o and FFN, chunk by chunk; re.att rows turn into their gradient once used.
  for_chunks(d.N, [&](int64_t r0, int64_t n) {
    block_tail_rows(m, c, layer, x, nullptr, r0, n);
    float* dresid = s.dresid + r0 * d.H;  // [n, H] d(block output) → d(resid_mid)
    float* att = re.att + r0 * d.q_dim;   // [n, heads·hd]
    {
      Linear* down[] = {&layer.at(LinearId::kDown)};
      float* dys[] = {dresid};
      linear_group_backward(m, s, k.lora_t, down, dys, k.inputs[kFfnOut], s.dinput, n);
    }
    float* dm = s.dinput;  // [n, F]
    if (c.sub_norms) {
      norm_backward(s, s.dpre, layer.ffn_sub_norm, s.dinput, k.m, k.inv_m, n, d.F);
      dm = s.dpre;
    }
    cpu::gated_activation_backward(s.dgate, s.dup, dm, k.gate, k.up, n * d.F, c.activation);
    {
      Linear* gate_up[] = {&layer.at(LinearId::kGate), &layer.at(LinearId::kUp)};
      float* dys[] = {s.dgate, s.dup};
      linear_group_backward(m, s, k.lora_t, gate_up, dys, k.inputs[kFfnIn], s.dinput, n);
    }
    norm_backward(s, s.dtmp_h, layer.ffn_norm, s.dinput, k.resid_mid, k.inv_ffn, n, d.H);
    for (int64_t i = 0; i < n * d.H; ++i) dresid[i] += s.dtmp_h[i];
    {
      Linear* o[] = {&layer.at(LinearId::kO)};
      float* dys[] = {dresid};
      linear_group_backward(m, s, k.lora_t, o, dys, k.inputs[kAttnOut], s.dinput, n);
    }
    float* datt = s.dinput;  // [n, heads·hd]
    if (c.sub_norms) {
      norm_backward(s, s.dpre, layer.attn_sub_norm, s.dinput, att, k.inv_att_sub, n, d.q_dim);
      datt = s.dpre;
    }
    std::copy(datt, datt + n * d.q_dim, att);
  });
  const ref::AttentionShape shape{m.batch, m.seq, c.heads, c.kv_heads, c.head_dim};
  cpu::attention_backward_recompute(re.dq, re.dk, re.dv, re.att, re.q, re.k, re.v, shape);
  ref::rope_backward(re.dq, m.rope, c.rope_style, m.batch, m.seq, c.heads, c.head_dim);
  ref::rope_backward(re.dk, m.rope, c.rope_style, m.batch, m.seq, c.kv_heads, c.head_dim);
  // q, k, v and attn_norm, chunk by chunk.
  for_chunks(d.N, [&](int64_t r0, int64_t n) {
    attn_norm_rows(m, c, layer, x, r0, n);
    for (LinearId id : {LinearId::kQ, LinearId::kK, LinearId::kV}) {
      lora_project(m, layer.at(id), k.h_attn, k.lora_t[static_cast<size_t>(id)], n);
    }
    float* dresid = s.dresid + r0 * d.H;
    Linear* qkv[] = {&layer.at(LinearId::kQ), &layer.at(LinearId::kK), &layer.at(LinearId::kV)};
    float* dys[] = {re.dq + r0 * d.q_dim, re.dk + r0 * d.kv_dim, re.dv + r0 * d.kv_dim};
    linear_group_backward(m, s, k.lora_t, qkv, dys, k.inputs[kAttnIn], s.dinput, n);
    norm_backward(s, s.dtmp_h, layer.attn_norm, s.dinput, x + r0 * d.H, k.inv_attn, n, d.H);
    for (int64_t i = 0; i < n * d.H; ++i) dresid[i] += s.dtmp_h[i];
  });
}

// The block input buffer of layer l's segment start, or the output buffer of layer l.
float* segment_output(Recompute& re, int64_t l, int64_t layers) {
  const int64_t next = l + 1;
  if (next < layers && next % re.segment == 0)
    return re.checkpoints[static_cast<size_t>(next / re.segment)];
  return re.slots[0];
}

float forward_recompute(BitNetModel::Impl& m, const ModelConfig& c, bool has_labels) {
  const Dims d = dims_of(m, c);
  Recompute& re = m.re;
  re.logits_ready = false;
  embed(m, re.checkpoints[0], d.N, c.vocab, d.H);
  float* x = re.checkpoints[0];
  for (int64_t l = 0; l < c.layers; ++l) {
    float* y = segment_output(re, l, c.layers);
    block_forward(m, c, m.layers[static_cast<size_t>(l)], x, y);
    x = y;
  }
  m.resid_final = x;
  ref::rmsnorm_forward(m.final_n, m.inv_final, m.resid_final, m.output_norm.data, d.N, d.H,
                       c.norm_eps);
  if (!has_labels) {
    m.label_count = 0;
    return 0.0f;
  }
  // Head and loss a chunk of tokens at a time; per-row losses are folded in row
  // order in double, as cross_entropy_forward does for the whole batch.
  for_chunks(d.N, [&](int64_t r0, int64_t n) {
    dense_forward(re.head_logits, m.final_n + r0 * d.H, m.output, n, d.H, c.vocab);
    parallel_for(n, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        re.row_loss[static_cast<size_t>(r0 + i)] =
            cpu::cross_entropy_forward(re.head_logits + i * c.vocab, m.labels.data() + r0 + i, 1,
                                       c.vocab)
                .loss_sum;
      }
    });
  });
  ref::CrossEntropyTotals totals;
  for (int64_t i = 0; i < d.N; ++i) {
    if (m.labels[static_cast<size_t>(i)] < 0) continue;
    totals.loss_sum += re.row_loss[static_cast<size_t>(i)];
    ++totals.count;
  }
  m.label_count = totals.count;
  return totals.count == 0 ? 0.0f : static_cast<float>(totals.loss_sum / totals.count);
}

void backward_recompute(BitNetModel::Impl& m, const ModelConfig& c, float per_label) {
  const Dims d = dims_of(m, c);
  Recompute& re = m.re;
  const Scratch& s = m.sc;
  TERN_CHECK(m.output.grad == nullptr && m.token_embd.grad == nullptr,
             "kRecompute with a trainable embedding or head");
  // Head: logits recomputed per chunk, turned into their gradient in place.
  for_chunks(d.N, [&](int64_t r0, int64_t n) {
    dense_forward(re.head_logits, m.final_n + r0 * d.H, m.output, n, d.H, c.vocab);
    cpu::cross_entropy_backward(re.head_logits, re.head_logits, m.labels.data() + r0, n, c.vocab,
                                per_label);
    dense_backward_input(re.head_dfinal, re.head_logits, m.output, n, d.H, c.vocab);
    norm_backward(s, s.dresid + r0 * d.H, m.output_norm, re.head_dfinal, m.resid_final + r0 * d.H,
                  m.inv_final + r0, n, d.H);
  });
  // Segments last to first: rebuild the inputs of the segment's blocks from its
  // checkpoint, then run the blocks backward.
  const int64_t segments = static_cast<int64_t>(re.checkpoints.size());
  std::vector<const float*> inputs(static_cast<size_t>(re.segment));
  for (int64_t seg = segments - 1; seg >= 0; --seg) {
    const int64_t first = seg * re.segment;
    const int64_t last = std::min(first + re.segment, c.layers);  // exclusive
    inputs[0] = re.checkpoints[static_cast<size_t>(seg)];
    for (int64_t l = first + 1; l < last; ++l) {
      float* y = re.slots[static_cast<size_t>(l - first - 1)];
      block_forward(m, c, m.layers[static_cast<size_t>(l - 1)],
                    inputs[static_cast<size_t>(l - first - 1)], y);
      inputs[static_cast<size_t>(l - first)] = y;
    }
    for (int64_t l = last - 1; l >= first; --l) {
      block_backward(m, c, m.layers[static_cast<size_t>(l)],
                     inputs[static_cast<size_t>(l - first)]);
    }
  }
}

}  // namespace

float BitNetModel::forward(std::span<const int32_t> tokens, std::span<const int32_t> labels,
                           int64_t batch, int64_t seq) {
  const Status valid = check_batch(tokens, labels, batch, seq);
  TERN_CHECK(valid.ok(), valid.message());
  Impl& m = *impl_;
  ensure_workspace(m, config_, is_lora(), !frozen_base_, memory_, cache_budget_, batch, seq);
  m.tokens.assign(tokens.begin(), tokens.end());
  m.labels.assign(labels.begin(), labels.end());
  const bool requantize = config_.linear == LinearKind::kTernary && !frozen_base_;
  const float loss = m.memory == ActivationMemory::kCache
                         ? forward_cached(m, config_, requantize, !labels.empty())
                         : forward_recompute(m, config_, !labels.empty());
  m.has_forward = true;
  return loss;
}

std::span<const float> BitNetModel::logits() const {
  Impl& m = *impl_;
  TERN_CHECK(m.has_forward, "logits() before forward()");
  const int64_t N = m.batch * m.seq, V = config_.vocab;
  if (m.memory == ActivationMemory::kRecompute) {
    if (!m.re.logits_ready) {
      if (m.re.logits.size() != N * V) m.re.logits = FlatBuffer(N * V);
      dense_forward(m.re.logits.data(), m.final_n, m.output, N, config_.hidden, V);
      m.re.logits_ready = true;
    }
    return {m.re.logits.data(), static_cast<size_t>(N * V)};
  }
  return {m.logits, static_cast<size_t>(N * V)};
}

void BitNetModel::backward(float loss_scale) {
  Impl& m = *impl_;
  TERN_CHECK(m.has_forward, "backward() without forward()");
  TERN_CHECK(m.labels.size() == m.tokens.size(), "backward() after a forward without labels");
  m.has_forward = false;  // logits become gradients below
  if (m.label_count == 0) return;
  const float per_label = loss_scale / static_cast<float>(m.label_count);
  if (m.memory == ActivationMemory::kCache) {
    backward_cached(m, config_, per_label);
  } else {
    backward_recompute(m, config_, per_label);
  }
}

void BitNetModel::set_activation_memory(ActivationMemory memory, int64_t cache_budget_bytes) {
  TERN_CHECK(memory == ActivationMemory::kCache || frozen_base_,
             "kRecompute and kAuto need a frozen base");
  TERN_CHECK(cache_budget_bytes >= 0);
  memory_ = memory;
  cache_budget_ = memory == ActivationMemory::kAuto ? cache_budget_bytes : 0;
  impl_->has_forward = false;
}

ActivationMemory BitNetModel::activation_memory_in_use() const {
  return impl_->batch == 0 ? memory_ : impl_->memory;
}

void BitNetModel::set_ternary_backward(TernaryBackward mode) {
  Impl& m = *impl_;
  ternary_backward_ = mode;
  m.ternary_backward = mode;
  // The int8 input gradient runs as a forward product over Wᵀ: a frozen base
  // builds its transposed codes once; trainable weights rebuild them per step.
  for (Layer& layer : m.layers) {
    for (Linear& lin : layer.linears) {
      if (!lin.ternary || lin.packed.rows == 0) continue;
      if (mode == TernaryBackward::kInt8) {
        if (!lin.packed.has_transposed()) lin.packed.build_transposed();
      } else {
        lin.packed.transposed = StreamedBytes();  // frees it (`= {}` keeps the capacity)
      }
    }
  }
  m.has_forward = false;
}

BitNetModel::MemoryUse BitNetModel::memory_use() const {
  const Impl& m = *impl_;
  MemoryUse use;
  for (const Layer& layer : m.layers) {
    for (const Linear& lin : layer.linears) {
      if (frozen_base_ && lin.ternary)
        use.packed_linear_bytes += static_cast<int64_t>(lin.packed.byte_size());
    }
  }
  for (const auto& [name, h] : m.half)
    use.f16_bytes += static_cast<int64_t>(h.bits.size() * sizeof(uint16_t));
  use.frozen_f32_bytes = frozen_.size() * static_cast<int64_t>(sizeof(float));
  use.trainable_bytes = (params_.size() + grads_.size()) * static_cast<int64_t>(sizeof(float));
  use.workspace_bytes = m.act_floats.size() * static_cast<int64_t>(sizeof(float)) +
                        static_cast<int64_t>(m.act_bytes.size());
  return use;
}

BitNetModel::Quantization BitNetModel::quantization(int64_t layer, LinearId id) const {
  const Impl& m = *impl_;
  TERN_CHECK(config_.linear == LinearKind::kTernary, "quantization() of a dense model");
  TERN_CHECK(m.memory == ActivationMemory::kCache, "quantization() needs ActivationMemory::kCache");
  TERN_CHECK(layer >= 0 && layer < config_.layers && !m.caches.empty());
  const LinearInput& in = m.caches[static_cast<size_t>(layer)].inputs[input_group(id)];
  const int64_t n = m.batch * m.seq;
  return {&m.layers[static_cast<size_t>(layer)].linears[static_cast<size_t>(id)].packed,
          {in.codes, static_cast<size_t>(n * in.dim)},
          {in.scales, static_cast<size_t>(n)}};
}

const ref::TernaryMatrix& BitNetModel::packed_weights(int64_t layer, LinearId id) const {
  TERN_CHECK(config_.linear == LinearKind::kTernary, "packed_weights() of a dense model");
  TERN_CHECK(layer >= 0 && layer < config_.layers);
  return impl_->layers[static_cast<size_t>(layer)].linears[static_cast<size_t>(id)].packed;
}

}  // namespace tern
