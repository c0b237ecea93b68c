// Fault injection: a Transport that wraps another one and damages the frames
// its connections send, for tests and benchmarks of the layers above.
//
// Per frame passed to send(), in this order (each decision drawn from the
// connection's seeded Rng, only for faults whose setting is non-zero):
//   1. disconnect: after `disconnect_after_frames` frames, or with
//      `disconnect_probability`, the connection is closed and send fails;
//   2. drop: with `drop_probability` the frame is silently discarded (send
//      succeeds);
//   3. corrupt: with `corrupt_probability` one uniformly chosen bit of a
//      non-empty frame is flipped;
//   4. delay: send first waits `delay` plus a uniform jitter in
//      [0, delay_jitter] (frames stay in order: the sender waits);
//   5. bandwidth: a token bucket per connection (`bandwidth_bytes_per_second`,
//      bucket of `bandwidth_burst_bytes`) makes send wait for the frame's
//      bytes;
//   6. reorder: with `reorder_probability` (and no frame already held) the
//      frame is held back and sent right after the next one. A held frame is
//      lost if no further frame is sent before the connection closes.
// receive() passes through untouched: wrap both peers to damage both
// directions. Connections from connect() and accept() are both wrapped.
//
// Reproducible: each connection's Rng is seeded from the transport's seed and
// the connection's ordinal ("connect/N" or "accept/N", N counting from 0), so
// the same operations on a single-threaded memory network inject the same
// faults. Counts (FaultCounts) sum over all the transport's connections.
//
// Threading: set_policy(), policy() and counts() are thread-safe (a mutex);
// a new policy applies from the next frame any connection sends. Everything
// else follows the wrapped transport's rules (its executor). The inner
// transport must outlive this one and every connection it made.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>

#include "net/transport.h"

namespace tern::net {

struct FaultPolicy {
  double drop_probability = 0.0;
  Millis delay{0};
  Millis delay_jitter{0};
  double reorder_probability = 0.0;
  double corrupt_probability = 0.0;
  double disconnect_probability = 0.0;
  uint64_t disconnect_after_frames = 0;     // 0: never; N: the frame after the Nth fails
  uint64_t bandwidth_bytes_per_second = 0;  // 0: unlimited
  uint64_t bandwidth_burst_bytes = 64 * 1024;
};

struct FaultCounts {
  uint64_t frames = 0;           // frames passed to send()
  uint64_t frame_bytes = 0;      // their bytes (an upload meter when wrapping a member's transport)
  uint64_t received_frames = 0;  // frames receive() returned
  uint64_t received_bytes = 0;   // their bytes (a download meter)
  uint64_t dropped = 0;
  uint64_t corrupted = 0;
  uint64_t delayed = 0;
  uint64_t reordered = 0;
  uint64_t disconnects = 0;
  uint64_t bandwidth_waits = 0;  // sends that waited for the token bucket
  std::chrono::microseconds bandwidth_wait_total{0};
};

// Token bucket on an explicit clock (tests drive it with virtual time). Starts
// full. take() removes `bytes` tokens, going into debt if needed, and returns
// how long the caller must wait for the debt to be repaid.
class TokenBucket {
 public:
  using Clock = std::chrono::steady_clock;
  TokenBucket(uint64_t bytes_per_second, uint64_t burst_bytes, Clock::time_point now);
  std::chrono::microseconds take(size_t bytes, Clock::time_point now);

 private:
  double rate_;   // bytes per second
  double burst_;  // bucket capacity in bytes
  double tokens_;
  Clock::time_point last_;
};

class FaultyTransport final : public Transport {
 public:
  FaultyTransport(Transport& inner, FaultPolicy policy, uint64_t seed);
  ~FaultyTransport() override;

  asio::awaitable<Result<std::unique_ptr<Connection>>> connect(std::string address) override;
  Result<std::unique_ptr<Listener>> listen(std::string address) override;
  const TransportLimits& limits() const override { return inner_.limits(); }

  void set_policy(const FaultPolicy& policy);
  FaultPolicy policy() const;
  FaultCounts counts() const;

  // Shared with connections and listeners (which may outlive this object).
  struct Shared;

 private:
  Transport& inner_;
  std::shared_ptr<Shared> shared_;
};

}  // namespace tern::net
