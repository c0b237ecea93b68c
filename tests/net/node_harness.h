// Test helpers for code built on asio coroutines: drive an io_context until
// one coroutine finishes (nodes keep their read loops parked forever, so
// io_context::run() would not return), deterministic identities and bytes.
#pragma once

#include <array>
#include <cstdint>
#include <exception>
#include <optional>
#include <utility>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include "core/check.h"
#include "core/rng.h"
#include "net/identity.h"

namespace tern::net::testing {

// Runs `task` on `io` and returns its value once it completes; other work on
// the context (node loops) runs meanwhile.
template <typename T>
T run_until_done(asio::io_context& io, asio::awaitable<T> task) {
  std::optional<T> out;
  std::exception_ptr failure;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { out.emplace(co_await std::move(task)); },
      [&](std::exception_ptr e) { failure = e; });
  io.restart();
  while (!out && !failure) {
    TERN_CHECK(io.run_one() > 0, "io_context ran out of work before the task finished");
  }
  if (failure) std::rethrow_exception(failure);
  return std::move(*out);
}

// Lets pending handlers run for `ms` milliseconds of steady time.
inline void run_for_ms(asio::io_context& io, int ms) {
  asio::steady_timer timer(io);
  timer.expires_after(std::chrono::milliseconds(ms));
  bool done = false;
  timer.async_wait([&](const std::error_code&) { done = true; });
  io.restart();
  while (!done) io.run_one();
}

inline Identity identity_from(uint8_t tag) {
  std::array<uint8_t, 32> seed{};
  seed.fill(tag);
  return Identity::from_seed(seed);
}

inline std::vector<uint8_t> random_bytes(size_t size, uint64_t seed) {
  Rng rng(seed);
  std::vector<uint8_t> bytes(size);
  for (size_t i = 0; i < size; i += 8) {
    const uint64_t word = rng.next_u64();
    for (size_t b = 0; b < 8 && i + b < size; ++b)
      bytes[i + b] = static_cast<uint8_t>(word >> (8 * b));
  }
  return bytes;
}

}  // namespace tern::net::testing

namespace tern::net::testing {

// Runs handlers until `done()` holds; false if it still does not after
// `limit_ms` (a safety net against hangs, not a timing assertion).
template <typename Predicate>
bool run_until(asio::io_context& io, Predicate done, int limit_ms = 20000) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(limit_ms);
  io.restart();
  while (!done()) {
    io.run_one_for(std::chrono::milliseconds(20));
    if (std::chrono::steady_clock::now() > deadline) return false;
    if (io.stopped()) io.restart();
  }
  return true;
}

}  // namespace tern::net::testing
