// Node identity: id text form, signatures, key files and their permissions.
#include "net/identity.h"

#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

namespace tern::net {
namespace {

std::array<uint8_t, 32> seed_of(uint8_t first) {
  std::array<uint8_t, 32> seed{};
  for (size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<uint8_t>(first + i);
  return seed;
}

class identity_key_file : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/tern_identity_test_XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    dir_ = pattern;
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string path(const std::string& name) const { return dir_ + "/" + name; }
  void write(const std::string& name, const std::string& text, mode_t mode = 0600) {
    std::ofstream(path(name)) << text;
    ASSERT_EQ(chmod(path(name).c_str(), mode), 0);
  }
  std::string dir_;
};

TEST(identity, FromSeedIsDeterministicAndDistinct) {
  const Identity a = Identity::from_seed(seed_of(1));
  const Identity b = Identity::from_seed(seed_of(1));
  const Identity c = Identity::from_seed(seed_of(2));
  EXPECT_EQ(a.id(), b.id());
  EXPECT_NE(a.id(), c.id());
  EXPECT_EQ(a.dh_public(), b.dh_public());
  EXPECT_NE(Identity::generate().id(), Identity::generate().id());
}

TEST(identity, IdTextRoundTrip) {
  const Identity identity = Identity::from_seed(seed_of(7));
  const std::string text = identity.id().to_string();
  EXPECT_EQ(text.size(), 56u);
  EXPECT_TRUE(text.starts_with("tern"));
  EXPECT_EQ(text.find_first_not_of("abcdefghijklmnopqrstuvwxyz234567"), std::string::npos);
  EXPECT_EQ(identity.id().short_string(), text.substr(0, 12));
  Result<NodeId> parsed = NodeId::parse(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().message();
  EXPECT_EQ(parsed.value(), identity.id());
}

TEST(identity, Base32MatchesRfc4648) {
  // Bytes "foobar" then zeros: RFC 4648 gives "MZXW6YTBOI" for "foobar".
  NodeId id;
  const std::string foobar = "foobar";
  std::copy(foobar.begin(), foobar.end(), id.key.begin());
  EXPECT_TRUE(id.to_string().starts_with("ternmzxw6ytboi"));
  NodeId ones;
  ones.key.fill(0xff);
  // 256 one bits: 51 full characters '7', then 1 bit + 4 zero padding bits = "q".
  EXPECT_EQ(ones.to_string(), "tern" + std::string(51, '7') + "q");
}

TEST(identity, ParseErrors) {
  const std::string good = Identity::from_seed(seed_of(3)).id().to_string();
  struct Case {
    std::string text;
    std::string message;
  };
  const std::vector<Case> cases = {
      {"", "does not start with"},
      {"node" + good.substr(4), "does not start with"},
      {good.substr(0, 55), "has 55 characters, expected 56"},
      {good + "a", "has 57 characters"},
      {good.substr(0, 10) + "1" + good.substr(11), "character '1' at position 10"},
      {good.substr(0, 10) + "A" + good.substr(11), "character 'A'"},
      {"tern" + std::string(51, '7') + "r", "padding bits"},
  };
  for (const Case& c : cases) {
    Result<NodeId> parsed = NodeId::parse(c.text);
    ASSERT_FALSE(parsed.ok()) << c.text;
    EXPECT_NE(parsed.status().message().find(c.message), std::string::npos)
        << parsed.status().message();
    EXPECT_NE(parsed.status().message().find("parse node id"), std::string::npos);
  }
}

TEST(identity, SignAndVerify) {
  const Identity identity = Identity::from_seed(seed_of(9));
  const std::string text = "a message";
  const std::span<const uint8_t> message(reinterpret_cast<const uint8_t*>(text.data()),
                                         text.size());
  Ed25519Signature signature = identity.sign(message);
  EXPECT_TRUE(verify_signature(identity.id(), message, signature));
  EXPECT_FALSE(verify_signature(Identity::from_seed(seed_of(10)).id(), message, signature));
  std::string altered = text;
  altered[0] ^= 1;
  EXPECT_FALSE(verify_signature(
      identity.id(),
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(altered.data()), altered.size()),
      signature));
  signature[5] ^= 0x10;
  EXPECT_FALSE(verify_signature(identity.id(), message, signature));
}

TEST(identity, DhKeyMatchesNodeId) {
  const Identity identity = Identity::from_seed(seed_of(11));
  Result<X25519Key> derived = dh_public_of(identity.id());
  ASSERT_TRUE(derived.ok());
  EXPECT_EQ(derived.value(), identity.dh_public());
  // X25519 public = base point times the derived secret.
  X25519Key check;
  ASSERT_EQ(crypto_scalarmult_curve25519_base(check.data(), identity.dh_secret().data()), 0);
  EXPECT_EQ(check, identity.dh_public());
}

TEST(identity, DhPublicOfInvalidPointFails) {
  NodeId bogus;
  bogus.key.fill(0);
  bogus.key[0] = 1;  // a small-order point: rejected by libsodium's conversion
  Result<X25519Key> derived = dh_public_of(bogus);
  ASSERT_FALSE(derived.ok());
  EXPECT_NE(derived.status().message().find(bogus.to_string()), std::string::npos);
}

TEST(identity, CopyKeepsKeys) {
  const Identity a = Identity::from_seed(seed_of(12));
  Identity b = Identity::from_seed(seed_of(13));
  b = a;
  const Identity c(a);
  EXPECT_EQ(b.id(), a.id());
  EXPECT_EQ(c.dh_secret(), a.dh_secret());
}

TEST_F(identity_key_file, SaveLoadRoundTripWithMode0600) {
  const Identity identity = Identity::from_seed(seed_of(20));
  ASSERT_TRUE(identity.save(path("node.key")).ok());
  struct stat info;
  ASSERT_EQ(stat(path("node.key").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 0777, 0600u);
  Result<Identity> loaded = Identity::load(path("node.key"));
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(loaded.value().id(), identity.id());
  EXPECT_EQ(loaded.value().dh_secret(), identity.dh_secret());
}

TEST_F(identity_key_file, RefusesOverwrite) {
  const Identity identity = Identity::from_seed(seed_of(21));
  ASSERT_TRUE(identity.save(path("node.key")).ok());
  Status again = Identity::from_seed(seed_of(22)).save(path("node.key"));
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.message().find("exists"), std::string::npos) << again.message();
  EXPECT_NE(again.message().find(path("node.key")), std::string::npos);
  // The original key is intact.
  EXPECT_EQ(Identity::load(path("node.key")).value().id(), identity.id());
}

TEST_F(identity_key_file, SaveIntoMissingDirectoryFails) {
  Status status = Identity::generate().save(path("no/such/dir/node.key"));
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("no/such/dir"), std::string::npos);
}

TEST_F(identity_key_file, RefusesLoosePermissions) {
  ASSERT_TRUE(Identity::from_seed(seed_of(23)).save(path("node.key")).ok());
  for (mode_t mode : {0644, 0640, 0604, 0660, 0601}) {
    ASSERT_EQ(chmod(path("node.key").c_str(), mode), 0);
    Result<Identity> loaded = Identity::load(path("node.key"));
    ASSERT_FALSE(loaded.ok());
    char octal[8];
    std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(mode));
    EXPECT_NE(loaded.status().message().find(std::string("mode ") + octal), std::string::npos)
        << loaded.status().message();
    EXPECT_NE(loaded.status().message().find("chmod 600 " + path("node.key")), std::string::npos);
  }
  ASSERT_EQ(chmod(path("node.key").c_str(), 0400), 0);
  EXPECT_TRUE(Identity::load(path("node.key")).ok());
}

TEST_F(identity_key_file, MalformedFilesFailWithClearErrors) {
  const Identity identity = Identity::from_seed(seed_of(24));
  ASSERT_TRUE(identity.save(path("good.key")).ok());
  std::string good;
  {
    std::ifstream in(path("good.key"));
    good.assign(std::istreambuf_iterator<char>(in), {});
  }
  const std::string other_id = Identity::from_seed(seed_of(25)).id().to_string();
  struct Case {
    std::string name, text, message;
  };
  const std::vector<Case> cases = {
      {"empty", "", "first line"},
      {"garbage", "\x01\x02garbage\xff", "first line"},
      {"version", "tern-ed25519-key v2\n", "unsupported version"},
      {"truncated", good.substr(0, good.size() / 2), "seed"},
      {"header only", "tern-ed25519-key v1\n", "truncated"},
      {"no id", good.substr(0, good.find("\nid ") + 1), "truncated"},
      {"bad hex", "tern-ed25519-key v1\nseed " + std::string(64, 'g') + "\nid x\n", "hex"},
      {"wrong id", good.substr(0, good.find("\nid ") + 4) + other_id + "\n", "does not match"},
      {"extra line", good + "more\n", "expected 3"},
      {"huge", std::string(10000, 'a'), "too large"},
  };
  for (const Case& c : cases) {
    write(c.name, c.text);
    Result<Identity> loaded = Identity::load(path(c.name));
    ASSERT_FALSE(loaded.ok()) << c.name;
    EXPECT_NE(loaded.status().message().find(c.message), std::string::npos)
        << c.name << ": " << loaded.status().message();
    EXPECT_NE(loaded.status().message().find(path(c.name)), std::string::npos);
  }
  Result<Identity> missing = Identity::load(path("missing.key"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing.key"), std::string::npos);
  Result<Identity> directory = Identity::load(dir_);
  ASSERT_FALSE(directory.ok());
}

}  // namespace
}  // namespace tern::net
