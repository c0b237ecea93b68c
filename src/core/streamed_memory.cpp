#include "core/streamed_memory.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <new>

#include "core/check.h"

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#endif

#if defined(__linux__)
#include <sys/mman.h>
#define TERN_STREAMED_POOL 1
#else
#define TERN_STREAMED_POOL 0
#endif

namespace tern {
namespace {

constexpr std::align_val_t kSmallAlign{64};

size_t round_up(size_t n, size_t to) {
  return (n + to - 1) / to * to;
}

// Under AddressSanitizer everything in a region outside live blocks is poisoned,
// so reads past a packed matrix are caught as they are in heap memory.
[[maybe_unused]] void set_poisoned(const void* p, size_t n, bool poisoned) {
#if defined(__SANITIZE_ADDRESS__)
  if (poisoned) {
    ASAN_POISON_MEMORY_REGION(p, n);
  } else {
    ASAN_UNPOISON_MEMORY_REGION(p, n);
  }
#else
  static_cast<void>(p);
  static_cast<void>(n);
  static_cast<void>(poisoned);
#endif
}

#if TERN_STREAMED_POOL
// Regions are reserved in this size (address space; pages become resident only
// when written), or larger for a larger block.
constexpr size_t kRegionBytes = size_t{64} << 20;
constexpr size_t kPageBytes = 4096;

struct Block {
  size_t offset = 0;
  size_t size = 0;
  bool freed = false;
};

struct Region {
  size_t size = 0;
  size_t top = 0;             // bytes handed out from the start, freed or not
  size_t live = 0;            // bytes in blocks not yet freed
  std::vector<Block> blocks;  // in offset order (allocation is bump-only)
};

class Pool {
 public:
  void* allocate(size_t bytes) {
    const size_t size = round_up(bytes, 64);
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& [base, region] : regions_) {
      if (region.size - region.top >= size) return carve(base, region, size, bytes);
    }
    const size_t region_size = std::max(kRegionBytes, round_up(size, kHugePageBytes));
    uint8_t* base = map_aligned(region_size);
    Region& region = regions_[reinterpret_cast<uintptr_t>(base)];
    region.size = region_size;
    mapped_ += region_size;
    return carve(reinterpret_cast<uintptr_t>(base), region, size, bytes);
  }

  void free(void* p, size_t bytes) {
    const size_t size = round_up(bytes, 64);
    const auto address = reinterpret_cast<uintptr_t>(p);
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = regions_.upper_bound(address);
    TERN_CHECK(it != regions_.begin(), "streamed free of ", p, ", which the pool never gave out");
    --it;
    Region& region = it->second;
    const size_t offset = address - it->first;
    TERN_CHECK(offset < region.size, "streamed free of ", p, ", which the pool never gave out");
    auto block = std::lower_bound(region.blocks.begin(), region.blocks.end(), offset,
                                  [](const Block& b, size_t o) { return b.offset < o; });
    TERN_CHECK(block != region.blocks.end() && block->offset == offset && block->size == size &&
                   !block->freed,
               "streamed free does not match an allocation (offset ", offset, ", ", size,
               " bytes)");
    block->freed = true;
    region.live -= size;
    if (region.live == 0) {
      munmap(reinterpret_cast<void*>(it->first), region.size);
      set_poisoned(reinterpret_cast<void*>(it->first), region.size, false);
      mapped_ -= region.size;
      regions_.erase(it);
      return;
    }
    set_poisoned(p, size, true);
    release_pages(p, size);
    while (!region.blocks.empty() && region.blocks.back().freed) {
      region.top = region.blocks.back().offset;
      region.blocks.pop_back();
    }
  }

  StreamedPoolUse use() {
    std::lock_guard<std::mutex> lock(mutex_);
    StreamedPoolUse use{mapped_, 0};
    for (const auto& [base, region] : regions_) use.live_bytes += region.live;
    return use;
  }

 private:
  static void* carve(uintptr_t base, Region& region, size_t size, size_t bytes) {
    region.blocks.push_back({region.top, size, false});
    void* p = reinterpret_cast<void*>(base + region.top);
    set_poisoned(p, bytes, false);
    region.top += size;
    region.live += size;
    return p;
  }

  // Returns the whole pages inside a freed block to the OS (the addresses stay
  // reserved, and read as zeros if the block is handed out again), so a block
  // freed below live ones does not keep its memory resident.
  static void release_pages(void* p, size_t size) {
    const uintptr_t begin = round_up(reinterpret_cast<uintptr_t>(p), kPageBytes);
    const uintptr_t end = (reinterpret_cast<uintptr_t>(p) + size) / kPageBytes * kPageBytes;
    if (end > begin) madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
  }

  // Maps `size` bytes (a multiple of 2 MiB) at a 2 MiB boundary by mapping one
  // huge page more and trimming both ends.
  static uint8_t* map_aligned(size_t size) {
    const size_t span = size + kHugePageBytes;
    void* raw = mmap(nullptr, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) throw std::bad_alloc();
    const auto start = reinterpret_cast<uintptr_t>(raw);
    const uintptr_t aligned = round_up(start, kHugePageBytes);
    if (aligned > start) munmap(raw, aligned - start);
    const uintptr_t end = start + span, aligned_end = aligned + size;
    if (end > aligned_end) munmap(reinterpret_cast<void*>(aligned_end), end - aligned_end);
    // A hint: kernels without transparent huge pages refuse it, and the memory
    // is then ordinary memory.
    madvise(reinterpret_cast<void*>(aligned), size, MADV_HUGEPAGE);
    set_poisoned(reinterpret_cast<void*>(aligned), size, true);
    return reinterpret_cast<uint8_t*>(aligned);
  }

  std::mutex mutex_;
  std::map<uintptr_t, Region> regions_;  // by base address
  size_t mapped_ = 0;
};

Pool& pool() {
  static Pool* const instance = new Pool;  // never destroyed: frees may run at exit
  return *instance;
}
#endif

}  // namespace

void* allocate_streamed(size_t bytes) {
#if TERN_STREAMED_POOL
  if (bytes >= kPooledMinBytes) return pool().allocate(bytes);
#endif
  return ::operator new(std::max<size_t>(bytes, 1), kSmallAlign);
}

void free_streamed(void* p, size_t bytes) {
  if (p == nullptr) return;
#if TERN_STREAMED_POOL
  if (bytes >= kPooledMinBytes) {
    pool().free(p, bytes);
    return;
  }
#endif
  ::operator delete(p, kSmallAlign);
}

StreamedPoolUse streamed_pool_use() {
#if TERN_STREAMED_POOL
  return pool().use();
#else
  return {};
#endif
}

}  // namespace tern
