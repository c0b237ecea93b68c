// fetch_blob against fake in-process holders on one io_context: chunks spread
// over holders, corrupt and failing holders, lying manifests, resume.
#include "net/blob_fetch.h"

#include <gtest/gtest.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include "core/log.h"
#include "core/rng.h"
#include "net/net_test_support.h"

namespace tern::net {
namespace {

using testing::random_bytes;

struct InFlight {
  int now = 0;
  int max = 0;
};

// Serves blobs from a source store, with configurable misbehaviour. Each reply
// takes `delay` trips through the executor, so requests overlap.
class FakeHolder : public BlobHolder {
 public:
  FakeHolder(std::string name, const BlobStore& source, InFlight& in_flight, int delay = 1)
      : name_(std::move(name)), source_(source), in_flight_(in_flight), delay_(delay) {}

  std::string name() const override { return name_; }

  asio::awaitable<Result<BlobManifest>> get_manifest(const BlobId& id) override {
    ++manifest_calls;
    co_await pause();
    if (no_manifest) co_return Status::Error(name_ + ": no such blob");
    Result<BlobManifest> manifest = source_.manifest(id);
    if (manifest.ok() && lie_in_manifest) manifest.value().chunk_hashes.back()[5] ^= 1;
    co_return manifest;
  }

  asio::awaitable<Result<Bytes>> get_chunk(const BlobId& id, uint32_t index) override {
    ++chunk_calls;
    in_flight_.max = std::max(in_flight_.max, ++in_flight_.now);
    co_await pause();
    --in_flight_.now;
    if (fail_from_index && index >= *fail_from_index) {
      co_return Status::Error(name_ + ": refusing chunk " + std::to_string(index));
    }
    if (failure_rate > 0 && rng_.uniform() < failure_rate) {
      co_return Status::Error(name_ + ": random failure");
    }
    Result<Bytes> chunk = source_.chunk(id, index);
    if (chunk.ok() && corrupt_next > 0) {
      --corrupt_next;
      chunk.value()[chunk.value().size() / 2] ^= 0x10;
    }
    co_return chunk;
  }

  int manifest_calls = 0;
  int chunk_calls = 0;
  bool no_manifest = false;
  bool lie_in_manifest = false;
  int corrupt_next = 0;
  double failure_rate = 0;
  std::optional<uint32_t> fail_from_index;
  void seed(uint64_t seed) { rng_ = Rng(seed); }

 private:
  asio::awaitable<void> pause() {
    for (int i = 0; i < delay_; ++i) {
      co_await asio::post(co_await asio::this_coro::executor, asio::use_awaitable);
    }
  }

  std::string name_;
  const BlobStore& source_;
  InFlight& in_flight_;
  int delay_;
  Rng rng_{1};
};

struct Swarm {
  Swarm(const Bytes& data, uint32_t chunk_size, int holder_count)
      : source(std::nullopt, chunk_size) {
    id = source.put(data).value();
    for (int i = 0; i < holder_count; ++i) {
      fakes.push_back(
          std::make_unique<FakeHolder>("holder" + std::to_string(i), source, in_flight, 1 + i % 3));
      holders.push_back(fakes.back().get());
    }
  }
  int total_chunk_calls() const {
    int total = 0;
    for (const auto& fake : fakes) total += fake->chunk_calls;
    return total;
  }

  BlobStore source;
  BlobId id{};
  InFlight in_flight;
  std::vector<std::unique_ptr<FakeHolder>> fakes;
  std::vector<BlobHolder*> holders;
};

Result<FetchReport> run_fetch(const BlobId& id, std::span<BlobHolder* const> holders,
                              BlobStore& store, const FetchOptions& options) {
  asio::io_context io;
  std::optional<Result<FetchReport>> result;
  // co_spawn's handler needs a default-constructible value, so wrap in void.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> { result = co_await fetch_blob(id, holders, store, options); },
      [](std::exception_ptr error) {
        if (error) std::rethrow_exception(error);
      });
  io.run();
  EXPECT_TRUE(result.has_value());
  return std::move(*result);
}

uint32_t holders_that_served(const FetchReport& report) {
  uint32_t count = 0;
  for (uint32_t served : report.chunks_per_holder) count += served > 0 ? 1 : 0;
  return count;
}

void expect_blob(const BlobStore& store, const BlobId& id, const Bytes& data) {
  ASSERT_TRUE(store.has(id));
  EXPECT_EQ(*store.get(id).value(), data);
  EXPECT_EQ(make_manifest(*store.get(id).value(), store.manifest(id).value().chunk_size).id, id);
}

TEST(blob_fetch, ThirtyTwoMebibytesSpreadOverEightHolders) {
  const Bytes data = random_bytes(size_t{32} << 20, 1);
  Swarm swarm(data, kDefaultChunkSize, 8);
  BlobStore store;
  FetchOptions options;
  options.parallel = 8;
  Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, options);
  ASSERT_TRUE(report.ok()) << report.status().message();
  expect_blob(store, swarm.id, data);
  EXPECT_EQ(report.value().chunk_count, 32u);
  EXPECT_EQ(report.value().chunks_fetched(), 32u);
  EXPECT_EQ(report.value().chunks_already_present, 0u);
  EXPECT_EQ(report.value().corrupt_chunks, 0u);
  EXPECT_EQ(report.value().retries, 0u);
  EXPECT_EQ(report.value().manifest_from, std::optional<size_t>(0));
  EXPECT_GT(holders_that_served(report.value()), 1u);
  EXPECT_EQ(holders_that_served(report.value()), 8u);
  EXPECT_EQ(swarm.total_chunk_calls(), 32);
  EXPECT_GT(swarm.in_flight.max, 1);
  EXPECT_LE(swarm.in_flight.max, 8);
}

TEST(blob_fetch, RespectsTheParallelLimitAndIsDeterministic) {
  const Bytes data = random_bytes(100 * 4096 + 77, 2);
  std::vector<uint32_t> first_split;
  for (int run = 0; run < 2; ++run) {
    Swarm swarm(data, 4096, 5);
    BlobStore store;
    FetchOptions options;
    options.parallel = 3;
    Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, options);
    ASSERT_TRUE(report.ok()) << report.status().message();
    expect_blob(store, swarm.id, data);
    EXPECT_EQ(swarm.in_flight.max, 3);
    EXPECT_EQ(report.value().chunks_fetched(), 101u);
    if (run == 0)
      first_split = report.value().chunks_per_holder;
    else
      EXPECT_EQ(report.value().chunks_per_holder, first_split);
  }
}

TEST(blob_fetch, CorruptChunkIsDetectedAndRefetchedElsewhere) {
  const Bytes data = random_bytes(64 * 4096, 3);
  Swarm swarm(data, 4096, 8);
  swarm.fakes[3]->corrupt_next = 1;
  BlobStore store;
  LogCapture logs;
  Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, FetchOptions{});
  ASSERT_TRUE(report.ok()) << report.status().message();
  expect_blob(store, swarm.id, data);
  EXPECT_EQ(report.value().corrupt_chunks, 1u);
  EXPECT_EQ(report.value().retries, 1u);
  EXPECT_EQ(report.value().failed_requests, 0u);
  EXPECT_EQ(report.value().chunks_fetched(), 64u);
  EXPECT_EQ(swarm.total_chunk_calls(), 65);
  EXPECT_TRUE(report.value().dropped_holders.empty());  // one failure is below the limit
  EXPECT_TRUE(logs.contains("corrupt chunk from holder3"))
      << ::testing::PrintToString(logs.lines());
  EXPECT_TRUE(logs.contains("hash mismatch"));
}

TEST(blob_fetch, HolderThatKeepsCorruptingIsDropped) {
  const Bytes data = random_bytes(40 * 4096, 4);
  Swarm swarm(data, 4096, 4);
  swarm.fakes[1]->corrupt_next = 1000;
  BlobStore store;
  LogCapture logs;
  FetchOptions options;
  options.max_holder_failures = 2;
  Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, options);
  ASSERT_TRUE(report.ok()) << report.status().message();
  expect_blob(store, swarm.id, data);
  // Requests already in flight when it is dropped still come back corrupt.
  EXPECT_GE(report.value().corrupt_chunks, 2u);
  EXPECT_EQ(report.value().corrupt_chunks, static_cast<uint32_t>(swarm.fakes[1]->chunk_calls));
  EXPECT_EQ(report.value().dropped_holders, (std::vector<size_t>{1}));
  EXPECT_EQ(report.value().chunks_per_holder[1], 0u);
  EXPECT_TRUE(logs.contains("dropping holder holder1 after 2 failures"));
}

TEST(blob_fetch, RandomFailuresStillComplete) {
  LogCapture quiet;  // expected warnings stay out of the test output
  const Bytes data = random_bytes(64 * 4096 + 1000, 5);
  Swarm swarm(data, 4096, 8);
  for (size_t i = 0; i < swarm.fakes.size(); ++i) {
    swarm.fakes[i]->failure_rate = 0.3;
    swarm.fakes[i]->seed(100 + i);
  }
  BlobStore store;
  FetchOptions options;
  options.max_attempts = 20;
  options.max_holder_failures = 1000;
  Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, options);
  ASSERT_TRUE(report.ok()) << report.status().message();
  expect_blob(store, swarm.id, data);
  const FetchReport& r = report.value();
  EXPECT_GT(r.failed_requests, 5u);
  EXPECT_EQ(r.retries, r.failed_requests);
  EXPECT_EQ(r.chunks_fetched(), 65u);
  EXPECT_EQ(static_cast<uint32_t>(swarm.total_chunk_calls()), 65u + r.failed_requests);
  EXPECT_GT(holders_that_served(r), 1u);
}

TEST(blob_fetch, AllHoldersFailingIsACleanErrorAndALaterFetchResumes) {
  const Bytes data = random_bytes(64 * 4096, 6);
  Swarm broken(data, 4096, 4);
  for (auto& fake : broken.fakes) fake->fail_from_index = 20;  // serve chunks 0..19 only
  BlobStore store;
  LogCapture logs;
  FetchOptions options;
  options.max_attempts = 100;  // so that running out of holders is what ends it
  Result<FetchReport> first = run_fetch(broken.id, broken.holders, store, options);
  ASSERT_FALSE(first.ok());
  const std::string message = first.status().message();
  EXPECT_NE(message.find("fetch blob " + short_blob_id(broken.id)), std::string::npos) << message;
  EXPECT_NE(message.find("no usable holder left; 44 of 64 chunks still missing"), std::string::npos)
      << message;
  for (int i = 0; i < 4; ++i) {
    EXPECT_TRUE(logs.contains("dropping holder holder" + std::to_string(i) + " after 3 failures"));
  }
  EXPECT_EQ(store.missing_chunks(broken.id).value().size(), 44u);
  EXPECT_FALSE(store.has(broken.id));

  Swarm good(data, 4096, 3);
  Result<FetchReport> second = run_fetch(good.id, good.holders, store, FetchOptions{});
  ASSERT_TRUE(second.ok()) << second.status().message();
  expect_blob(store, good.id, data);
  EXPECT_EQ(second.value().chunks_already_present, 20u);
  EXPECT_EQ(second.value().chunks_fetched(), 44u);
  EXPECT_EQ(good.total_chunk_calls(), 44);
  EXPECT_FALSE(second.value().manifest_from.has_value());  // resumed from the store's manifest
  for (const auto& fake : good.fakes) EXPECT_EQ(fake->manifest_calls, 0);

  // A third fetch has nothing to do.
  Result<FetchReport> third = run_fetch(good.id, good.holders, store, FetchOptions{});
  ASSERT_TRUE(third.ok());
  EXPECT_EQ(third.value().chunks_already_present, 64u);
  EXPECT_EQ(good.total_chunk_calls(), 44);
}

TEST(blob_fetch, GivesUpAfterMaxAttemptsOnOneChunk) {
  LogCapture quiet;  // expected warnings stay out of the test output
  const Bytes data = random_bytes(16 * 4096, 7);
  Swarm swarm(data, 4096, 3);
  // Every holder corrupts everything it sends: chunk 0 is tried 4 times.
  for (auto& fake : swarm.fakes) fake->corrupt_next = 1000;
  BlobStore store;
  FetchOptions options;
  options.parallel = 1;
  options.max_attempts = 4;
  options.max_holder_failures = 1000;
  Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, options);
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("chunk 0 failed 4 attempts (last: put chunk 0 of blob"),
            std::string::npos)
      << report.status().message();
  EXPECT_NE(report.status().message().find("16 of 16 chunks still missing"), std::string::npos);
  EXPECT_EQ(swarm.total_chunk_calls(), 4);
  // Retries went to different holders first: 3 holders, 4 attempts.
  for (const auto& fake : swarm.fakes) EXPECT_GE(fake->chunk_calls, 1);
}

TEST(blob_fetch, LyingManifestIsSkipped) {
  const Bytes data = random_bytes(10 * 4096, 8);
  Swarm swarm(data, 4096, 4);
  swarm.fakes[0]->lie_in_manifest = true;
  swarm.fakes[1]->no_manifest = true;
  BlobStore store;
  LogCapture logs;
  Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, FetchOptions{});
  ASSERT_TRUE(report.ok()) << report.status().message();
  expect_blob(store, swarm.id, data);
  EXPECT_EQ(report.value().manifest_from, std::optional<size_t>(2));
  EXPECT_EQ(report.value().dropped_holders, (std::vector<size_t>{0}));
  EXPECT_EQ(swarm.fakes[0]->chunk_calls, 0);
  EXPECT_EQ(swarm.fakes[3]->manifest_calls, 0);
  EXPECT_GT(report.value().chunks_per_holder[1], 0u);  // no manifest, but chunks are fine
  EXPECT_TRUE(logs.contains("dropping holder holder0 for a bad manifest"));
}

TEST(blob_fetch, NoValidManifestAnywhere) {
  LogCapture quiet;  // expected warnings stay out of the test output
  const Bytes data = random_bytes(3 * 4096, 9);
  Swarm swarm(data, 4096, 3);
  swarm.fakes[0]->lie_in_manifest = true;
  swarm.fakes[1]->no_manifest = true;
  swarm.fakes[2]->lie_in_manifest = true;
  BlobStore store;
  Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, FetchOptions{});
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("fetch blob " + short_blob_id(swarm.id) +
                                           ": no holder gave a valid manifest (3 asked)"),
            std::string::npos)
      << report.status().message();
  EXPECT_FALSE(store.missing_chunks(swarm.id).ok());  // nothing begun
  EXPECT_EQ(swarm.total_chunk_calls(), 0);
}

TEST(blob_fetch, NoHoldersAtAll) {
  BlobId id{};
  id[0] = 1;
  BlobStore store;
  Result<FetchReport> report = run_fetch(id, {}, store, FetchOptions{});
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("no holders"), std::string::npos);
}

TEST(blob_fetch, EmptyBlob) {
  Swarm swarm({}, 4096, 2);
  BlobStore store;
  Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, FetchOptions{});
  ASSERT_TRUE(report.ok()) << report.status().message();
  EXPECT_TRUE(store.has(swarm.id));
  EXPECT_TRUE(store.get(swarm.id).value()->empty());
  EXPECT_EQ(report.value().chunk_count, 0u);
  EXPECT_EQ(swarm.total_chunk_calls(), 0);
}

TEST(blob_fetch, SizeNotAMultipleOfTheChunkSize) {
  const Bytes data = random_bytes(5 * 65536 + 12345, 10);
  Swarm swarm(data, 65536, 3);
  BlobStore store;
  Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, FetchOptions{});
  ASSERT_TRUE(report.ok()) << report.status().message();
  expect_blob(store, swarm.id, data);
  EXPECT_EQ(report.value().chunk_count, 6u);
  EXPECT_EQ(store.chunk(swarm.id, 5).value().size(), 12345u);
}

TEST(blob_fetch, StoreCapacityErrorIsReported) {
  const Bytes data = random_bytes(10 * 4096, 11);
  Swarm swarm(data, 4096, 2);
  BlobStore store(4096);
  Result<FetchReport> report = run_fetch(swarm.id, swarm.holders, store, FetchOptions{});
  ASSERT_FALSE(report.ok());
  EXPECT_NE(report.status().message().find("exceed the store's free capacity"), std::string::npos)
      << report.status().message();
  EXPECT_EQ(swarm.total_chunk_calls(), 0);
}

TEST(blob_fetch, CancelledFetchWaitsForItsWorkersAndCanResume) {
  LogCapture quiet;  // expected warnings stay out of the test output
  const Bytes data = random_bytes(256 * 4096, 12);
  Swarm swarm(data, 4096, 4);
  BlobStore store;
  asio::io_context io;
  std::optional<Result<FetchReport>> result;
  bool other_branch_won = false;
  auto fetch = [&]() -> asio::awaitable<void> {
    result = co_await fetch_blob(swarm.id, swarm.holders, store, FetchOptions{});
  };
  auto a_few_trips = [&]() -> asio::awaitable<void> {
    // Long enough for the manifest and some chunks, far short of all of them.
    for (int i = 0; i < 12; ++i) co_await asio::post(io, asio::use_awaitable);
    other_branch_won = true;
  };
  using namespace asio::experimental::awaitable_operators;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { co_await (fetch() || a_few_trips()); },
      [](std::exception_ptr error) {
        if (error) std::rethrow_exception(error);
      });
  io.run();  // returns only once the cancelled fetch's workers have finished
  ASSERT_TRUE(other_branch_won);
  EXPECT_FALSE(store.has(swarm.id));
  const size_t missing = store.missing_chunks(swarm.id).value().size();
  EXPECT_GT(missing, 0u);
  EXPECT_LT(missing, 256u);
  // fetch_blob itself returned (after its workers), with an error.
  ASSERT_TRUE(result.has_value());
  ASSERT_FALSE(result->ok());
  EXPECT_NE(result->status().message().find("cancelled; " + std::to_string(missing) +
                                            " of 256 chunks still missing"),
            std::string::npos)
      << result->status().message();

  Result<FetchReport> resumed = run_fetch(swarm.id, swarm.holders, store, FetchOptions{});
  ASSERT_TRUE(resumed.ok()) << resumed.status().message();
  EXPECT_EQ(resumed.value().chunks_fetched(), missing);
  expect_blob(store, swarm.id, data);
}

}  // namespace
}  // namespace tern::net
