// Broadcast of small signed messages to every member of a training run
// (announcements, attestations), relayed through well-connected peers or the
// coordinator (star or tree topologies; no gossip in this version).
//
// A SignedMessage is signed by its original sender with the sender's Ed25519
// identity key over signing_bytes(), which is (all integers little-endian):
//
//   size  field
//   17    domain tag, the ASCII bytes "tern-broadcast-v1" (no terminator)
//   16    run_id
//   32    sender (Ed25519 public key)
//   8     seq, u64
//   8     expiry_ms, u64 (unix milliseconds; the message is dead after it)
//   2     kind, u16
//   4     body length n, u32
//   n     body
//
// Every field has a fixed size except the body, which is length-prefixed and
// last, so one message has exactly one encoding and no two field lists share
// one. The tag keeps these signatures from being valid for any other use of
// the same key. The message id is BLAKE2b-256(signing_bytes()), signature
// left out: the id names the content the sender vouched for, so a copy whose
// signature bytes differ (another valid signature of the same content) is
// still the same message, and a duplicate can be recognised before the
// signature is checked.
//
// ReplayGuard decides, per run, whether an arriving message is accepted: it
// checks the run id, body size, expiry window, member allowlist, duplicates,
// the sender's sequence window and the signature. Time is always passed in as
// now_ms by the caller; nothing here reads a clock. Its memory is bounded:
// O(window bits) per tracked sender, at most max_senders senders, at most
// max_recent_ids remembered ids.
//
// BroadcastRouter publishes and receives messages over BroadcastLinks (the
// network node provides them; no sockets here), delivers accepted messages to
// the local application once and, on relaying nodes, forwards them on.
//
// Thread-safety: none of these classes is synchronized; a node calls a
// router (and its guard) from one thread or strand. SignedMessage and the free
// functions are plain values / pure functions.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/hash.h"
#include "core/status.h"
#include "net/identity.h"

namespace tern::net {

using Bytes = std::vector<uint8_t>;
using RunId = std::array<uint8_t, 16>;
using MessageId = Blake2bDigest;

inline constexpr std::string_view kBroadcastDomainTag = "tern-broadcast-v1";

struct SignedMessage {
  RunId run_id{};
  NodeId sender;
  uint64_t seq = 0;
  uint64_t expiry_ms = 0;  // unix milliseconds
  uint16_t kind = 0;       // meaning is the application's
  Bytes body;
  Ed25519Signature signature{};

  // The bytes the signature covers (layout above). The body must fit a u32
  // (CHECK; the guard refuses larger bodies before calling this).
  Bytes signing_bytes() const;
  // BLAKE2b-256 of signing_bytes().
  MessageId id() const;

  bool operator==(const SignedMessage&) const = default;
};

// Builds and signs a message from `identity`.
SignedMessage sign_message(const Identity& identity, const RunId& run_id, uint64_t seq,
                           uint64_t expiry_ms, uint16_t kind, Bytes body);

// OK if the signature is the sender's over signing_bytes(); otherwise an error
// naming the sender and seq. Checks nothing else (see ReplayGuard).
Status verify_message(const SignedMessage& message);

// Why the guard rejected a message; one counter per reason in the router.
enum class RejectReason : uint8_t {
  kWrongRun,        // run_id is not this node's run
  kBodyTooLarge,    // body above max_body_bytes
  kExpired,         // expiry_ms < now_ms
  kExpiryTooFar,    // expiry_ms > now_ms + max_lifetime_ms
  kUnknownSender,   // allowlist configured and the sender is not on it
  kDuplicate,       // this message id was accepted before
  kSeqReused,       // this sender's seq was accepted before, with other content
  kTooOld,          // seq at or below the sender's window (highest - window)
  kTooManySenders,  // a new sender while max_senders are tracked
  kBadSignature,    // signature does not verify
  kOwnMessage,      // signed by this node (router only: it came back)
};
inline constexpr size_t kRejectReasonCount = 11;

// Stable lowercase names ("wrong_run", "bad_signature", ...) for logs/metrics.
std::string_view reject_reason_name(RejectReason reason);

struct ReplayGuardLimits {
  // Longest accepted expiry_ms - now_ms. It bounds how long a sender can make
  // the guard keep its state, and must cover the clock skew between members.
  uint64_t max_lifetime_ms = 10 * 60 * 1000;
  size_t max_body_bytes = 64 * 1024;
  // Sliding window of seqs per sender, in seqs; a positive multiple of 64.
  uint32_t window = 1024;
  size_t max_senders = 1024;
  size_t max_recent_ids = 8192;
};

// Accept-once filter for one run. Checks run cheapest first; the signature
// (the only expensive check) comes last and nothing is recorded unless every
// check passed, so a forged or rejected message never changes the state.
//
// Sequence window: per sender the guard keeps the highest accepted seq H and a
// bitmap of the seqs in (H - window, H]. A seq above H moves the window; a seq
// inside it is accepted once (reordering is fine); a seq at or below
// H - window is too old. A sender is tracked from its first accepted message
// until expire() finds all its accepted messages expired; since the guard
// rejects expired messages, forgetting such a sender cannot let a replay in.
class ReplayGuard {
 public:
  explicit ReplayGuard(const RunId& run_id, ReplayGuardLimits limits = {});

  // Restricts senders to `members` (an allowlist); replaces any earlier list.
  void set_members(const std::vector<NodeId>& members);
  // Back to accepting any sender.
  void clear_members();

  // OK and recorded, or an error "broadcast from <sender> seq <n>: <reason>"
  // with nothing recorded; on rejection `*reason`, if given, receives why.
  Status accept(const SignedMessage& message, uint64_t now_ms, RejectReason* reason = nullptr);

  // Forgets senders whose accepted messages have all expired at now_ms and
  // remembered ids of expired messages. Returns the number of senders freed.
  size_t expire(uint64_t now_ms);

  const RunId& run_id() const { return run_id_; }
  const ReplayGuardLimits& limits() const { return limits_; }
  size_t tracked_senders() const { return senders_.size(); }
  size_t remembered_ids() const { return recent_ids_.size(); }

 private:
  struct SenderWindow {
    uint64_t highest = 0;             // highest accepted seq
    uint64_t latest_expiry_ms = 0;    // max expiry of accepted messages
    std::vector<uint64_t> seen_bits;  // bit (seq % window) for seqs in the window
  };
  struct IdHash {
    size_t operator()(const MessageId& id) const;
  };

  RunId run_id_;
  ReplayGuardLimits limits_;
  std::optional<std::set<NodeId>> members_;
  std::map<NodeId, SenderWindow> senders_;
  // Remembered ids with their expiry; evicted earliest-expiry first.
  std::unordered_map<MessageId, uint64_t, IdHash> recent_ids_;
  std::multimap<uint64_t, MessageId> ids_by_expiry_;
};

// One link to a neighbour, provided by the network node. send() must not
// block: queueing, back-pressure and dropping are the link's business.
class BroadcastLink {
 public:
  virtual ~BroadcastLink() = default;
  virtual NodeId peer() const = 0;
  virtual void send(const SignedMessage& message) = 0;
};

struct BroadcastConfig {
  // Forward accepted messages to the other links (well-connected peers and
  // the coordinator); plain members only publish and receive.
  bool relay = false;
  ReplayGuardLimits limits;
  // Seq of the first published message. Receivers remember seqs until the
  // messages expire, so a node that restarts within max_lifetime_ms must not
  // reuse seqs: start from e.g. unix ms * 1024, or a persisted counter.
  uint64_t first_seq = 1;
};

struct BroadcastCounters {
  uint64_t published = 0;
  uint64_t delivered = 0;  // accepted messages handed to the application
  uint64_t relayed = 0;    // link sends of other nodes' messages
  std::array<uint64_t, kRejectReasonCount> rejected{};  // by RejectReason

  uint64_t rejected_for(RejectReason reason) const { return rejected[static_cast<size_t>(reason)]; }
  uint64_t rejected_total() const;
  bool operator==(const BroadcastCounters&) const = default;
};

class BroadcastRouter {
 public:
  using DeliverFn = std::function<void(const SignedMessage&)>;

  BroadcastRouter(Identity identity, const RunId& run_id, BroadcastConfig config,
                  DeliverFn deliver);

  // Adds a link, replacing any link to the same peer.
  void add_link(std::shared_ptr<BroadcastLink> link);
  void remove_link(const NodeId& peer);

  // Signs `body` with the next seq, expiring at now_ms + lifetime_ms, and sends
  // it on every link. The local application is not called. lifetime_ms and the
  // body size must be within the limits (CHECK: a local bug, not peer input).
  SignedMessage publish(uint16_t kind, Bytes body, uint64_t now_ms, uint64_t lifetime_ms);

  // A message arrived on the link to `from_peer`. If the guard accepts it, the
  // application gets it once and a relaying node forwards it to every link
  // except `from_peer` and the original sender, before delivering it (so what
  // the application publishes in reaction follows it on every link). Otherwise a warn line is
  // logged (component "net") and the Status returned; the router keeps serving.
  Status on_receive(const NodeId& from_peer, const SignedMessage& message, uint64_t now_ms);

  // See ReplayGuard::expire; call it periodically.
  size_t expire(uint64_t now_ms) { return guard_.expire(now_ms); }

  const NodeId& id() const { return identity_.id(); }
  ReplayGuard& guard() { return guard_; }
  const BroadcastCounters& counters() const { return counters_; }

 private:
  Identity identity_;
  BroadcastConfig config_;
  ReplayGuard guard_;
  DeliverFn deliver_;
  uint64_t next_seq_;
  std::map<NodeId, std::shared_ptr<BroadcastLink>> links_;
  BroadcastCounters counters_;
};

}  // namespace tern::net
