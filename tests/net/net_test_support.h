// Shared helpers for the tests of src/net: driving an io_context until one
// coroutine finishes (nodes keep their read loops parked forever, so
// io_context::run() would not return), assertions usable inside coroutines,
// deterministic identities and bytes, and test bodies that every Transport
// must pass (called from the per-transport test files).
// Single-threaded: everything runs on the test thread's io_context.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <asio/awaitable.hpp>
#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include "core/check.h"
#include "core/log.h"
#include "core/rng.h"
#include "net/identity.h"
#include "net/transport.h"

// gtest's ASSERT_* `return`, which a coroutine cannot: these `co_return`.
#define CO_ASSERT_TRUE(cond)             \
  do {                                   \
    if (!(cond)) {                       \
      ADD_FAILURE() << "failed: " #cond; \
      co_return;                         \
    }                                    \
  } while (0)
#define CO_ASSERT_OK(expr)                                          \
  do {                                                              \
    const auto& co_result_ = (expr);                                \
    if (!co_result_.ok()) {                                         \
      ADD_FAILURE() << #expr ": " << co_result_.status().message(); \
      co_return;                                                    \
    }                                                               \
  } while (0)

namespace tern::net::testing {

// Completion handler for co_spawn: a coroutine's exception fails the test run.
inline void rethrow(std::exception_ptr e) {
  if (e) std::rethrow_exception(e);
}

// Spawns `coroutine` and runs `io` until it has no work left.
template <typename Coroutine>
void run(asio::io_context& io, Coroutine coroutine) {
  asio::co_spawn(io, std::move(coroutine), rethrow);
  io.run();
}

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

// Lets pending handlers run for `ms` milliseconds of steady time.
inline void run_for_ms(asio::io_context& io, int ms) {
  asio::steady_timer timer(io);
  timer.expires_after(std::chrono::milliseconds(ms));
  bool done = false;
  timer.async_wait([&](const std::error_code&) { done = true; });
  io.restart();
  while (!done) io.run_one();
}

// Inside a coroutine: lets other coroutines on the io_context run.
inline asio::awaitable<void> yield(int times = 1) {
  for (int i = 0; i < times; ++i) co_await asio::post(asio::use_awaitable);
}

// Inside a coroutine: waits `ms` milliseconds (for work that waits on sockets,
// which a yield alone does not reach).
inline asio::awaitable<void> sleep_ms(int ms) {
  asio::steady_timer timer(co_await asio::this_coro::executor, std::chrono::milliseconds(ms));
  co_await timer.async_wait(asio::use_awaitable);
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

// Cheap, recognisable frame contents: different seeds give different bytes.
inline Bytes pattern(size_t size, uint8_t seed) {
  Bytes bytes(size);
  for (size_t i = 0; i < size; ++i) bytes[i] = static_cast<uint8_t>(seed + i * 31 + (i >> 8));
  return bytes;
}

// Wall-clock milliseconds since the Unix epoch (message expiry is wall time).
inline uint64_t unix_now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// ------------------------------------------------- bodies every transport passes

// Parks a receive on `connection`, lets it start waiting, then runs
// `interrupt` (close or destroy the connection) and returns the error the
// receive ended with ("ok" if it wrongly succeeded).
template <typename Interrupt>
asio::awaitable<std::string> pending_receive_error(Connection& connection, Interrupt interrupt) {
  std::optional<std::string> error;
  asio::co_spawn(
      co_await asio::this_coro::executor,
      [&, conn = &connection]() -> asio::awaitable<void> {
        auto frame = co_await conn->receive();
        error = frame.ok() ? "ok" : frame.status().message();
      },
      rethrow);
  co_await sleep_ms(1);
  interrupt();
  while (!error) co_await sleep_ms(1);
  co_return *error;
}

// Sends frames of 0 B, 1 B, 64 KiB and 1 MiB from `client` and expects them
// at `server` intact and in order. Sender and receiver run concurrently: a
// 1 MiB frame exceeds socket buffers.
inline asio::awaitable<void> expect_round_trip_of_all_sizes(Connection& client,
                                                            Connection& server) {
  const std::vector<size_t> sizes = {0, 1, 64 * 1024, 1024 * 1024};
  asio::co_spawn(
      co_await asio::this_coro::executor,
      [&]() -> asio::awaitable<void> {
        for (size_t i = 0; i < sizes.size(); ++i) {
          Status sent = co_await client.send(pattern(sizes[i], static_cast<uint8_t>(i)));
          CO_ASSERT_TRUE(sent.ok());
        }
      },
      rethrow);
  for (size_t i = 0; i < sizes.size(); ++i) {
    auto frame = co_await server.receive();
    CO_ASSERT_OK(frame);
    EXPECT_EQ(frame.value(), pattern(sizes[i], static_cast<uint8_t>(i)));
  }
}

// Frame i of a stream tagged `tag`: `first_size + i * size_step` bytes.
struct FrameStream {
  int count;
  uint8_t tag;
  size_t first_size;
  size_t size_step;
  Bytes frame(int i) const {
    return pattern(first_size + static_cast<size_t>(i) * size_step, static_cast<uint8_t>(tag + i));
  }
};

inline asio::awaitable<void> send_frames(Connection& connection, FrameStream stream) {
  for (int i = 0; i < stream.count; ++i) {
    Status sent = co_await connection.send(stream.frame(i));
    CO_ASSERT_TRUE(sent.ok());
  }
}

// Receives `stream`, counting the frames that arrive intact in `seen`.
inline asio::awaitable<void> receive_frames(Connection& connection, FrameStream stream, int& seen) {
  for (int i = 0; i < stream.count; ++i) {
    auto frame = co_await connection.receive();
    CO_ASSERT_OK(frame);
    EXPECT_EQ(frame.value(), stream.frame(i));
    ++seen;
  }
}

// Starts both ends sending `count` frames to each other at once (tag 1 from
// `a`, tag 2 from `b`); `seen_by_a` / `seen_by_b` count what arrives intact.
template <typename Executor>
void spawn_two_way_exchange(const Executor& executor, Connection& a, Connection& b, int count,
                            size_t first_size, size_t size_step, int& seen_by_a, int& seen_by_b) {
  const FrameStream from_a{count, 1, first_size, size_step};
  const FrameStream from_b{count, 2, first_size, size_step};
  asio::co_spawn(executor, send_frames(a, from_a), rethrow);
  asio::co_spawn(executor, send_frames(b, from_b), rethrow);
  asio::co_spawn(executor, receive_frames(a, from_b, seen_by_a), rethrow);
  asio::co_spawn(executor, receive_frames(b, from_a, seen_by_b), rethrow);
}

// With max_connections = 1 (set in `transport`'s limits), a listener on
// `listen_address` echoes frames for one client, refuses (closes) a second one
// with a log line naming `refused_peer`, and serves again once the first leaves.
inline void expect_max_connections_refuses_extra_and_keeps_serving(
    asio::io_context& io, Transport& transport, const std::string& listen_address,
    const std::string& refused_peer) {
  ASSERT_EQ(transport.limits().max_connections, 1);
  auto listener = transport.listen(listen_address);
  ASSERT_TRUE(listener.ok()) << listener.status().message();
  int handlers_done = 0;
  // Server: accepts until closed, echoes every frame of each connection.
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        for (;;) {
          auto accepted = co_await listener.value()->accept();
          if (!accepted.ok()) co_return;
          asio::co_spawn(
              io,
              [&, connection = std::shared_ptr<Connection>(
                      std::move(accepted.value()))]() -> asio::awaitable<void> {
                for (;;) {
                  auto frame = co_await connection->receive();
                  if (!frame.ok()) break;
                  if (!(co_await connection->send(frame.value())).ok()) break;
                }
                connection->close();
                ++handlers_done;
              },
              rethrow);
        }
      },
      rethrow);
  LogCapture capture;
  run(io, [&]() -> asio::awaitable<void> {
    const std::string address = listener.value()->address();
    const Bytes one(1, 1);
    const Bytes two(1, 2);
    auto first = co_await transport.connect(address);
    CO_ASSERT_OK(first);
    CO_ASSERT_TRUE((co_await first.value()->send(one)).ok());
    CO_ASSERT_OK(co_await first.value()->receive());

    // Like TCP, where the kernel completes the handshake: the connect
    // succeeds and the listener closes the connection once it gets to it.
    auto extra = co_await transport.connect(address);
    CO_ASSERT_OK(extra);
    auto refused = co_await extra.value()->receive();
    CO_ASSERT_TRUE(!refused.ok());
    const std::string refused_error = refused.status().message();
    EXPECT_NE(refused_error.find("closed by peer"), std::string::npos) << refused_error;
    EXPECT_TRUE(capture.contains("refused connection from " + refused_peer));
    EXPECT_TRUE(capture.contains("1 connections alive (max 1)"));

    first.value()->close();
    while (handlers_done < 1) co_await sleep_ms(1);
    auto later = co_await transport.connect(address);
    CO_ASSERT_OK(later);
    CO_ASSERT_TRUE((co_await later.value()->send(two)).ok());
    auto echo = co_await later.value()->receive();
    CO_ASSERT_OK(echo);
    EXPECT_EQ(echo.value(), two);
    later.value()->close();
    listener.value()->close();
  });
}

// Closing a listener fails an accept that is already waiting.
inline void expect_closing_listener_fails_pending_accept(asio::io_context& io, Transport& transport,
                                                         const std::string& listen_address) {
  auto listener = transport.listen(listen_address);
  ASSERT_TRUE(listener.ok()) << listener.status().message();
  std::string error;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto accepted = co_await listener.value()->accept();
        error = accepted.ok() ? "ok" : accepted.status().message();
      },
      rethrow);
  run(io, [&]() -> asio::awaitable<void> {
    co_await sleep_ms(1);
    listener.value()->close();
  });
  EXPECT_NE(error.find("listener closed"), std::string::npos) << error;
}

}  // namespace tern::net::testing
