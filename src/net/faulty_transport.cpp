#include "net/faulty_transport.h"

#include <algorithm>
#include <cmath>
#include <optional>

#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "core/log.h"
#include "core/rng.h"
#include "net/in_flight.h"

namespace tern::net {

struct FaultyTransport::Shared {
  mutable std::mutex mutex;
  FaultPolicy policy;
  FaultCounts counts;
  uint64_t seed = 0;
  uint64_t connects = 0;
  uint64_t accepts = 0;

  FaultPolicy snapshot() const {
    std::lock_guard lock(mutex);
    return policy;
  }
  template <typename Update>
  void count(Update update) {
    std::lock_guard lock(mutex);
    update(counts);
  }
};

namespace {

using Shared = FaultyTransport::Shared;

bool happens(Rng& rng, double probability) {
  return probability > 0.0 && rng.uniform() < probability;
}

asio::awaitable<void> sleep_for(std::chrono::microseconds duration) {
  if (duration.count() <= 0) co_return;
  asio::steady_timer timer(co_await asio::this_coro::executor, duration);
  asio::error_code ignored;
  co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ignored));
}

// State of one connection, shared with the coroutines running on it so that
// they stay valid when the Connection object is destroyed while they wait.
struct FaultyState {
  FaultyState(std::unique_ptr<Connection> inner_in, std::shared_ptr<Shared> shared_in,
              uint64_t seed)
      : inner(std::move(inner_in)), shared(std::move(shared_in)), rng(seed) {}

  void close() {
    closed = true;
    held.reset();
    inner->close();
  }

  // Sends the frame held back for reordering, if any.
  asio::awaitable<Status> flush_held() {
    if (!held) co_return Status::Ok();
    Bytes frame = std::move(*held);
    held.reset();
    co_return co_await inner->send(frame);
  }

  std::unique_ptr<Connection> inner;
  std::shared_ptr<Shared> shared;
  Rng rng;
  uint64_t frames = 0;
  std::optional<Bytes> held;
  std::optional<TokenBucket> bucket;
  uint64_t bucket_rate = 0;
  uint64_t bucket_burst = 0;
  bool closed = false;
  bool sending = false;
};

class FaultyConnection final : public Connection {
 public:
  FaultyConnection(std::unique_ptr<Connection> inner, std::shared_ptr<Shared> shared, uint64_t seed)
      : state_(std::make_shared<FaultyState>(std::move(inner), std::move(shared), seed)) {}
  ~FaultyConnection() override { state_->close(); }

  asio::awaitable<Status> send(std::span<const uint8_t> frame) override {
    std::shared_ptr<FaultyState> s = state_;
    InFlightGuard busy(s->sending, "send()");
    if (s->closed) {
      co_return Status::Error("send to " + s->inner->peer_address() + ": connection closed");
    }
    Shared& shared = *s->shared;
    Rng& rng = s->rng;
    const FaultPolicy policy = shared.snapshot();
    const uint64_t ordinal = s->frames++;
    const size_t frame_bytes = frame.size();
    shared.count([frame_bytes](FaultCounts& c) {
      ++c.frames;
      c.frame_bytes += frame_bytes;
    });

    const bool disconnect_now =
        (policy.disconnect_after_frames > 0 && ordinal >= policy.disconnect_after_frames) ||
        happens(rng, policy.disconnect_probability);
    if (disconnect_now) {
      shared.count([](FaultCounts& c) { ++c.disconnects; });
      log(LogLevel::kInfo, "net", "fault injection: disconnecting ", s->inner->peer_address(),
          " at frame ", ordinal);
      s->close();
      co_return Status::Error("send to " + s->inner->peer_address() +
                              ": disconnected by fault injection");
    }
    if (happens(rng, policy.drop_probability)) {
      shared.count([](FaultCounts& c) { ++c.dropped; });
      // A held frame still goes out: only this one is lost.
      co_return co_await s->flush_held();
    }

    Bytes copy(frame.begin(), frame.end());
    if (!copy.empty() && happens(rng, policy.corrupt_probability)) {
      const uint64_t bit = rng.below(copy.size() * 8);
      copy[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
      shared.count([](FaultCounts& c) { ++c.corrupted; });
    }

    if (policy.delay.count() > 0 || policy.delay_jitter.count() > 0) {
      std::chrono::microseconds wait = policy.delay;
      if (policy.delay_jitter.count() > 0) {
        const auto jitter_us = std::chrono::microseconds(policy.delay_jitter).count();
        wait += std::chrono::microseconds(rng.below(static_cast<uint64_t>(jitter_us) + 1));
      }
      shared.count([](FaultCounts& c) { ++c.delayed; });
      co_await sleep_for(wait);
    }

    if (policy.bandwidth_bytes_per_second > 0) {
      const auto now = TokenBucket::Clock::now();
      if (!s->bucket || s->bucket_rate != policy.bandwidth_bytes_per_second ||
          s->bucket_burst != policy.bandwidth_burst_bytes) {
        s->bucket.emplace(policy.bandwidth_bytes_per_second, policy.bandwidth_burst_bytes, now);
        s->bucket_rate = policy.bandwidth_bytes_per_second;
        s->bucket_burst = policy.bandwidth_burst_bytes;
      }
      const std::chrono::microseconds wait = s->bucket->take(copy.size(), now);
      if (wait.count() > 0) {
        shared.count([wait](FaultCounts& c) {
          ++c.bandwidth_waits;
          c.bandwidth_wait_total += wait;
        });
        co_await sleep_for(wait);
      }
    }

    if (s->closed)
      co_return Status::Error("send to " + s->inner->peer_address() + ": connection closed");
    if (!s->held && happens(rng, policy.reorder_probability)) {
      shared.count([](FaultCounts& c) { ++c.reordered; });
      s->held = std::move(copy);
      co_return Status::Ok();
    }
    TERN_CO_RETURN_IF_ERROR(co_await s->inner->send(copy));
    co_return co_await s->flush_held();
  }

  asio::awaitable<Result<Bytes>> receive() override {
    std::shared_ptr<FaultyState> s = state_;
    Result<Bytes> frame = co_await s->inner->receive();
    if (frame.ok()) {
      const size_t bytes = frame.value().size();
      s->shared->count([bytes](FaultCounts& c) {
        ++c.received_frames;
        c.received_bytes += bytes;
      });
    }
    co_return frame;
  }
  void close() override { state_->close(); }
  std::string peer_address() const override { return state_->inner->peer_address(); }

 private:
  std::shared_ptr<FaultyState> state_;
};

uint64_t connection_seed(Shared& shared, bool accepted) {
  std::lock_guard lock(shared.mutex);
  const uint64_t ordinal = accepted ? shared.accepts++ : shared.connects++;
  return derive_seed(shared.seed, (accepted ? "accept/" : "connect/") + std::to_string(ordinal));
}

class FaultyListener final : public Listener {
 public:
  FaultyListener(std::unique_ptr<Listener> inner, std::shared_ptr<Shared> shared)
      : inner_(std::move(inner)), shared_(std::move(shared)) {}

  asio::awaitable<Result<std::unique_ptr<Connection>>> accept() override {
    TERN_CO_ASSIGN_OR_RETURN(std::unique_ptr<Connection> connection, co_await inner_->accept());
    const uint64_t seed = connection_seed(*shared_, true);
    co_return std::unique_ptr<Connection>(
        std::make_unique<FaultyConnection>(std::move(connection), shared_, seed));
  }
  std::string address() const override { return inner_->address(); }
  void close() override { inner_->close(); }

 private:
  std::unique_ptr<Listener> inner_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace

TokenBucket::TokenBucket(uint64_t bytes_per_second, uint64_t burst_bytes, Clock::time_point now)
    : rate_(static_cast<double>(bytes_per_second)),
      burst_(static_cast<double>(burst_bytes)),
      tokens_(burst_),
      last_(now) {
  TERN_CHECK(bytes_per_second > 0, "a token bucket needs a positive rate");
}

std::chrono::microseconds TokenBucket::take(size_t bytes, Clock::time_point now) {
  if (now > last_) {
    const double elapsed = std::chrono::duration<double>(now - last_).count();
    tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
    last_ = now;
  }
  tokens_ -= static_cast<double>(bytes);
  if (tokens_ >= 0.0) return std::chrono::microseconds(0);
  // The debt is repaid by the time the caller has waited; later calls see the
  // refill from `last_`, which already accounts for that wait.
  return std::chrono::microseconds(static_cast<int64_t>(std::ceil(-tokens_ / rate_ * 1e6)));
}

FaultyTransport::FaultyTransport(Transport& inner, FaultPolicy policy, uint64_t seed)
    : inner_(inner), shared_(std::make_shared<Shared>()) {
  shared_->policy = policy;
  shared_->seed = seed;
}

FaultyTransport::~FaultyTransport() = default;

asio::awaitable<Result<std::unique_ptr<Connection>>> FaultyTransport::connect(std::string address) {
  TERN_CO_ASSIGN_OR_RETURN(std::unique_ptr<Connection> connection,
                           co_await inner_.connect(std::move(address)));
  const uint64_t seed = connection_seed(*shared_, false);
  co_return std::unique_ptr<Connection>(
      std::make_unique<FaultyConnection>(std::move(connection), shared_, seed));
}

Result<std::unique_ptr<Listener>> FaultyTransport::listen(std::string address) {
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<Listener> listener, inner_.listen(std::move(address)));
  return std::unique_ptr<Listener>(std::make_unique<FaultyListener>(std::move(listener), shared_));
}

void FaultyTransport::set_policy(const FaultPolicy& policy) {
  std::lock_guard lock(shared_->mutex);
  shared_->policy = policy;
}

FaultPolicy FaultyTransport::policy() const {
  return shared_->snapshot();
}

FaultCounts FaultyTransport::counts() const {
  std::lock_guard lock(shared_->mutex);
  return shared_->counts;
}

}  // namespace tern::net
