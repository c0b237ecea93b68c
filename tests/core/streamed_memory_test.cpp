#include "core/streamed_memory.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <numeric>

#include <unistd.h>

namespace tern {
namespace streamed_memory_test {  // named: tern_unit_tests is a unity build

constexpr size_t kMiB = size_t{1} << 20;

uintptr_t address(const void* p) {
  return reinterpret_cast<uintptr_t>(p);
}

#if defined(__linux__)
// The pool is process-wide; each test starts from an empty one (ctest runs every
// test in its own process, and every test frees what it allocates).
class StreamedPoolTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(streamed_pool_use().mapped_bytes, 0u); }
  void TearDown() override { EXPECT_EQ(streamed_pool_use().mapped_bytes, 0u); }
};

TEST_F(StreamedPoolTest, LargeBlocksShareOneHugePageAlignedRegion) {
  void* a = allocate_streamed(kMiB + 1);
  void* b = allocate_streamed(3 * kMiB);
  void* c = allocate_streamed(kPooledMinBytes);
  // The first block opens a region at a 2 MiB boundary; the next ones follow it
  // at 64-byte steps instead of each taking a mapping (and partial huge pages).
  EXPECT_EQ(address(a) % kHugePageBytes, 0u);
  EXPECT_EQ(address(b), address(a) + kMiB + 64);
  EXPECT_EQ(address(c), address(b) + 3 * kMiB);
  EXPECT_EQ(streamed_pool_use().live_bytes, kMiB + 64 + 3 * kMiB + kPooledMinBytes);
  const size_t mapped = streamed_pool_use().mapped_bytes;
  EXPECT_GE(mapped, 5 * kMiB);
  EXPECT_EQ(mapped % kHugePageBytes, 0u);
  free_streamed(b, 3 * kMiB);
  free_streamed(a, kMiB + 1);
  EXPECT_EQ(streamed_pool_use().mapped_bytes, mapped);  // c keeps the region
  EXPECT_EQ(streamed_pool_use().live_bytes, kPooledMinBytes);
  free_streamed(c, kPooledMinBytes);
}

TEST_F(StreamedPoolTest, FreedTopBlocksAreReusedSoTemporariesDoNotGrowThePool) {
  void* keep = allocate_streamed(2 * kMiB);
  const size_t mapped = streamed_pool_use().mapped_bytes;
  void* first = allocate_streamed(5 * kMiB);
  for (int i = 0; i < 100; ++i) {  // 500 MiB of temporaries in turn
    void* t = allocate_streamed(5 * kMiB);
    void* u = allocate_streamed(kMiB);
    free_streamed(u, kMiB);
    free_streamed(t, 5 * kMiB);
  }
  free_streamed(first, 5 * kMiB);
  void* again = allocate_streamed(5 * kMiB);
  EXPECT_EQ(again, first);
  EXPECT_EQ(streamed_pool_use().mapped_bytes, mapped);
  free_streamed(again, 5 * kMiB);
  free_streamed(keep, 2 * kMiB);
}

TEST_F(StreamedPoolTest, AHoleStaysReservedUntilTheRegionEmpties) {
  void* a = allocate_streamed(kMiB);
  void* b = allocate_streamed(kMiB);
  free_streamed(a, kMiB);
  void* c = allocate_streamed(kMiB);
  EXPECT_EQ(address(c), address(b) + kMiB);  // not a's place: b still sits above it
  free_streamed(b, kMiB);
  free_streamed(c, kMiB);
}

// Resident memory of this process, from /proc/self/statm.
size_t resident_bytes() {
  std::ifstream statm("/proc/self/statm");
  size_t total_pages = 0, resident_pages = 0;
  statm >> total_pages >> resident_pages;
  return resident_pages * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

TEST_F(StreamedPoolTest, AFreedBlockBelowLiveOnesReturnsItsMemory) {
  void* hole = allocate_streamed(32 * kMiB);
  void* above = allocate_streamed(kMiB);
  std::memset(hole, 1, 32 * kMiB);
  std::memset(above, 1, kMiB);
  const size_t before = resident_bytes();
  free_streamed(hole, 32 * kMiB);
  EXPECT_LT(resident_bytes() + 30 * kMiB, before);
  free_streamed(above, kMiB);
}

TEST_F(StreamedPoolTest, BlocksLargerThanARegionGetTheirOwn) {
  const size_t big = 100 * kMiB + 4096;
  void* small = allocate_streamed(kMiB);
  void* p = allocate_streamed(big);
  EXPECT_EQ(address(p) % kHugePageBytes, 0u);
  EXPECT_GE(streamed_pool_use().mapped_bytes, big);
  std::memset(p, 0x5a, big);  // every byte is writable
  EXPECT_EQ(static_cast<uint8_t*>(p)[big - 1], 0x5a);
  free_streamed(p, big);
  free_streamed(small, kMiB);
}

TEST_F(StreamedPoolTest, SmallBlocksComeFromTheHeap) {
  void* p = allocate_streamed(kPooledMinBytes - 1);
  EXPECT_EQ(address(p) % 64, 0u);
  EXPECT_EQ(streamed_pool_use().mapped_bytes, 0u);
  free_streamed(p, kPooledMinBytes - 1);
}

TEST_F(StreamedPoolTest, VectorsKeepTheirBytesThroughCopiesAndGrowth) {
  StreamedBytes v(3 * kMiB);
  std::iota(v.begin(), v.end(), uint8_t{7});
  StreamedBytes copy = v;
  EXPECT_EQ(copy, v);
  EXPECT_NE(copy.data(), v.data());
  copy.resize(9 * kMiB, 1);  // reallocates past the first region's top
  EXPECT_TRUE(std::equal(v.begin(), v.end(), copy.begin()));
  EXPECT_EQ(copy.back(), 1);
  copy = StreamedBytes();  // frees (`= {}` would only clear)
  v = StreamedBytes();
  EXPECT_EQ(streamed_pool_use().mapped_bytes, 0u);
}

using StreamedPoolDeathTest = StreamedPoolTest;

TEST_F(StreamedPoolDeathTest, AFreeThatMatchesNoBlockAborts) {
  void* p = allocate_streamed(kMiB);
  EXPECT_DEATH(free_streamed(static_cast<uint8_t*>(p) + 64, kMiB), "does not match");
  EXPECT_DEATH(free_streamed(p, 2 * kMiB), "does not match");
  free_streamed(p, kMiB);
  uint8_t elsewhere[64];
  EXPECT_DEATH(free_streamed(elsewhere, kMiB), "never gave out");
}

#if defined(__SANITIZE_ADDRESS__)
TEST_F(StreamedPoolDeathTest, ReadsPastABlockAreCaughtUnderAddressSanitizer) {
  void* keep = allocate_streamed(kMiB);  // keeps the region mapped after p is freed
  auto* p = static_cast<volatile uint8_t*>(allocate_streamed(kMiB + 3));
  p[kMiB + 2] = 1;  // the last requested byte is fine
  EXPECT_DEATH(static_cast<void>(p[kMiB + 3]), "use-after-poison");
  free_streamed(const_cast<uint8_t*>(p), kMiB + 3);
  EXPECT_DEATH(static_cast<void>(p[0]), "use-after-poison");
  free_streamed(keep, kMiB);
}
#endif
#endif  // __linux__

}  // namespace streamed_memory_test
}  // namespace tern
