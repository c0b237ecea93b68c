#include "net/blob_fetch.h"

#include <algorithm>
#include <chrono>
#include <deque>
#include <exception>
#include <memory>
#include <numeric>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "core/log.h"

namespace tern::net {

uint32_t FetchReport::chunks_fetched() const {
  return std::accumulate(chunks_per_holder.begin(), chunks_per_holder.end(), uint32_t{0});
}

namespace {

constexpr size_t kNoHolder = static_cast<size_t>(-1);

struct HolderState {
  BlobHolder* holder = nullptr;
  int in_flight = 0;
  int failures = 0;
  bool dropped = false;
};

struct ChunkState {
  int attempts = 0;
  std::vector<size_t> failed_by;  // holder indices, for "retry elsewhere"
};

// Shared by the fetch and its workers; only touched on the (single-threaded)
// executor, so it needs no lock.
struct FetchState {
  FetchState(const BlobId& id, BlobStore& store, const FetchOptions& options,
             const asio::any_io_executor& executor)
      : id(id), store(store), options(options), all_workers_done(executor) {}

  const BlobId id;
  BlobStore& store;
  const FetchOptions options;
  std::vector<HolderState> holders;
  std::vector<ChunkState> chunks;
  std::deque<uint32_t> queue;  // chunk indices waiting for a request
  size_t next_holder = 0;      // round-robin tie-break
  std::optional<std::string> failure;
  bool stop = false;  // cancelled or a worker threw
  FetchReport report;
  int workers_left = 0;
  asio::steady_timer all_workers_done;
  std::exception_ptr exception;

  std::string where() const { return "fetch blob " + short_blob_id(id); }

  void fail_holder(size_t index, const std::string& reason) {
    HolderState& state = holders[index];
    ++state.failures;
    if (!state.dropped && state.failures >= options.max_holder_failures) {
      drop_holder(index,
                  "after " + std::to_string(state.failures) + " failures (last: " + reason + ")");
    }
  }

  void drop_holder(size_t index, const std::string& why) {
    holders[index].dropped = true;
    report.dropped_holders.push_back(index);
    log(LogLevel::kWarn, "net", where(), ": dropping holder ", holders[index].holder->name(), " ",
        why);
  }

  // The least-loaded usable holder, preferring one that has not failed this
  // chunk; ties go to the first at or after next_holder. kNoHolder if none.
  size_t pick_holder(const ChunkState& chunk) {
    size_t best = kNoHolder;
    std::pair<bool, int> best_key{true, 0};
    for (size_t k = 0; k < holders.size(); ++k) {
      const size_t index = (next_holder + k) % holders.size();
      if (holders[index].dropped) continue;
      const bool failed_before =
          std::find(chunk.failed_by.begin(), chunk.failed_by.end(), index) != chunk.failed_by.end();
      const std::pair<bool, int> key{failed_before, holders[index].in_flight};
      if (best == kNoHolder || key < best_key) {
        best = index;
        best_key = key;
      }
    }
    if (best != kNoHolder) next_holder = (best + 1) % holders.size();
    return best;
  }
};

asio::awaitable<void> chunk_worker(std::shared_ptr<FetchState> s) {
  while (!s->failure && !s->stop && !s->queue.empty()) {
    const uint32_t index = s->queue.front();
    ChunkState& chunk = s->chunks[index];
    const size_t holder_index = s->pick_holder(chunk);
    if (holder_index == kNoHolder) {
      s->failure = "no usable holder left";
      break;
    }
    s->queue.pop_front();
    if (chunk.attempts > 0) ++s->report.retries;
    ++chunk.attempts;
    HolderState& holder = s->holders[holder_index];

    ++holder.in_flight;
    Result<Bytes> reply = co_await holder.holder->get_chunk(s->id, index);
    --holder.in_flight;

    Status stored = reply.ok() ? s->store.put_chunk(s->id, index, reply.value()) : reply.status();
    if (stored.ok()) {
      ++s->report.chunks_per_holder[holder_index];
      continue;
    }
    if (reply.ok()) {
      ++s->report.corrupt_chunks;
      log(LogLevel::kWarn, "net", s->where(), ": corrupt chunk from ", holder.holder->name(), ": ",
          stored.message());
    } else {
      ++s->report.failed_requests;
      log(LogLevel::kInfo, "net", s->where(), ": chunk ", index, " from ", holder.holder->name(),
          " failed: ", stored.message());
    }
    chunk.failed_by.push_back(holder_index);
    s->fail_holder(holder_index, stored.message());
    if (chunk.attempts >= s->options.max_attempts) {
      s->failure = "chunk " + std::to_string(index) + " failed " + std::to_string(chunk.attempts) +
                   " attempts (last: " + stored.message() + ")";
      break;
    }
    s->queue.push_front(index);  // retry first: it is the oldest request
  }
}

// The manifest from the store (a resumed download) or from the first holder
// whose manifest verifies; begins the download in the store.
asio::awaitable<Result<BlobManifest>> obtain_manifest(FetchState& s) {
  Result<BlobManifest> held = s.store.manifest(s.id);
  if (held.ok()) co_return held;
  for (size_t i = 0; i < s.holders.size(); ++i) {
    BlobHolder* holder = s.holders[i].holder;
    Result<BlobManifest> reply = co_await holder->get_manifest(s.id);
    if (!reply.ok()) {
      log(LogLevel::kInfo, "net", s.where(), ": no manifest from ", holder->name(), ": ",
          reply.status().message());
      s.fail_holder(i, reply.status().message());
      continue;
    }
    Result<BlobManifest> verified = verify_manifest(s.id, std::move(reply).value());
    if (!verified.ok()) {
      s.drop_holder(i, "for a bad manifest: " + verified.status().message());
      continue;
    }
    TERN_CO_RETURN_IF_ERROR(s.store.begin(verified.value()).with_context(s.where()));
    s.report.manifest_from = i;
    co_return verified;
  }
  co_return Status::Error(s.where() + ": no holder gave a valid manifest (" +
                          std::to_string(s.holders.size()) + " asked)");
}

}  // namespace

asio::awaitable<Result<FetchReport>> fetch_blob(const BlobId& id,
                                                std::span<BlobHolder* const> holders,
                                                BlobStore& store, const FetchOptions& options) {
  TERN_CHECK(options.parallel >= 1 && options.max_attempts >= 1 && options.max_holder_failures >= 1,
             "fetch options: parallel ", options.parallel, ", max_attempts ", options.max_attempts,
             ", max_holder_failures ", options.max_holder_failures);
  const auto executor = co_await asio::this_coro::executor;
  auto s = std::make_shared<FetchState>(id, store, options, executor);
  s->report.chunks_per_holder.assign(holders.size(), 0);
  for (BlobHolder* holder : holders) {
    TERN_CHECK(holder != nullptr, "null BlobHolder");
    s->holders.push_back(HolderState{.holder = holder});
  }

  if (store.has(id)) {
    TERN_CO_ASSIGN_OR_RETURN(BlobManifest manifest, store.manifest(id));
    s->report.chunk_count = manifest.chunk_count();
    s->report.chunks_already_present = manifest.chunk_count();
    co_return s->report;
  }
  if (holders.empty()) co_return Status::Error(s->where() + ": no holders to fetch from");

  TERN_CO_ASSIGN_OR_RETURN(BlobManifest manifest, co_await obtain_manifest(*s));
  TERN_CO_ASSIGN_OR_RETURN(std::vector<uint32_t> missing, store.missing_chunks(id));
  s->report.chunk_count = manifest.chunk_count();
  s->report.chunks_already_present = manifest.chunk_count() - static_cast<uint32_t>(missing.size());
  s->chunks.resize(manifest.chunk_count());
  s->queue.assign(missing.begin(), missing.end());

  // A fixed set of workers pulls from the queue; the last one to finish wakes
  // this coroutine through the timer.
  const int workers = static_cast<int>(std::min<size_t>(options.parallel, missing.size()));
  s->workers_left = workers;
  s->all_workers_done.expires_at(std::chrono::steady_clock::time_point::max());
  for (int w = 0; w < workers; ++w) {
    asio::co_spawn(executor, chunk_worker(s), [s](std::exception_ptr error) {
      if (error && !s->exception) s->exception = error;
      if (error) s->stop = true;
      if (--s->workers_left == 0) s->all_workers_done.cancel();
    });
  }
  // Workers reference the holders and the store, so this coroutine must not
  // return before they finish, even when it is cancelled.
  co_await asio::this_coro::throw_if_cancelled(false);
  bool cancelled = false;
  while (s->workers_left > 0) {
    asio::error_code ignored;
    co_await s->all_workers_done.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
    asio::cancellation_state state = co_await asio::this_coro::cancellation_state;
    if (state.cancelled() != asio::cancellation_type::none) {
      cancelled = true;
      s->stop = true;
    }
  }
  if (s->exception) std::rethrow_exception(s->exception);

  TERN_CO_ASSIGN_OR_RETURN(missing, store.missing_chunks(id));
  if (missing.empty()) co_return s->report;
  const std::string reason =
      cancelled ? std::string("cancelled") : s->failure.value_or("stopped");  // else: a bug below
  TERN_CHECK(cancelled || s->failure.has_value(), "fetch ended with chunks missing and no reason");
  co_return Status::Error(s->where() + ": " + reason + "; " + std::to_string(missing.size()) +
                          " of " + std::to_string(manifest.chunk_count()) +
                          " chunks still missing");
}

}  // namespace tern::net
