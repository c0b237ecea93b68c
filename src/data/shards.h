// Token shards: the on-disk form of a prepared dataset (`tern data prepare`).
//
// A shard directory holds a train and a validation split, each as a stream of
// little-endian uint16 tokens (uint32 when the vocabulary exceeds 65,536), a
// document index and, for chat data, a loss mask; a manifest (JSON) records the
// tokenizer hash, counts and a content hash of every file. Files are read by
// mmap. The exact layout is documented in docs/formats.md ("Token shards").
//
// Shards are untrusted input: ShardSet::open checks the manifest, file sizes,
// hashes, index monotonicity and token range, and returns a Status naming the
// file and the offset or field at fault.
// A ShardSet is immutable after open: concurrent reads are safe.
//
// write_shard_set writes a directory atomically: everything goes into a
// temporary sibling directory (fsynced), which is then renamed into place; an
// existing shard directory is replaced only after complete success, so on any
// error whatever was there before is left untouched. Not synchronized: one
// writer per output directory.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "data/token_dataset.h"

namespace tern {

struct ShardManifest {
  int64_t format_version = 1;
  std::string tokenizer_hash;  // tokenizer_hash() of the vocabulary used
  int64_t vocab = 0;
  int token_bytes = 2;  // 2 or 4
  int64_t train_tokens = 0, val_tokens = 0;
  int64_t train_documents = 0, val_documents = 0;
  bool has_loss_mask = false;
  std::string content_hash;          // over every data file, in a fixed order
  std::vector<std::string> sources;  // input files, as given to `tern data prepare`
};

class ShardSet {
 public:
  static Result<ShardSet> open(const std::string& dir);

  const ShardManifest& manifest() const { return manifest_; }
  // The token streams (borrowed from the mappings) as a training dataset.
  const TokenDataset& dataset() const { return dataset_; }

 private:
  ShardManifest manifest_;
  TokenDataset dataset_;
};

// One split as written: documents packed back to back.
struct ShardSplit {
  std::vector<int32_t> tokens;            // each in [0, vocab)
  std::vector<uint8_t> mask;              // empty (no loss mask) or one 0/1 byte per token
  std::vector<uint64_t> document_starts;  // offset of each document's first token, ascending
};

struct ShardContents {
  int64_t vocab = 0;  // 1 ≤ vocab ≤ 2^31 − 1; > 65,536 selects 4-byte tokens
  std::string tokenizer_hash;
  bool has_loss_mask = false;  // then both splits carry a mask
  ShardSplit train, val;
  std::vector<std::string> sources;
};

// Token width for a vocabulary size: 2 bytes up to 65,536 tokens, else 4.
int shard_token_bytes(int64_t vocab);

// Whether `dir` may be (re)written by write_shard_set: it does not exist yet, or
// is a directory that is empty or holds a manifest.json. Anything else (a file,
// a symlink, a directory of other things) is refused, so a mistyped -o never
// deletes unrelated data.
Status check_shard_output(const std::string& dir);

// Writes `contents` to `dir` (see above) and returns the manifest written. The
// contents must satisfy the comments above (CHECKed: they come from tern's own
// preparation code).
Result<ShardManifest> write_shard_set(const std::string& dir, const ShardContents& contents);

}  // namespace tern
