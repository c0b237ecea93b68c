#include "core/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <memory>

#include "core/check.h"

namespace tern {
namespace {

// True while this thread is executing a chunk; nested calls then run inline.
thread_local bool t_inside_pool = false;

// Waking a sleeping thread costs tens of microseconds (more in a VM, where the
// other vCPU may be halted), as much as a decode-sized kernel takes. So both
// sides spin this long before sleeping on a condition variable.
constexpr auto kSpin = std::chrono::microseconds(200);

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spins until done() or kSpin passed; returns done(). After a short busy spin it
// yields between checks, so an oversubscribed machine (parallel test runs) hands
// the core to whoever can use it.
template <typename Done>
bool spin_until(const Done& done) {
  for (int i = 0; i < 256; ++i) {
    if (done()) return true;
    cpu_relax();
  }
  const auto deadline = std::chrono::steady_clock::now() + kSpin;
  while (std::chrono::steady_clock::now() < deadline) {
    if (done()) return true;
    std::this_thread::yield();
  }
  return done();
}

}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  TERN_CHECK(num_threads >= 1, "num_threads=", num_threads);
  chunks_.resize(static_cast<size_t>(num_threads));
  for (int i = 1; i < num_threads; ++i) {
    workers_.emplace_back([this, i] { worker_loop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_.store(true, std::memory_order_release);
  }
  work_ready_.notify_all();
  for (std::thread& worker : workers_) worker.join();
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                              int64_t min_chunk) {
  if (n <= 0) return;
  min_chunk = std::max<int64_t>(min_chunk, 1);
  const int64_t max_chunks = std::max<int64_t>(1, n / min_chunk);
  const int num_chunks = static_cast<int>(std::min<int64_t>(num_threads(), max_chunks));
  if (num_chunks == 1 || t_inside_pool) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (int c = 0; c < num_threads(); ++c) {
      const int64_t begin = c < num_chunks ? n * c / num_chunks : n;
      const int64_t end = c < num_chunks ? n * (c + 1) / num_chunks : n;
      chunks_[static_cast<size_t>(c)] = {begin, end};
    }
    job_ = &fn;
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    generation_.fetch_add(1, std::memory_order_release);
  }
  work_ready_.notify_all();
  t_inside_pool = true;
  fn(chunks_[0].first, chunks_[0].second);
  t_inside_pool = false;
  auto all_done = [this] { return pending_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(all_done)) {
    std::unique_lock<std::mutex> lock(mutex_);
    work_done_.wait(lock, all_done);
  }
  job_ = nullptr;
}

void ThreadPool::worker_loop(int worker_index) {
  uint64_t seen_generation = 0;
  t_inside_pool = true;
  for (;;) {
    std::pair<int64_t, int64_t> chunk;
    const std::function<void(int64_t, int64_t)>* job;
    auto has_work = [&] {
      return stopping_.load(std::memory_order_acquire) ||
             generation_.load(std::memory_order_acquire) != seen_generation;
    };
    if (!spin_until(has_work)) {
      std::unique_lock<std::mutex> lock(mutex_);
      work_ready_.wait(lock, has_work);
    }
    {
      // The job was published under the mutex before generation_ moved.
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_.load(std::memory_order_relaxed)) return;
      seen_generation = generation_.load(std::memory_order_relaxed);
      chunk = chunks_[static_cast<size_t>(worker_index)];
      job = job_;
    }
    if (chunk.first < chunk.second) (*job)(chunk.first, chunk.second);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mutex_);  // pairs with the caller's predicate check
      work_done_.notify_one();
    }
  }
}

namespace {

std::unique_ptr<ThreadPool>& pool_slot() {
  static std::unique_ptr<ThreadPool> pool;
  return pool;
}

}  // namespace

ThreadPool& default_pool() {
  std::unique_ptr<ThreadPool>& pool = pool_slot();
  if (!pool) {
    const unsigned hw = std::thread::hardware_concurrency();
    pool = std::make_unique<ThreadPool>(hw == 0 ? 1 : static_cast<int>(hw));
  }
  return *pool;
}

void set_num_threads(int num_threads) {
  TERN_CHECK(num_threads >= 1, "num_threads=", num_threads);
  pool_slot() = std::make_unique<ThreadPool>(num_threads);
}

}  // namespace tern
