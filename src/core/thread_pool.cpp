#include "core/thread_pool.h"

#include <algorithm>
#include <memory>

#include "core/check.h"

namespace tern {
namespace {

// True while this thread is executing a chunk; nested calls then run inline.
thread_local bool t_inside_pool = false;

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
    stopping_ = true;
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
    pending_ = static_cast<int>(workers_.size());
    ++generation_;
  }
  work_ready_.notify_all();
  t_inside_pool = true;
  fn(chunks_[0].first, chunks_[0].second);
  t_inside_pool = false;
  std::unique_lock<std::mutex> lock(mutex_);
  work_done_.wait(lock, [this] { return pending_ == 0; });
  job_ = nullptr;
}

void ThreadPool::worker_loop(int worker_index) {
  uint64_t seen_generation = 0;
  t_inside_pool = true;
  for (;;) {
    std::pair<int64_t, int64_t> chunk;
    const std::function<void(int64_t, int64_t)>* job;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      work_ready_.wait(lock, [&] { return stopping_ || generation_ != seen_generation; });
      if (stopping_) return;
      seen_generation = generation_;
      chunk = chunks_[static_cast<size_t>(worker_index)];
      job = job_;
    }
    if (chunk.first < chunk.second) (*job)(chunk.first, chunk.second);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--pending_ == 0) work_done_.notify_one();
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
