// ThreadPool: a persistent pool that splits index ranges across threads.
//
// parallel_for(n, fn) cuts [0, n) into at most num_threads() contiguous chunks
// and calls fn(begin, end) once per chunk, the calling thread taking the first.
// Kernels keep results deterministic by computing every output element in
// exactly one chunk with a fixed per-element order, so the thread count never
// changes the bits. Nested parallel_for calls run inline on the caller.
// parallel_for may be called from one thread at a time per pool. Idle workers and
// a waiting caller spin briefly (200 µs) before sleeping, so back-to-back small
// kernels do not pay a thread wake-up each.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tern {

class ThreadPool {
 public:
  explicit ThreadPool(int num_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Runs fn(begin, end) over [0, n). min_chunk bounds the smallest chunk so tiny
  // ranges do not pay for a wake-up.
  void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                    int64_t min_chunk = 1);

 private:
  void worker_loop(int worker_index);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable work_ready_;
  std::condition_variable work_done_;
  const std::function<void(int64_t, int64_t)>* job_ = nullptr;
  std::vector<std::pair<int64_t, int64_t>> chunks_;
  std::atomic<uint64_t> generation_{0};  // bumped (under mutex_) per job
  std::atomic<int> pending_{0};          // workers still running the job
  std::atomic<bool> stopping_{false};
};

// The process-wide pool used by kernels. Defaults to the hardware thread count;
// set_num_threads replaces it (call it before any kernel runs, not concurrently).
ThreadPool& default_pool();
void set_num_threads(int num_threads);

// Shorthand for default_pool().parallel_for(...).
inline void parallel_for(int64_t n, const std::function<void(int64_t, int64_t)>& fn,
                         int64_t min_chunk = 1) {
  default_pool().parallel_for(n, fn, min_chunk);
}

}  // namespace tern
