#include "swarm/client.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include "core/log.h"
#include "core/rng.h"
#include "data/shards.h"
#include "format/gguf.h"
#include "model/bitnet.h"
#include "model/model_file.h"
#include "model/weight_source.h"
#include "net/node.h"
#include "optim/adamw.h"
#include "optim/demo.h"
#include "optim/demo_codec.h"
#include "swarm/assignment.h"
#include "swarm/data_provider.h"
#include "swarm/remote_batches.h"

namespace tern::swarm {
namespace {

constexpr uint64_t kRepublishMs = 2'000;     // Join / Trained / Attest / Weights repeats
constexpr uint64_t kLingerMs = 2'000;        // keep serving blobs after the run ends
constexpr uint64_t kReconnectMs = 300'000;   // to a coordinator that went away
constexpr int kFetchAttempts = 4;            // per blob, each on freshly checked links
constexpr int kCoordinatorOnlyAttempts = 2;  // before the trainer and witnesses are asked too

uint64_t system_now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

Blake2bDigest hash_params(const FlatBuffer& params) {
  Blake2bHasher h;
  h.update(std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(params.data()),
                                    static_cast<size_t>(params.size()) * sizeof(float)));
  return h.finish();
}

std::span<const uint8_t> param_bytes(const FlatBuffer& params) {
  return {reinterpret_cast<const uint8_t*>(params.data()),
          static_cast<size_t>(params.size()) * sizeof(float)};
}

bool contains(const std::vector<net::NodeId>& ids, const net::NodeId& id) {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

struct RoundInfo {
  StatusMessage status;  // the first Status seen for the round
  RoundPlan plan;
  net::SignedMessage signed_status;  // as the coordinator signed it (data provider grants)
};

// Where a member's batches come from: local shards, or a data provider.
struct TrainingData {
  std::optional<ShardSet> local;
  std::unique_ptr<RemoteBatches> remote;
  const TokenDataset& dataset() const { return local ? local->dataset() : remote->dataset(); }
};

struct FetchedUpdate {
  bool done = false;
  Status status;
  std::shared_ptr<const DemoUpdate> update;
};

struct TrainOutput {
  Status error;  // not OK: the batches could not be read and nothing else is set
  float loss = 0.0f;
  std::vector<uint8_t> payload;
  double seconds = 0.0;  // wall time of the computation
};

// The next round's update, computed ahead while this round's updates upload
// and the witnesses attest (overlap mode): the next plan is predicted from
// this one (same members, the next batches of the schedule), and the work is
// used only if the real plan, step, look-ahead and weights match what it was
// computed with; otherwise the momentum is restored and the round trained
// afresh. The same function computes both, so a used speculation gives the
// bits training at the round's start would have.
struct Speculation {
  uint64_t round = 0;
  std::vector<BatchRange> mine;
  uint64_t step = 0;
  double lookahead_lr = 0.0;
  uint64_t steps_applied = 0;          // the weights it started from
  net::SignedMessage grant_status;     // authorises its batches at a data provider
  std::vector<float> momentum_before;  // restored when the work is discarded
  bool done = false;
  TrainOutput out;
};

// The weights a run starts from: the operator's GGUF (any member's copy,
// checked against [model] gguf_hash) or the preset initialized from the run
// seed.
struct RunBase {
  ModelConfig config;
  std::unique_ptr<WeightSource> source;
  // The GGUF's tokenizer keys, carried into full-model checkpoints so they
  // load like the base does.
  std::vector<std::pair<std::string, gguf::Value>> tokenizer_metadata;
};

Result<RunBase> open_run_base(const RunConfig& config, const std::string& model_path) {
  RunBase base;
  if (config.model.gguf.empty()) {
    if (!model_path.empty()) {
      return Status::Error("model file " + model_path +
                           " given, but the run trains [model] preset " + config.model.preset +
                           ", which has no file");
    }
    TERN_ASSIGN_OR_RETURN(base.config, to_model_config(config));
    base.source = std::make_unique<RandomInitSource>(config.run.seed);
    return base;
  }
  const std::string path = model_path.empty() ? config.model.gguf : model_path;
  Result<std::unique_ptr<GgufModelSource>> file = GgufModelSource::open(path);
  if (!file.ok()) return file.status().with_context("opening the run's [model] gguf");
  Blake2bHasher hasher;
  hasher.update(file.value()->file().bytes());
  const Blake2bDigest digest = hasher.finish();
  if (!config.model.gguf_hash) {
    log(LogLevel::kWarn, "swarm", "[model] gguf_hash is not set, so nothing checks that ", path,
        " holds the same weights as the other members' files; its BLAKE2b-256 is ", to_hex(digest));
  } else if (digest != *config.model.gguf_hash) {
    return Status::Error("model file " + path + " has BLAKE2b-256 " + to_hex(digest) +
                         ", but the run's [model] gguf_hash is " + to_hex(*config.model.gguf_hash) +
                         ": every member must start from the operator's file");
  }
  base.config = file.value()->config();
  base.tokenizer_metadata = tokenizer_metadata(file.value()->file());
  base.source = std::move(file).value();
  return base;
}

}  // namespace

class SwarmClient::Impl {
 public:
  Impl(asio::any_io_executor executor, net::Transport& transport, net::Identity identity,
       RunConfig config, ClientOptions options, BitNetModel model, DemoPlan plan, TrainingData data,
       std::vector<std::pair<std::string, gguf::Value>> tokenizer_metadata)
      : executor_(std::move(executor)),
        config_(std::move(config)),
        config_hash_(swarm::config_hash(config_)),
        options_(std::move(options)),
        model_(std::move(model)),
        tokenizer_metadata_(std::move(tokenizer_metadata)),
        plan_(std::move(plan)),
        demo_(plan_),
        data_(std::move(data)),
        schedule_(to_lr_schedule(config_)),
        canonical_(model_.layout().buffer_size()),
        worker_(options_.compute ? options_.compute : std::make_shared<asio::thread_pool>(1)) {
    if (!options_.now_ms) options_.now_ms = system_now_ms;
    std::memcpy(canonical_.data(), model_.params().data(),
                static_cast<size_t>(canonical_.size()) * sizeof(float));
    net::NodeOptions node_options;
    node_options.run_id = config_.run.id;
    node_options.now_ms = options_.now_ms;
    node_options.request_timeout = net::Millis(5'000);
    node_ = std::make_unique<net::Node>(executor_, transport, std::move(identity), node_options);
    node_->on_broadcast([this](const net::SignedMessage& m) { on_message(m); });
  }

  const net::NodeId& id() const { return node_->id(); }
  void set_progress(std::function<void(const ClientProgress&)> f) { progress_ = std::move(f); }
  void request_leave() { leave_requested_ = true; }

  asio::awaitable<Result<ClientReport>> run();

 private:
  asio::awaitable<Result<ClientReport>> run_until_done();
  // The link to the coordinator, retried for connect_timeout_ms.
  asio::awaitable<Status> link_to_coordinator();
  enum class Link { kUp, kDown, kRunOver };
  // Links to the coordinator again if the link was lost (restart); kRunOver
  // when the run finished and the coordinator left.
  asio::awaitable<Result<Link>> relink_if_lost();
  // One pass over the latest Status: joins, loads weights from peers when
  // behind, takes part in the round, announces weights and checkpoints between
  // rounds, reports progress. True once the run finished and this member lingered.
  asio::awaitable<Result<bool>> follow_status();
  // Applies resolved rounds, trains (or uses the speculation), re-sends
  // reports the coordinator lacks and attests when elected.
  asio::awaitable<Status> take_part(const StatusMessage& st, uint64_t now);
  // Final validation, hashes and checkpoint.
  asio::awaitable<Result<ClientReport>> final_report();
  uint64_t now_ms() const { return options_.now_ms(); }
  void on_message(const net::SignedMessage& m);
  void on_status(const StatusMessage& st, const net::SignedMessage& signed_status);
  void on_trained(const net::NodeId& from, const TrainedMessage& m);
  void publish(SwarmKind kind, std::vector<uint8_t> body) {
    node_->publish(static_cast<uint16_t>(kind), std::move(body), options_.message_lifetime_ms);
  }
  std::string address_of(const net::NodeId& member) const;
  asio::awaitable<Status> ensure_link(const net::NodeId& peer);
  // Starts fetching `member`'s update of `round` once both its Trained and a
  // Status showing it recorded (so relayed by the coordinator) have arrived.
  void maybe_prefetch(uint64_t round, const net::NodeId& member);
  // Fetches and decodes one update blob (once): from the coordinator, which
  // relays every recorded update, then also from `fallback` (the trainer and
  // witnesses) should the coordinator not have it (e.g. after a restart).
  asio::awaitable<void> fetch_update(net::BlobId blob, std::vector<net::NodeId> fallback);
  asio::awaitable<Status> apply_result(const RoundResult& result);
  asio::awaitable<Status> train(const StatusMessage& st, const RoundPlan& plan,
                                std::optional<double> lookahead_lr);
  // The gradient of `mine` at the look-ahead (or canonical) weights, encoded
  // as a DeMo update (advances the momentum). Runs on the worker. With a data
  // provider, first fetches the batches under `grant_status`; an error then
  // leaves the momentum untouched.
  TrainOutput compute_update(const std::vector<BatchRange>& mine, uint64_t step, double lr,
                             std::optional<double> lookahead_lr,
                             const net::SignedMessage& grant_status);
  // Stores the update as a blob and announces it for `round`.
  Status announce_update(uint64_t round, const std::vector<BatchRange>& mine, TrainOutput out);
  // Starts computing round st.round + 1 ahead when its plan can be predicted.
  void maybe_speculate(const StatusMessage& st);
  asio::awaitable<void> run_speculation();
  // Waits for a running speculation; if `keep` is false, drops it and
  // restores the momentum it advanced.
  asio::awaitable<void> settle_speculation(bool keep);
  asio::awaitable<Status> attest(const StatusMessage& st, const RoundPlan& plan);
  asio::awaitable<Status> try_sync(const StatusMessage& st);
  void announce_weights();
  // At an epoch's end, writes its checkpoint if this member is the epoch's
  // checkpointer and has a checkpoint directory.
  asio::awaitable<Status> maybe_checkpoint_epoch(const StatusMessage& st);
  // Writes the agreed weights: the full model as a GGUF with latent fp32
  // weights, or a LoRA run's adapter (llama.cpp's --lora format, fp32 A/B).
  asio::awaitable<Status> write_checkpoint(const std::string& path);
  // The weight hash of a checkpoint read back from its file as a user loads
  // it: a full model from the GGUF, or the adapter onto the run's base.
  // Overwrites model_.params() (scratch). Runs on the worker.
  Result<Blake2bDigest> read_back_checkpoint(const std::string& path);
  void report_progress(const StatusMessage& st);
  template <typename F>
  asio::awaitable<decltype(std::declval<F>()())> on_worker(F f);
  float validation_loss();
  uint64_t downloaded_bytes() const {
    return (options_.downloaded_bytes ? options_.downloaded_bytes() : 0) +
           (data_.remote ? data_.remote->bytes_received() : 0);
  }
  double lr_for_step(uint64_t step) const {
    const int64_t total = schedule_.total_steps;
    return schedule_.lr_at(std::min<int64_t>(static_cast<int64_t>(step), total - 1));
  }

  asio::any_io_executor executor_;
  RunConfig config_;
  Blake2bDigest config_hash_;
  ClientOptions options_;
  BitNetModel model_;  // trainable params: every weight, or the LoRA adapters only
  std::vector<std::pair<std::string, gguf::Value>> tokenizer_metadata_;  // of a GGUF base
  DemoPlan plan_;
  DemoOptimizer demo_;
  TrainingData data_;
  LrSchedule schedule_;
  FlatBuffer canonical_;  // the agreed weights; model_.params() is scratch
  std::shared_ptr<asio::thread_pool> worker_;
  std::unique_ptr<net::Node> node_;
  std::function<void(const ClientProgress&)> progress_;

  std::optional<net::NodeId> coordinator_;
  std::optional<StatusMessage> status_;
  std::map<net::NodeId, std::string> addresses_;  // peers' blob addresses
  std::map<uint64_t, RoundInfo> rounds_;
  std::map<uint64_t, std::map<net::NodeId, TrainedMessage>> announced_;
  std::map<net::BlobId, FetchedUpdate> fetched_;
  std::map<uint64_t, RoundResult> results_;  // resolved, not yet applied
  std::map<uint64_t, std::map<net::NodeId, net::BlobId>> weights_offers_;  // by step
  uint64_t next_round_ = 0;  // the next round whose result this member applies
  uint64_t steps_applied_ = 0;
  bool need_sync_ = false;
  bool first_status_ = true;
  bool leave_requested_ = false;
  std::set<uint64_t> trained_;
  std::map<uint64_t, TrainedMessage> my_trained_;
  std::map<uint64_t, AttestMessage> my_attest_;
  uint64_t last_status_ms_ = 0;  // when the last Status arrived (or the run started)
  uint64_t last_join_ms_ = 0, last_trained_ms_ = 0, last_attest_ms_ = 0, last_weights_ms_ = 0;
  std::optional<std::pair<uint64_t, net::BlobId>> my_weights_;  // step, blob
  std::optional<Speculation> speculation_;
  JoinMessage join_;  // what this member announces (its blob address)
  uint64_t last_progress_round_ = std::numeric_limits<uint64_t>::max();
  uint64_t finished_at_ms_ = 0;              // when the Finished state was first seen
  std::set<uint64_t> epochs_checkpointed_;   // epochs whose checkpointer question is settled
  std::map<uint64_t, float> loss_by_round_;  // this member's training loss, by round
  ClientReport report_;
  Status fatal_;
};

template <typename F>
asio::awaitable<decltype(std::declval<F>()())> SwarmClient::Impl::on_worker(F f) {
  // Runs f on the worker thread; this coroutine resumes on the node's executor.
  auto task = [f = std::move(f)]() mutable -> asio::awaitable<decltype(f())> { co_return f(); };
  co_return co_await asio::co_spawn(worker_->get_executor(), task(), asio::use_awaitable);
}

std::string SwarmClient::Impl::address_of(const net::NodeId& member) const {
  auto it = addresses_.find(member);
  return it == addresses_.end() ? std::string() : it->second;
}

void SwarmClient::Impl::on_message(const net::SignedMessage& m) {
  const auto kind = static_cast<SwarmKind>(m.kind);
  if (kind == SwarmKind::kStatus) {
    if (!coordinator_ || m.sender != *coordinator_) {
      log(LogLevel::kWarn, "swarm", "ignored status from non-coordinator ",
          m.sender.short_string());
      return;
    }
    Result<StatusMessage> st = decode_status(m.body);
    if (!st.ok()) {
      log(LogLevel::kWarn, "swarm", "ignored status: ", st.status().message());
      return;
    }
    on_status(st.value(), m);
  } else if (kind == SwarmKind::kTrained) {
    Result<TrainedMessage> t = decode_trained(m.body);
    if (!t.ok()) {
      log(LogLevel::kWarn, "swarm", "ignored trained from ", m.sender.short_string(), ": ",
          t.status().message());
      return;
    }
    on_trained(m.sender, t.value());
  } else if (kind == SwarmKind::kWeights) {
    Result<WeightsMessage> w = decode_weights(m.body);
    if (!w.ok()) return;
    weights_offers_[w.value().step][m.sender] = w.value().weights_blob;
  }
}

void SwarmClient::Impl::on_status(const StatusMessage& st,
                                  const net::SignedMessage& signed_status) {
  if (st.config_hash != config_hash_) {
    fatal_ = Status::Error(
        "the coordinator runs another config (its config hash differs from --config's)");
    return;
  }
  if (first_status_) {
    first_status_ = false;
    // Joining a run in progress: the weights come from the peers.
    if (st.step > 0 || st.last_result) need_sync_ = true;
  }
  if (st.in_round && rounds_.count(st.round) == 0) {
    Result<RoundPlan> plan =
        plan_from_status(st, config_.run.seed, config_.membership.witnesses_per_round);
    if (!plan.ok()) {
      log(LogLevel::kWarn, "swarm", "ignored status: ", plan.status().message());
      return;
    }
    rounds_[st.round] = RoundInfo{st, std::move(plan).value(), signed_status};
  }
  if (st.last_result && st.last_result->round >= next_round_ &&
      results_.count(st.last_result->round) == 0) {
    results_[st.last_result->round] = *st.last_result;
  }
  // Remembered across Status messages: a restarted coordinator lists members
  // without addresses until they announce again, but peers have not moved.
  for (const MemberInfo& m : st.members) {
    if (!m.address.empty()) addresses_[m.id] = m.address;
  }
  status_ = st;
  last_status_ms_ = now_ms();
  if (st.in_round) {
    for (size_t slot = 0; slot < st.roster.size() && slot < st.trained.size(); ++slot) {
      if (st.trained[slot]) maybe_prefetch(st.round, st.roster[slot]);
    }
  }
}

void SwarmClient::Impl::on_trained(const net::NodeId& from, const TrainedMessage& m) {
  auto round = rounds_.find(m.round);
  if (round == rounds_.end()) {
    log(LogLevel::kInfo, "swarm", "ignored trained from ", from.short_string(), " for round ",
        m.round, ": round unknown here");
    return;
  }
  const RoundPlan& plan = round->second.plan;
  auto it = std::find_if(plan.assignment.begin(), plan.assignment.end(),
                         [&](const MemberAssignment& a) { return a.member == from; });
  if (it == plan.assignment.end() || it->batches.empty() || it->batches != m.batches) {
    log(LogLevel::kWarn, "swarm", "ignored trained from ", from.short_string(), " for round ",
        m.round, ": those batches were not assigned to it");
    return;
  }
  TrainedMessage& kept = announced_[m.round][from];
  kept = m;
  kept.inline_update.clear();  // kept below as a decoded update, not twice
  if (!m.inline_update.empty() && from != id() && fetched_.count(m.update_blob) == 0) {
    // A small update came inline: it counts once its bytes hash to the
    // announced blob id (kept in the store, so this member can serve it too).
    Result<net::BlobId> stored = node_->blobs().put(m.inline_update);
    if (stored.ok() && stored.value() == m.update_blob) {
      Result<DemoUpdate> update = decode_demo_update(plan_, m.inline_update);
      FetchedUpdate done;
      done.done = true;
      if (update.ok()) {
        done.update = std::make_shared<const DemoUpdate>(std::move(update).value());
      } else {
        done.status = update.status();
        log(LogLevel::kWarn, "swarm", "inline update from ", from.short_string(),
            " does not decode: ", update.status().message());
      }
      fetched_[m.update_blob] = std::move(done);
      return;
    }
    if (stored.ok()) node_->blobs().erase(stored.value());
    log(LogLevel::kWarn, "swarm", "inline update from ", from.short_string(), " for round ",
        m.round, " does not hash to its blob id; fetching the blob instead");
  }
  maybe_prefetch(m.round, from);
}

void SwarmClient::Impl::maybe_prefetch(uint64_t round, const net::NodeId& member) {
  if (member == id() || !status_ || !status_->in_round || status_->round != round) return;
  auto announced = announced_.find(round);
  if (announced == announced_.end()) return;
  auto trained = announced->second.find(member);
  if (trained == announced->second.end()) return;
  const net::BlobId blob = trained->second.update_blob;
  if (fetched_.count(blob) != 0) return;
  for (size_t slot = 0; slot < status_->roster.size() && slot < status_->trained.size(); ++slot) {
    if (status_->roster[slot] != member || !status_->trained[slot]) continue;
    fetched_[blob] = FetchedUpdate{};
    std::vector<net::NodeId> fallback{member};
    asio::co_spawn(executor_, fetch_update(blob, std::move(fallback)), asio::detached);
    return;
  }
}

asio::awaitable<Status> SwarmClient::Impl::ensure_link(const net::NodeId& peer) {
  if (node_->connected(peer)) co_return Status::Ok();
  const std::string address = address_of(peer);
  if (address.empty()) {
    co_return Status::Error("no address known for " + peer.short_string());
  }
  Result<net::NodeId> linked = co_await node_->connect(address, peer);
  // The peer may have dialed us meanwhile; its link serves as well.
  if (!linked.ok() && node_->connected(peer)) co_return Status::Ok();
  co_return linked.status();
}

asio::awaitable<void> SwarmClient::Impl::fetch_update(net::BlobId blob,
                                                      std::vector<net::NodeId> fallback) {
  Status last = Status::Error("no holder reachable");
  // A link can drop under a fetch (e.g. the two ends dialed each other at
  // once and one link gave way), so a failed fetch is retried on fresh links.
  // The first attempts ask the coordinator alone: each member's upload then
  // stays one copy of its update, whatever the number of peers.
  for (int attempt = 0; attempt < kFetchAttempts; ++attempt) {
    if (attempt > 0) {
      asio::steady_timer pause(executor_, std::chrono::milliseconds(100 * attempt));
      co_await pause.async_wait(asio::use_awaitable);
    }
    std::vector<net::NodeId> holders{*coordinator_};
    if (attempt >= kCoordinatorOnlyAttempts) {
      for (const net::NodeId& h : fallback) {
        if (h != *coordinator_ && h != id()) holders.push_back(h);
      }
    }
    std::vector<net::NodeId> linked;
    for (const net::NodeId& holder : holders) {
      Status s = co_await ensure_link(holder);
      if (s.ok()) {
        linked.push_back(holder);
      } else {
        last = s;
      }
    }
    if (linked.empty()) continue;
    Result<net::FetchReport> report = co_await node_->fetch(blob, linked);
    last = report.status();
    if (last.ok()) break;
  }
  FetchedUpdate done;
  done.done = true;
  if (last.ok()) {
    Result<std::shared_ptr<const net::Bytes>> bytes = node_->blobs().get(blob);
    if (bytes.ok()) {
      Result<DemoUpdate> update = decode_demo_update(plan_, *bytes.value());
      if (update.ok()) {
        done.update = std::make_shared<const DemoUpdate>(std::move(update).value());
      } else {
        last = update.status();
      }
    } else {
      last = bytes.status();
    }
  }
  done.status = last;
  if (!last.ok()) log(LogLevel::kWarn, "swarm", "update fetch failed: ", last.message());
  fetched_[blob] = std::move(done);
}

float SwarmClient::Impl::validation_loss() {
  const int64_t spb = config_.batch.sequences_per_batch;
  const int64_t seq = config_.data.seq_len;
  std::vector<int32_t> tokens(static_cast<size_t>(spb * seq)), labels(tokens.size());
  std::memcpy(model_.params().data(), canonical_.data(),
              static_cast<size_t>(canonical_.size()) * sizeof(float));
  double sum = 0.0;
  for (int64_t i = 0; i < options_.eval_batches; ++i) {
    data_.dataset().val_batch(i, options_.eval_batches, spb, seq, tokens, labels);
    sum += model_.forward(tokens, labels, spb, seq);
  }
  return static_cast<float>(sum / static_cast<double>(options_.eval_batches));
}

asio::awaitable<Status> SwarmClient::Impl::apply_result(const RoundResult& result) {
  std::vector<std::shared_ptr<const DemoUpdate>> updates;
  auto round = rounds_.find(result.round);
  for (const AcceptedUpdate& a : result.accepted) {
    const net::BlobId blob = a.update_hash;
    const uint64_t wait_until = now_ms() + 30'000;
    for (int attempt = 0; attempt < 3; ++attempt) {
      auto it = fetched_.find(blob);
      if (it != fetched_.end() && it->second.done && it->second.update) break;
      if (it != fetched_.end() && !it->second.done && now_ms() < wait_until) {
        // A prefetch is running: wait for it (bounded; then fetch again).
        asio::steady_timer t(executor_, std::chrono::milliseconds(10));
        co_await t.async_wait(asio::use_awaitable);
        --attempt;
        continue;
      }
      std::vector<net::NodeId> fallback{a.member};
      if (round != rounds_.end()) {
        for (const net::NodeId& w : round->second.plan.witnesses) {
          if (w != a.member) fallback.push_back(w);
        }
      }
      fetched_[blob] = FetchedUpdate{};
      co_await fetch_update(blob, fallback);
    }
    auto it = fetched_.find(blob);
    if (it == fetched_.end() || !it->second.update) {
      co_return Status::Error("round " + std::to_string(result.round) + ": accepted update of " +
                              a.member.short_string() + " could not be fetched: " +
                              (it == fetched_.end() ? "" : it->second.status.message()));
    }
    updates.push_back(it->second.update);
  }
  if (!updates.empty()) {
    const double lr = lr_for_step(result.step_after - 1);
    co_await on_worker([this, &updates, lr]() {
      std::vector<const DemoUpdate*> ordered;
      for (const auto& u : updates) ordered.push_back(u.get());
      demo_apply(plan_, ordered, lr, canonical_);
      return 0;
    });
    ++steps_applied_;
  }
  next_round_ = result.round + 1;
  // Erased only now: while the apply ran, Status messages repeating this
  // result found it still here and did not queue it a second time.
  results_.erase(result.round);
  report_.steps_applied = steps_applied_;
  co_return Status::Ok();
}

TrainOutput SwarmClient::Impl::compute_update(const std::vector<BatchRange>& mine, uint64_t step,
                                              double lr, std::optional<double> lookahead_lr,
                                              const net::SignedMessage& grant_status) {
  const auto started = std::chrono::steady_clock::now();
  if (data_.remote) {
    Status fetched = data_.remote->fetch_batches(mine, grant_status);
    if (!fetched.ok()) {
      TrainOutput failed;
      failed.error = std::move(fetched);
      return failed;
    }
  }
  const int64_t spb = config_.batch.sequences_per_batch;
  const int64_t seq = config_.data.seq_len;
  if (lookahead_lr) {
    demo_lookahead(plan_, canonical_, demo_.momentum(), *lookahead_lr, model_.params());
  } else {
    std::memcpy(model_.params().data(), canonical_.data(),
                static_cast<size_t>(canonical_.size()) * sizeof(float));
  }
  model_.grads().zero();
  const uint64_t n = total_batches(mine);
  std::vector<int32_t> tokens(static_cast<size_t>(spb * seq)), labels(tokens.size());
  double loss = 0.0;
  for (const BatchRange& range : mine) {
    for (uint64_t b = range.begin; b < range.end; ++b) {
      Rng rng = swarm_batch_rng(config_.run.seed, b);
      data_.dataset().sample_train(rng, spb, seq, tokens, labels);
      loss += model_.forward(tokens, labels, spb, seq);
      model_.backward(1.0f / static_cast<float>(n));
    }
  }
  if (options_.clip > 0.0) clip_grad_norm(model_.grads(), model_.layout(), options_.clip);
  const DemoUpdate update = demo_.encode(model_.grads(), lr, static_cast<int64_t>(step) + 1);
  TrainOutput o;
  o.loss = static_cast<float>(loss / static_cast<double>(n));
  o.payload = encode_demo_update(plan_, update);
  o.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return o;
}

asio::awaitable<Status> SwarmClient::Impl::train(const StatusMessage& st, const RoundPlan& plan,
                                                 std::optional<double> lookahead_lr) {
  std::vector<BatchRange> mine;
  for (const MemberAssignment& a : plan.assignment) {
    if (a.member == id()) mine = a.batches;
  }
  const uint64_t step = st.step;
  const double lr = lr_for_step(step);
  if (speculation_ && speculation_->round == st.round) {
    co_await settle_speculation(true);
    const Speculation& sp = *speculation_;
    if (sp.mine == mine && sp.step == step && lookahead_lr && sp.lookahead_lr == *lookahead_lr &&
        sp.steps_applied == steps_applied_ && sp.out.error.ok()) {
      TrainOutput out = std::move(speculation_->out);
      speculation_.reset();
      ++report_.rounds_speculated;
      co_return announce_update(st.round, mine, std::move(out));
    }
  }
  co_await settle_speculation(false);
  const net::SignedMessage& grant_status = rounds_.at(st.round).signed_status;
  TrainOutput out = co_await on_worker([this, &mine, step, lr, lookahead_lr, &grant_status] {
    return compute_update(mine, step, lr, lookahead_lr, grant_status);
  });
  if (!out.error.ok()) {
    // Without its batches this member cannot train the round: it reports
    // nothing, the coordinator drops it and re-queues the batches.
    log(LogLevel::kWarn, "swarm", "round ", st.round, ": ", out.error.message());
    trained_.insert(st.round);
    co_return Status::Ok();
  }
  co_return announce_update(st.round, mine, std::move(out));
}

void SwarmClient::Impl::maybe_speculate(const StatusMessage& st) {
  if (speculation_ || !options_.speculate || !config_.optimizer.overlap || !st.in_round ||
      (st.state != State::kRoundTrain && st.state != State::kRoundWitness) ||
      trained_.count(st.round) == 0 || trained_.count(st.round + 1) != 0 ||
      next_round_ != st.round || !results_.empty()) {
    return;
  }
  const std::optional<RoundPlan> next = predict_next_plan(
      st, config_.run.seed, config_.batch.batches_per_round, config_.membership.witnesses_per_round,
      config_.membership.rounds_per_epoch);
  if (!next) return;
  Speculation sp;
  for (const MemberAssignment& a : next->assignment) {
    if (a.member == id()) sp.mine = a.batches;
  }
  if (sp.mine.empty()) return;
  const auto info = rounds_.find(st.round);
  if (info == rounds_.end()) return;
  sp.grant_status = info->second.signed_status;
  sp.round = st.round + 1;
  sp.step = st.step + 1;
  sp.lookahead_lr = lr_for_step(st.step);
  sp.steps_applied = steps_applied_;
  speculation_ = std::move(sp);
  asio::co_spawn(executor_, run_speculation(), asio::detached);
}

asio::awaitable<void> SwarmClient::Impl::run_speculation() {
  // speculation_ stays in place until `done`: settle_speculation waits for it.
  TrainOutput out = co_await on_worker([this] {
    Speculation& sp = *speculation_;
    const FlatBuffer& m = demo_.momentum();
    sp.momentum_before.assign(m.data(), m.data() + m.size());
    return compute_update(sp.mine, sp.step, lr_for_step(sp.step), sp.lookahead_lr, sp.grant_status);
  });
  speculation_->out = std::move(out);
  speculation_->done = true;
}

asio::awaitable<void> SwarmClient::Impl::settle_speculation(bool keep) {
  if (!speculation_) co_return;
  while (!speculation_->done) {
    asio::steady_timer t(executor_, std::chrono::milliseconds(2));
    co_await t.async_wait(asio::use_awaitable);
  }
  if (keep) co_return;
  co_await on_worker([this] {
    const std::vector<float>& saved = speculation_->momentum_before;
    std::memcpy(demo_.momentum().data(), saved.data(), saved.size() * sizeof(float));
    return 0;
  });
  speculation_.reset();
}

Status SwarmClient::Impl::announce_update(uint64_t round, const std::vector<BatchRange>& mine,
                                          TrainOutput out) {
  report_.train_seconds += out.seconds;
  Result<net::BlobId> blob = node_->blobs().put(out.payload);
  if (!blob.ok()) return blob.status().with_context("storing this member's update");
  TrainedMessage msg;
  msg.round = round;
  msg.batches = mine;
  msg.update_blob = blob.value();
  if (out.payload.size() <= kMaxInlineUpdateBytes) msg.inline_update = out.payload;
  FetchedUpdate own;
  own.done = true;
  Result<DemoUpdate> decoded = decode_demo_update(plan_, out.payload);
  if (!decoded.ok()) return decoded.status();
  own.update = std::make_shared<const DemoUpdate>(std::move(decoded).value());
  fetched_[msg.update_blob] = std::move(own);
  announced_[round][id()] = msg;
  my_trained_[round] = msg;
  trained_.insert(round);
  publish(SwarmKind::kTrained, encode_trained(msg));
  last_trained_ms_ = now_ms();
  loss_by_round_[round] = out.loss;
  ++report_.rounds_trained;
  report_.batches_trained += total_batches(mine);
  report_.updates_sent_bytes += out.payload.size();
  return Status::Ok();
}

asio::awaitable<Status> SwarmClient::Impl::attest(const StatusMessage& st, const RoundPlan& plan) {
  // Wait for the fetches of this round's announced updates, but leave a fifth
  // of the witness window for the attestation to reach the coordinator.
  const uint64_t window = config_.timing.round_witness_ms;
  const uint64_t give_up = st.deadline_ms > window / 5 ? st.deadline_ms - window / 5 : 0;
  while (now_ms() < give_up) {
    bool pending = false;
    for (const auto& [member, m] : announced_[st.round]) {
      auto it = fetched_.find(m.update_blob);
      if (it != fetched_.end() && !it->second.done) pending = true;
    }
    if (!pending) break;
    asio::steady_timer t(executor_, std::chrono::milliseconds(10));
    co_await t.async_wait(asio::use_awaitable);
  }
  std::vector<size_t> slots;
  for (size_t slot = 0; slot < st.roster.size(); ++slot) {
    auto a = announced_[st.round].find(st.roster[slot]);
    if (a == announced_[st.round].end()) continue;
    auto f = fetched_.find(a->second.update_blob);
    if (f != fetched_.end() && f->second.update) slots.push_back(slot);
  }
  (void)plan;
  AttestMessage msg;
  msg.round = st.round;
  msg.received = make_slot_bitmap(st.roster.size(), slots);
  msg.weight_hash = hash_params(canonical_);
  my_attest_[st.round] = msg;
  publish(SwarmKind::kAttest, encode_attest(msg));
  last_attest_ms_ = now_ms();
  co_return Status::Ok();
}

asio::awaitable<Status> SwarmClient::Impl::write_checkpoint(const std::string& path) {
  co_return co_await on_worker([this, &path] {
    std::memcpy(model_.params().data(), canonical_.data(),
                static_cast<size_t>(canonical_.size()) * sizeof(float));
    // A LoRA run trains only the adapters: its checkpoint is the adapter, as
    // `tern finetune -o` writes it, exact and small; the base is the run's file.
    if (model_.is_lora()) {
      return write_lora_adapter(path, model_).with_context("writing the checkpoint " + path);
    }
    ModelWriteOptions write_options;
    write_options.ternary_type = TernaryFileType::kLatentF32;
    write_options.name = config_.run.name;
    write_options.extra_metadata = tokenizer_metadata_;
    return write_model_gguf(path, model_, write_options)
        .with_context("writing the checkpoint " + path);
  });
}

Result<Blake2bDigest> SwarmClient::Impl::read_back_checkpoint(const std::string& path) {
  if (model_.is_lora()) {
    TERN_RETURN_IF_ERROR(load_lora_adapter(path, model_));
    return hash_params(model_.params());
  }
  TERN_ASSIGN_OR_RETURN(std::unique_ptr<GgufModelSource> source, GgufModelSource::open(path));
  TERN_ASSIGN_OR_RETURN(BitNetModel reloaded, BitNetModel::create_full(source->config(), *source));
  return hash_params(reloaded.params());
}

asio::awaitable<Status> SwarmClient::Impl::maybe_checkpoint_epoch(const StatusMessage& st) {
  if (options_.checkpoint_dir.empty() || need_sync_ ||
      (st.state != State::kCooldown && st.state != State::kFinished) ||
      epochs_checkpointed_.count(st.epoch) != 0) {
    co_return Status::Ok();
  }
  // The epoch's last round (every member saw its plan).
  const RoundInfo* last = nullptr;
  for (const auto& [round, info] : rounds_) {
    if (info.status.epoch == st.epoch) last = &info;
  }
  if (last == nullptr || next_round_ <= last->status.round) co_return Status::Ok();
  epochs_checkpointed_.insert(st.epoch);
  if (last->plan.witnesses.empty() || last->plan.witnesses.front() != id()) co_return Status::Ok();
  co_await settle_speculation(true);
  const std::string path = options_.checkpoint_dir + "/epoch-" + std::to_string(st.epoch) + ".gguf";
  TERN_CO_RETURN_IF_ERROR(co_await write_checkpoint(path));
  report_.epoch_checkpoints.push_back(path);
  log(LogLevel::kInfo, "swarm", "wrote the checkpoint of epoch ", st.epoch, " to ", path);
  co_return Status::Ok();
}

void SwarmClient::Impl::announce_weights() {
  if (!my_weights_ || my_weights_->first != steps_applied_) {
    Result<net::BlobId> blob = node_->blobs().put(param_bytes(canonical_));
    if (!blob.ok()) {
      log(LogLevel::kWarn, "swarm", "cannot store weights: ", blob.status().message());
      return;
    }
    my_weights_ = std::make_pair(steps_applied_, blob.value());
    last_weights_ms_ = 0;
  }
  // Once per new step; repeated only while members wait to join (they load
  // these weights at the next epoch), so an idle run costs no upload.
  const bool waiting = status_ && !status_->pending_joins.empty();
  if (last_weights_ms_ != 0 && (!waiting || now_ms() < last_weights_ms_ + kRepublishMs)) return;
  WeightsMessage msg;
  msg.step = my_weights_->first;
  msg.weights_blob = my_weights_->second;
  publish(SwarmKind::kWeights, encode_weights(msg));
  last_weights_ms_ = now_ms();
}

asio::awaitable<Status> SwarmClient::Impl::try_sync(const StatusMessage& st) {
  // The blob most members announce for the current step, once a majority of
  // the other members agree on it.
  auto offers = weights_offers_.find(st.step);
  if (offers == weights_offers_.end()) co_return Status::Ok();
  size_t others = 0;
  for (const MemberInfo& m : st.members) others += m.id == id() ? 0 : 1;
  std::map<net::BlobId, std::vector<net::NodeId>> by_blob;
  for (const auto& [member, blob] : offers->second) {
    if (member != id()) by_blob[blob].push_back(member);
  }
  for (auto& [blob, holders] : by_blob) {
    if (holders.size() * 2 <= others) continue;
    std::vector<net::NodeId> linked;
    for (const net::NodeId& h : holders) {
      Status s = co_await ensure_link(h);
      if (s.ok()) linked.push_back(h);
    }
    if (linked.empty()) co_return Status::Ok();
    Result<net::FetchReport> fetched = co_await node_->fetch(blob, linked);
    if (!fetched.ok()) {
      log(LogLevel::kWarn, "swarm", "weights fetch failed: ", fetched.status().message());
      co_return Status::Ok();
    }
    Result<std::shared_ptr<const net::Bytes>> bytes = node_->blobs().get(blob);
    if (!bytes.ok()) co_return bytes.status();
    if (bytes.value()->size() != static_cast<size_t>(canonical_.size()) * sizeof(float)) {
      co_return Status::Error("weights blob from peers has " +
                              std::to_string(bytes.value()->size()) + " bytes, expected " +
                              std::to_string(canonical_.size() * 4));
    }
    std::memcpy(canonical_.data(), bytes.value()->data(), bytes.value()->size());
    demo_.momentum().zero();
    steps_applied_ = st.step;
    next_round_ = st.last_result ? st.last_result->round + 1 : 0;
    for (auto it = results_.begin(); it != results_.end();) {
      it = it->first < next_round_ ? results_.erase(it) : std::next(it);
    }
    need_sync_ = false;
    report_.synced_from_peers = true;
    report_.steps_applied = steps_applied_;
    report_.initial_val_loss = co_await on_worker([this] { return validation_loss(); });
    log(LogLevel::kInfo, "swarm", "loaded the weights of step ", st.step, " from ", linked.size(),
        " peers");
    co_return Status::Ok();
  }
  co_return Status::Ok();
}

void SwarmClient::Impl::report_progress(const StatusMessage& st) {
  if (!progress_) return;
  ClientProgress p;
  p.round = st.last_result ? st.last_result->round : 0;
  p.epoch = st.epoch;
  p.step = steps_applied_;
  p.members = st.members.size();
  // The loss of the round reported, not of the one computed ahead since.
  auto loss = loss_by_round_.find(p.round);
  p.train_loss =
      loss == loss_by_round_.end() ? std::numeric_limits<float>::quiet_NaN() : loss->second;
  loss_by_round_.erase(loss_by_round_.begin(), loss_by_round_.lower_bound(p.round));
  p.uploaded_bytes = options_.uploaded_bytes ? options_.uploaded_bytes() : 0;
  p.downloaded_bytes = downloaded_bytes();
  progress_(p);
}

asio::awaitable<Result<ClientReport>> SwarmClient::Impl::run() {
  Result<ClientReport> report = co_await run_until_done();
  // A speculation still computing uses this object: let it finish first.
  co_await settle_speculation(true);
  // Whatever the outcome, close every link so the executor runs dry.
  node_->close();
  co_return report;
}

asio::awaitable<Result<ClientReport>> SwarmClient::Impl::run_until_done() {
  if (Status s = node_->listen(options_.listen); !s.ok())
    co_return s.with_context("listening for peers");
  join_.address = options_.advertise.empty() ? node_->address() : options_.advertise;
  report_.params = model_.layout().num_elements();
  report_.initial_val_loss = co_await on_worker([this] { return validation_loss(); });
  TERN_CO_RETURN_IF_ERROR(co_await link_to_coordinator());
  last_status_ms_ = now_ms();
  asio::steady_timer timer(executor_);
  while (true) {
    if (!fatal_.ok()) co_return fatal_;
    if (leave_requested_) {
      if (coordinator_ && node_->connected(*coordinator_)) {
        publish(SwarmKind::kLeave, encode_leave());
        // Give the writer a moment to put it on the wire before the links close.
        timer.expires_after(std::chrono::milliseconds(300));
        asio::error_code ec;
        co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
      }
      co_return Status::Error("interrupted: left the run");
    }
    Result<Link> link = co_await relink_if_lost();
    if (!link.ok()) co_return link.status();
    if (link.value() == Link::kRunOver) break;
    if (link.value() == Link::kUp) {
      Result<bool> done = co_await follow_status();
      if (!done.ok()) co_return done.status();
      if (done.value()) break;
    }
    timer.expires_after(std::chrono::milliseconds(10));
    asio::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
  co_return co_await final_report();
}

asio::awaitable<Status> SwarmClient::Impl::link_to_coordinator() {
  // Retries while the coordinator starts up.
  const uint64_t deadline = now_ms() + options_.connect_timeout_ms;
  while (true) {
    Result<net::NodeId> linked =
        co_await node_->connect(options_.coordinator_address, options_.coordinator_id);
    if (linked.ok()) {
      coordinator_ = linked.value();
      // Broadcasts travel through the coordinator only; peer links carry blobs.
      node_->set_broadcast_peers(std::vector<net::NodeId>{*coordinator_});
      co_return Status::Ok();
    }
    if (now_ms() > deadline) {
      co_return linked.status().with_context("linking to the coordinator at " +
                                             options_.coordinator_address);
    }
    asio::steady_timer t(executor_, std::chrono::milliseconds(200));
    co_await t.async_wait(asio::use_awaitable);
  }
}

asio::awaitable<Result<SwarmClient::Impl::Link>> SwarmClient::Impl::relink_if_lost() {
  if (node_->connected(*coordinator_)) co_return Link::kUp;
  // The run is over and everything applied: the coordinator has left.
  if (status_ && status_->state == State::kFinished && results_.empty() && !need_sync_) {
    co_return Link::kRunOver;
  }
  // The coordinator went away (restart): link again and carry on, for a
  // while. Before any Status it is the join that fails: a coordinator that
  // closes every link it authenticated does not admit this key.
  const uint64_t patience = status_ ? kReconnectMs : options_.connect_timeout_ms;
  if (now_ms() > last_status_ms_ + patience) {
    co_return Status::Error(
        status_ ? "lost the coordinator at " + options_.coordinator_address +
                      " and could not link again for " + std::to_string(patience) + " ms"
                : "linking to the coordinator at " + options_.coordinator_address +
                      ": it closes this member's links (is the key on the "
                      "run's allowlist?)");
  }
  Result<net::NodeId> linked = co_await node_->connect(options_.coordinator_address, *coordinator_);
  if (!linked.ok()) {
    asio::steady_timer t(executor_, std::chrono::milliseconds(200));
    asio::error_code ec;
    co_await t.async_wait(asio::redirect_error(asio::use_awaitable, ec));
    co_return Link::kDown;
  }
  last_join_ms_ = 0;
  co_return Link::kUp;
}

asio::awaitable<Result<bool>> SwarmClient::Impl::follow_status() {
  const uint64_t now = now_ms();
  if (!status_) {
    if (now >= last_join_ms_ + kRepublishMs) {
      publish(SwarmKind::kJoin, encode_join(join_));
      last_join_ms_ = now;
    }
    co_return false;
  }
  const StatusMessage st = *status_;
  const bool member = std::any_of(st.members.begin(), st.members.end(),
                                  [&](const MemberInfo& m) { return m.id == id(); });
  const bool listed_address =
      std::any_of(st.members.begin(), st.members.end(),
                  [&](const MemberInfo& m) { return m.id == id() && !m.address.empty(); });
  const bool pending = contains(st.pending_joins, id());
  if (st.state != State::kFinished && ((!member && !pending) || (member && !listed_address)) &&
      now >= last_join_ms_ + kRepublishMs) {
    publish(SwarmKind::kJoin, encode_join(join_));
    last_join_ms_ = now;
  }
  if (need_sync_) {
    if (st.state == State::kFinished)
      co_return Status::Error("the run finished before this member could load the weights");
    co_await settle_speculation(false);
    TERN_CO_RETURN_IF_ERROR(co_await try_sync(st));
    co_return false;
  }
  // Resolved rounds, in order; a gap means a result was missed.
  if (!results_.empty() && results_.begin()->first != next_round_) {
    log(LogLevel::kWarn, "swarm", "missed the result of round ", next_round_,
        "; loading the weights from peers");
    need_sync_ = true;
    co_return false;
  }
  TERN_CO_RETURN_IF_ERROR(co_await take_part(st, now));
  if (need_sync_) co_return false;
  const bool between_rounds = st.state == State::kCooldown || st.state == State::kWarmup ||
                              st.state == State::kWaitingForMembers || st.state == State::kFinished;
  if (between_rounds && results_.empty() && member) {
    announce_weights();
    TERN_CO_RETURN_IF_ERROR(co_await maybe_checkpoint_epoch(st));
  }
  if (st.last_result && st.last_result->round != last_progress_round_ &&
      next_round_ > st.last_result->round) {
    last_progress_round_ = st.last_result->round;
    report_progress(st);
  }
  if (st.state == State::kFinished && results_.empty()) {
    if (finished_at_ms_ == 0) finished_at_ms_ = now;
    co_return now >= finished_at_ms_ + kLingerMs;
  }
  co_return false;
}

asio::awaitable<Status> SwarmClient::Impl::take_part(const StatusMessage& st, uint64_t now) {
  const RoundInfo* round = st.in_round && rounds_.count(st.round) ? &rounds_.at(st.round) : nullptr;
  const bool trainer =
      round != nullptr && st.state == State::kRoundTrain && trained_.count(st.round) == 0 &&
      std::any_of(
          round->plan.assignment.begin(), round->plan.assignment.end(),
          [&](const MemberAssignment& a) { return a.member == id() && !a.batches.empty(); });
  // With overlap, the previous round's aggregate stays in flight while this
  // round's gradient is computed on the look-ahead.
  std::optional<RoundResult> in_flight;
  if (trainer && config_.optimizer.overlap && !results_.empty() &&
      std::prev(results_.end())->first + 1 == st.round) {
    in_flight = std::prev(results_.end())->second;
  }
  while (!results_.empty() && !(in_flight && results_.begin()->first == in_flight->round)) {
    const RoundResult result = results_.begin()->second;
    TERN_CO_RETURN_IF_ERROR(co_await apply_result(result));
  }
  if (trainer) {
    const uint64_t step_before =
        in_flight && !in_flight->accepted.empty() ? steps_applied_ + 1 : steps_applied_;
    if (step_before != st.step) {
      log(LogLevel::kWarn, "swarm", "at step ", steps_applied_, " but the run is at ", st.step,
          "; loading the weights from peers");
      need_sync_ = true;
      co_return Status::Ok();
    }
    std::optional<double> lookahead;
    if (config_.optimizer.overlap) {
      lookahead =
          in_flight && !in_flight->accepted.empty() ? lr_for_step(in_flight->step_after - 1) : 0.0;
    }
    TERN_CO_RETURN_IF_ERROR(co_await train(st, round->plan, lookahead));
    if (in_flight) TERN_CO_RETURN_IF_ERROR(co_await apply_result(*in_flight));
  }
  // A speculation the run went past (another plan, an epoch's end) is dropped.
  if (speculation_ && (!st.in_round || st.round > speculation_->round ||
                       (st.round == speculation_->round && !trainer))) {
    co_await settle_speculation(false);
  }
  maybe_speculate(*status_);
  // Re-send reports the coordinator has not recorded (it may have restarted).
  if (round != nullptr && st.state == State::kRoundTrain && my_trained_.count(st.round)) {
    for (size_t slot = 0; slot < st.roster.size(); ++slot) {
      if (st.roster[slot] == id() && slot < st.trained.size() && !st.trained[slot] &&
          now >= last_trained_ms_ + kRepublishMs) {
        publish(SwarmKind::kTrained, encode_trained(my_trained_[st.round]));
        last_trained_ms_ = now;
      }
    }
  }
  if (round != nullptr && st.state == State::kRoundWitness) {
    const auto& witnesses = round->plan.witnesses;
    for (size_t w = 0; w < witnesses.size(); ++w) {
      if (witnesses[w] != id()) continue;
      if (my_attest_.count(st.round) == 0) {
        TERN_CO_RETURN_IF_ERROR(co_await attest(st, round->plan));
      } else if (w < st.attested.size() && !st.attested[w] &&
                 now >= last_attest_ms_ + kRepublishMs) {
        publish(SwarmKind::kAttest, encode_attest(my_attest_[st.round]));
        last_attest_ms_ = now;
      }
    }
  }
  co_return Status::Ok();
}

asio::awaitable<Result<ClientReport>> SwarmClient::Impl::final_report() {
  co_await settle_speculation(false);
  report_.final_val_loss = co_await on_worker([this] { return validation_loss(); });
  report_.weight_hash = hash_params(canonical_);
  report_.uploaded_bytes = options_.uploaded_bytes ? options_.uploaded_bytes() : 0;
  if (data_.remote) report_.data_bytes_received = data_.remote->bytes_received();
  report_.downloaded_bytes = downloaded_bytes();
  if (!options_.checkpoint_path.empty()) {
    TERN_CO_RETURN_IF_ERROR(co_await write_checkpoint(options_.checkpoint_path));
    report_.checkpoint_path = options_.checkpoint_path;
    // Read the file back, as a user would, so the reported hash is the file's.
    // (on_worker needs a default-constructible result: a Status, not a Result.)
    Status read_back = co_await on_worker([this] {
      Result<Blake2bDigest> hash = read_back_checkpoint(options_.checkpoint_path);
      if (hash.ok()) report_.checkpoint_weight_hash = hash.value();
      return hash.status();
    });
    if (!read_back.ok()) co_return read_back.with_context("re-reading the checkpoint");
  }
  co_return report_;
}

// ---- SwarmClient ----

Result<std::unique_ptr<SwarmClient>> SwarmClient::create(asio::any_io_executor executor,
                                                         net::Transport& transport,
                                                         net::Identity identity, RunConfig config,
                                                         ClientOptions options) {
  TERN_ASSIGN_OR_RETURN(RunBase base, open_run_base(config, options.model_path));
  const ModelConfig& model_config = base.config;
  if (options.eval_batches < 1) return Status::Error("eval_batches must be >= 1");
  // Local shards (--shards or [data] shards), else the run's data provider.
  TrainingData data;
  const std::string shard_dir = options.shards.empty() ? config.data.shards : options.shards;
  std::string data_source = shard_dir;
  if (!shard_dir.empty()) {
    TERN_ASSIGN_OR_RETURN(ShardSet shards, ShardSet::open(shard_dir));
    data.local = std::move(shards);
  } else {
    TERN_ASSIGN_OR_RETURN(
        data.remote,
        RemoteBatches::open(config, identity,
                            options.eval_batches * int64_t{config.batch.sequences_per_batch}));
    data_source = config.data.provider;
  }
  TERN_RETURN_IF_ERROR(data.dataset().check_window(config.data.seq_len).with_context(data_source));
  if (data.dataset().vocab() > model_config.vocab) {
    return Status::Error("the data of " + data_source + " has vocab " +
                         std::to_string(data.dataset().vocab()) + " > the model's " +
                         std::to_string(model_config.vocab));
  }
  if (config.data.seq_len > model_config.max_seq) {
    return Status::Error("[data] seq_len = " + std::to_string(config.data.seq_len) +
                         " exceeds the model's max_seq " + std::to_string(model_config.max_seq));
  }
  // LoRA: A is drawn from the run seed (per tensor) and B starts at 0, so
  // every member starts from the same adapters; the base stays frozen.
  const std::optional<LoraConfig> lora = to_lora_config(config);
  Result<BitNetModel> created =
      lora ? BitNetModel::create_lora(model_config, *lora, *base.source, config.run.seed)
           : BitNetModel::create_full(model_config, *base.source);
  if (!created.ok()) return created.status().with_context("building the run's model");
  BitNetModel model = std::move(created).value();
  TERN_ASSIGN_OR_RETURN(DemoPlan plan, DemoPlan::create(model.layout(), to_demo_config(config)));
  auto impl = std::make_unique<Impl>(
      std::move(executor), transport, std::move(identity), std::move(config), std::move(options),
      std::move(model), std::move(plan), std::move(data), std::move(base.tokenizer_metadata));
  return std::unique_ptr<SwarmClient>(new SwarmClient(std::move(impl)));
}

SwarmClient::SwarmClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SwarmClient::~SwarmClient() = default;
const net::NodeId& SwarmClient::id() const {
  return impl_->id();
}
asio::awaitable<Result<ClientReport>> SwarmClient::run() {
  return impl_->run();
}
void SwarmClient::leave() {
  impl_->request_leave();
}
void SwarmClient::on_progress(std::function<void(const ClientProgress&)> callback) {
  impl_->set_progress(std::move(callback));
}

}  // namespace tern::swarm
