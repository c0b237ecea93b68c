// `tern coordinator` and `tern join`: the two processes of a swarm run
// (docs/swarm.md). The coordinator serves one run from its TOML config and
// its ledger file; members join it with their own key, reading local shards
// or the run's data provider.
#include <algorithm>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "net/faulty_transport.h"
#include "net/identity.h"
#include "net/tcp_transport.h"
#include "swarm/client.h"
#include "swarm/coordinator_server.h"
#include "swarm/run_config.h"

namespace tern::cli {
namespace swarm_cmd {
namespace {

void rethrow_if_set(std::exception_ptr error) {
  if (error) std::rethrow_exception(error);
}

// Wall time of each round, from the first Status that shows it to the one
// that carries its result: the run's step time (`tern bench swarm`).
class RoundClock {
 public:
  void observe(const swarm::StatusMessage& st) {
    const auto now = std::chrono::steady_clock::now();
    if (st.in_round && started_.count(st.round) == 0) started_[st.round] = now;
    if (st.last_result && resolved_.count(st.last_result->round) == 0) {
      resolved_.insert(st.last_result->round);
      auto it = started_.find(st.last_result->round);
      if (it != started_.end()) {
        total_s_ += std::chrono::duration<double>(now - it->second).count();
        ++timed_;
      }
    }
  }
  uint64_t rounds() const { return resolved_.size(); }
  double mean_s() const { return timed_ == 0 ? 0.0 : total_s_ / static_cast<double>(timed_); }

 private:
  std::map<uint64_t, std::chrono::steady_clock::time_point> started_;
  std::set<uint64_t> resolved_;
  double total_s_ = 0.0;
  uint64_t timed_ = 0;
};

struct CoordinatorFlags {
  std::string config, state, listen = "127.0.0.1:7400", key;
  uint64_t linger_ms = 3000;
};

int run_coordinator(const CoordinatorFlags& f) {
  Result<swarm::RunConfig> config = swarm::load_run_config(f.config);
  if (!config.ok()) return fail("coordinator", config.status());
  Result<net::Identity> identity = net::Identity::load(f.key);
  if (!identity.ok()) return fail("coordinator", identity.status());
  asio::io_context io;
  net::TcpTransport tcp(io.get_executor());
  swarm::CoordinatorServerOptions options;
  options.linger_ms = f.linger_ms;
  RoundClock clock;
  options.on_status = [&clock, last = std::string(),
                       last_round = ~uint64_t{0}](const swarm::StatusMessage& st) mutable {
    clock.observe(st);
    char line[256];
    std::snprintf(line, sizeof line,
                  "coordinator: %s epoch %" PRIu64 " round %" PRIu64 " step %" PRIu64
                  " members %zu pending %zu batches %" PRIu64 "/%" PRIu64,
                  swarm::state_name(st.state), st.epoch, st.in_round ? st.round : uint64_t{0},
                  st.step, st.members.size(), st.pending_joins.size(), st.trained_batches,
                  st.schedule_batches);
    if (line != last) {
      std::fprintf(stderr, "%s\n", line);
      last = line;
    }
    if (st.last_result && st.last_result->round != last_round) {
      last_round = st.last_result->round;
      const swarm::RoundResult& r = *st.last_result;
      std::string drops;
      for (const swarm::Drop& d : r.dropped) {
        drops += " " + d.member.short_string() + ":" +
                 (d.reason == swarm::DropReason::kNoTrainDone       ? "no-train-done"
                  : d.reason == swarm::DropReason::kNotSeenByQuorum ? "not-seen-by-quorum"
                                                                    : "witness-silent");
      }
      std::fprintf(stderr,
                   "coordinator: round %" PRIu64 " resolved%s: %zu updates accepted, %" PRIu64
                   " batches requeued, dropped:%s\n",
                   r.round, r.void_round ? " (void)" : "", r.accepted.size(),
                   swarm::total_batches(r.requeued), drops.empty() ? " none" : drops.c_str());
    }
  };
  Result<std::unique_ptr<swarm::CoordinatorServer>> server = swarm::CoordinatorServer::open(
      io.get_executor(), tcp, std::move(identity).value(), config.value(), f.state, options);
  if (!server.ok()) return fail("coordinator", server.status());
  if (Status s = server.value()->listen(f.listen); !s.ok()) return fail("coordinator", s);
  std::fprintf(stderr, "coordinator: run %s (%s), id %s, listening on %s%s\n",
               config.value().run.name.c_str(), swarm::run_id_hex(config.value().run.id).c_str(),
               server.value()->id().to_string().c_str(), server.value()->address().c_str(),
               server.value()->restored() ? ", restored from its ledger" : "");
  Status result;
  asio::co_spawn(
      io, [&]() -> asio::awaitable<void> { result = co_await server.value()->run(); },
      rethrow_if_set);
  io.run();
  if (!result.ok()) return fail("coordinator", result);
  std::printf("{\"state\":\"%s\",\"epoch\":%" PRIu64 ",\"step\":%" PRIu64
              ",\"trained_batches\":%" PRIu64 ",\"ledger_entries\":%" PRIu64 ",\"rounds\":%" PRIu64
              ",\"round_s_mean\":%.4f}\n",
              swarm::state_name(server.value()->coordinator().state()),
              server.value()->coordinator().epoch(), server.value()->coordinator().step(),
              server.value()->coordinator().trained_batches(),
              server.value()->coordinator().snapshot().event_count, clock.rounds(), clock.mean_s());
  return 0;
}

struct JoinFlags {
  std::string config, coordinator, coordinator_id, key, listen = "127.0.0.1:0", shards, model,
                                                        checkpoint, checkpoint_dir;
  uint64_t upload_cap = 0;
  uint64_t connect_timeout_ms = 30'000;
};

int run_join(const JoinFlags& f) {
  Result<swarm::RunConfig> config = swarm::load_run_config(f.config);
  if (!config.ok()) return fail("join", config.status());
  Result<net::Identity> identity = net::Identity::load(f.key);
  if (!identity.ok()) return fail("join", identity.status());
  swarm::ClientOptions options;
  options.coordinator_address = f.coordinator;
  if (!f.coordinator_id.empty()) {
    Result<net::NodeId> id = net::NodeId::parse(f.coordinator_id);
    if (!id.ok()) return fail("join", id.status().with_context("--coordinator-id"));
    options.coordinator_id = id.value();
  }
  options.listen = f.listen;
  options.shards = f.shards;
  options.model_path = f.model;
  options.checkpoint_path = f.checkpoint;
  if (!f.checkpoint_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(f.checkpoint_dir, ec);
    if (ec) {
      return fail("join", Status::Error("--checkpoint-dir " + f.checkpoint_dir +
                                        ": cannot create it: " + ec.message()));
    }
    options.checkpoint_dir = f.checkpoint_dir;
  }
  options.connect_timeout_ms = f.connect_timeout_ms;

  asio::io_context io;
  net::TcpTransport tcp(io.get_executor());
  // Every byte this member sends passes the fault layer: it meters the upload
  // and, with --upload-cap, limits it (per link).
  net::FaultPolicy policy;
  policy.bandwidth_bytes_per_second = f.upload_cap;
  // A real uplink buffers little: a burst of 50 ms of traffic, so even a
  // small update waits for the rate (the transport's 64 KiB default would
  // let it through at once).
  policy.bandwidth_burst_bytes = std::max<uint64_t>(1, f.upload_cap / 20);
  net::FaultyTransport transport(tcp, policy, 1);
  options.uploaded_bytes = [&transport] { return transport.counts().frame_bytes; };
  options.downloaded_bytes = [&transport] { return transport.counts().received_bytes; };
  const net::NodeId me = identity.value().id();
  Result<std::unique_ptr<swarm::SwarmClient>> client = swarm::SwarmClient::create(
      io.get_executor(), transport, std::move(identity).value(), config.value(), options);
  if (!client.ok()) return fail("join", client.status());
  client.value()->on_progress([](const swarm::ClientProgress& p) {
    std::fprintf(stderr,
                 "join: round %" PRIu64 " epoch %" PRIu64 " step %" PRIu64
                 " members %zu loss %.4f uploaded %" PRIu64 " B downloaded %" PRIu64 " B\n",
                 p.round, p.epoch, p.step, p.members, static_cast<double>(p.train_loss),
                 p.uploaded_bytes, p.downloaded_bytes);
  });
  std::fprintf(stderr, "join: member %s joining run %s at %s\n", me.to_string().c_str(),
               config.value().run.name.c_str(), f.coordinator.c_str());
  std::optional<Result<swarm::ClientReport>> report;
  // Ctrl-C / SIGTERM: leave the run gracefully instead of vanishing.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const asio::error_code& ec, int) {
    if (!ec) client.value()->leave();
  });
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        report = co_await client.value()->run();
        signals.cancel();
      },
      rethrow_if_set);
  io.run();
  if (!report || !report->ok()) {
    return fail("join", report ? report->status() : Status::Error("stopped early"));
  }
  const swarm::ClientReport& r = report->value();
  const double steps = static_cast<double>(r.steps_applied > 0 ? r.steps_applied : 1);
  std::printf("{\"member\":\"%s\",\"steps\":%" PRIu64 ",\"rounds_trained\":%" PRIu64
              ",\"batches_trained\":%" PRIu64 ",\"params\":%" PRId64
              ",\"initial_val_loss\":%.6f,\"final_val_loss\":%.6f,\"synced_from_peers\":%s"
              ",\"update_bytes\":%" PRIu64 ",\"uploaded_bytes\":%" PRIu64
              ",\"data_bytes_received\":%" PRIu64 ",\"downloaded_bytes\":%" PRIu64
              ",\"upload_bytes_per_param_step\":%.6g,\"train_s_mean\":%.4f,\"weight_hash\":\"%s\","
              "\"checkpoint\":\"%s\""
              ",\"checkpoint_weight_hash\":\"%s\",\"epoch_checkpoints\":%s}\n",
              me.to_string().c_str(), r.steps_applied, r.rounds_trained, r.batches_trained,
              r.params, static_cast<double>(r.initial_val_loss),
              static_cast<double>(r.final_val_loss), r.synced_from_peers ? "true" : "false",
              r.updates_sent_bytes, r.uploaded_bytes, r.data_bytes_received, r.downloaded_bytes,
              static_cast<double>(r.uploaded_bytes) / static_cast<double>(r.params) / steps,
              r.rounds_trained == 0 ? 0.0 : r.train_seconds / static_cast<double>(r.rounds_trained),
              to_hex(r.weight_hash).c_str(), r.checkpoint_path.c_str(),
              r.checkpoint_path.empty() ? "" : to_hex(r.checkpoint_weight_hash).c_str(),
              nlohmann::json(r.epoch_checkpoints).dump().c_str());
  return 0;
}

}  // namespace
}  // namespace swarm_cmd

Command add_coordinator_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand("coordinator", "Coordinate a swarm training run");
  auto f = std::make_shared<swarm_cmd::CoordinatorFlags>();
  app->add_option("--config", f->config, "Run config (TOML; docs/run-config.md)")->required();
  app->add_option("--state", f->state, "Ledger file (SQLite): created, or resumed after a crash")
      ->required();
  app->add_option("--key", f->key, "Coordinator key file (tern keygen)")->required();
  app->add_option("--listen", f->listen, "Address to listen on (host:port)")->capture_default_str();
  app->add_option("--linger-ms", f->linger_ms, "Keep serving this long after the run finishes")
      ->capture_default_str();
  return {app, [f]() { return swarm_cmd::run_coordinator(*f); }};
}

Command add_join_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand("join", "Join a swarm training run as a member");
  auto f = std::make_shared<swarm_cmd::JoinFlags>();
  app->add_option("--config", f->config, "The run's config (TOML), as the coordinator has it")
      ->required();
  app->add_option("--coordinator", f->coordinator, "Coordinator address (host:port)")->required();
  app->add_option("--key", f->key, "This member's key file (tern keygen)")->required();
  app->add_option("--coordinator-id", f->coordinator_id, "Pin the coordinator's node id");
  app->add_option("--listen", f->listen, "Where peers fetch this member's blobs")
      ->capture_default_str();
  app->add_option(
      "--shards", f->shards,
      "Local token shards (default: [data] shards, else the [data] provider over HTTP)");
  app->add_option("--model", f->model,
                  "Local copy of the run's base GGUF (default: [model] gguf); it must hash to "
                  "[model] gguf_hash");
  app->add_option("--checkpoint", f->checkpoint,
                  "Write the final weights here (GGUF; a LoRA run writes its adapter)");
  app->add_option("--checkpoint-dir", f->checkpoint_dir,
                  "Write DIR/epoch-<e>.gguf (as --checkpoint) at the end of each epoch this "
                  "member checkpoints");
  app->add_option("--upload-cap", f->upload_cap,
                  "Cap every link's upload at this many bytes/s, bursts of 50 ms (0: none)")
      ->capture_default_str();
  app->add_option("--connect-timeout-ms", f->connect_timeout_ms,
                  "Give up if the coordinator cannot be linked within this time")
      ->capture_default_str();
  return {app, [f]() { return swarm_cmd::run_join(*f); }};
}

}  // namespace tern::cli
