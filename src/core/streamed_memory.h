// Streamed memory: storage for large buffers that kernels read from DRAM end to
// end, such as packed ternary weights.
//
// Blocks of at least kPooledMinBytes are carved out of shared regions aligned to
// 2 MiB, which the OS is asked (madvise MADV_HUGEPAGE) to back with transparent
// huge pages. Sharing matters: a model's matrices are mostly 0.1–3 MiB, so a
// mapping per matrix would leave most of each in 4 KiB pages, and a decoder that
// streams them would pay for a page walk every 4 KiB. Where huge pages are not
// available the hint has no effect and the memory is ordinary memory. Smaller
// blocks come from operator new.
//
// A region is unmapped when its last block is freed, and blocks freed at the top
// of a region are reused, so temporaries allocated and freed in turn do not grow
// the pool. A freed block's pages go back to the OS at once, but a block freed
// below live ones keeps its addresses until the rest of the region is freed: the
// pool suits buffers that live about as long as the model, which is what it is
// for.
//
// Thread-safe: the pool is guarded by one mutex (allocation is never in a hot
// loop). Running out of memory throws std::bad_alloc, as operator new does.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tern {

inline constexpr size_t kPooledMinBytes = size_t{64} << 10;
inline constexpr size_t kHugePageBytes = size_t{2} << 20;

// Returns at least `bytes` bytes aligned to 64; free with the same size.
void* allocate_streamed(size_t bytes);
void free_streamed(void* p, size_t bytes);

struct StreamedPoolUse {
  size_t mapped_bytes = 0;  // reserved address space (resident only where written)
  size_t live_bytes = 0;    // in blocks not yet freed, each rounded up to 64
};
StreamedPoolUse streamed_pool_use();

template <typename T>
struct StreamedAllocator {
  using value_type = T;
  StreamedAllocator() = default;
  template <typename U>
  StreamedAllocator(const StreamedAllocator<U>&) {}  // NOLINT: rebinding is implicit
  T* allocate(size_t n) { return static_cast<T*>(allocate_streamed(n * sizeof(T))); }
  void deallocate(T* p, size_t n) { free_streamed(p, n * sizeof(T)); }
  friend bool operator==(const StreamedAllocator&, const StreamedAllocator&) { return true; }
};

// The byte vector packed weights are stored in.
using StreamedBytes = std::vector<uint8_t, StreamedAllocator<uint8_t>>;

}  // namespace tern
