#include "cli/bench_net.h"

#include <chrono>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/rng.h"
#include "net/node.h"
#include "net/secure_channel.h"
#include "net/tcp_transport.h"

namespace tern::cli {
namespace bench_net_cmd {
namespace {

using Clock = std::chrono::steady_clock;
using net::Bytes;

struct Options {
  bool json = false;
  bool quick = false;
  int64_t link_mb = 512;
  int64_t blob_mb = 256;
  int64_t message_kb = 1024;
};

void rethrow_if_failed(std::exception_ptr error) {
  if (error) std::rethrow_exception(error);
}

Bytes pattern_bytes(size_t size, uint64_t seed) {
  Rng rng(seed);
  Bytes bytes(size);
  for (uint8_t& b : bytes) b = static_cast<uint8_t>(rng.next_u64());
  return bytes;
}

// Sends `count` messages of `message` and receives them on the other side;
// Stream is net::Connection or net::SecureChannel (same send/receive shape).
template <typename Stream>
asio::awaitable<Status> send_all(Stream& stream, const Bytes& message, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    Status sent = co_await stream.send(message);
    TERN_CO_RETURN_IF_ERROR(sent);
  }
  co_return Status::Ok();
}

template <typename Stream>
asio::awaitable<Status> receive_all(Stream& stream, size_t message_bytes, int64_t count) {
  for (int64_t i = 0; i < count; ++i) {
    Result<Bytes> got = co_await stream.receive();
    TERN_CO_RETURN_IF_ERROR(got.status());
    if (got.value().size() != message_bytes) {
      co_return Status::Error("bench net: received " + std::to_string(got.value().size()) +
                              " bytes, expected " + std::to_string(message_bytes));
    }
  }
  co_return Status::Ok();
}

// MB/s of `count` messages over one loopback link, plain or encrypted. The
// clock starts after the handshake and stops when the last byte arrived.
Result<double> link_throughput(bool secure, size_t message_bytes, int64_t count) {
  net::TransportLimits limits;
  limits.max_frame_bytes = message_bytes + 4096;
  asio::io_context server_io, client_io;
  net::TcpTransport server_tcp(server_io.get_executor(), limits);
  net::TcpTransport client_tcp(client_io.get_executor(), limits);
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<net::Listener> listener, server_tcp.listen("127.0.0.1:0"));
  const net::Identity server_identity = net::Identity::generate();
  const net::Identity client_identity = net::Identity::generate();
  const std::array<uint8_t, 16> context{};
  net::SecureChannelOptions channel_options;
  channel_options.max_message_bytes = message_bytes;

  Status server_status;
  Clock::time_point done;
  asio::co_spawn(
      server_io,
      [&]() -> asio::awaitable<void> {
        Result<std::unique_ptr<net::Connection>> connection = co_await listener->accept();
        if (!connection.ok()) {
          server_status = connection.status();
          co_return;
        }
        if (secure) {
          Result<std::unique_ptr<net::SecureChannel>> channel = co_await net::SecureChannel::accept(
              std::move(connection).value(), server_identity, context, channel_options);
          if (!channel.ok()) {
            server_status = channel.status();
            co_return;
          }
          server_status = co_await receive_all(*channel.value(), message_bytes, count);
        } else {
          server_status = co_await receive_all(*connection.value(), message_bytes, count);
        }
        done = Clock::now();
      },
      rethrow_if_failed);
  std::thread server([&] { server_io.run(); });

  const Bytes message = pattern_bytes(message_bytes, 1);
  Status client_status;
  Clock::time_point start;
  asio::co_spawn(
      client_io,
      [&]() -> asio::awaitable<void> {
        Result<std::unique_ptr<net::Connection>> connection =
            co_await client_tcp.connect(listener->address());
        if (!connection.ok()) {
          client_status = connection.status();
          co_return;
        }
        if (secure) {
          Result<std::unique_ptr<net::SecureChannel>> channel =
              co_await net::SecureChannel::dial(std::move(connection).value(), client_identity,
                                                server_identity.id(), context, channel_options);
          if (!channel.ok()) {
            client_status = channel.status();
            co_return;
          }
          start = Clock::now();
          client_status = co_await send_all(*channel.value(), message, count);
        } else {
          start = Clock::now();
          client_status = co_await send_all(*connection.value(), message, count);
        }
      },
      rethrow_if_failed);
  client_io.run();
  if (!client_status.ok()) asio::post(server_io, [&] { listener->close(); });
  server.join();
  TERN_RETURN_IF_ERROR(client_status);
  TERN_RETURN_IF_ERROR(server_status);
  const double seconds = std::chrono::duration<double>(done - start).count();
  return static_cast<double>(message_bytes) * static_cast<double>(count) / 1e6 / seconds;
}

// MB/s of one node fetching a blob from another (manifest, chunk requests,
// encryption, hash verification and storage included).
Result<double> blob_throughput(size_t blob_bytes) {
  asio::io_context holder_io, fetcher_io;
  net::TcpTransport holder_tcp(holder_io.get_executor());
  net::TcpTransport fetcher_tcp(fetcher_io.get_executor());
  net::NodeOptions options;
  net::Node holder(holder_io.get_executor(), holder_tcp, net::Identity::generate(), options);
  net::Node fetcher(fetcher_io.get_executor(), fetcher_tcp, net::Identity::generate(), options);
  TERN_RETURN_IF_ERROR(holder.listen("127.0.0.1:0"));
  TERN_ASSIGN_OR_RETURN(net::BlobId id, holder.blobs().put(pattern_bytes(blob_bytes, 2)));
  std::thread holder_thread([&] { holder_io.run(); });

  Status status;
  double seconds = 0.0;
  asio::co_spawn(
      fetcher_io,
      [&]() -> asio::awaitable<void> {
        Result<net::NodeId> linked = co_await fetcher.connect(holder.address(), holder.id());
        if (!linked.ok()) {
          status = linked.status();
        } else {
          std::vector<net::NodeId> holders;
          holders.push_back(holder.id());
          const Clock::time_point start = Clock::now();
          Result<net::FetchReport> report = co_await fetcher.fetch(id, std::move(holders));
          seconds = std::chrono::duration<double>(Clock::now() - start).count();
          status = report.status();
        }
        fetcher.close();
      },
      rethrow_if_failed);
  fetcher_io.run();
  asio::post(holder_io, [&] { holder.close(); });
  holder_thread.join();
  TERN_RETURN_IF_ERROR(status);
  if (!fetcher.blobs().has(id)) return Status::Error("bench net: fetched blob incomplete");
  return static_cast<double>(blob_bytes) / 1e6 / seconds;
}

int run_bench(Options o) {
  if (o.quick) {
    o.link_mb = 16;
    o.blob_mb = 16;
  }
  // Fault logs would interleave with the JSON; the benchmark reports failures itself.
  set_log_level(LogLevel::kError);
  const size_t message_bytes = static_cast<size_t>(o.message_kb) << 10;
  const int64_t count =
      std::max<int64_t>(1, (o.link_mb << 20) / static_cast<int64_t>(message_bytes));
  Result<double> tcp = link_throughput(false, message_bytes, count);
  if (!tcp.ok()) return fail("bench net", tcp.status());
  Result<double> link = link_throughput(true, message_bytes, count);
  if (!link.ok()) return fail("bench net", link.status());
  Result<double> blob = blob_throughput(static_cast<size_t>(o.blob_mb) << 20);
  if (!blob.ok()) return fail("bench net", blob.status());

  nlohmann::json out = {{"bench", "net"},
                        {"link_mb", o.link_mb},
                        {"message_kb", o.message_kb},
                        {"blob_mb", o.blob_mb},
                        {"tcp_mb_per_s", tcp.value()},
                        {"link_mb_per_s", link.value()},
                        {"blob_mb_per_s", blob.value()},
                        {"link_vs_tcp", link.value() / tcp.value()}};
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("tern bench net: loopback, sender and receiver on two threads\n");
    std::printf("  plain TCP frames      %9.1f MB/s\n", tcp.value());
    std::printf("  Noise secure channel  %9.1f MB/s (%.2fx of plain)\n", link.value(),
                link.value() / tcp.value());
    std::printf("  blob fetch, verified  %9.1f MB/s\n", blob.value());
  }
  return 0;
}

}  // namespace
}  // namespace bench_net_cmd

Command add_bench_net_command(CLI::App& bench) {
  CLI::App* app = bench.add_subcommand(
      "net",
      "Loopback throughput: plain TCP frames, a Noise secure channel, and a verified blob fetch");
  auto o = std::make_shared<bench_net_cmd::Options>();
  app->add_flag("--json", o->json, "Print one JSON object");
  app->add_flag("--quick", o->quick, "16 MB per measurement: a smoke test");
  app->add_option("--link-mb", o->link_mb, "MiB sent over each link (default 512)")
      ->check(CLI::Range(1, 1 << 16));
  app->add_option("--blob-mb", o->blob_mb, "Size of the fetched blob in MiB (default 256)")
      ->check(CLI::Range(1, 1 << 14));
  app->add_option("--message-kb", o->message_kb, "Message size in KiB (default 1024)")
      ->check(CLI::Range(1, 16 << 10));
  return {app, [o]() -> int { return bench_net_cmd::run_bench(*o); }};
}

}  // namespace tern::cli
