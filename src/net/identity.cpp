// Node identity: Ed25519 keys, node id text form, key files.
//
// Key file format (text, version 1), written with mode 0600:
//
//   tern-ed25519-key v1
//   seed <64 lowercase hex digits: the 32-byte Ed25519 seed>
//   id <the node id, "tern" + base32>
//
// The id line is redundant on purpose: load() recomputes it from the seed and
// refuses a file where the two disagree, which catches truncation and editing
// mistakes before a node joins the swarm under an unexpected name.
#include "net/identity.h"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/file_io.h"

namespace tern::net {
namespace {

constexpr std::string_view kBase32Alphabet = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::string_view kIdPrefix = "tern";
constexpr size_t kBase32Chars = (32 * 8 + 4) / 5;  // 52
constexpr std::string_view kKeyFileHeader = "tern-ed25519-key v1";
constexpr size_t kMaxKeyFileBytes = 4096;

void ensure_sodium() {
  static std::once_flag once;
  std::call_once(once, [] { TERN_CHECK(sodium_init() >= 0, "libsodium failed to initialize"); });
}

std::string base32(std::span<const uint8_t> bytes) {
  std::string out;
  uint32_t buffer = 0;
  int bits = 0;
  for (uint8_t byte : bytes) {
    buffer = (buffer << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      out += kBase32Alphabet[(buffer >> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) out += kBase32Alphabet[(buffer << (5 - bits)) & 31];
  return out;
}

std::string hex(std::span<const uint8_t> bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  for (uint8_t byte : bytes) {
    out += kDigits[byte >> 4];
    out += kDigits[byte & 15];
  }
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

std::string octal_mode(mode_t mode) {
  char text[8];
  std::snprintf(text, sizeof text, "%04o", static_cast<unsigned>(mode & 07777));
  return text;
}

}  // namespace

std::string NodeId::to_string() const {
  return std::string(kIdPrefix) + base32(key);
}

std::string NodeId::short_string() const {
  return to_string().substr(0, 12);
}

Result<NodeId> NodeId::parse(std::string_view text) {
  const std::string context =
      "parse node id '" + std::string(text.substr(0, 80)) + (text.size() > 80 ? "...'" : "'");
  if (!text.starts_with(kIdPrefix)) {
    return Status::Error(context + ": does not start with \"tern\"");
  }
  const std::string_view digits = text.substr(kIdPrefix.size());
  if (digits.size() != kBase32Chars) {
    return Status::Error(context + ": has " + std::to_string(text.size()) +
                         " characters, expected " +
                         std::to_string(kIdPrefix.size() + kBase32Chars));
  }
  NodeId id;
  uint32_t buffer = 0;
  int bits = 0;
  size_t out = 0;
  for (size_t i = 0; i < digits.size(); ++i) {
    const size_t value = kBase32Alphabet.find(digits[i]);
    if (value == std::string_view::npos) {
      return Status::Error(context + ": character '" + std::string(1, digits[i]) +
                           "' at position " + std::to_string(kIdPrefix.size() + i) +
                           " is not lowercase base32 (a-z, 2-7)");
    }
    buffer = (buffer << 5) | static_cast<uint32_t>(value);
    bits += 5;
    if (bits >= 8) {
      id.key[out++] = static_cast<uint8_t>(buffer >> (bits - 8));
      bits -= 8;
    }
  }
  // 52 characters carry 260 bits; the last 4 must be zero so that every key
  // has exactly one text form.
  if ((buffer & ((1u << bits) - 1)) != 0) {
    return Status::Error(context + ": last character has non-zero padding bits (not canonical)");
  }
  TERN_CHECK(out == id.key.size());
  return id;
}

Identity Identity::generate() {
  ensure_sodium();
  std::array<uint8_t, 32> seed;
  randombytes_buf(seed.data(), seed.size());
  Identity identity = from_seed(seed);
  sodium_memzero(seed.data(), seed.size());
  return identity;
}

Identity Identity::from_seed(std::span<const uint8_t, 32> seed) {
  ensure_sodium();
  Identity identity;
  TERN_CHECK(
      crypto_sign_seed_keypair(identity.id_.key.data(), identity.secret_.data(), seed.data()) == 0);
  // Conversion of a freshly derived key pair cannot fail; a failure is a bug.
  TERN_CHECK(crypto_sign_ed25519_pk_to_curve25519(identity.dh_public_.data(),
                                                  identity.id_.key.data()) == 0);
  TERN_CHECK(crypto_sign_ed25519_sk_to_curve25519(identity.dh_secret_.data(),
                                                  identity.secret_.data()) == 0);
  return identity;
}

Identity::Identity(const Identity&) = default;
Identity& Identity::operator=(const Identity&) = default;

Identity::~Identity() {
  sodium_memzero(secret_.data(), secret_.size());
  sodium_memzero(dh_secret_.data(), dh_secret_.size());
}

Ed25519Signature Identity::sign(std::span<const uint8_t> message) const {
  Ed25519Signature signature;
  TERN_CHECK(crypto_sign_detached(signature.data(), nullptr, message.data(), message.size(),
                                  secret_.data()) == 0);
  return signature;
}

bool verify_signature(const NodeId& signer, std::span<const uint8_t> message,
                      const Ed25519Signature& signature) {
  ensure_sodium();
  return crypto_sign_verify_detached(signature.data(), message.data(), message.size(),
                                     signer.key.data()) == 0;
}

Result<X25519Key> dh_public_of(const NodeId& node) {
  ensure_sodium();
  X25519Key out;
  if (crypto_sign_ed25519_pk_to_curve25519(out.data(), node.key.data()) != 0) {
    return Status::Error("derive X25519 key of node " + node.to_string() +
                         ": not a valid Ed25519 public key");
  }
  return out;
}

Status Identity::save(const std::string& path) const {
  const std::string context = "save key file '" + path + "'";
  // O_EXCL: never overwrite a key. Mode 0600 from the start: there is no moment
  // at which the file exists with wider permissions.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const int error = errno;
    if (error == EEXIST) {
      return Status::Error(context + ": file exists (refusing to overwrite a key)");
    }
    return Status::Error(context + ": open: " + std::strerror(error));
  }
  std::string text = std::string(kKeyFileHeader) + "\nseed " +
                     hex(std::span<const uint8_t>(secret_.data(), 32)) + "\nid " + id_.to_string() +
                     "\n";
  size_t written = 0;
  Status status = write_all(fd, text.data(), text.size(), written);
  sodium_memzero(text.data(), text.size());
  if (status.ok() && ::fsync(fd) != 0) {
    status = Status::Error(std::string("fsync: ") + std::strerror(errno));
  }
  if (::close(fd) != 0 && status.ok()) {
    status = Status::Error(std::string("close: ") + std::strerror(errno));
  }
  if (!status.ok()) {
    ::unlink(path.c_str());
    return status.with_context(context);
  }
  return Status::Ok();
}

Result<Identity> Identity::load(const std::string& path) {
  const std::string context = "load key file '" + path + "'";
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error(context + ": open: " + std::strerror(errno));
  struct stat info;
  if (::fstat(fd, &info) != 0) {
    const int error = errno;
    ::close(fd);
    return Status::Error(context + ": stat: " + std::strerror(error));
  }
  if (!S_ISREG(info.st_mode)) {
    ::close(fd);
    return Status::Error(context + ": not a regular file");
  }
  if ((info.st_mode & 077) != 0) {
    ::close(fd);
    return Status::Error(context + ": mode " + octal_mode(info.st_mode) +
                         " lets group or others access the secret key; run: chmod 600 " + path);
  }
  if (info.st_size > static_cast<off_t>(kMaxKeyFileBytes)) {
    ::close(fd);
    return Status::Error(context + ": " + std::to_string(info.st_size) +
                         " bytes, too large for a key file (max " +
                         std::to_string(kMaxKeyFileBytes) + ")");
  }
  std::array<char, kMaxKeyFileBytes + 1> buffer;
  size_t size = 0;
  while (size < buffer.size()) {
    const ssize_t n = ::read(fd, buffer.data() + size, buffer.size() - size);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      sodium_memzero(buffer.data(), buffer.size());
      return Status::Error(context + ": read: " + std::strerror(error));
    }
    if (n == 0) break;
    size += static_cast<size_t>(n);
  }
  ::close(fd);

  // Parse into locals, then wipe the buffer whatever the outcome.
  auto parse = [&]() -> Result<Identity> {
    if (size > kMaxKeyFileBytes) return Status::Error("too large for a key file");
    std::string_view text(buffer.data(), size);
    std::vector<std::string_view> lines;
    while (!text.empty()) {
      const size_t end = text.find('\n');
      lines.push_back(text.substr(0, end));
      text = end == std::string_view::npos ? std::string_view() : text.substr(end + 1);
    }
    if (lines.empty() || lines[0] != kKeyFileHeader) {
      return Status::Error("first line is not \"" + std::string(kKeyFileHeader) +
                           "\" (not a tern key file, or an unsupported version)");
    }
    if (lines.size() != 3) {
      return Status::Error("has " + std::to_string(lines.size()) +
                           " lines, expected 3 (header, seed, id); truncated?");
    }
    const std::string_view seed_line = lines[1];
    if (!seed_line.starts_with("seed ") || seed_line.size() != 5 + 64) {
      return Status::Error("line 2 must be \"seed \" followed by 64 hex digits");
    }
    std::array<uint8_t, 32> seed;
    for (size_t i = 0; i < 32; ++i) {
      const int high = hex_digit(seed_line[5 + 2 * i]);
      const int low = hex_digit(seed_line[5 + 2 * i + 1]);
      if (high < 0 || low < 0) {
        sodium_memzero(seed.data(), seed.size());
        return Status::Error("line 2: seed is not lowercase hex");
      }
      seed[i] = static_cast<uint8_t>(high * 16 + low);
    }
    Identity identity = from_seed(seed);
    sodium_memzero(seed.data(), seed.size());
    const std::string_view id_line = lines[2];
    if (!id_line.starts_with("id ")) return Status::Error("line 3 must be \"id \" and the node id");
    if (id_line.substr(3) != identity.id().to_string()) {
      return Status::Error("line 3: id '" + std::string(id_line.substr(3, 80)) +
                           "' does not match the seed (which gives " + identity.id().to_string() +
                           ")");
    }
    return identity;
  };
  Result<Identity> result = parse();
  sodium_memzero(buffer.data(), buffer.size());
  if (!result.ok()) return result.status().with_context(context);
  return result;
}

}  // namespace tern::net
