// TensorLayout and FlatBuffer: one flat fp32 buffer with a table of named views.
//
// Parameters, gradients and optimizer moments share one TensorLayout, so each is
// a single FlatBuffer: zeroing gradients is one call, optimizers walk spans and
// the network can send byte ranges. Every tensor starts on a 64-byte boundary.
// Layouts are immutable once buffers exist; buffers are not synchronized (each
// kernel writes disjoint ranges).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace tern {

struct TensorInfo {
  std::string name;
  std::vector<int64_t> shape;  // row-major, outermost first
  int64_t offset = 0;          // in elements, from the start of the buffer
  int64_t size = 0;            // product of shape
};

class TensorLayout {
 public:
  // Appends a tensor; names must be unique (CHECK). Returns its index.
  size_t add(std::string name, std::vector<int64_t> shape);

  size_t count() const { return tensors_.size(); }
  const TensorInfo& at(size_t index) const { return tensors_.at(index); }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // nullptr when absent.
  const TensorInfo* find(std::string_view name) const;
  // CHECKs that the tensor exists.
  const TensorInfo& get(std::string_view name) const;
  // Elements in a buffer for this layout, alignment padding included.
  int64_t buffer_size() const { return buffer_size_; }
  // Elements of all tensors, padding excluded.
  int64_t num_elements() const { return num_elements_; }

 private:
  std::vector<TensorInfo> tensors_;
  std::unordered_map<std::string, size_t> index_;
  int64_t buffer_size_ = 0;
  int64_t num_elements_ = 0;
};

class FlatBuffer {
 public:
  FlatBuffer() = default;
  // Zero-initialized, 64-byte aligned.
  explicit FlatBuffer(int64_t size);
  ~FlatBuffer();
  FlatBuffer(FlatBuffer&& other) noexcept;
  FlatBuffer& operator=(FlatBuffer&& other) noexcept;
  FlatBuffer(const FlatBuffer&) = delete;
  FlatBuffer& operator=(const FlatBuffer&) = delete;

  float* data() { return data_; }
  const float* data() const { return data_; }
  int64_t size() const { return size_; }
  std::span<float> span() { return {data_, static_cast<size_t>(size_)}; }
  std::span<const float> span() const { return {data_, static_cast<size_t>(size_)}; }
  void zero();

  std::span<float> view(const TensorInfo& info);
  std::span<const float> view(const TensorInfo& info) const;

 private:
  float* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace tern
