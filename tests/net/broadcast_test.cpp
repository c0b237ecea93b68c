#include "net/broadcast.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/hash.h"
#include "core/log.h"
#include "core/rng.h"

namespace tern::net {
namespace {

constexpr uint64_t kNow = 1'800'000'000'000;  // unix ms, fixed: tests never read a clock
constexpr uint64_t kLifetime = 60'000;

RunId make_run(uint8_t fill) {
  RunId run;
  run.fill(fill);
  return run;
}

Identity make_identity(uint8_t n) {
  std::array<uint8_t, 32> seed;
  seed.fill(n);
  seed[0] = 0x5e;  // keep seeds distinct from any other test's all-n seeds
  return Identity::from_seed(seed);
}

Bytes text_body(const std::string& text) {
  return Bytes(text.begin(), text.end());
}

const RunId kRun = make_run(0xa1);

// ---------------------------------------------------------------------------
// A deterministic in-process network: links push onto one FIFO queue that the
// test pumps; every router records what it was delivered.

class Network;

class QueueLink : public BroadcastLink {
 public:
  QueueLink(Network* net, NodeId from, NodeId to) : net_(net), from_(from), to_(to) {}
  NodeId peer() const override { return to_; }
  void send(const SignedMessage& message) override;

 private:
  Network* net_;
  NodeId from_;
  NodeId to_;
};

class Network {
 public:
  struct Envelope {
    NodeId to;
    NodeId from;
    SignedMessage message;
  };

  // Adds a node; returns its index.
  size_t add_node(uint8_t seed, bool relay, BroadcastConfig config = {}) {
    config.relay = relay;
    const size_t index = routers_.size();
    delivered_.emplace_back();
    routers_.push_back(std::make_unique<BroadcastRouter>(
        make_identity(seed), kRun, config,
        [this, index](const SignedMessage& m) { delivered_[index].push_back(m); }));
    index_of_[routers_.back()->id()] = index;
    return index;
  }

  void connect(size_t a, size_t b) {
    routers_[a]->add_link(std::make_shared<QueueLink>(this, node(a), node(b)));
    routers_[b]->add_link(std::make_shared<QueueLink>(this, node(b), node(a)));
  }

  void enqueue(Envelope envelope) { queue_.push_back(std::move(envelope)); }

  // Delivers queued messages until none are left; returns the failures.
  std::vector<std::string> pump(uint64_t now_ms) {
    std::vector<std::string> errors;
    for (int steps = 0; !queue_.empty(); ++steps) {
      TERN_CHECK(steps < 1'000'000, "network does not settle");
      Envelope e = std::move(queue_.front());
      queue_.pop_front();
      Status s = routers_[index_of_.at(e.to)]->on_receive(e.from, e.message, now_ms);
      if (!s.ok()) errors.push_back(s.message());
    }
    return errors;
  }

  BroadcastRouter& router(size_t i) { return *routers_[i]; }
  NodeId node(size_t i) const { return routers_[i]->id(); }
  const std::vector<SignedMessage>& delivered(size_t i) const { return delivered_[i]; }
  size_t size() const { return routers_.size(); }

 private:
  std::vector<std::unique_ptr<BroadcastRouter>> routers_;
  std::vector<std::vector<SignedMessage>> delivered_;
  std::map<NodeId, size_t> index_of_;
  std::deque<Envelope> queue_;
};

void QueueLink::send(const SignedMessage& message) {
  net_->enqueue({to_, from_, message});
}

// Every node publishes one message; every node must then hold exactly the
// other nodes' messages, each once.
void expect_everyone_gets_everything_once(Network& net) {
  std::vector<SignedMessage> published;
  for (size_t i = 0; i < net.size(); ++i) {
    published.push_back(
        net.router(i).publish(7, text_body("hello from " + std::to_string(i)), kNow, kLifetime));
  }
  const std::vector<std::string> errors = net.pump(kNow + 5);
  EXPECT_TRUE(errors.empty()) << errors.front();
  for (size_t i = 0; i < net.size(); ++i) {
    std::vector<MessageId> got;
    for (const SignedMessage& m : net.delivered(i)) got.push_back(m.id());
    std::vector<MessageId> want;
    for (size_t j = 0; j < net.size(); ++j) {
      if (j != i) want.push_back(published[j].id());
    }
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    EXPECT_EQ(got, want) << "node " << i;
    EXPECT_EQ(net.router(i).counters().delivered, net.size() - 1);
    EXPECT_EQ(net.router(i).counters().rejected_total(), 0u);
  }
}

// Records what it is sent.
class RecordingLink : public BroadcastLink {
 public:
  explicit RecordingLink(NodeId peer) : peer_(peer) {}
  NodeId peer() const override { return peer_; }
  void send(const SignedMessage& message) override { sent.push_back(message); }
  std::vector<SignedMessage> sent;

 private:
  NodeId peer_;
};

// ---------------------------------------------------------------------------
// Encoding and signatures

TEST(BroadcastMessage, SigningBytesLayout) {
  const Identity alice = make_identity(1);
  const SignedMessage m = sign_message(alice, kRun, 0x0102030405060708ull, 0x1122334455667788ull,
                                       0xbeef, text_body("abc"));
  const Bytes b = m.signing_bytes();
  ASSERT_EQ(b.size(), 17u + 16 + 32 + 8 + 8 + 2 + 4 + 3);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 17), "tern-broadcast-v1");
  EXPECT_TRUE(std::equal(kRun.begin(), kRun.end(), b.begin() + 17));
  EXPECT_TRUE(std::equal(alice.id().key.begin(), alice.id().key.end(), b.begin() + 33));
  const Bytes tail(b.begin() + 65, b.end());
  const Bytes want_tail = {0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01,  // seq
                           0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11,  // expiry
                           0xef, 0xbe,                                      // kind
                           0x03, 0x00, 0x00, 0x00,                          // body length
                           'a',  'b',  'c'};
  EXPECT_EQ(tail, want_tail);
}

TEST(BroadcastMessage, IdIsHashOfSigningBytesOnly) {
  const SignedMessage m = sign_message(make_identity(1), kRun, 1, kNow, 3, text_body("x"));
  Blake2bHasher hasher;
  hasher.update(m.signing_bytes());
  EXPECT_EQ(m.id(), hasher.finish());
  SignedMessage other_signature = m;
  other_signature.signature[5] ^= 1;
  EXPECT_EQ(other_signature.id(), m.id());
  SignedMessage other_body = m;
  other_body.body.push_back('y');
  EXPECT_NE(other_body.id(), m.id());
}

TEST(BroadcastMessage, VerifyAcceptsSignedAndRejectsTampered) {
  const SignedMessage m = sign_message(make_identity(1), kRun, 4, kNow, 3, text_body("x"));
  EXPECT_TRUE(verify_message(m).ok());
  SignedMessage bad = m;
  bad.kind = 4;
  const Status s = verify_message(bad);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("bad signature"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("seq 4"), std::string::npos) << s.message();
  bad = m;
  bad.sender = make_identity(2).id();  // someone else's key
  EXPECT_FALSE(verify_message(bad).ok());
}

// ---------------------------------------------------------------------------
// Topologies

TEST(BroadcastTopology, StarThroughRelayingCoordinatorDeliversExactlyOnce) {
  Network net;
  const size_t coordinator = net.add_node(100, /*relay=*/true);
  for (uint8_t i = 0; i < 8; ++i) net.connect(coordinator, net.add_node(i + 1, false));
  expect_everyone_gets_everything_once(net);
  // Each member's message goes to the 7 other members, never back to its sender.
  EXPECT_EQ(net.router(coordinator).counters().relayed, 8u * 7);
  for (size_t i = 1; i < net.size(); ++i) EXPECT_EQ(net.router(i).counters().relayed, 0u);
}

TEST(BroadcastTopology, ThreeLevelTreeDeliversExactlyOnce) {
  Network net;
  const size_t root = net.add_node(100, true);
  uint8_t seed = 1;
  for (int m = 0; m < 3; ++m) {
    const size_t mid = net.add_node(seed++, true);
    net.connect(root, mid);
    for (int l = 0; l < 3; ++l) net.connect(mid, net.add_node(seed++, false));
  }
  ASSERT_EQ(net.size(), 13u);
  expect_everyone_gets_everything_once(net);
}

TEST(BroadcastTopology, RedundantPathDuplicateIsDroppedAndSenderNotEchoed) {
  // A triangle of relays: C hears A's message directly and via B.
  Network net;
  const size_t a = net.add_node(1, true);
  const size_t b = net.add_node(2, true);
  const size_t c = net.add_node(3, true);
  net.connect(a, b);
  net.connect(b, c);
  net.connect(a, c);
  net.router(a).publish(1, text_body("m"), kNow, kLifetime);
  LogCapture capture;
  const std::vector<std::string> errors = net.pump(kNow);
  // B and C each get a second copy from the other; none goes back to A.
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(net.delivered(b).size(), 1u);
  EXPECT_EQ(net.delivered(c).size(), 1u);
  EXPECT_TRUE(net.delivered(a).empty());
  EXPECT_EQ(net.router(a).counters().rejected_for(RejectReason::kOwnMessage), 0u);
  EXPECT_EQ(net.router(b).counters().rejected_for(RejectReason::kDuplicate), 1u);
  EXPECT_TRUE(capture.contains("duplicate"));
}

TEST(BroadcastRouter, RelayForwardsToOtherLinksOnlyAndMembersDoNotRelay) {
  const Identity sender = make_identity(1);
  const NodeId p1 = make_identity(2).id(), p2 = make_identity(3).id();
  for (bool relay : {true, false}) {
    BroadcastConfig config;
    config.relay = relay;
    int delivered = 0;
    BroadcastRouter router(make_identity(9), kRun, config,
                           [&](const SignedMessage&) { ++delivered; });
    auto to_sender = std::make_shared<RecordingLink>(sender.id());
    auto to_p1 = std::make_shared<RecordingLink>(p1);
    auto to_p2 = std::make_shared<RecordingLink>(p2);
    router.add_link(to_sender);
    router.add_link(to_p1);
    router.add_link(to_p2);
    const SignedMessage m = sign_message(sender, kRun, 1, kNow + kLifetime, 2, text_body("z"));
    ASSERT_TRUE(router.on_receive(p1, m, kNow).ok());
    EXPECT_EQ(delivered, 1);
    EXPECT_TRUE(to_sender->sent.empty());
    EXPECT_TRUE(to_p1->sent.empty());
    ASSERT_EQ(to_p2->sent.size(), relay ? 1u : 0u);
    if (relay) {
      EXPECT_EQ(to_p2->sent[0], m);
    }
  }
}

// A coordinator reacts to a member's message by publishing (e.g. a Status
// saying the round moved on); every other member must get the message before
// the reaction, or it acts on the reaction without having seen its cause.
TEST(BroadcastRouter, RelayForwardsBeforeTheHandlerCanReact) {
  const Identity sender = make_identity(1);
  const NodeId p2 = make_identity(3).id();
  BroadcastConfig config;
  config.relay = true;
  BroadcastRouter* self = nullptr;
  BroadcastRouter router(make_identity(9), kRun, config, [&](const SignedMessage&) {
    self->publish(7, text_body("reaction"), kNow, kLifetime);
  });
  self = &router;
  auto to_sender = std::make_shared<RecordingLink>(sender.id());
  auto to_p2 = std::make_shared<RecordingLink>(p2);
  router.add_link(to_sender);
  router.add_link(to_p2);
  const SignedMessage m = sign_message(sender, kRun, 1, kNow + kLifetime, 2, text_body("cause"));
  ASSERT_TRUE(router.on_receive(sender.id(), m, kNow).ok());
  ASSERT_EQ(to_p2->sent.size(), 2u);
  EXPECT_EQ(to_p2->sent[0], m);
  EXPECT_EQ(to_p2->sent[1].kind, 7);
}

TEST(BroadcastRouter, PublishUsesConsecutiveSeqsFromFirstSeq) {
  BroadcastConfig config;
  config.first_seq = 1000;
  BroadcastRouter router(make_identity(1), kRun, config, [](const SignedMessage&) {});
  auto link = std::make_shared<RecordingLink>(make_identity(2).id());
  router.add_link(link);
  router.publish(5, text_body("a"), kNow, kLifetime);
  router.publish(5, text_body("b"), kNow, kLifetime);
  ASSERT_EQ(link->sent.size(), 2u);
  EXPECT_EQ(link->sent[0].seq, 1000u);
  EXPECT_EQ(link->sent[1].seq, 1001u);
  EXPECT_EQ(link->sent[0].expiry_ms, kNow + kLifetime);
  EXPECT_EQ(link->sent[0].run_id, kRun);
  EXPECT_TRUE(verify_message(link->sent[1]).ok());
  EXPECT_EQ(router.counters().published, 2u);
}

// ---------------------------------------------------------------------------
// Acceptance rules (ReplayGuard)

struct GuardFixture {
  Identity alice = make_identity(1);

  SignedMessage msg(uint64_t seq, std::string body = "b", uint64_t expiry = kNow + kLifetime) {
    return sign_message(alice, kRun, seq, expiry, 1, text_body(body));
  }
};

RejectReason rejection(ReplayGuard& guard, const SignedMessage& m, uint64_t now = kNow) {
  RejectReason reason = RejectReason::kOwnMessage;
  const Status s = guard.accept(m, now, &reason);
  EXPECT_FALSE(s.ok()) << "accepted seq " << m.seq;
  return reason;
}

TEST(BroadcastGuard, ReorderingWithinWindowIsAcceptedExactlyOnce) {
  GuardFixture f;
  ReplayGuardLimits limits;
  limits.window = 64;
  ReplayGuard guard(kRun, limits);
  const std::vector<uint64_t> order = {5, 3, 10, 1, 2, 9, 4, 8, 6, 7, 70, 12, 11, 69};
  for (uint64_t seq : order) {
    EXPECT_TRUE(guard.accept(f.msg(seq), kNow).ok()) << seq;
  }
  for (uint64_t seq : order) {
    EXPECT_EQ(rejection(guard, f.msg(seq)), RejectReason::kDuplicate) << seq;
  }
  // Highest is 70, window 64: seqs 7..70 are inside, 6 and below too old.
  EXPECT_TRUE(guard.accept(f.msg(13), kNow).ok());
  EXPECT_TRUE(guard.accept(f.msg(40), kNow).ok());
}

TEST(broadcast_net_reject, SeqBelowWindow) {
  GuardFixture f;
  ReplayGuardLimits limits;
  limits.window = 64;
  ReplayGuard guard(kRun, limits);
  ASSERT_TRUE(guard.accept(f.msg(100), kNow).ok());
  EXPECT_TRUE(guard.accept(f.msg(37), kNow).ok());  // 100 - 63: the window's bottom
  RejectReason reason{};
  const Status s = guard.accept(f.msg(36), kNow, &reason);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(reason, RejectReason::kTooOld);
  EXPECT_NE(s.message().find("seq 36"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("below the window"), std::string::npos) << s.message();
  EXPECT_EQ(rejection(guard, f.msg(1)), RejectReason::kTooOld);
  // A jump far ahead clears the whole window: 37 and 100 are now too old.
  ASSERT_TRUE(guard.accept(f.msg(1000), kNow).ok());
  EXPECT_EQ(rejection(guard, f.msg(100, "other")), RejectReason::kTooOld);
  EXPECT_TRUE(guard.accept(f.msg(999), kNow).ok());
}

TEST(broadcast_net_reject, WindowSlideForgetsBitsOfSeqsThatLeft) {
  // Seq 1 sets bit 1; after the window moves by small steps to 66 (window 64)
  // bit 1 belongs to seq 65, which was never seen and must be accepted.
  GuardFixture f;
  ReplayGuardLimits limits;
  limits.window = 64;
  ReplayGuard guard(kRun, limits);
  ASSERT_TRUE(guard.accept(f.msg(1), kNow).ok());
  ASSERT_TRUE(guard.accept(f.msg(60), kNow).ok());
  ASSERT_TRUE(guard.accept(f.msg(66), kNow).ok());
  EXPECT_TRUE(guard.accept(f.msg(65), kNow).ok());
  EXPECT_EQ(rejection(guard, f.msg(65)), RejectReason::kDuplicate);
  EXPECT_EQ(rejection(guard, f.msg(2)), RejectReason::kTooOld);
  EXPECT_TRUE(guard.accept(f.msg(3), kNow).ok());
}

TEST(broadcast_net_reject, ReplayedMessageIsLoggedAndRouterKeepsDelivering) {
  const Identity alice = make_identity(1);
  const NodeId link_peer = make_identity(3).id();
  std::vector<std::string> got;
  BroadcastRouter router(make_identity(2), kRun, {}, [&](const SignedMessage& m) {
    got.emplace_back(m.body.begin(), m.body.end());
  });
  const SignedMessage m1 = sign_message(alice, kRun, 1, kNow + kLifetime, 1, text_body("one"));
  const SignedMessage m2 = sign_message(alice, kRun, 2, kNow + kLifetime, 1, text_body("two"));
  ASSERT_TRUE(router.on_receive(link_peer, m1, kNow).ok());
  LogCapture capture;
  const Status replay = router.on_receive(link_peer, m1, kNow + 10);
  ASSERT_FALSE(replay.ok());
  EXPECT_NE(replay.message().find(alice.id().short_string()), std::string::npos);
  EXPECT_NE(replay.message().find("seq 1"), std::string::npos);
  ASSERT_EQ(capture.lines().size(), 1u);
  const std::string line = capture.lines()[0];
  EXPECT_NE(line.find("[warn] net:"), std::string::npos) << line;
  EXPECT_NE(line.find("duplicate"), std::string::npos) << line;
  EXPECT_NE(line.find(alice.id().short_string()), std::string::npos) << line;
  EXPECT_TRUE(router.on_receive(link_peer, m2, kNow + 20).ok());
  EXPECT_EQ(got, (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(router.counters().delivered, 2u);
  EXPECT_EQ(router.counters().rejected_for(RejectReason::kDuplicate), 1u);
}

TEST(broadcast_net_reject, SeqReusedWithOtherContentOrAfterIdEvicted) {
  GuardFixture f;
  ReplayGuardLimits limits;
  limits.max_recent_ids = 1;
  ReplayGuard guard(kRun, limits);
  const SignedMessage m1 = f.msg(1, "one");
  ASSERT_TRUE(guard.accept(m1, kNow).ok());
  // The sender signs different content under a seq it already used.
  RejectReason reason{};
  const Status s = guard.accept(f.msg(1, "equivocation"), kNow, &reason);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(reason, RejectReason::kSeqReused);
  EXPECT_NE(s.message().find("seq already seen"), std::string::npos) << s.message();
  // m1's id is evicted by the next message (cache of one); the window still stops it.
  ASSERT_TRUE(guard.accept(f.msg(2, "two"), kNow).ok());
  EXPECT_EQ(guard.remembered_ids(), 1u);
  EXPECT_EQ(rejection(guard, m1), RejectReason::kSeqReused);
}

TEST(broadcast_net_reject, MessageForAnotherRun) {
  GuardFixture f;
  ReplayGuard guard(kRun);
  const SignedMessage other =
      sign_message(f.alice, make_run(0xb2), 1, kNow + kLifetime, 1, text_body("x"));
  RejectReason reason{};
  const Status s = guard.accept(other, kNow, &reason);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(reason, RejectReason::kWrongRun);
  EXPECT_NE(s.message().find("message for run b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2, this node is in "
                             "run a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"),
            std::string::npos)
      << s.message();
  EXPECT_EQ(guard.tracked_senders(), 0u);
}

TEST(broadcast_net_reject, ExpiredAndFarFuture) {
  GuardFixture f;
  ReplayGuardLimits limits;
  limits.max_lifetime_ms = 30'000;
  ReplayGuard guard(kRun, limits);
  RejectReason reason{};
  Status s = guard.accept(f.msg(1, "b", kNow - 1), kNow, &reason);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(reason, RejectReason::kExpired);
  EXPECT_NE(s.message().find("expired"), std::string::npos) << s.message();
  s = guard.accept(f.msg(2, "b", kNow + 30'001), kNow, &reason);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(reason, RejectReason::kExpiryTooFar);
  EXPECT_NE(s.message().find("more than 30000 ms after now"), std::string::npos) << s.message();
  // Cannot overflow its way past the check.
  EXPECT_EQ(rejection(guard, f.msg(3, "b", UINT64_MAX)), RejectReason::kExpiryTooFar);
  EXPECT_EQ(guard.tracked_senders(), 0u);
  // Both bounds are inclusive.
  EXPECT_TRUE(guard.accept(f.msg(4, "b", kNow), kNow).ok());
  EXPECT_TRUE(guard.accept(f.msg(5, "b", kNow + 30'000), kNow).ok());
}

TEST(broadcast_net_reject, BodyTooLarge) {
  GuardFixture f;
  ReplayGuardLimits limits;
  limits.max_body_bytes = 8;
  ReplayGuard guard(kRun, limits);
  RejectReason reason{};
  const Status s = guard.accept(f.msg(1, "123456789"), kNow, &reason);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(reason, RejectReason::kBodyTooLarge);
  EXPECT_NE(s.message().find("body of 9 bytes exceeds the limit 8"), std::string::npos)
      << s.message();
  EXPECT_TRUE(guard.accept(f.msg(2, "12345678"), kNow).ok());
}

TEST(broadcast_net_reject, TamperedFieldsFailTheSignature) {
  GuardFixture f;
  ReplayGuard guard(kRun);
  std::vector<SignedMessage> tampered;
  SignedMessage m = f.msg(10, "payload");
  m.body[0] ^= 1;
  tampered.push_back(m);
  m = f.msg(11, "payload");
  m.seq = 12;
  tampered.push_back(m);
  m = f.msg(13, "payload");
  m.kind = 2;
  tampered.push_back(m);
  m = f.msg(14, "payload");
  m.signature[63] ^= 0x10;
  tampered.push_back(m);
  m = f.msg(15, "payload");
  m.expiry_ms -= 1;
  tampered.push_back(m);
  m = f.msg(16, "payload");
  m.sender = make_identity(2).id();
  tampered.push_back(m);
  for (const SignedMessage& t : tampered) {
    RejectReason reason{};
    const Status s = guard.accept(t, kNow, &reason);
    ASSERT_FALSE(s.ok()) << "seq " << t.seq;
    EXPECT_EQ(reason, RejectReason::kBadSignature) << s.message();
    EXPECT_NE(s.message().find("bad signature"), std::string::npos) << s.message();
  }
  // Nothing was recorded: the genuine messages are still accepted.
  EXPECT_EQ(guard.tracked_senders(), 0u);
  EXPECT_EQ(guard.remembered_ids(), 0u);
  for (uint64_t seq = 10; seq <= 16; ++seq) {
    EXPECT_TRUE(guard.accept(f.msg(seq, "payload"), kNow).ok()) << seq;
  }
}

TEST(broadcast_net_reject, SenderNotOnAllowlist) {
  GuardFixture f;
  const Identity bob = make_identity(2);
  ReplayGuard guard(kRun);
  guard.set_members({bob.id()});
  RejectReason reason{};
  const Status s = guard.accept(f.msg(1), kNow, &reason);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(reason, RejectReason::kUnknownSender);
  EXPECT_NE(s.message().find("not a member"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find(f.alice.id().to_string()), std::string::npos) << s.message();
  EXPECT_TRUE(guard.accept(sign_message(bob, kRun, 1, kNow + 1, 1, text_body("hi")), kNow).ok());
  guard.clear_members();
  EXPECT_TRUE(guard.accept(f.msg(1), kNow).ok());
}

TEST(broadcast_net_reject, SenderCapAndExpireFreesState) {
  ReplayGuardLimits limits;
  limits.max_senders = 2;
  ReplayGuard guard(kRun, limits);
  const Identity a = make_identity(1), b = make_identity(2), c = make_identity(3);
  ASSERT_TRUE(guard.accept(sign_message(a, kRun, 1, kNow + 100, 1, {}), kNow).ok());
  ASSERT_TRUE(guard.accept(sign_message(b, kRun, 1, kNow + 200, 1, {}), kNow).ok());
  const SignedMessage from_c = sign_message(c, kRun, 1, kNow + 1000, 1, {});
  RejectReason reason{};
  Status s = guard.accept(from_c, kNow, &reason);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(reason, RejectReason::kTooManySenders);
  EXPECT_NE(s.message().find("cap 2"), std::string::npos) << s.message();
  // Known senders are still served while full.
  EXPECT_TRUE(guard.accept(sign_message(a, kRun, 2, kNow + 100, 1, {}), kNow).ok());

  EXPECT_EQ(guard.expire(kNow + 100), 0u);  // a's messages expire after +100, not at it
  EXPECT_EQ(guard.tracked_senders(), 2u);
  EXPECT_EQ(guard.expire(kNow + 101), 1u);  // a is gone, b (until +200) stays
  EXPECT_EQ(guard.tracked_senders(), 1u);
  EXPECT_EQ(guard.remembered_ids(), 1u);
  EXPECT_TRUE(guard.accept(from_c, kNow + 101).ok());
  EXPECT_EQ(guard.expire(kNow + 5000), 2u);
  EXPECT_EQ(guard.tracked_senders(), 0u);
  EXPECT_EQ(guard.remembered_ids(), 0u);
}

TEST(broadcast_net_reject, OwnMessageComingBack) {
  const Identity self = make_identity(1);
  int delivered = 0;
  BroadcastRouter router(self, kRun, {}, [&](const SignedMessage&) { ++delivered; });
  auto link = std::make_shared<RecordingLink>(make_identity(2).id());
  router.add_link(link);
  const SignedMessage mine = router.publish(1, text_body("me"), kNow, kLifetime);
  LogCapture capture;
  const Status s = router.on_receive(link->peer(), mine, kNow);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("signed by this node"), std::string::npos) << s.message();
  EXPECT_TRUE(capture.contains("own_message"));
  EXPECT_EQ(delivered, 0);
  EXPECT_EQ(router.counters().rejected_for(RejectReason::kOwnMessage), 1u);
  EXPECT_EQ(router.guard().tracked_senders(), 0u);
}

TEST(broadcast_net_reject, EveryRouterRejectionIsLoggedAndCounted) {
  const Identity alice = make_identity(1);
  const NodeId link_peer = make_identity(3).id();
  BroadcastRouter router(make_identity(2), kRun, {}, [](const SignedMessage&) {});
  LogCapture capture;
  SignedMessage bad = sign_message(alice, kRun, 7, kNow + kLifetime, 1, text_body("x"));
  bad.body[0] = 'y';
  ASSERT_FALSE(router.on_receive(link_peer, bad, kNow).ok());
  const SignedMessage expired = sign_message(alice, kRun, 8, kNow - 1, 1, text_body("x"));
  ASSERT_FALSE(router.on_receive(link_peer, expired, kNow).ok());
  ASSERT_EQ(capture.lines().size(), 2u);
  EXPECT_NE(capture.lines()[0].find("bad_signature"), std::string::npos) << capture.lines()[0];
  EXPECT_NE(capture.lines()[0].find(link_peer.short_string()), std::string::npos);
  EXPECT_NE(capture.lines()[1].find("expired"), std::string::npos) << capture.lines()[1];
  EXPECT_EQ(router.counters().rejected_for(RejectReason::kBadSignature), 1u);
  EXPECT_EQ(router.counters().rejected_for(RejectReason::kExpired), 1u);
  EXPECT_EQ(router.counters().rejected_total(), 2u);
  EXPECT_EQ(router.counters().delivered, 0u);
}

TEST(BroadcastGuard, ReasonNamesAreDistinct) {
  std::vector<std::string> names;
  for (size_t i = 0; i < kRejectReasonCount; ++i) {
    names.emplace_back(reject_reason_name(static_cast<RejectReason>(i)));
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(std::unique(names.begin(), names.end()), names.end());
}

// ---------------------------------------------------------------------------
// Determinism: the same input sequence gives the same decisions.

TEST(BroadcastDeterminism, TwoRoutersMakeTheSameDecisions) {
  std::vector<Identity> senders;
  for (uint8_t i = 1; i <= 4; ++i) senders.push_back(make_identity(i));
  ReplayGuardLimits limits;
  limits.window = 64;
  limits.max_senders = 3;
  limits.max_recent_ids = 50;
  limits.max_lifetime_ms = 5'000;

  // A mixed stream: fresh, duplicated, reordered, old, expired, tampered and
  // foreign-run messages, with time moving forward.
  struct Arrival {
    SignedMessage message;
    uint64_t now_ms;
  };
  std::vector<Arrival> stream;
  std::vector<SignedMessage> history;
  std::vector<uint64_t> next_seq(senders.size(), 1);
  Rng rng(2024);
  uint64_t now = kNow;
  for (int i = 0; i < 600; ++i) {
    now += rng.below(40);
    const uint64_t choice = rng.below(10);
    const size_t s = rng.below(senders.size());
    if (choice < 2 && !history.empty()) {
      stream.push_back({history[rng.below(history.size())], now});  // replay
      continue;
    }
    uint64_t seq = next_seq[s] + rng.below(5);  // gaps, later filled or not
    next_seq[s] = seq + 1;
    if (choice == 2) seq = seq > 80 ? seq - 80 : 1;  // likely below the window
    const uint64_t expiry = now + rng.below(6'000) - 500;
    Bytes body = text_body(std::to_string(i));
    SignedMessage m = sign_message(senders[s], choice == 3 ? make_run(0xb2) : kRun, seq, expiry,
                                   static_cast<uint16_t>(rng.below(4)), std::move(body));
    if (choice == 4) m.body.push_back('!');
    history.push_back(m);
    stream.push_back({m, now});
  }

  auto run = [&](uint8_t self_seed) {
    std::vector<std::string> decisions;
    BroadcastConfig config;
    config.limits = limits;
    BroadcastRouter router(make_identity(self_seed), kRun, config, [&](const SignedMessage& m) {
      decisions.push_back("delivered " + std::to_string(m.seq));
    });
    for (size_t i = 0; i < stream.size(); ++i) {
      if (i % 50 == 0) router.expire(stream[i].now_ms);
      const Status s =
          router.on_receive(make_identity(99).id(), stream[i].message, stream[i].now_ms);
      decisions.push_back(s.ok() ? "ok" : s.message());
    }
    return std::make_pair(decisions, router.counters());
  };
  LogCapture quiet;
  const auto [decisions1, counters1] = run(50);
  const auto [decisions2, counters2] = run(51);
  EXPECT_EQ(decisions1, decisions2);
  EXPECT_EQ(counters1, counters2);
  // The stream exercises acceptance and the main rejection paths.
  EXPECT_GT(counters1.delivered, 100u);
  for (RejectReason r :
       {RejectReason::kDuplicate, RejectReason::kTooOld, RejectReason::kExpired,
        RejectReason::kBadSignature, RejectReason::kWrongRun, RejectReason::kTooManySenders}) {
    EXPECT_GT(counters1.rejected_for(r), 0u) << reject_reason_name(r);
  }
}

}  // namespace
}  // namespace tern::net
