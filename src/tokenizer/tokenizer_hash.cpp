#include "tokenizer/tokenizer_hash.h"

#include <bit>
#include <cstdint>
#include <string_view>

#include "core/hash.h"

namespace tern {
namespace {

// Feeds the canonical serialization documented in the header to a hasher.
class CanonicalWriter {
 public:
  void u8(uint8_t v) { hasher_.update(std::span<const uint8_t>(&v, 1)); }
  void u32(uint32_t v) {
    uint8_t b[4];
    for (int i = 0; i < 4; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    hasher_.update(std::span<const uint8_t>(b, 4));
  }
  void i32(int32_t v) { u32(static_cast<uint32_t>(v)); }
  void u64(uint64_t v) {
    uint8_t b[8];
    for (int i = 0; i < 8; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    hasher_.update(std::span<const uint8_t>(b, 8));
  }
  void str(std::string_view s) {
    u64(s.size());
    hasher_.update(s);
  }
  std::string finish() { return to_hex(hasher_.finish()); }

 private:
  Blake2bHasher hasher_;
};

}  // namespace

std::string tokenizer_hash(const Vocab& vocab) {
  CanonicalWriter w;
  w.str("tern.tokenizer.v1");
  w.str(vocab_model_name(vocab.model));
  w.str(vocab.pre);
  w.u64(vocab.tokens.size());
  for (const std::string& t : vocab.tokens) w.str(t);
  w.u64(vocab.scores.size());
  for (const float s : vocab.scores) w.u32(std::bit_cast<uint32_t>(s));
  w.u64(vocab.token_types.size());
  for (const TokenType t : vocab.token_types) w.i32(static_cast<int32_t>(t));
  w.u64(vocab.merges.size());
  for (const std::string& m : vocab.merges) w.str(m);
  for (const int32_t id : {vocab.bos_id, vocab.eos_id, vocab.unk_id, vocab.pad_id}) w.i32(id);
  for (const bool flag : {vocab.add_bos, vocab.add_eos, vocab.add_space_prefix}) {
    w.u8(flag ? 1 : 0);
  }
  return w.finish();
}

}  // namespace tern
