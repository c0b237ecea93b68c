#include "net/broadcast.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <sstream>
#include <utility>

#include "core/check.h"
#include "core/log.h"

namespace tern::net {
namespace {

constexpr size_t kSigningHeaderBytes = kBroadcastDomainTag.size() + 16 + 32 + 8 + 8 + 2 + 4;

// Writes `value` as `size` little-endian bytes at `out` and returns the end.
uint8_t* put_le(uint8_t* out, uint64_t value, int size) {
  for (int i = 0; i < size; ++i) *out++ = static_cast<uint8_t>(value >> (8 * i));
  return out;
}

uint8_t* put_bytes(uint8_t* out, const void* data, size_t size) {
  if (size > 0) std::memcpy(out, data, size);
  return out + size;
}

std::string hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string text;
  text.reserve(bytes.size() * 2);
  for (uint8_t b : bytes) {
    text.push_back(kDigits[b >> 4]);
    text.push_back(kDigits[b & 15]);
  }
  return text;
}

// The prefix every rejection shares, so a log line names who and which seq.
std::string describe(const SignedMessage& message) {
  std::ostringstream out;
  out << "broadcast from " << message.sender.short_string() << " seq " << message.seq;
  return out.str();
}

Status reject(const SignedMessage& message, RejectReason why, RejectReason* reason_out,
              const std::string& detail) {
  if (reason_out != nullptr) *reason_out = why;
  return Status::Error(describe(message) + ": " + detail);
}

}  // namespace

Bytes SignedMessage::signing_bytes() const {
  TERN_CHECK(body.size() <= std::numeric_limits<uint32_t>::max(), "broadcast body of ", body.size(),
             " bytes does not fit the u32 length");
  // Filled through a cursor into a buffer of the exact size (one allocation).
  Bytes out(kSigningHeaderBytes + body.size());
  uint8_t* p = out.data();
  p = put_bytes(p, kBroadcastDomainTag.data(), kBroadcastDomainTag.size());
  p = put_bytes(p, run_id.data(), run_id.size());
  p = put_bytes(p, sender.key.data(), sender.key.size());
  p = put_le(p, seq, 8);
  p = put_le(p, expiry_ms, 8);
  p = put_le(p, kind, 2);
  p = put_le(p, body.size(), 4);
  p = put_bytes(p, body.data(), body.size());
  TERN_CHECK(p == out.data() + out.size());
  return out;
}

MessageId SignedMessage::id() const {
  Blake2bHasher hasher;
  hasher.update(signing_bytes());
  return hasher.finish();
}

SignedMessage sign_message(const Identity& identity, const RunId& run_id, uint64_t seq,
                           uint64_t expiry_ms, uint16_t kind, Bytes body) {
  SignedMessage message;
  message.run_id = run_id;
  message.sender = identity.id();
  message.seq = seq;
  message.expiry_ms = expiry_ms;
  message.kind = kind;
  message.body = std::move(body);
  message.signature = identity.sign(message.signing_bytes());
  return message;
}

Status verify_message(const SignedMessage& message) {
  if (message.body.size() > std::numeric_limits<uint32_t>::max()) {
    return Status::Error(describe(message) + ": body of " + std::to_string(message.body.size()) +
                         " bytes cannot be signed");
  }
  if (!verify_signature(message.sender, message.signing_bytes(), message.signature)) {
    return Status::Error(describe(message) + ": bad signature");
  }
  return Status::Ok();
}

std::string_view reject_reason_name(RejectReason reason) {
  switch (reason) {
    case RejectReason::kWrongRun:
      return "wrong_run";
    case RejectReason::kBodyTooLarge:
      return "body_too_large";
    case RejectReason::kExpired:
      return "expired";
    case RejectReason::kExpiryTooFar:
      return "expiry_too_far";
    case RejectReason::kUnknownSender:
      return "unknown_sender";
    case RejectReason::kDuplicate:
      return "duplicate";
    case RejectReason::kSeqReused:
      return "seq_reused";
    case RejectReason::kTooOld:
      return "too_old";
    case RejectReason::kTooManySenders:
      return "too_many_senders";
    case RejectReason::kBadSignature:
      return "bad_signature";
    case RejectReason::kOwnMessage:
      return "own_message";
  }
  TERN_CHECK(false, "unknown RejectReason ", static_cast<int>(reason));
  return {};
}

// ---------------------------------------------------------------------------
// ReplayGuard

size_t ReplayGuard::IdHash::operator()(const MessageId& id) const {
  // Ids are BLAKE2b outputs of authenticated content, so any 8 bytes are a
  // good hash; iteration order of the map is never observable.
  size_t h;
  std::memcpy(&h, id.data(), sizeof(h));
  return h;
}

ReplayGuard::ReplayGuard(const RunId& run_id, ReplayGuardLimits limits)
    : run_id_(run_id), limits_(limits) {
  TERN_CHECK(limits_.window > 0 && limits_.window % 64 == 0,
             "ReplayGuard window must be a positive multiple of 64, got ", limits_.window);
  TERN_CHECK(limits_.max_senders > 0 && limits_.max_recent_ids > 0);
}

void ReplayGuard::set_members(const std::vector<NodeId>& members) {
  members_.emplace(members.begin(), members.end());
}

void ReplayGuard::clear_members() {
  members_.reset();
}

Status ReplayGuard::accept(const SignedMessage& message, uint64_t now_ms, RejectReason* reason) {
  if (message.run_id != run_id_) {
    return reject(
        message, RejectReason::kWrongRun, reason,
        "message for run " + hex(message.run_id) + ", this node is in run " + hex(run_id_));
  }
  if (message.body.size() > limits_.max_body_bytes) {
    return reject(message, RejectReason::kBodyTooLarge, reason,
                  "body of " + std::to_string(message.body.size()) + " bytes exceeds the limit " +
                      std::to_string(limits_.max_body_bytes));
  }
  if (message.expiry_ms < now_ms) {
    return reject(message, RejectReason::kExpired, reason,
                  "expired at " + std::to_string(message.expiry_ms) + " ms, now is " +
                      std::to_string(now_ms));
  }
  // Written as a subtraction so a huge expiry cannot overflow the comparison.
  if (message.expiry_ms - now_ms > limits_.max_lifetime_ms) {
    return reject(message, RejectReason::kExpiryTooFar, reason,
                  "expiry " + std::to_string(message.expiry_ms) + " ms is more than " +
                      std::to_string(limits_.max_lifetime_ms) + " ms after now (" +
                      std::to_string(now_ms) + ")");
  }
  if (members_ && !members_->contains(message.sender)) {
    return reject(message, RejectReason::kUnknownSender, reason,
                  "sender " + message.sender.to_string() + " is not a member of the run");
  }
  const MessageId id = message.id();
  if (recent_ids_.contains(id)) {
    return reject(message, RejectReason::kDuplicate, reason,
                  "duplicate of message " + hex(std::span(id).first(8)));
  }

  auto sender_it = senders_.find(message.sender);
  if (sender_it != senders_.end()) {
    const SenderWindow& w = sender_it->second;
    if (message.seq <= w.highest) {
      const uint64_t behind = w.highest - message.seq;
      if (behind >= limits_.window) {
        return reject(message, RejectReason::kTooOld, reason,
                      "seq is below the window (highest " + std::to_string(w.highest) +
                          ", window " + std::to_string(limits_.window) + ")");
      }
      const uint64_t bit = message.seq % limits_.window;
      if ((w.seen_bits[bit / 64] >> (bit % 64)) & 1) {
        // Not the id seen before (that would be kDuplicate, or the id was
        // forgotten): a replay whose id was evicted, or the sender signed two
        // different messages with one seq.
        return reject(message, RejectReason::kSeqReused, reason,
                      "seq already seen from this sender");
      }
    }
  } else if (senders_.size() >= limits_.max_senders) {
    return reject(message, RejectReason::kTooManySenders, reason,
                  "new sender refused, already tracking " + std::to_string(senders_.size()) +
                      " senders (cap " + std::to_string(limits_.max_senders) + ")");
  }

  if (!verify_signature(message.sender, message.signing_bytes(), message.signature)) {
    return reject(message, RejectReason::kBadSignature, reason, "bad signature");
  }

  // Every check passed: record.
  if (sender_it == senders_.end()) {
    SenderWindow fresh;
    fresh.highest = message.seq;
    fresh.seen_bits.assign(limits_.window / 64, 0);
    sender_it = senders_.emplace(message.sender, std::move(fresh)).first;
  } else if (message.seq > sender_it->second.highest) {
    SenderWindow& w = sender_it->second;
    const uint64_t advance = message.seq - w.highest;
    if (advance >= limits_.window) {
      std::fill(w.seen_bits.begin(), w.seen_bits.end(), 0);
    } else {
      // Seqs highest+1 .. seq-1 enter the window unseen; their bits still hold
      // seqs that just left it.
      for (uint64_t s = w.highest + 1; s < message.seq; ++s) {
        const uint64_t bit = s % limits_.window;
        w.seen_bits[bit / 64] &= ~(uint64_t{1} << (bit % 64));
      }
    }
    w.highest = message.seq;
  }
  SenderWindow& w = sender_it->second;
  const uint64_t bit = message.seq % limits_.window;
  w.seen_bits[bit / 64] |= uint64_t{1} << (bit % 64);
  w.latest_expiry_ms = std::max(w.latest_expiry_ms, message.expiry_ms);

  if (recent_ids_.size() >= limits_.max_recent_ids) {
    // The id that expires first is the least useful; its replays are still
    // stopped by the sender's window.
    auto oldest = ids_by_expiry_.begin();
    recent_ids_.erase(oldest->second);
    ids_by_expiry_.erase(oldest);
  }
  recent_ids_.emplace(id, message.expiry_ms);
  ids_by_expiry_.emplace(message.expiry_ms, id);
  return Status::Ok();
}

size_t ReplayGuard::expire(uint64_t now_ms) {
  while (!ids_by_expiry_.empty() && ids_by_expiry_.begin()->first < now_ms) {
    recent_ids_.erase(ids_by_expiry_.begin()->second);
    ids_by_expiry_.erase(ids_by_expiry_.begin());
  }
  size_t freed = 0;
  for (auto it = senders_.begin(); it != senders_.end();) {
    if (it->second.latest_expiry_ms < now_ms) {
      it = senders_.erase(it);
      ++freed;
    } else {
      ++it;
    }
  }
  return freed;
}

// ---------------------------------------------------------------------------
// BroadcastRouter

uint64_t BroadcastCounters::rejected_total() const {
  uint64_t total = 0;
  for (uint64_t n : rejected) total += n;
  return total;
}

BroadcastRouter::BroadcastRouter(Identity identity, const RunId& run_id, BroadcastConfig config,
                                 DeliverFn deliver)
    : identity_(std::move(identity)),
      config_(config),
      guard_(run_id, config.limits),
      deliver_(std::move(deliver)),
      next_seq_(config.first_seq) {
  TERN_CHECK(deliver_ != nullptr, "BroadcastRouter needs a delivery callback");
}

void BroadcastRouter::add_link(std::shared_ptr<BroadcastLink> link) {
  TERN_CHECK(link != nullptr);
  const NodeId peer = link->peer();
  TERN_CHECK(peer != identity_.id(), "BroadcastRouter: link to itself");
  links_[peer] = std::move(link);
}

void BroadcastRouter::remove_link(const NodeId& peer) {
  links_.erase(peer);
}

SignedMessage BroadcastRouter::publish(uint16_t kind, Bytes body, uint64_t now_ms,
                                       uint64_t lifetime_ms) {
  TERN_CHECK(lifetime_ms <= config_.limits.max_lifetime_ms, "broadcast lifetime ", lifetime_ms,
             " ms exceeds max_lifetime_ms ", config_.limits.max_lifetime_ms);
  TERN_CHECK(body.size() <= config_.limits.max_body_bytes, "broadcast body of ", body.size(),
             " bytes exceeds max_body_bytes ", config_.limits.max_body_bytes);
  TERN_CHECK(next_seq_ != std::numeric_limits<uint64_t>::max(), "broadcast seq exhausted");
  SignedMessage message = sign_message(identity_, guard_.run_id(), next_seq_++,
                                       now_ms + lifetime_ms, kind, std::move(body));
  ++counters_.published;
  // Snapshot: a link's send() may call back into the router (add/remove links).
  std::vector<std::shared_ptr<BroadcastLink>> targets;
  for (const auto& [peer, link] : links_) targets.push_back(link);
  for (const auto& link : targets) link->send(message);
  return message;
}

Status BroadcastRouter::on_receive(const NodeId& from_peer, const SignedMessage& message,
                                   uint64_t now_ms) {
  RejectReason reason{};
  Status status;
  if (message.sender == identity_.id()) {
    // Our own message came back (a loop, or someone replaying it); never
    // deliver it to ourselves. Not tracked in the guard, so no sender slot.
    reason = RejectReason::kOwnMessage;
    status = Status::Error(describe(message) + ": message signed by this node came back");
  } else {
    status = guard_.accept(message, now_ms, &reason);
  }
  if (!status.ok()) {
    ++counters_.rejected[static_cast<size_t>(reason)];
    log(LogLevel::kWarn, "net", "broadcast rejected (", reject_reason_name(reason),
        ") on link from ", from_peer.short_string(), ": ", status.message());
    return status;
  }

  // Relay before delivering: whatever the application publishes in reaction
  // (a coordinator's new Status) then follows its cause on every link.
  if (config_.relay) {
    std::vector<std::shared_ptr<BroadcastLink>> targets;
    for (const auto& [peer, link] : links_) {
      if (peer != from_peer && peer != message.sender) targets.push_back(link);
    }
    for (const auto& link : targets) {
      link->send(message);
      ++counters_.relayed;
    }
  }
  ++counters_.delivered;
  deliver_(message);
  return Status::Ok();
}

}  // namespace tern::net
