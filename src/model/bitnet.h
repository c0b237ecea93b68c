// BitNetModel: forward and backward of a BitNet b1.58 / Llama-style decoder.
//
// Block: x += o(subnorm?(attn(rope(q(n1)), rope(k(n1)), v(n1)))) with n1 = rmsnorm(x);
//        x += down(subnorm?(act(gate(n2)) ⊙ up(n2)))             with n2 = rmsnorm(x);
// then logits = rmsnorm(x) · Eᵀ (E = output head, or the token embedding if tied).
// Linears are ternary BitLinear (absmean weights, absmax int8 activations, STE)
// or dense, per ModelConfig::linear. The head and embedding stay fp32.
//
// Two training modes:
//  - full: every parameter is a trainable fp32 latent in one flat buffer; ternary
//    linears are re-quantized from their latents at each forward;
//  - LoRA: the base is frozen — ternary linears packed at 2 bits, never fp32 as a
//    whole — and only the LoRA A/B matrices of the target linears are trainable:
//    y = base(x) + (alpha/r) · (x·Aᵀ)·Bᵀ, with A [r, in], B [out, r], x unquantized.
//
// Trainable parameters and their gradients are FlatBuffers sharing one layout
// (GGUF tensor names; LoRA tensors are "<linear>.weight.lora_a|lora_b").
// A frozen base keeps the tensors its source stores as F16 (StoredType::kF16:
// embedding, untied head, dense linears) at 2 bytes per value, computing in fp32.
//
// Activation memory (see ActivationMemory): forward() either caches every
// layer's activations for backward() (kCache), or keeps only a few block inputs
// and recomputes the rest one block, and one chunk of tokens, at a time
// (kRecompute). Both give the same bits. One thread drives a model at a time;
// kernels fan out over the default thread pool.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/flat_buffer.h"
#include "core/status.h"
#include "kernels/ref/ternary.h"
#include "model/config.h"
#include "model/weight_source.h"

namespace tern {

// What forward() keeps for backward().
//  - kCache: every layer's activations (~N·(10H + 5F)·4 bytes per layer plus the
//    [batch, heads, seq, seq] attention probabilities) and the [N, vocab] logits.
//    Needed by full training (and the default there).
//  - kRecompute: frozen bases only (the default for LoRA and frozen models). The
//    inputs of every S-th block are kept (S ≈ √layers); backward recomputes a
//    segment's block inputs, then each block's activations, in chunks of tokens
//    for everything that is per token; attention probabilities are recomputed per
//    query row, and the head and cross-entropy run in chunks of tokens, so
//    [N, vocab] logits only exist if logits() asks for them. Costs about one
//    extra forward pass per step.
//  - kAuto: frozen bases only. kCache when its workspace for the batch shape
//    fits a byte budget, else kRecompute. The two give the same bits, so the
//    choice trades memory for speed (kCache trains LoRA 1.3-1.9x faster) and
//    nothing else.
enum class ActivationMemory { kCache, kRecompute, kAuto };

// How backward() sends gradients through ternary linears (dX = dY·W̃).
//  - kExact: fp32 dY, each element summed in output order (the reference
//    arithmetic the PyTorch golden tests check).
//  - kInt8: dY quantized per token to int8 (absmax, as in SwitchBack, Wortsman et
//    al. 2023) and multiplied with the 2-bit codes in integers: about 3× faster,
//    with a gradient error of the order of the int8 step (≤ 1/254 of the row's
//    largest |dY| per term). Keeps a transposed copy of the packed codes (+2 bits
//    per ternary weight). Same bits on every SIMD target.
enum class TernaryBackward { kExact, kInt8 };

class BitNetModel {
 public:
  // Full training: all parameters trainable, initialized from `source`.
  static Result<BitNetModel> create_full(const ModelConfig& config, WeightSource& source);
  // LoRA: base read from `base` (ternary linears packed one tensor at a time),
  // LoRA A ~ U(±1/sqrt(in)) from `seed`, B = 0.
  static Result<BitNetModel> create_lora(const ModelConfig& config, const LoraConfig& lora,
                                         WeightSource& base, uint64_t seed);
  // Inference only: the base as in LoRA mode (ternary linears packed), nothing
  // trainable. Used to convert, inspect and (later) serve models.
  static Result<BitNetModel> create_frozen(const ModelConfig& config, WeightSource& base);

  BitNetModel(BitNetModel&&) noexcept;
  BitNetModel& operator=(BitNetModel&&) noexcept;
  ~BitNetModel();

  const ModelConfig& config() const { return config_; }
  bool is_lora() const { return lora_.has_value(); }
  // True for LoRA and frozen models: the base is not trainable.
  bool has_frozen_base() const { return frozen_base_; }
  // The LoRA configuration (CHECKs is_lora()).
  const LoraConfig& lora_config() const;

  const TensorLayout& layout() const { return layout_; }  // trainable tensors
  FlatBuffer& params() { return params_; }
  const FlatBuffer& params() const { return params_; }
  FlatBuffer& grads() { return grads_; }
  const FlatBuffer& grads() const { return grads_; }
  const TensorLayout& frozen_layout() const { return frozen_layout_; }
  const FlatBuffer& frozen() const { return frozen_; }

  ActivationMemory activation_memory() const { return memory_; }
  // kRecompute and kAuto require has_frozen_base() (CHECKed); kAuto caches when
  // the cached workspace is at most cache_budget_bytes. Takes effect at the next
  // forward(), which then re-sizes the workspace.
  void set_activation_memory(ActivationMemory memory, int64_t cache_budget_bytes = 0);
  // kCache or kRecompute: what the last forward() used (before any forward, the
  // policy itself).
  ActivationMemory activation_memory_in_use() const;

  TernaryBackward ternary_backward() const { return ternary_backward_; }
  // Takes effect at the next backward(); kInt8 builds the transposed codes now.
  void set_ternary_backward(TernaryBackward mode);

  // Bytes held by the model, for memory reports.
  struct MemoryUse {
    int64_t packed_linear_bytes = 0;  // ternary frozen base, 2 bits per weight
    int64_t f16_bytes = 0;            // F16 frozen tensors (dense linears, embedding, head)
    int64_t frozen_f32_bytes = 0;     // frozen() (norms, and fp32-stored frozen tensors)
    int64_t trainable_bytes = 0;      // params() + grads()
    int64_t workspace_bytes = 0;      // activations and scratch of the last forward's shape
  };
  MemoryUse memory_use() const;

  // Replaces trainable parameters with the tensors of the same names in `source`.
  Status load_trainable(WeightSource& source);

  // Checks token/label ranges and shape against the config (untrusted data).
  Status check_batch(std::span<const int32_t> tokens, std::span<const int32_t> labels,
                     int64_t batch, int64_t seq) const;

  // Runs the model on tokens [batch, seq]. With labels (−1 = ignore), returns the
  // mean cross-entropy over counted labels (0 if none); without, returns 0.
  // Inputs must pass check_batch (CHECKed).
  float forward(std::span<const int32_t> tokens, std::span<const int32_t> labels, int64_t batch,
                int64_t seq);
  // Logits [batch·seq, vocab] of the last forward; invalid after backward().
  // With kRecompute and labels they are computed (and allocated) on this call.
  std::span<const float> logits() const;
  // Accumulates d(loss_scale · mean loss)/dθ into grads() for the last forward
  // (which must have had labels).
  void backward(float loss_scale);

  // What the last forward quantized for one ternary linear (for parity tests;
  // kCache only).
  struct Quantization {
    const ref::TernaryMatrix* weights;
    std::span<const int8_t> activation_codes;  // [batch·seq, in]
    std::span<const float> activation_scales;  // [batch·seq]
  };
  Quantization quantization(int64_t layer, LinearId id) const;

  // The packed base of a ternary linear (LoRA mode), for inspection.
  const ref::TernaryMatrix& packed_weights(int64_t layer, LinearId id) const;

  // One tensor of the base model (LoRA tensors excluded), in GGUF order, for
  // writing model files. Exactly one of `values` (fp32: norms, embeddings, dense
  // linears, and latent ternary weights in full mode), `packed` (the frozen
  // ternary base in LoRA mode) and `f16` (frozen tensors the source stored as F16,
  // binary16 bits; widen with ref::f16_to_f32) is set; `ternary` says the tensor
  // is a ternary linear.
  struct BaseTensor {
    std::string name;
    std::vector<int64_t> shape;  // row-major
    std::span<const float> values;
    const ref::TernaryMatrix* packed = nullptr;
    bool ternary = false;
    std::span<const uint16_t> f16;
  };
  std::vector<BaseTensor> base_tensors() const;

  struct Impl;

 private:
  BitNetModel(const ModelConfig& config, bool frozen_base);
  Status build(WeightSource& source, const LoraConfig* lora, uint64_t seed);

  ModelConfig config_;
  bool frozen_base_ = false;
  ActivationMemory memory_ = ActivationMemory::kCache;
  int64_t cache_budget_ = 0;  // kAuto only
  TernaryBackward ternary_backward_ = TernaryBackward::kExact;
  std::optional<LoraConfig> lora_;
  TensorLayout layout_;
  FlatBuffer params_;
  FlatBuffer grads_;
  TensorLayout frozen_layout_;
  FlatBuffer frozen_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern
