#include "model/bitnet.h"

#include <algorithm>
#include <cmath>
#include <string>
#include <tuple>

#include "core/rng.h"
#include "kernels/ref/attention.h"
#include "kernels/ref/cross_entropy.h"
#include "kernels/ref/embedding.h"
#include "kernels/ref/gated_activation.h"
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

// A tensor of the model: where it lives and, when trainable, its gradient.
struct Tensor {
  float* data = nullptr;
  float* grad = nullptr;  // nullptr when frozen
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
// dry run that only counts.
class Arena {
 public:
  float* floats(int64_t count) {
    float* p = float_base_ == nullptr ? nullptr : float_base_ + float_used_;
    float_used_ += (count + 15) / 16 * 16;
    return p;
  }
  int8_t* bytes(int64_t count) {
    int8_t* p = byte_base_ == nullptr ? nullptr : byte_base_ + byte_used_;
    byte_used_ += (count + 63) / 64 * 64;
    return p;
  }
  void reset(float* float_base, int8_t* byte_base) {
    float_base_ = float_base;
    byte_base_ = byte_base;
    float_used_ = byte_used_ = 0;
  }
  int64_t float_used() const { return float_used_; }
  int64_t byte_used() const { return byte_used_; }

 private:
  float* float_base_ = nullptr;
  int8_t* byte_base_ = nullptr;
  int64_t float_used_ = 0;
  int64_t byte_used_ = 0;
};

}  // namespace

struct BitNetModel::Impl {
  Tensor token_embd;   // [V, H]
  Tensor output;       // [V, H]; aliases token_embd when tied
  Tensor output_norm;  // [H]
  std::vector<Layer> layers;
  float lora_scale = 0.0f;
  int64_t lora_rank = 0;

  // Shape of the cached activations.
  int64_t batch = 0;
  int64_t seq = 0;
  FlatBuffer act_floats;
  std::vector<int8_t> act_bytes;
  std::vector<LayerCache> caches;
  float* resid_final = nullptr;  // [N, H] output of the last block
  float* final_n = nullptr;      // [N, H]
  float* inv_final = nullptr;    // [N]
  float* logits = nullptr;       // [N, V]
  // Backward scratch.
  float* dresid = nullptr;   // [N, H] gradient of the residual stream
  float* dtmp_h = nullptr;   // [N, H]
  float* dinput = nullptr;   // [N, max_dim] gradient of a group input
  float* dlinear = nullptr;  // [N, max_dim] one linear's input gradient
  float* dq = nullptr;       // [N, heads·hd]
  float* dk = nullptr;       // [N, kv·hd]
  float* dv = nullptr;       // [N, kv·hd]
  float* dgate = nullptr;    // [N, F]
  float* dup = nullptr;      // [N, F]
  float* dpre = nullptr;     // [N, max_dim] gradient before a sub-norm
  float* x_tilde = nullptr;  // [N, max_dim] dequantized activations
  float* lora_du = nullptr;  // [N, max_dim] (alpha/r)·dy
  float* lora_dt = nullptr;  // [N, rank]
  float* discard = nullptr;  // [max_dim] gradient sink for frozen norm weights
  float* y_tmp = nullptr;    // [N, max_dim] linear output before a residual add
  ref::RopeTable<float> rope;

  std::vector<int32_t> tokens;
  std::vector<int32_t> labels;
  int64_t label_count = 0;
  bool has_forward = false;
};

BitNetModel::BitNetModel(const ModelConfig& config, bool frozen_base)
    : config_(config), frozen_base_(frozen_base), impl_(std::make_unique<Impl>()) {}
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
  // in LoRA mode fp32 base tensors are frozen and ternary linears are packed.
  TensorLayout& base_layout = frozen_base_ ? frozen_layout_ : layout_;
  base_layout.add("token_embd.weight", {c.vocab, c.hidden});
  if (!c.tied_embeddings) base_layout.add("output.weight", {c.vocab, c.hidden});
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
      if (!(frozen_base_ && ternary)) base_layout.add(linear_tensor_name(l, id), {out, in});
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
  m.rope = ref::make_rope_table<float>(c.max_seq, c.head_dim, c.rope_theta);
  return Status::Ok();
}

std::vector<BitNetModel::BaseTensor> BitNetModel::base_tensors() const {
  const TensorLayout& fp32_layout = frozen_base_ ? frozen_layout_ : layout_;
  const FlatBuffer& fp32_buffer = frozen_base_ ? frozen_ : params_;
  const bool ternary = config_.linear == LinearKind::kTernary;
  std::vector<BaseTensor> out;
  auto add_fp32 = [&](const std::string& name, bool is_linear) {
    const TensorInfo& info = fp32_layout.get(name);
    out.push_back({name, info.shape, fp32_buffer.view(info), nullptr, is_linear && ternary});
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
        out.push_back({name, {m.rows, m.cols}, {}, &m, true});
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

// Carves the activation cache and backward scratch for N = batch·seq tokens.
void carve(BitNetModel::Impl& m, const ModelConfig& c, bool has_lora, Arena& a) {
  const int64_t B = m.batch, T = m.seq, N = B * T, H = c.hidden, F = c.ffn;
  const int64_t q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim;
  const int64_t max_dim = std::max({H, q_dim, F});
  const bool ternary = c.linear == LinearKind::kTernary;
  m.caches.resize(static_cast<size_t>(c.layers));
  for (size_t l = 0; l < m.caches.size(); ++l) {
    LayerCache& k = m.caches[l];
    k.resid_in = a.floats(N * H);
    k.h_attn = a.floats(N * H);
    k.inv_attn = a.floats(N);
    k.q = a.floats(N * q_dim);
    k.k = a.floats(N * kv_dim);
    k.v = a.floats(N * kv_dim);
    k.probs = a.floats(B * c.heads * T * T);
    k.att = a.floats(N * q_dim);
    k.att_n = c.sub_norms ? a.floats(N * q_dim) : nullptr;
    k.inv_att_sub = a.floats(N);
    k.resid_mid = a.floats(N * H);
    k.h_ffn = a.floats(N * H);
    k.inv_ffn = a.floats(N);
    k.gate = a.floats(N * F);
    k.up = a.floats(N * F);
    k.m = a.floats(N * F);
    k.m_n = c.sub_norms ? a.floats(N * F) : nullptr;
    k.inv_m = a.floats(N);
    k.inputs[kAttnIn] = {k.h_attn, nullptr, nullptr, H};
    k.inputs[kAttnOut] = {c.sub_norms ? k.att_n : k.att, nullptr, nullptr, q_dim};
    k.inputs[kFfnIn] = {k.h_ffn, nullptr, nullptr, H};
    k.inputs[kFfnOut] = {c.sub_norms ? k.m_n : k.m, nullptr, nullptr, F};
    for (LinearInput& in : k.inputs) {
      if (ternary) {
        in.codes = a.bytes(N * in.dim);
        in.scales = a.floats(N);
      }
    }
    for (int i = 0; i < kNumLinears; ++i) {
      const bool lora_here = has_lora && m.layers[l].linears[static_cast<size_t>(i)].has_lora;
      k.lora_t[static_cast<size_t>(i)] = lora_here ? a.floats(N * m.lora_rank) : nullptr;
    }
  }
  m.resid_final = a.floats(N * H);
  m.final_n = a.floats(N * H);
  m.inv_final = a.floats(N);
  m.logits = a.floats(N * c.vocab);
  m.dresid = a.floats(N * H);
  m.dtmp_h = a.floats(N * H);
  m.dinput = a.floats(N * max_dim);
  m.dlinear = a.floats(N * max_dim);
  m.dq = a.floats(N * q_dim);
  m.dk = a.floats(N * kv_dim);
  m.dv = a.floats(N * kv_dim);
  m.dgate = a.floats(N * F);
  m.dup = a.floats(N * F);
  m.dpre = a.floats(N * max_dim);
  m.x_tilde = ternary ? a.floats(N * max_dim) : nullptr;
  m.lora_du = has_lora ? a.floats(N * max_dim) : nullptr;
  m.lora_dt = has_lora ? a.floats(N * m.lora_rank) : nullptr;
  m.discard = a.floats(max_dim);
  m.y_tmp = a.floats(N * max_dim);
}

void ensure_workspace(BitNetModel::Impl& m, const ModelConfig& c, bool has_lora, int64_t batch,
                      int64_t seq) {
  if (m.batch == batch && m.seq == seq) return;
  m.batch = batch;
  m.seq = seq;
  Arena arena;
  carve(m, c, has_lora, arena);  // dry run: sizes only
  m.act_floats = FlatBuffer(arena.float_used());
  m.act_bytes.assign(static_cast<size_t>(arena.byte_used()), 0);
  arena.reset(m.act_floats.data(), m.act_bytes.data());
  carve(m, c, has_lora, arena);
}

// y[N, out] = lin(x); t caches x·Aᵀ for LoRA.
void apply_linear(BitNetModel::Impl& m, const Linear& lin, const LinearInput& in, float* y,
                  float* lora_t, int64_t n) {
  if (lin.ternary) {
    ref::bitlinear_forward(y, in.codes, in.scales, lin.packed, n);
  } else {
    ref::linear_forward(y, in.x, lin.weight.data, n, lin.in, lin.out);
  }
  if (lin.has_lora) {
    ref::linear_forward(lora_t, in.x, lin.lora_a.data, n, lin.in, m.lora_rank);
    float* u = m.lora_du;  // free during forward: [N, out]
    ref::linear_forward(u, lora_t, lin.lora_b.data, n, m.lora_rank, lin.out);
    const float s = m.lora_scale;
    for (int64_t i = 0; i < n * lin.out; ++i) y[i] += s * u[i];
  }
}

void quantize_input(LinearInput& in, int64_t n, bool ternary) {
  if (ternary) ref::quantize_activations_absmax(in.codes, in.scales, in.x, n, in.dim);
}

}  // namespace

float BitNetModel::forward(std::span<const int32_t> tokens, std::span<const int32_t> labels,
                           int64_t batch, int64_t seq) {
  const Status valid = check_batch(tokens, labels, batch, seq);
  TERN_CHECK(valid.ok(), valid.message());
  const ModelConfig& c = config_;
  Impl& m = *impl_;
  ensure_workspace(m, c, is_lora(), batch, seq);
  m.tokens.assign(tokens.begin(), tokens.end());
  m.labels.assign(labels.begin(), labels.end());
  const int64_t N = batch * seq, H = c.hidden, F = c.ffn;
  const int64_t q_dim = c.heads * c.head_dim;
  const bool ternary = c.linear == LinearKind::kTernary;
  const ref::AttentionShape shape{batch, seq, c.heads, c.kv_heads, c.head_dim};

  // Full training re-quantizes the latent weights (they changed since last step).
  if (ternary && !frozen_base_) {
    for (Layer& layer : m.layers) {
      for (Linear& lin : layer.linears) {
        ref::quantize_weights_absmean(&lin.packed, lin.weight.data, lin.out, lin.in);
      }
    }
  }

  ref::embedding_forward(m.caches[0].resid_in, m.token_embd.data, m.tokens.data(), N, c.vocab, H);
  for (int64_t l = 0; l < c.layers; ++l) {
    Layer& layer = m.layers[static_cast<size_t>(l)];
    LayerCache& k = m.caches[static_cast<size_t>(l)];
    auto run = [&](LinearId id, float* y) {
      apply_linear(m, layer.at(id), k.inputs[input_group(id)], y, k.lora_t[static_cast<size_t>(id)],
                   N);
    };
    // Attention half.
    ref::rmsnorm_forward(k.h_attn, k.inv_attn, k.resid_in, layer.attn_norm.data, N, H, c.norm_eps);
    quantize_input(k.inputs[kAttnIn], N, ternary);
    run(LinearId::kQ, k.q);
    run(LinearId::kK, k.k);
    run(LinearId::kV, k.v);
    ref::rope_forward(k.q, m.rope, c.rope_style, batch, seq, c.heads, c.head_dim);
    ref::rope_forward(k.k, m.rope, c.rope_style, batch, seq, c.kv_heads, c.head_dim);
    ref::attention_forward(k.att, k.probs, k.q, k.k, k.v, shape);
    if (c.sub_norms) {
      ref::rmsnorm_forward(k.att_n, k.inv_att_sub, k.att, layer.attn_sub_norm.data, N, q_dim,
                           c.norm_eps);
    }
    quantize_input(k.inputs[kAttnOut], N, ternary);
    run(LinearId::kO, m.y_tmp);
    for (int64_t i = 0; i < N * H; ++i) k.resid_mid[i] = k.resid_in[i] + m.y_tmp[i];
    // FFN half.
    ref::rmsnorm_forward(k.h_ffn, k.inv_ffn, k.resid_mid, layer.ffn_norm.data, N, H, c.norm_eps);
    quantize_input(k.inputs[kFfnIn], N, ternary);
    run(LinearId::kGate, k.gate);
    run(LinearId::kUp, k.up);
    ref::gated_activation_forward(k.m, k.gate, k.up, N * F, c.activation);
    if (c.sub_norms) {
      ref::rmsnorm_forward(k.m_n, k.inv_m, k.m, layer.ffn_sub_norm.data, N, F, c.norm_eps);
    }
    quantize_input(k.inputs[kFfnOut], N, ternary);
    run(LinearId::kDown, m.y_tmp);
    float* next = l + 1 < c.layers ? m.caches[static_cast<size_t>(l + 1)].resid_in : m.resid_final;
    for (int64_t i = 0; i < N * H; ++i) next[i] = k.resid_mid[i] + m.y_tmp[i];
  }
  ref::rmsnorm_forward(m.final_n, m.inv_final, m.resid_final, m.output_norm.data, N, H, c.norm_eps);
  ref::linear_forward(m.logits, m.final_n, m.output.data, N, H, c.vocab);
  m.has_forward = true;
  if (labels.empty()) {
    m.label_count = 0;
    return 0.0f;
  }
  const ref::CrossEntropyTotals totals =
      ref::cross_entropy_forward(m.logits, m.labels.data(), N, c.vocab);
  m.label_count = totals.count;
  return totals.count == 0 ? 0.0f : static_cast<float>(totals.loss_sum / totals.count);
}

std::span<const float> BitNetModel::logits() const {
  TERN_CHECK(impl_->has_forward, "logits() before forward()");
  return {impl_->logits, static_cast<size_t>(impl_->batch * impl_->seq * config_.vocab)};
}

namespace {

// Backward of the linears that read one input: accumulates into dx[N, in] the sum
// of every linear's input gradient, and into the trainable tensors their grads.
// dys[i] is the output gradient of linears[i].
void linear_group_backward(BitNetModel::Impl& m, const LayerCache& k,
                           std::span<Linear* const> linears, std::span<float* const> dys,
                           const LinearInput& in, float* dx, int64_t n) {
  const int64_t dim = in.dim;
  for (int64_t i = 0; i < n * dim; ++i) dx[i] = 0.0f;
  // STE: the latent weight gradient uses the dequantized activations x̃.
  bool x_tilde_ready = false;
  for (size_t j = 0; j < linears.size(); ++j) {
    const Linear& lin = *linears[j];
    const float* dy = dys[j];
    if (lin.ternary) {
      ref::bitlinear_backward_input(m.dlinear, dy, lin.packed, n);
    } else {
      ref::linear_backward_input(m.dlinear, dy, lin.weight.data, n, lin.in, lin.out);
    }
    if (lin.weight.grad != nullptr) {
      const float* x = in.x;
      if (lin.ternary) {
        if (!x_tilde_ready) {
          ref::dequantize_activations(m.x_tilde, in.codes, in.scales, n, dim);
          x_tilde_ready = true;
        }
        x = m.x_tilde;
      }
      ref::linear_backward_weight(lin.weight.grad, dy, x, n, lin.in, lin.out);
    }
    for (int64_t i = 0; i < n * dim; ++i) dx[i] += m.dlinear[i];
    if (lin.has_lora) {
      const float* t = k.lora_t[static_cast<size_t>(lin.id)];
      const int64_t r = m.lora_rank;
      float* du = m.lora_du;  // [N, out] = (alpha/r)·dy
      for (int64_t i = 0; i < n * lin.out; ++i) du[i] = m.lora_scale * dy[i];
      ref::linear_backward_weight(lin.lora_b.grad, du, t, n, r, lin.out);
      ref::linear_backward_input(m.lora_dt, du, lin.lora_b.data, n, r, lin.out);
      ref::linear_backward_weight(lin.lora_a.grad, m.lora_dt, in.x, n, lin.in, r);
      ref::linear_backward_input(m.dlinear, m.lora_dt, lin.lora_a.data, n, lin.in, r);
      for (int64_t i = 0; i < n * dim; ++i) dx[i] += m.dlinear[i];
    }
  }
}

// dx (overwritten) from dy through y = rmsnorm(x)·w; frozen weights send dw to a sink.
void norm_backward(BitNetModel::Impl& m, float* dx, const Tensor& w, const float* dy,
                   const float* x, const float* inv, int64_t n, int64_t d) {
  float* dw = w.grad;
  if (dw == nullptr) {
    dw = m.discard;
    for (int64_t i = 0; i < d; ++i) dw[i] = 0.0f;
  }
  ref::rmsnorm_backward(dx, dw, dy, x, w.data, inv, n, d);
}

}  // namespace

void BitNetModel::backward(float loss_scale) {
  Impl& m = *impl_;
  TERN_CHECK(m.has_forward, "backward() without forward()");
  TERN_CHECK(m.labels.size() == m.tokens.size(), "backward() after a forward without labels");
  const ModelConfig& c = config_;
  const int64_t N = m.batch * m.seq, H = c.hidden, F = c.ffn;
  const int64_t q_dim = c.heads * c.head_dim;
  const ref::AttentionShape shape{m.batch, m.seq, c.heads, c.kv_heads, c.head_dim};
  m.has_forward = false;  // logits become gradients below
  if (m.label_count == 0) return;

  // Loss → logits (in place) → final norm → residual stream.
  const float per_label = loss_scale / static_cast<float>(m.label_count);
  ref::cross_entropy_backward(m.logits, m.logits, m.labels.data(), N, c.vocab, per_label);
  float* dfinal_n = m.dtmp_h;  // [N, H]
  ref::linear_backward_input(dfinal_n, m.logits, m.output.data, N, H, c.vocab);
  if (m.output.grad != nullptr) {
    ref::linear_backward_weight(m.output.grad, m.logits, m.final_n, N, H, c.vocab);
  }
  norm_backward(m, m.dresid, m.output_norm, dfinal_n, m.resid_final, m.inv_final, N, H);

  for (int64_t l = c.layers - 1; l >= 0; --l) {
    Layer& layer = m.layers[static_cast<size_t>(l)];
    LayerCache& k = m.caches[static_cast<size_t>(l)];
    // FFN half: resid_out = resid_mid + down(m_in). dresid is d(resid_out).
    {
      Linear* down[] = {&layer.at(LinearId::kDown)};
      float* dys[] = {m.dresid};
      linear_group_backward(m, k, down, dys, k.inputs[kFfnOut], m.dinput, N);
    }
    float* dm = m.dinput;  // [N, F]
    if (c.sub_norms) {
      norm_backward(m, m.dpre, layer.ffn_sub_norm, m.dinput, k.m, k.inv_m, N, F);
      dm = m.dpre;
    }
    ref::gated_activation_backward(m.dgate, m.dup, dm, k.gate, k.up, N * F, c.activation);
    {
      Linear* gate_up[] = {&layer.at(LinearId::kGate), &layer.at(LinearId::kUp)};
      float* dys[] = {m.dgate, m.dup};
      linear_group_backward(m, k, gate_up, dys, k.inputs[kFfnIn], m.dinput, N);
    }
    norm_backward(m, m.dtmp_h, layer.ffn_norm, m.dinput, k.resid_mid, k.inv_ffn, N, H);
    for (int64_t i = 0; i < N * H; ++i) m.dresid[i] += m.dtmp_h[i];  // now d(resid_mid)

    // Attention half: resid_mid = resid_in + o(a_in).
    {
      Linear* o[] = {&layer.at(LinearId::kO)};
      float* dys[] = {m.dresid};
      linear_group_backward(m, k, o, dys, k.inputs[kAttnOut], m.dinput, N);
    }
    float* datt = m.dinput;  // [N, heads·hd]
    if (c.sub_norms) {
      norm_backward(m, m.dpre, layer.attn_sub_norm, m.dinput, k.att, k.inv_att_sub, N, q_dim);
      datt = m.dpre;
    }
    ref::attention_backward(m.dq, m.dk, m.dv, datt, k.probs, k.q, k.k, k.v, shape);
    ref::rope_backward(m.dq, m.rope, c.rope_style, m.batch, m.seq, c.heads, c.head_dim);
    ref::rope_backward(m.dk, m.rope, c.rope_style, m.batch, m.seq, c.kv_heads, c.head_dim);
    {
      Linear* qkv[] = {&layer.at(LinearId::kQ), &layer.at(LinearId::kK), &layer.at(LinearId::kV)};
      float* dys[] = {m.dq, m.dk, m.dv};
      linear_group_backward(m, k, qkv, dys, k.inputs[kAttnIn], m.dinput, N);
    }
    norm_backward(m, m.dtmp_h, layer.attn_norm, m.dinput, k.resid_in, k.inv_attn, N, H);
    for (int64_t i = 0; i < N * H; ++i) m.dresid[i] += m.dtmp_h[i];  // now d(resid_in)
  }
  if (m.token_embd.grad != nullptr) {
    ref::embedding_backward(m.token_embd.grad, m.dresid, m.tokens.data(), N, c.vocab, H);
  }
}

BitNetModel::Quantization BitNetModel::quantization(int64_t layer, LinearId id) const {
  const Impl& m = *impl_;
  TERN_CHECK(config_.linear == LinearKind::kTernary, "quantization() of a dense model");
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
