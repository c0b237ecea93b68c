#include "core/flat_buffer.h"

#include <cstring>
#include <new>
#include <utility>

#include "core/check.h"

namespace tern {
namespace {

constexpr int64_t kAlignFloats = 16;  // 64 bytes: one cache line, one AVX-512 vector
constexpr std::align_val_t kAlignBytes{64};

}  // namespace

size_t TensorLayout::add(std::string name, std::vector<int64_t> shape) {
  TERN_CHECK(!index_.contains(name), "duplicate tensor name '", name, "'");
  int64_t size = 1;
  for (int64_t dim : shape) {
    TERN_CHECK(dim > 0, "tensor '", name, "' has dimension ", dim);
    size *= dim;
  }
  TensorInfo info{std::move(name), std::move(shape), buffer_size_, size};
  buffer_size_ += (size + kAlignFloats - 1) / kAlignFloats * kAlignFloats;
  num_elements_ += size;
  index_.emplace(info.name, tensors_.size());
  tensors_.push_back(std::move(info));
  return tensors_.size() - 1;
}

const TensorInfo* TensorLayout::find(std::string_view name) const {
  auto it = index_.find(std::string(name));
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& TensorLayout::get(std::string_view name) const {
  const TensorInfo* info = find(name);
  TERN_CHECK(info != nullptr, "no tensor named '", name, "'");
  return *info;
}

FlatBuffer::FlatBuffer(int64_t size) : size_(size) {
  TERN_CHECK(size >= 0, "size=", size);
  if (size == 0) return;
  // Through operator new so allocation accounting (tests) sees flat buffers too.
  data_ =
      static_cast<float*>(::operator new(static_cast<size_t>(size) * sizeof(float), kAlignBytes));
  zero();
}

FlatBuffer::~FlatBuffer() {
  if (data_ != nullptr) ::operator delete(data_, kAlignBytes);
}

FlatBuffer::FlatBuffer(FlatBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

FlatBuffer& FlatBuffer::operator=(FlatBuffer&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) ::operator delete(data_, kAlignBytes);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

void FlatBuffer::zero() {
  if (size_ > 0) std::memset(data_, 0, static_cast<size_t>(size_) * sizeof(float));
}

std::span<float> FlatBuffer::view(const TensorInfo& info) {
  TERN_CHECK(info.offset + info.size <= size_, "view '", info.name, "' outside buffer");
  return {data_ + info.offset, static_cast<size_t>(info.size)};
}

std::span<const float> FlatBuffer::view(const TensorInfo& info) const {
  TERN_CHECK(info.offset + info.size <= size_, "view '", info.name, "' outside buffer");
  return {data_ + info.offset, static_cast<size_t>(info.size)};
}

}  // namespace tern
