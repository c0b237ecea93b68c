// SwarmClient: one member of a swarm run (`tern join`). It links to the
// coordinator, asks to join, and then follows the coordinator's Status.
//
// The model: a [model] preset initialized from the run seed, or the base
// weights and config of the [model] gguf file (ClientOptions::model_path
// overrides the path), whose bytes must hash to [model] gguf_hash when the
// config gives one, since members must start from identical bits. With
// [model] lora_rank > 0 the base is frozen and only the LoRA adapters (A drawn
// from the run seed, B = 0, as BitNetModel::create_lora does) are trainable:
// DeMo updates, weight hashes, Weights blobs and checkpoints then cover the
// adapters alone.
//
//  - RoundTrain, when the plan (recomputed from the Status, assignment.h)
//    gives it batches: computes the gradient of its batches (batch b is
//    sequences_per_batch windows of seq_len tokens drawn from the training
//    split by Rng(derive_seed(run seed, "swarm batch <b>")), so every member
//    can recompute any batch; read from local shards or fetched from the
//    run's data provider, remote_batches.h), clips it, encodes a DeMo update (optim/demo.h),
//    stores the wire bytes as a blob it serves, and announces Trained.
//  - Every Trained announcement is checked against the plan (sender, round,
//    exact batches); invalid ones are ignored and logged, valid ones are
//    fetched as verified blobs once the Status shows them recorded: from the
//    coordinator, which relays every recorded update, falling back to the
//    trainer and witnesses.
//  - RoundWitness, when elected: attests which updates it fetched and decoded
//    (a slot bitmap) and the hash of its weights with the previous round
//    applied.
//  - Each resolved round in a Status: fetches the accepted updates, decodes
//    them and applies them in the canonical order (demo_apply), so every
//    member holds the same bits. With
//    [optimizer] overlap, round r's gradient is computed on the look-ahead
//    while round r-1's aggregate is still being fetched, and that aggregate is
//    applied right after (optim/demo.h's one-step-delayed mode). Once its
//    own update is announced, the member computes the next round's update
//    ahead on the predicted plan (the same members, the next batches), so the
//    upload and the witness phase overlap compute; the work is used only if
//    the real plan, step and weights match, and gives the same bits.
//  - A member admitted mid-run (or one that missed a round) loads the weights
//    that a majority of the members announce for the current step (Weights
//    messages; members announce after every epoch) as a verified blob.
//  - Epoch end: the epoch's checkpointer (the first witness of its last
//    round) writes a GGUF checkpoint of the agreed weights if given a
//    checkpoint directory.
//  - Finished: writes a GGUF checkpoint if asked and reports.
//
// Checkpoints: the full model with latent fp32 weights, or for a LoRA run the
// adapter in llama.cpp's --lora format (what `tern finetune -o` writes), to be
// applied to the run's base; either reads back to the same weight hash.
//
// Weight hash: BLAKE2b-256 of the trainable parameters as little-endian fp32.
//
// Threading: like net::Node, the client runs on one single-threaded executor;
// gradient and apply work runs on a private worker thread so the node keeps
// serving blobs meanwhile.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/thread_pool.hpp>

#include "core/hash.h"
#include "core/status.h"
#include "net/identity.h"
#include "net/transport.h"
#include "swarm/protocol.h"
#include "swarm/run_config.h"

namespace tern::swarm {

struct ClientOptions {
  std::string coordinator_address;            // "host:port"
  std::optional<net::NodeId> coordinator_id;  // pin the coordinator's key
  std::string listen = "127.0.0.1:0";         // where peers fetch our blobs
  std::string advertise;                      // address announced; default: bound address
  std::string shards;                         // local shards; overrides [data] shards and provider
  // Overrides [model] gguf: each machine keeps the base file at its own path
  // (the file's bytes must still hash to [model] gguf_hash).
  std::string model_path;
  std::string checkpoint_path;  // GGUF written when the run finishes
  // When set, this member writes <dir>/epoch-<e>.gguf at the end of every
  // epoch e for which it is the checkpointer: the first witness of the
  // epoch's last round (a choice every member can recompute).
  std::string checkpoint_dir;
  double clip = 1.0;         // gradient norm clip; <= 0: off
  int64_t eval_batches = 4;  // validation batches at start and end
  uint64_t message_lifetime_ms = 60'000;
  uint64_t connect_timeout_ms = 30'000;  // first link to the coordinator
  // With [optimizer] overlap: compute the next round's update while this
  // round's updates upload and are witnessed, on the predicted next plan
  // (used only if the real plan matches; same bits either way).
  bool speculate = true;
  std::function<uint64_t()> now_ms;  // Unix ms; default: the system clock
  // Where gradient and apply work runs; default: a private thread. The
  // kernels' thread pool takes one caller at a time, so members that share a
  // process must share one single-threaded pool here.
  std::shared_ptr<asio::thread_pool> compute;
  // Upload meter (bytes this member sent), e.g. a FaultyTransport's counts.
  std::function<uint64_t()> uploaded_bytes;
  // Download meter (bytes this member received over the swarm's links); the
  // data provider's bytes are added to it.
  std::function<uint64_t()> downloaded_bytes;
};

struct ClientProgress {
  uint64_t round = 0;
  uint64_t epoch = 0;
  uint64_t step = 0;  // rounds applied
  size_t members = 0;
  float train_loss = 0.0f;  // of its gradient for `round` (NaN if it trained none)
  uint64_t uploaded_bytes = 0;
  uint64_t downloaded_bytes = 0;  // links (the meter) plus the data provider
};

struct ClientReport {
  uint64_t steps_applied = 0;
  uint64_t rounds_trained = 0;
  uint64_t batches_trained = 0;
  uint64_t updates_sent_bytes = 0;   // DeMo payload bytes this member produced
  uint64_t uploaded_bytes = 0;       // from the upload meter (0 without one)
  uint64_t data_bytes_received = 0;  // from the data provider (0 with local shards)
  uint64_t downloaded_bytes = 0;     // the download meter plus data_bytes_received
  double train_seconds = 0.0;        // wall time spent computing this member's updates
  uint64_t rounds_speculated = 0;    // updates computed ahead (overlap) and used
  int64_t params = 0;
  float initial_val_loss = 0.0f;  // of the weights this member started from
  float final_val_loss = 0.0f;
  bool synced_from_peers = false;  // weights were loaded from peers
  Blake2bDigest weight_hash{};
  std::string checkpoint_path;
  Blake2bDigest checkpoint_weight_hash{};      // of the checkpoint as read back from the file
  std::vector<std::string> epoch_checkpoints;  // written as the epochs' checkpointer
};

class SwarmClient {
 public:
  static Result<std::unique_ptr<SwarmClient>> create(asio::any_io_executor executor,
                                                     net::Transport& transport,
                                                     net::Identity identity, RunConfig config,
                                                     ClientOptions options);
  ~SwarmClient();

  const net::NodeId& id() const;
  // Runs until the coordinator reports Finished and everything is applied.
  asio::awaitable<Result<ClientReport>> run();
  void on_progress(std::function<void(const ClientProgress&)> callback);
  // Leaves the run gracefully (e.g. on Ctrl-C): announces Leave, so the
  // coordinator removes this member at once instead of dropping it a round
  // later, and makes run() return an error saying so. Call on the executor.
  void leave();

  class Impl;

 private:
  explicit SwarmClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::swarm
