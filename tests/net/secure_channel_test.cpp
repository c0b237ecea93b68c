// SecureChannel over the in-process transport: XX and IK handshakes, identity
// checks, prologue separation, tampering, fragmentation and rekeying.
#include "net/secure_channel.h"

#include <gtest/gtest.h>

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>
#include <asio/use_awaitable.hpp>

#include "core/rng.h"
#include "net/memory_transport.h"
#include "net/net_test_support.h"

namespace tern::net {
namespace {

using ChannelResult = Result<std::unique_ptr<SecureChannel>>;

using testing::identity_from;
using testing::rethrow;

Bytes bytes_of(std::string_view text) {
  return Bytes(text.begin(), text.end());
}

Bytes pattern_bytes(size_t size, uint64_t seed) {
  Rng rng(seed);
  Bytes bytes(size);
  for (uint8_t& byte : bytes) byte = static_cast<uint8_t>(rng.next_u64());
  return bytes;
}

TransportLimits test_limits() {
  TransportLimits limits;  // a safety net against hangs, never reached when tests pass
  limits.read_timeout = Millis(10'000);
  limits.write_timeout = Millis(10'000);
  return limits;
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Flips one bit in the n-th frame it sends (0-based).
class TamperingConnection final : public Connection {
 public:
  TamperingConnection(std::unique_ptr<Connection> inner, int tamper_index)
      : inner_(std::move(inner)), tamper_index_(tamper_index) {}
  asio::awaitable<Status> send(std::span<const uint8_t> frame) override {
    Bytes copy(frame.begin(), frame.end());
    if (sent_++ == tamper_index_ && !copy.empty()) copy[copy.size() / 2] ^= 0x04;
    co_return co_await inner_->send(copy);
  }
  asio::awaitable<Result<Bytes>> receive() override { co_return co_await inner_->receive(); }
  void close() override { inner_->close(); }
  std::string peer_address() const override { return inner_->peer_address(); }

 private:
  std::unique_ptr<Connection> inner_;
  int tamper_index_;
  int sent_ = 0;
};

struct HandshakeSetup {
  Identity dialer = identity_from(1);
  Identity acceptor = identity_from(2);
  std::optional<NodeId> expected;
  Bytes dial_context = bytes_of("run-1");
  Bytes accept_context = bytes_of("run-1");
  SecureChannelOptions dial_options;
  SecureChannelOptions accept_options;
  int tamper_dialer_frame = -1;  // index of a dialer frame to corrupt
};

struct Channels {
  ChannelResult dialer = Status::Error("not run");
  ChannelResult acceptor = Status::Error("not run");
};

class noise_secure_channel : public ::testing::Test {
 protected:
  // A completed handshake whose sides rekey every `dial_interval` and
  // `accept_interval` messages.
  Channels handshake_with_rekey(uint64_t dial_interval, uint64_t accept_interval) {
    HandshakeSetup setup;
    setup.dial_options.rekey_interval = dial_interval;
    setup.accept_options.rekey_interval = accept_interval;
    return handshake(setup);
  }

  Channels handshake(const HandshakeSetup& setup) {
    auto [a, b] = network_.connection_pair(test_limits(), test_limits());
    std::unique_ptr<Connection> dial_end = std::move(a);
    if (setup.tamper_dialer_frame >= 0) {
      dial_end =
          std::make_unique<TamperingConnection>(std::move(dial_end), setup.tamper_dialer_frame);
    }
    Channels channels;
    asio::co_spawn(
        io_,
        [&, connection = std::move(dial_end)]() mutable -> asio::awaitable<void> {
          channels.dialer =
              co_await SecureChannel::dial(std::move(connection), setup.dialer, setup.expected,
                                           setup.dial_context, setup.dial_options);
        },
        rethrow);
    asio::co_spawn(
        io_,
        [&, connection = std::move(b)]() mutable -> asio::awaitable<void> {
          channels.acceptor = co_await SecureChannel::accept(
              std::move(connection), setup.acceptor, setup.accept_context, setup.accept_options);
        },
        rethrow);
    io_.run();
    io_.restart();
    return channels;
  }

  // Sends `messages` from one side while the other receives them all.
  void exchange(SecureChannel& from, SecureChannel& to, const std::vector<Bytes>& messages) {
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          for (const Bytes& message : messages) {
            Status sent = co_await from.send(message);
            EXPECT_TRUE(sent.ok()) << sent.message();
            if (!sent.ok()) co_return;
          }
        },
        rethrow);
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          for (const Bytes& message : messages) {
            Result<Bytes> received = co_await to.receive();
            EXPECT_TRUE(received.ok()) << received.status().message();
            if (!received.ok()) co_return;
            EXPECT_TRUE(received.value() == message) << "message of " << message.size() << " bytes";
          }
        },
        rethrow);
    io_.run();
    io_.restart();
  }

  Result<Bytes> receive_one(SecureChannel& channel) {
    Result<Bytes> out = Status::Error("not run");
    asio::co_spawn(
        io_, [&]() -> asio::awaitable<void> { out = co_await channel.receive(); }, rethrow);
    io_.run();
    io_.restart();
    return out;
  }

  Status send_one(SecureChannel& channel, const Bytes& message) {
    Status out = Status::Error("not run");
    asio::co_spawn(
        io_, [&]() -> asio::awaitable<void> { out = co_await channel.send(message); }, rethrow);
    io_.run();
    io_.restart();
    return out;
  }

  asio::io_context io_;
  MemoryNetwork network_{io_.get_executor()};
};

TEST_F(noise_secure_channel, XxHandshakeCarriesMessagesBothWays) {
  HandshakeSetup setup;
  Channels channels = handshake(setup);
  ASSERT_TRUE(channels.dialer.ok()) << channels.dialer.status().message();
  ASSERT_TRUE(channels.acceptor.ok()) << channels.acceptor.status().message();
  SecureChannel& dialer = *channels.dialer.value();
  SecureChannel& acceptor = *channels.acceptor.value();
  EXPECT_EQ(dialer.peer(), setup.acceptor.id());
  EXPECT_EQ(acceptor.peer(), setup.dialer.id());
  const std::vector<Bytes> messages = {bytes_of("hello"), Bytes(), pattern_bytes(65518, 1),
                                       pattern_bytes(65519, 2), pattern_bytes(5 << 20, 3)};
  exchange(dialer, acceptor, messages);
  exchange(acceptor, dialer, messages);
}

TEST_F(noise_secure_channel, IkHandshakeWithKnownPeer) {
  HandshakeSetup setup;
  setup.expected = setup.acceptor.id();
  Channels channels = handshake(setup);
  ASSERT_TRUE(channels.dialer.ok()) << channels.dialer.status().message();
  ASSERT_TRUE(channels.acceptor.ok()) << channels.acceptor.status().message();
  EXPECT_EQ(channels.dialer.value()->peer(), setup.acceptor.id());
  EXPECT_EQ(channels.acceptor.value()->peer(), setup.dialer.id());
  const std::vector<Bytes> messages = {bytes_of("ik"), pattern_bytes(3 << 20, 4)};
  exchange(*channels.dialer.value(), *channels.acceptor.value(), messages);
  exchange(*channels.acceptor.value(), *channels.dialer.value(), messages);
}

TEST_F(noise_secure_channel, WrongExpectedPeerNamesBothIds) {
  const Identity someone_else = identity_from(3);
  for (bool force_xx : {false, true}) {
    SCOPED_TRACE(force_xx ? "XX" : "IK");
    HandshakeSetup setup;
    setup.expected = someone_else.id();
    setup.dial_options.force_xx = force_xx;
    Channels channels = handshake(setup);
    ASSERT_FALSE(channels.dialer.ok());
    ASSERT_FALSE(channels.acceptor.ok());
    const std::string message = channels.dialer.status().message();
    EXPECT_TRUE(contains(message, someone_else.id().to_string())) << message;
    EXPECT_TRUE(contains(message, setup.acceptor.id().to_string())) << message;
    EXPECT_TRUE(contains(message, "mem:pair-")) << message;
    EXPECT_TRUE(contains(channels.acceptor.status().message(), "secure accept from mem:pair-"));
  }
}

TEST_F(noise_secure_channel, DifferentPrologueContextRejected) {
  for (bool ik : {false, true}) {
    SCOPED_TRACE(ik ? "IK" : "XX");
    HandshakeSetup setup;
    if (ik) setup.expected = setup.acceptor.id();
    setup.accept_context = bytes_of("run-2");
    Channels channels = handshake(setup);
    ASSERT_FALSE(channels.dialer.ok());
    ASSERT_FALSE(channels.acceptor.ok());
    // The side that first decrypts something under the mixed prologue fails
    // authentication: the acceptor for IK, the dialer (message 2) for XX.
    const std::string first_failure = (ik ? channels.acceptor : channels.dialer).status().message();
    EXPECT_TRUE(contains(first_failure, "authentication failed")) << first_failure;
    if (ik) {
      EXPECT_TRUE(contains(channels.dialer.status().message(), "prologue context"))
          << channels.dialer.status().message();
    }
  }
}

TEST_F(noise_secure_channel, TamperedHandshakeFramesRejected) {
  // XX frames from the dialer: 0 = message 1 (e in clear), 2... index 1 is
  // message 3 (encrypted static key and payload).
  for (int index : {0, 1}) {
    SCOPED_TRACE(index);
    HandshakeSetup setup;
    setup.tamper_dialer_frame = index;
    Channels channels = handshake(setup);
    EXPECT_FALSE(channels.dialer.ok() && channels.acceptor.ok());
    EXPECT_FALSE(channels.acceptor.ok());
  }
  HandshakeSetup ik;
  ik.expected = ik.acceptor.id();
  ik.tamper_dialer_frame = 0;
  Channels channels = handshake(ik);
  EXPECT_FALSE(channels.dialer.ok());
  EXPECT_FALSE(channels.acceptor.ok());
}

TEST_F(noise_secure_channel, TamperedTransportFrameRejectedAndChannelClosed) {
  HandshakeSetup setup;
  setup.expected = setup.acceptor.id();  // IK: the dialer sends 1 handshake frame
  setup.tamper_dialer_frame = 2;         // the second transport frame
  Channels channels = handshake(setup);
  ASSERT_TRUE(channels.dialer.ok() && channels.acceptor.ok());
  SecureChannel& dialer = *channels.dialer.value();
  SecureChannel& acceptor = *channels.acceptor.value();
  ASSERT_TRUE(send_one(dialer, bytes_of("first")).ok());
  ASSERT_TRUE(send_one(dialer, bytes_of("second")).ok());
  EXPECT_EQ(receive_one(acceptor).value(), bytes_of("first"));
  Result<Bytes> tampered = receive_one(acceptor);
  ASSERT_FALSE(tampered.ok());
  EXPECT_TRUE(contains(tampered.status().message(), "secure receive from mem:pair-"));
  EXPECT_TRUE(contains(tampered.status().message(), "authentication failed"))
      << tampered.status().message();
  EXPECT_TRUE(acceptor.closed());
  Result<Bytes> after = receive_one(acceptor);
  ASSERT_FALSE(after.ok());
  EXPECT_TRUE(contains(after.status().message(), "closed"));
  // The dialer sees the closed connection on its next send or receive.
  Result<Bytes> dialer_receive = receive_one(dialer);
  EXPECT_FALSE(dialer_receive.ok());
}

TEST_F(noise_secure_channel, RandomFirstFrameRejected) {
  Rng rng(99);
  for (int round = 0; round < 40; ++round) {
    auto [raw, b] = network_.connection_pair(test_limits(), test_limits());
    Bytes frame = pattern_bytes(rng.below(200), static_cast<uint64_t>(round));
    if (!frame.empty() && round % 3 != 2) frame[0] = static_cast<uint8_t>(1 + round % 3);
    ChannelResult accepted = Status::Error("not run");
    asio::co_spawn(
        io_,
        [&]() -> asio::awaitable<void> {
          Status sent = co_await raw->send(frame);
          EXPECT_TRUE(sent.ok());
        },
        rethrow);
    asio::co_spawn(
        io_,
        [&, connection = std::move(b)]() mutable -> asio::awaitable<void> {
          accepted = co_await SecureChannel::accept(std::move(connection), identity_from(2),
                                                    bytes_of("ctx"));
        },
        rethrow);
    io_.run();
    io_.restart();
    ASSERT_FALSE(accepted.ok()) << "round " << round;
    EXPECT_TRUE(contains(accepted.status().message(), "secure accept from"));
  }
  // And random bytes as the responder's answer to a dialer.
  auto [a, raw] = network_.connection_pair(test_limits(), test_limits());
  ChannelResult dialed = Status::Error("not run");
  asio::co_spawn(
      io_,
      [&, connection = std::move(a)]() mutable -> asio::awaitable<void> {
        dialed = co_await SecureChannel::dial(std::move(connection), identity_from(1), std::nullopt,
                                              bytes_of("ctx"));
      },
      rethrow);
  asio::co_spawn(
      io_,
      [&]() -> asio::awaitable<void> {
        Result<Bytes> first = co_await raw->receive();
        EXPECT_TRUE(first.ok());
        Bytes reply = pattern_bytes(120, 7);
        reply[0] = 1;  // looks like XX
        Status sent = co_await raw->send(reply);
        EXPECT_TRUE(sent.ok());
      },
      rethrow);
  io_.run();
  io_.restart();
  ASSERT_FALSE(dialed.ok());
  EXPECT_TRUE(contains(dialed.status().message(), "secure dial to mem:pair-"));
}

TEST_F(noise_secure_channel, RekeyEveryThreeMessages) {
  Channels channels = handshake_with_rekey(3, 3);
  ASSERT_TRUE(channels.dialer.ok() && channels.acceptor.ok());
  std::vector<Bytes> messages;
  for (int i = 0; i < 20; ++i) messages.push_back(bytes_of("message " + std::to_string(i)));
  messages.push_back(pattern_bytes(200'000, 5));  // 4 fragments across a rekey
  exchange(*channels.dialer.value(), *channels.acceptor.value(), messages);
  exchange(*channels.acceptor.value(), *channels.dialer.value(), messages);
}

TEST_F(noise_secure_channel, MismatchedRekeyIntervalFails) {
  // Proves the rekey really changes keys: sides that rekey at different points
  // stop understanding each other exactly there.
  Channels channels = handshake_with_rekey(3, 4);
  ASSERT_TRUE(channels.dialer.ok() && channels.acceptor.ok());
  SecureChannel& dialer = *channels.dialer.value();
  SecureChannel& acceptor = *channels.acceptor.value();
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(send_one(dialer, bytes_of("m")).ok());
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(receive_one(acceptor).ok()) << i;
  EXPECT_FALSE(receive_one(acceptor).ok());
}

TEST_F(noise_secure_channel, OversizeMessagesRejected) {
  HandshakeSetup setup;
  setup.dial_options.max_message_bytes = 300'000;
  setup.accept_options.max_message_bytes = 100'000;
  Channels channels = handshake(setup);
  ASSERT_TRUE(channels.dialer.ok() && channels.acceptor.ok());
  SecureChannel& dialer = *channels.dialer.value();
  SecureChannel& acceptor = *channels.acceptor.value();
  // Within the sender's limit, beyond the receiver's: the receiver refuses.
  ASSERT_TRUE(send_one(dialer, pattern_bytes(200'000, 6)).ok());
  Result<Bytes> received = receive_one(acceptor);
  ASSERT_FALSE(received.ok());
  EXPECT_TRUE(contains(received.status().message(), "exceeds max_message_bytes 100000"))
      << received.status().message();
  EXPECT_TRUE(acceptor.closed());
  // Beyond the sender's own limit: refused before anything is sent.
  Status too_big = send_one(dialer, pattern_bytes(300'001, 7));
  ASSERT_FALSE(too_big.ok());
  EXPECT_TRUE(contains(too_big.message(), "exceeds max_message_bytes 300000"));
  EXPECT_TRUE(contains(too_big.message(), "secure send to mem:pair-"));
  EXPECT_FALSE(send_one(dialer, bytes_of("after")).ok());
}

TEST_F(noise_secure_channel, ClosedPeerSurfacesAsError) {
  HandshakeSetup setup;
  Channels channels = handshake(setup);
  ASSERT_TRUE(channels.dialer.ok() && channels.acceptor.ok());
  channels.acceptor.value()->close();
  channels.acceptor.value()->close();  // idempotent
  Result<Bytes> received = receive_one(*channels.dialer.value());
  ASSERT_FALSE(received.ok());
  EXPECT_TRUE(contains(received.status().message(), "closed")) << received.status().message();
  EXPECT_TRUE(channels.dialer.value()->closed());
}

TEST_F(noise_secure_channel, InvalidExpectedIdFailsDial) {
  HandshakeSetup setup;
  NodeId bogus;
  bogus.key[0] = 1;  // small-order point: no X25519 key
  setup.expected = bogus;
  Channels channels = handshake(setup);
  ASSERT_FALSE(channels.dialer.ok());
  EXPECT_TRUE(contains(channels.dialer.status().message(), "not a valid Ed25519 public key"));
  EXPECT_FALSE(channels.acceptor.ok());
}

}  // namespace
}  // namespace tern::net
