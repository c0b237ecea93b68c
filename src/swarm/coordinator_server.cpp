#include "swarm/coordinator_server.h"

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <utility>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/use_awaitable.hpp>

#include "core/log.h"
#include "swarm/event_codec.h"

namespace tern::swarm {
namespace {

uint64_t system_now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

bool phase_has_deadline(State state) {
  return state == State::kWarmup || state == State::kRoundTrain || state == State::kRoundWitness ||
         state == State::kCooldown;
}

// Rounds whose relayed update blobs are kept: members apply a round's
// updates one round late (overlap), and a member catching up may need the
// round before that.
constexpr uint64_t kRelayRounds = 4;

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

Result<std::unique_ptr<CoordinatorServer>> CoordinatorServer::open(
    asio::any_io_executor executor, net::Transport& transport, net::Identity identity,
    RunConfig config, const std::string& state_path, CoordinatorServerOptions options) {
  const CoordinatorConfig coordinator_config = to_coordinator_config(config);
  bool restored = false;
  std::optional<Ledger> ledger;
  std::optional<Coordinator> coordinator;
  if (file_exists(state_path)) {
    TERN_ASSIGN_OR_RETURN(Ledger opened, Ledger::open(state_path, identity));
    if (!configs_equal(opened.config(), coordinator_config)) {
      return Status::Error("coordinator: state " + state_path +
                           " belongs to a run with another coordinator config (run seed, "
                           "membership, timing, batch or allowlist differ from the --config)");
    }
    Result<Coordinator> replayed = opened.replay();
    if (!replayed.ok()) {
      return replayed.status().with_context("coordinator: replaying " + state_path);
    }
    ledger.emplace(std::move(opened));
    coordinator.emplace(std::move(replayed).value());
    restored = true;
  } else {
    TERN_ASSIGN_OR_RETURN(Ledger created, Ledger::create(state_path, identity, coordinator_config));
    TERN_ASSIGN_OR_RETURN(Coordinator fresh, Coordinator::create(coordinator_config));
    ledger.emplace(std::move(created));
    coordinator.emplace(std::move(fresh));
  }
  return std::unique_ptr<CoordinatorServer>(new CoordinatorServer(
      std::move(executor), transport, std::move(identity), std::move(config), std::move(*ledger),
      std::move(*coordinator), restored, std::move(options)));
}

CoordinatorServer::CoordinatorServer(asio::any_io_executor executor, net::Transport& transport,
                                     net::Identity identity, RunConfig config, Ledger ledger,
                                     Coordinator coordinator, bool restored,
                                     CoordinatorServerOptions options)
    : executor_(std::move(executor)),
      config_(std::move(config)),
      config_hash_(config_hash(config_)),
      ledger_(std::move(ledger)),
      coordinator_(std::move(coordinator)),
      restored_(restored),
      options_(std::move(options)) {
  if (!options_.now_ms) options_.now_ms = system_now_ms;
  net::NodeOptions node_options;
  node_options.run_id = config_.run.id;
  node_options.relay = true;
  node_options.allowed_peers = config_.allowlist;
  node_options.now_ms = options_.now_ms;
  node_options.max_peers = std::max<size_t>(64, size_t{config_.membership.max_members} * 2);
  node_options.blob_capacity_bytes = options_.relay_capacity_bytes;
  node_ = std::make_unique<net::Node>(executor_, transport, std::move(identity), node_options);
  node_->on_broadcast([this](const net::SignedMessage& message) { on_message(message); });
}

CoordinatorServer::~CoordinatorServer() = default;

Status CoordinatorServer::listen(const std::string& address) {
  return node_->listen(address);
}

uint64_t CoordinatorServer::now_ms() const {
  return std::max(options_.now_ms(), coordinator_.snapshot().now_ms);
}

void CoordinatorServer::on_message(const net::SignedMessage& message) {
  if (stopping_) return;
  const net::NodeId& from = message.sender;
  const auto kind = static_cast<SwarmKind>(message.kind);
  switch (kind) {
    case SwarmKind::kJoin: {
      Result<JoinMessage> join = decode_join(message.body);
      if (!join.ok()) {
        log(LogLevel::kWarn, "coordinator",
            "ignored join from " + from.short_string() + ": " + join.status().message());
        return;
      }
      addresses_[from] = join.value().address;
      const auto& members = coordinator_.members();
      const auto& pending = coordinator_.pending_joins();
      const bool known = std::binary_search(members.begin(), members.end(), from) ||
                         std::find(pending.begin(), pending.end(), from) != pending.end();
      if (known) {
        publish_status();  // an address refresh (e.g. after a coordinator restart)
      } else {
        submit(Join{now_ms(), from}, "join", from);
      }
      return;
    }
    case SwarmKind::kLeave: {
      if (Status s = decode_leave(message.body); !s.ok()) {
        log(LogLevel::kWarn, "coordinator",
            "ignored leave from " + from.short_string() + ": " + s.message());
        return;
      }
      submit(Leave{now_ms(), from}, "leave", from);
      return;
    }
    case SwarmKind::kTrained: {
      Result<TrainedMessage> trained = decode_trained(message.body);
      if (!trained.ok()) {
        log(LogLevel::kWarn, "coordinator",
            "ignored trained from " + from.short_string() + ": " + trained.status().message());
        return;
      }
      TrainDone event;
      event.now_ms = now_ms();
      event.member = from;
      event.round = trained.value().round;
      event.batches = trained.value().batches;
      event.update_hash = trained.value().update_blob;
      // Relay only what could be recorded: a Trained for another round, or
      // from a member not on this round's roster, is rejected right away.
      const RoundState* round = coordinator_.current_round();
      const bool relayable =
          coordinator_.state() == State::kRoundTrain && round != nullptr &&
          round->round == event.round &&
          std::find(round->roster.begin(), round->roster.end(), from) != round->roster.end();
      if (!relayable) {
        submit(event, "trained", from);
      } else if (!trained.value().inline_update.empty()) {
        // Small updates come inline: store (so members can still fetch it
        // from here), check the id, record.
        Result<net::BlobId> stored = node_->blobs().put(trained.value().inline_update);
        if (!stored.ok() || stored.value() != event.update_hash) {
          if (stored.ok()) node_->blobs().erase(stored.value());
          log(LogLevel::kWarn, "coordinator",
              "ignored trained from " + from.short_string() + ": " +
                  (stored.ok() ? std::string("its inline update does not hash to its blob id")
                               : stored.status().message()));
          return;
        }
        relayed_[event.round].push_back(event.update_hash);
        submit(event, "trained", from);
      } else if (relaying_.insert({from, event.round}).second) {
        asio::co_spawn(executor_, relay_trained(std::make_shared<TrainDone>(std::move(event))),
                       asio::detached);
      }
      return;
    }
    case SwarmKind::kAttest: {
      Result<AttestMessage> attest = decode_attest(message.body);
      if (!attest.ok()) {
        log(LogLevel::kWarn, "coordinator",
            "ignored attest from " + from.short_string() + ": " + attest.status().message());
        return;
      }
      Attest event;
      event.now_ms = now_ms();
      event.witness = from;
      event.round = attest.value().round;
      event.received = attest.value().received;
      event.weight_hash = attest.value().weight_hash;
      submit(event, "attest", from);
      return;
    }
    case SwarmKind::kWeights:
    case SwarmKind::kStatus:
      return;  // member-to-member (relayed by the node) / not accepted from members
  }
  log(LogLevel::kWarn, "coordinator",
      "ignored broadcast kind " + std::to_string(message.kind) + " from " + from.short_string());
}

void CoordinatorServer::submit(const Event& event, const char* what, const net::NodeId& from) {
  if (!fatal_.ok()) return;
  if (Status applied = coordinator_.apply(event); !applied.ok()) {
    log(LogLevel::kInfo, "coordinator",
        std::string("rejected ") + what + " from " + from.short_string() + ": " +
            applied.message());
    return;
  }
  if (Status appended = ledger_.append(event, coordinator_.snapshot()); !appended.ok()) {
    // The state machine is now ahead of the log: act on nothing, stop, and
    // let the operator restart from the file.
    fatal_ = appended.with_context("coordinator: writing the ledger");
    log(LogLevel::kError, "coordinator", fatal_.message());
    stop();
    return;
  }
  evict_relayed();
  publish_status();
}

asio::awaitable<void> CoordinatorServer::relay_trained(std::shared_ptr<TrainDone> trained) {
  // (Held by pointer: GCC 12 miscompiles coroutine parameters holding arrays.)
  TrainDone& event = *trained;
  std::vector<net::NodeId> holders{event.member};
  Result<net::FetchReport> fetched = co_await node_->fetch(event.update_hash, holders);
  relaying_.erase({event.member, event.round});
  if (stopping_) co_return;
  if (!fetched.ok()) {
    log(LogLevel::kWarn, "coordinator",
        "could not relay the update of " + event.member.short_string() + " for round " +
            std::to_string(event.round) + ": " + fetched.status().message());
    co_return;
  }
  relayed_[event.round].push_back(event.update_hash);
  event.now_ms = now_ms();
  submit(event, "trained", event.member);
}

void CoordinatorServer::evict_relayed() {
  const RoundState* round = coordinator_.current_round();
  if (round == nullptr) return;
  while (!relayed_.empty() && relayed_.begin()->first + kRelayRounds <= round->round) {
    for (const net::BlobId& blob : relayed_.begin()->second) node_->blobs().erase(blob);
    relayed_.erase(relayed_.begin());
  }
}

void CoordinatorServer::tick() {
  const Snapshot& s = coordinator_.snapshot();
  const uint64_t now = now_ms();
  if (phase_has_deadline(s.state) && now >= s.deadline_ms) {
    submit(Tick{now}, "tick", node_->id());
  } else if (now >= last_status_ms_ + options_.status_interval_ms) {
    publish_status();
  }
}

StatusMessage CoordinatorServer::status_message() const {
  const Snapshot& s = coordinator_.snapshot();
  StatusMessage m;
  m.config_hash = config_hash_;
  m.state = s.state;
  m.now_ms = s.now_ms;
  m.deadline_ms = s.deadline_ms;
  m.epoch = s.epoch;
  m.step = s.step;
  m.trained_batches = coordinator_.trained_batches();
  m.schedule_batches = coordinator_.config().schedule_batches();
  for (const net::NodeId& id : s.members) {
    auto it = addresses_.find(id);
    m.members.push_back({id, it == addresses_.end() ? std::string() : it->second});
  }
  m.pending_joins = s.pending_joins;
  if (const RoundState* round = coordinator_.current_round()) {
    m.in_round = true;
    m.round = round->round;
    m.round_in_epoch = round->round_in_epoch;
    m.roster = round->roster;
    m.batch_list = round->batch_list;
    for (const TrainerReport& t : round->trainers) m.trained.push_back(t.done ? 1 : 0);
    for (const WitnessReport& w : round->witnesses) m.attested.push_back(w.attested ? 1 : 0);
  }
  if (!coordinator_.round_results().empty()) m.last_result = coordinator_.round_results().back();
  return m;
}

void CoordinatorServer::publish_status() {
  const StatusMessage status = status_message();
  node_->publish(static_cast<uint16_t>(SwarmKind::kStatus), encode_status(status),
                 options_.message_lifetime_ms);
  last_status_ms_ = options_.now_ms();
  if (options_.on_status) options_.on_status(status);
}

asio::awaitable<Status> CoordinatorServer::run() {
  asio::steady_timer timer(executor_);
  uint64_t finished_at = 0;
  publish_status();
  while (!stopping_) {
    timer.expires_after(std::chrono::milliseconds(options_.tick_interval_ms));
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    if (stopping_) break;
    tick();
    if (coordinator_.state() == State::kFinished) {
      const uint64_t now = options_.now_ms();
      if (finished_at == 0) finished_at = now;
      if (now >= finished_at + options_.linger_ms) break;
    }
  }
  node_->close();
  co_return fatal_;
}

void CoordinatorServer::stop() {
  stopping_ = true;
  node_->close();
}

}  // namespace tern::swarm
