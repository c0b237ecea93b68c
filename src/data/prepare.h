// Data preparation (`tern data prepare`): text, JSONL and chat JSONL files ->
// token shards (data/shards.h) for pretraining and fine-tuning.
//
// Inputs (all must be non-empty, NUL-free, valid UTF-8):
//  * text: documents are separated by blank lines (lines of only spaces, tabs,
//    CR); TextSplit::kLine makes every non-blank line a document and
//    kWholeFile the whole file. A document's text is its bytes from the start
//    of its first line to the end of its last line, line breaks inside kept.
//  * JSONL: one object per line with a string "text"; blank lines are skipped.
//  * chat JSONL: one object per line with "messages": an array of
//    {"role": "system" | "user" | "assistant", "content": string}.
//  InputFormat::kAuto picks by file: ".jsonl" files are chat when their first
//  non-blank line has "messages", else JSONL; any other file is text.
//
// Chat template (plain text, so it works with any vocabulary; `tern generate
// --chat` renders prompts with the same strings): each message becomes
//   "### System:\n" content "\n"   |   "### User:\n" content "\n"
//   |   "### Assistant:\n" content "\n"
// in order. Every header, content and "\n" is tokenized on its own and the ids
// concatenated (encode_chat), so mask boundaries fall exactly on content.
//
// Each document is tokenized with encode(text, add_special=false,
// parse_special=false) and followed by one separator token: the vocabulary's
// EOS, else its BOS (neither is an error). Documents that tokenize to nothing
// are skipped. Documents are packed by concatenation into one stream per split.
//
// Loss mask (assistant_only, chat inputs only): 1 for the tokens of assistant
// contents, and for the separator of a conversation that ends with an assistant
// message; 0 for everything else. Without assistant_only no mask is written and
// every token is a target.
//
// Split: kept documents are numbered 0, 1, … in input order (files in the order
// given). Document i goes to validation iff u(seed, i) < val_fraction, where
// u = (first 8 bytes, little-endian, of BLAKE2b-256("tern.split" ‖ u64le seed ‖
// u64le i)) >> 11, times 2^-53. With ≥ 2 documents each split gets at least one:
// if none went to validation, the document with the smallest u does; if all
// did, the one with the largest u goes to training (lowest index on ties). A
// single document goes to training.
//
// Documents are tokenized in parallel on default_pool() (core/thread_pool.h);
// the output does not depend on the thread count. prepare_shards uses that pool,
// so call it from one thread at a time; the other functions are reentrant.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "data/shards.h"
#include "tokenizer/tokenizer.h"

namespace tern {

enum class InputFormat { kAuto, kText, kJsonl, kChat };
enum class TextSplit { kBlankLine, kLine, kWholeFile };

enum class ChatRole { kSystem, kUser, kAssistant };

struct ChatMessage {
  ChatRole role;
  std::string content;
};

// "### System:\n", "### User:\n" or "### Assistant:\n".
std::string_view chat_header(ChatRole role);

// A document's tokens and its per-token loss mask (1 = target).
struct EncodedDocument {
  std::vector<int32_t> tokens;
  std::vector<uint8_t> mask;
};

// Renders `messages` with the chat template, without a separator. mask[k] is 1
// exactly for tokens of assistant contents. For a generation prompt, encode the
// conversation so far, then append encode(chat_header(kAssistant), false, false).
EncodedDocument encode_chat(const Tokenizer& tokenizer, std::span<const ChatMessage> messages);

struct PrepareOptions {
  InputFormat format = InputFormat::kAuto;
  TextSplit text_split = TextSplit::kBlankLine;
  bool assistant_only = false;
  double val_fraction = 0.05;  // in (0, 1)
  uint64_t seed = 1;
};

// u(seed, index) of the split rule above, in [0, 1).
double split_draw(uint64_t seed, uint64_t index);

// Reads, validates and tokenizes `inputs`, then writes the shard directory
// `output` with write_shard_set (atomic; an existing shard directory there is
// replaced only on success). Any bad input gives one error naming the file and
// the line (JSONL) or byte offset and line (text) and writes nothing.
Result<ShardManifest> prepare_shards(const std::vector<std::string>& inputs,
                                     const Tokenizer& tokenizer, const std::string& output,
                                     const PrepareOptions& options);

}  // namespace tern
