// CoordinatorServer: the coordinator of one swarm run on the network
// (`tern coordinator`). It owns the state machine (coordinator.h), its ledger
// (ledger.h) and a relaying net::Node, and runs the rule
//
//     decode -> Coordinator::apply -> Ledger::append (durable) -> act
//
// for every member message (protocol.h) and for every phase timeout (a Tick
// is applied only once the clock passes the phase deadline, so idle ticks
// never reach the log). "Act" is publishing the new Status to every member;
// nothing leaves the process before the entry that caused it is on disk, so
// a coordinator killed at any instant restarts from its ledger (open())
// without having told anyone about a step the log does not hold.
//
// The Node relays members' signed broadcasts to every other member, whether
// or not the coordinator accepted them as events: members check every
// message against the plan themselves. The run's allowlist, if any, is the
// Node's link allowlist, so a key not on it cannot even hold a link.
//
// Blob relay: the coordinator fetches every member's update blob before it
// records that member's Trained, and serves it from then on, so a round's
// "trained" flag in Status means "fetchable from the coordinator". Members
// fetch updates from it and fall back to the trainer and witnesses, so each
// member uploads its update about once per step instead of once per peer
// (docs/swarm.md, "Upload"). Relayed blobs are kept for the last
// kRelayRounds rounds, within relay_capacity_bytes.
//
// Members' blob addresses (from Join) are soft state, not in the ledger: after
// a restart the Status lists them empty until each member announces again.
//
// Time: Unix milliseconds from an injected clock, clamped to never go below
// the last applied event's time (the state machine rejects time going back).
//
// Threading: like net::Node, everything runs on one single-threaded executor;
// call every method from it.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/steady_timer.hpp>

#include "core/status.h"
#include "net/identity.h"
#include "net/node.h"
#include "net/transport.h"
#include "swarm/coordinator.h"
#include "swarm/ledger.h"
#include "swarm/protocol.h"
#include "swarm/run_config.h"

namespace tern::swarm {

struct CoordinatorServerOptions {
  uint64_t tick_interval_ms = 20;     // how often phase deadlines are checked
  uint64_t status_interval_ms = 500;  // Status republished at least this often
  uint64_t message_lifetime_ms = 60'000;
  uint64_t linger_ms = 3'000;        // keep serving Status this long after Finished
  std::function<uint64_t()> now_ms;  // Unix ms; default: the system clock
  uint64_t relay_capacity_bytes = uint64_t{256} << 20;  // relayed update blobs held at once
  // Called after every Status published (progress display, tests).
  std::function<void(const StatusMessage&)> on_status;
};

class CoordinatorServer {
 public:
  // Opens the ledger at state_path and restores the coordinator by replaying
  // it, or creates a new ledger when the file does not exist. An existing
  // ledger must hold this run's coordinator config and be signed by
  // `identity` (an error says which differs).
  static Result<std::unique_ptr<CoordinatorServer>> open(asio::any_io_executor executor,
                                                         net::Transport& transport,
                                                         net::Identity identity, RunConfig config,
                                                         const std::string& state_path,
                                                         CoordinatorServerOptions options = {});
  ~CoordinatorServer();

  Status listen(const std::string& address);
  std::string address() const { return node_->address(); }
  const net::NodeId& id() const { return node_->id(); }

  // Serves until the run finishes (then lingers) or stop() is called. An
  // error means the ledger could not be written: the process must stop and
  // restart from the file.
  asio::awaitable<Status> run();
  void stop();

  const Coordinator& coordinator() const { return coordinator_; }
  bool restored() const { return restored_; }  // open() replayed an existing ledger
  StatusMessage status_message() const;

 private:
  CoordinatorServer(asio::any_io_executor executor, net::Transport& transport,
                    net::Identity identity, RunConfig config, Ledger ledger,
                    Coordinator coordinator, bool restored, CoordinatorServerOptions options);

  uint64_t now_ms() const;
  void on_message(const net::SignedMessage& message);
  // Applies, persists, then publishes Status; a rejected event is logged.
  void submit(const Event& event, const char* what, const net::NodeId& from);
  // Fetches a Trained message's update blob from its sender, then submits
  // the event (on failure the event is dropped: the member re-sends it).
  asio::awaitable<void> relay_trained(std::shared_ptr<TrainDone> trained);
  // Drops relayed blobs of rounds too old to be fetched any more.
  void evict_relayed();
  void tick();
  void publish_status();

  asio::any_io_executor executor_;
  RunConfig config_;
  Blake2bDigest config_hash_{};
  Ledger ledger_;
  Coordinator coordinator_;
  bool restored_ = false;
  CoordinatorServerOptions options_;
  std::unique_ptr<net::Node> node_;
  std::map<net::NodeId, std::string> addresses_;
  std::map<uint64_t, std::vector<net::BlobId>> relayed_;  // by round
  std::set<std::pair<net::NodeId, uint64_t>> relaying_;   // member, round
  Status fatal_;
  bool stopping_ = false;
  uint64_t last_status_ms_ = 0;
};

}  // namespace tern::swarm
