#include "data/prepare.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <variant>

#include "core/hash.h"
#include "core/mapped_file.h"
#include "core/text.h"
#include "core/thread_pool.h"
#include "tokenizer/tokenizer_hash.h"
#include "tokenizer/unicode.h"

namespace tern {
namespace {

using nlohmann::json;

// Tokenizer::encode CHECKs its input is under 512 MiB; anything this large is
// refused as input instead.
constexpr size_t kMaxPieceBytes = size_t{256} << 20;

// One document before tokenization: a text (a view into the input mapping, or
// owned when it came out of JSON) or a conversation.
using RawDocument = std::variant<std::string_view, std::string, std::vector<ChatMessage>>;

// A validated input file: its bytes and where its lines start, for messages.
struct InputFile {
  std::string label;  // "prepare 'path'"
  std::shared_ptr<const MappedFile> mapping;
  std::string_view data;  // without a leading UTF-8 byte order mark
  size_t bom = 0;         // bytes skipped at the start (0 or 3)

  // 1-based line of byte `offset` of `data`.
  size_t line_of(size_t offset) const {
    return 1 + static_cast<size_t>(std::count(data.begin(), data.begin() + offset, '\n'));
  }
  Status at_offset(size_t offset, const std::string& what) const {
    return Status::Error(label + ": " + what + " at byte offset " + std::to_string(offset + bom) +
                         " (line " + std::to_string(line_of(offset)) + ")");
  }
  Status at_line(size_t line, const std::string& what) const {
    return Status::Error(label + " line " + std::to_string(line) + ": " + what);
  }
};

Result<InputFile> load_input(const std::string& path) {
  InputFile in;
  in.label = "prepare " + quote_for_message(path, 200);
  TERN_ASSIGN_OR_RETURN(in.mapping, MappedFile::open(path, in.label));
  const std::span<const uint8_t> bytes = in.mapping->bytes();
  in.data = std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  if (in.data.empty()) return Status::Error(in.label + ": empty file");
  if (in.data.starts_with("\xEF\xBB\xBF")) {
    in.data.remove_prefix(3);
    in.bom = 3;
  }
  // NUL first: a binary file should be called binary, not "invalid UTF-8".
  if (const void* nul = std::memchr(in.data.data(), 0, in.data.size())) {
    const auto offset = static_cast<size_t>(static_cast<const char*>(nul) - in.data.data());
    return in.at_offset(offset, "binary content (NUL byte)");
  }
  for (size_t i = 0; i < in.data.size();) {
    if (static_cast<unsigned char>(in.data[i]) < 0x80) {
      ++i;
      continue;
    }
    const size_t len = tokenizer_detail::valid_utf8_len(in.data, i);
    if (len == 0) return in.at_offset(i, "invalid UTF-8");
    i += len;
  }
  return in;
}

bool is_blank(std::string_view s) {
  return s.find_first_not_of(" \t\r\n") == std::string_view::npos;
}

// Calls fn(begin, content_end, line_number) for every line; content_end
// excludes the "\n" or "\r\n" terminator. Stops at the first error.
template <typename Fn>
Status for_each_line(std::string_view data, Fn fn) {
  size_t line = 1;
  for (size_t begin = 0; begin < data.size(); ++line) {
    size_t end = data.find('\n', begin);
    const size_t next = end == std::string_view::npos ? data.size() : end + 1;
    if (end == std::string_view::npos) end = data.size();
    if (end > begin && data[end - 1] == '\r') --end;
    TERN_RETURN_IF_ERROR(fn(begin, end, line));
    begin = next;
  }
  return Status::Ok();
}

Status check_piece_size(const InputFile& in, size_t offset, size_t size) {
  if (size < kMaxPieceBytes) return Status::Ok();
  return in.at_offset(offset, "document of " + std::to_string(size) + " bytes (limit " +
                                  std::to_string(kMaxPieceBytes) + ") starting");
}

Status parse_text(const InputFile& in, TextSplit split, std::vector<RawDocument>& docs) {
  const std::string_view data = in.data;
  auto add = [&](size_t begin, size_t end) -> Status {
    TERN_RETURN_IF_ERROR(check_piece_size(in, begin, end - begin));
    docs.emplace_back(data.substr(begin, end - begin));
    return Status::Ok();
  };
  if (split == TextSplit::kWholeFile) {
    return is_blank(data) ? Status::Ok() : add(0, data.size());
  }
  std::optional<std::pair<size_t, size_t>> current;  // document being collected
  TERN_RETURN_IF_ERROR(for_each_line(data, [&](size_t begin, size_t end, size_t) -> Status {
    if (is_blank(data.substr(begin, end - begin))) {
      if (current) TERN_RETURN_IF_ERROR(add(current->first, current->second));
      current.reset();
    } else if (split == TextSplit::kLine) {
      TERN_RETURN_IF_ERROR(add(begin, end));
    } else {
      current = std::pair{current ? current->first : begin, end};
    }
    return Status::Ok();
  }));
  if (current) TERN_RETURN_IF_ERROR(add(current->first, current->second));
  return Status::Ok();
}

// Parses one JSONL line into an object; the message says what is wrong.
Result<json> parse_json_line(const InputFile& in, std::string_view text, size_t line) {
  json value;
  try {
    value = json::parse(text);
  } catch (const json::exception& e) {
    return in.at_line(line, "not valid JSON (" + quote_for_message(e.what(), 160) + ")");
  }
  if (!value.is_object()) {
    return in.at_line(line, std::string("not a JSON object (a ") + value.type_name() + ")");
  }
  return value;
}

Result<std::string_view> string_field(const InputFile& in, const json& object,
                                      const std::string& key, const std::string& where,
                                      size_t line) {
  const auto it = object.find(key);
  if (it == object.end()) return in.at_line(line, where + "has no \"" + key + "\"");
  if (!it->is_string()) {
    return in.at_line(line, where + "\"" + key + "\" is a " + it->type_name() + ", not a string");
  }
  const std::string& s = it->get_ref<const std::string&>();
  if (s.size() >= kMaxPieceBytes) {
    return in.at_line(line, where + "\"" + key + "\" is " + std::to_string(s.size()) +
                                " bytes (limit " + std::to_string(kMaxPieceBytes) + ")");
  }
  return std::string_view(s);
}

Result<std::vector<ChatMessage>> parse_chat_object(const InputFile& in, const json& object,
                                                   size_t line) {
  const auto it = object.find("messages");
  if (it == object.end()) return in.at_line(line, "has no \"messages\"");
  if (!it->is_array()) {
    return in.at_line(line, std::string("\"messages\" is a ") + it->type_name() + ", not an array");
  }
  std::vector<ChatMessage> messages;
  for (size_t k = 0; k < it->size(); ++k) {
    const json& m = (*it)[k];
    const std::string where = "message " + std::to_string(k) + " ";
    if (!m.is_object()) {
      return in.at_line(line, where + "is a " + m.type_name() + ", not an object");
    }
    TERN_ASSIGN_OR_RETURN(const std::string_view role, string_field(in, m, "role", where, line));
    TERN_ASSIGN_OR_RETURN(const std::string_view content,
                          string_field(in, m, "content", where, line));
    ChatMessage message{ChatRole::kUser, std::string(content)};
    if (role == "system") {
      message.role = ChatRole::kSystem;
    } else if (role == "assistant") {
      message.role = ChatRole::kAssistant;
    } else if (role != "user") {
      return in.at_line(line, where + "has unknown role " + quote_for_message(role) +
                                  " (expected system, user or assistant)");
    }
    messages.push_back(std::move(message));
  }
  return messages;
}

Status parse_jsonl(const InputFile& in, bool chat, std::vector<RawDocument>& docs) {
  return for_each_line(in.data, [&](size_t begin, size_t end, size_t line) -> Status {
    const std::string_view text = in.data.substr(begin, end - begin);
    if (is_blank(text)) return Status::Ok();
    TERN_ASSIGN_OR_RETURN(const json object, parse_json_line(in, text, line));
    if (chat) {
      TERN_ASSIGN_OR_RETURN(std::vector<ChatMessage> messages, parse_chat_object(in, object, line));
      docs.emplace_back(std::move(messages));
    } else {
      TERN_ASSIGN_OR_RETURN(const std::string_view s, string_field(in, object, "text", "", line));
      docs.emplace_back(std::string(s));  // `object`, which s views, dies with this line
    }
    return Status::Ok();
  });
}

// The format of one input: the forced one, or detected from the name and the
// first non-blank line.
Result<InputFormat> detect_format(const InputFile& in, const std::string& path,
                                  InputFormat forced) {
  if (forced != InputFormat::kAuto) return forced;
  if (std::filesystem::path(path).extension() != ".jsonl") return InputFormat::kText;
  std::optional<InputFormat> found;
  TERN_RETURN_IF_ERROR(for_each_line(in.data, [&](size_t begin, size_t end, size_t line) -> Status {
    const std::string_view text = in.data.substr(begin, end - begin);
    if (found || is_blank(text)) return Status::Ok();
    TERN_ASSIGN_OR_RETURN(const json object, parse_json_line(in, text, line));
    found = object.contains("messages") ? InputFormat::kChat : InputFormat::kJsonl;
    return Status::Ok();
  }));
  // A .jsonl file of blank lines has no documents; the caller reports that.
  return found.value_or(InputFormat::kJsonl);
}

EncodedDocument encode_raw(const Tokenizer& tokenizer, const RawDocument& raw) {
  if (const auto* messages = std::get_if<std::vector<ChatMessage>>(&raw)) {
    return encode_chat(tokenizer, *messages);
  }
  const std::string_view text = std::holds_alternative<std::string>(raw)
                                    ? std::string_view(std::get<std::string>(raw))
                                    : std::get<std::string_view>(raw);
  EncodedDocument doc;
  doc.tokens = tokenizer.encode(text, /*add_special=*/false, /*parse_special=*/false);
  doc.mask.assign(doc.tokens.size(), 1);
  return doc;
}

void append_piece(const Tokenizer& tokenizer, std::string_view text, uint8_t mask,
                  EncodedDocument& doc) {
  if (text.empty()) return;
  const std::vector<int32_t> ids = tokenizer.encode(text, false, false);
  doc.tokens.insert(doc.tokens.end(), ids.begin(), ids.end());
  doc.mask.insert(doc.mask.end(), ids.size(), mask);
}

}  // namespace

std::string_view chat_header(ChatRole role) {
  switch (role) {
    case ChatRole::kSystem:
      return "### System:\n";
    case ChatRole::kUser:
      return "### User:\n";
    case ChatRole::kAssistant:
      return "### Assistant:\n";
  }
  TERN_CHECK(false, "bad ChatRole ", static_cast<int>(role));
  return {};
}

EncodedDocument encode_chat(const Tokenizer& tokenizer, std::span<const ChatMessage> messages) {
  EncodedDocument doc;
  for (const ChatMessage& m : messages) {
    append_piece(tokenizer, chat_header(m.role), 0, doc);
    append_piece(tokenizer, m.content, m.role == ChatRole::kAssistant ? 1 : 0, doc);
    append_piece(tokenizer, "\n", 0, doc);
  }
  return doc;
}

double split_draw(uint64_t seed, uint64_t index) {
  Blake2bHasher hasher;
  hasher.update("tern.split");
  uint8_t words[16];
  for (int i = 0; i < 8; ++i) {
    words[i] = static_cast<uint8_t>(seed >> (8 * i));
    words[8 + i] = static_cast<uint8_t>(index >> (8 * i));
  }
  hasher.update(std::span<const uint8_t>(words, 16));
  const Blake2bDigest digest = hasher.finish();
  uint64_t bits = 0;
  for (int i = 0; i < 8; ++i) bits |= uint64_t{digest[static_cast<size_t>(i)]} << (8 * i);
  return static_cast<double>(bits >> 11) * 0x1p-53;
}

Result<ShardManifest> prepare_shards(const std::vector<std::string>& inputs,
                                     const Tokenizer& tokenizer, const std::string& output,
                                     const PrepareOptions& options) {
  if (!(options.val_fraction > 0.0 && options.val_fraction < 1.0)) {
    return Status::Error("prepare: validation fraction " + std::to_string(options.val_fraction) +
                         " must be in (0, 1)");
  }
  if (inputs.empty()) return Status::Error("prepare: no input files");
  const Vocab& vocab = tokenizer.vocab();
  const int32_t separator = vocab.eos_id >= 0 ? vocab.eos_id : vocab.bos_id;
  if (separator < 0) {
    return Status::Error(
        "prepare: the vocabulary has neither an EOS nor a BOS token to separate documents");
  }
  TERN_RETURN_IF_ERROR(check_shard_output(output).with_context("prepare"));

  std::vector<EncodedDocument> docs;
  for (const std::string& path : inputs) {
    TERN_ASSIGN_OR_RETURN(const InputFile in, load_input(path));
    TERN_ASSIGN_OR_RETURN(const InputFormat format, detect_format(in, path, options.format));
    if (options.assistant_only && format != InputFormat::kChat) {
      return Status::Error(in.label +
                           ": not chat data; --assistant-only needs chat JSONL "
                           "({\"messages\": [...]} per line)");
    }
    std::vector<RawDocument> raw;
    TERN_RETURN_IF_ERROR(format == InputFormat::kText
                             ? parse_text(in, options.text_split, raw)
                             : parse_jsonl(in, format == InputFormat::kChat, raw));
    // Documents are independent, so encoding them in parallel gives the same bits.
    std::vector<EncodedDocument> encoded(raw.size());
    parallel_for(static_cast<int64_t>(raw.size()), [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        encoded[static_cast<size_t>(i)] = encode_raw(tokenizer, raw[static_cast<size_t>(i)]);
      }
    });
    size_t kept = 0;
    for (size_t i = 0; i < raw.size(); ++i) {
      EncodedDocument& doc = encoded[i];
      if (doc.tokens.empty()) continue;
      const auto* chat = std::get_if<std::vector<ChatMessage>>(&raw[i]);
      const bool ends_with_assistant = chat != nullptr && chat->back().role == ChatRole::kAssistant;
      doc.tokens.push_back(separator);
      doc.mask.push_back(chat == nullptr || ends_with_assistant ? 1 : 0);
      docs.push_back(std::move(doc));
      ++kept;
    }
    if (kept == 0) return Status::Error(in.label + ": no documents (nothing left to tokenize)");
  }

  // The split rule documented in the header.
  const size_t n = docs.size();
  std::vector<double> draws(n);
  std::vector<bool> to_val(n, false);
  size_t n_val = 0;
  for (size_t i = 0; i < n; ++i) {
    draws[i] = split_draw(options.seed, i);
    to_val[i] = n >= 2 && draws[i] < options.val_fraction;
    n_val += to_val[i] ? 1 : 0;
  }
  if (n >= 2 && n_val == 0) {
    to_val[static_cast<size_t>(std::min_element(draws.begin(), draws.end()) - draws.begin())] =
        true;
  } else if (n >= 2 && n_val == n) {
    to_val[static_cast<size_t>(std::max_element(draws.begin(), draws.end()) - draws.begin())] =
        false;
  }

  ShardContents contents;
  contents.vocab = vocab.size();
  contents.tokenizer_hash = tokenizer_hash(vocab);
  contents.has_loss_mask = options.assistant_only;
  contents.sources = inputs;
  for (size_t i = 0; i < n; ++i) {
    ShardSplit& split = to_val[i] ? contents.val : contents.train;
    split.document_starts.push_back(split.tokens.size());
    split.tokens.insert(split.tokens.end(), docs[i].tokens.begin(), docs[i].tokens.end());
    if (contents.has_loss_mask) {
      split.mask.insert(split.mask.end(), docs[i].mask.begin(), docs[i].mask.end());
    }
    docs[i] = EncodedDocument{};  // release as we go: the corpus is held once, not twice
  }
  return write_shard_set(output, contents);
}

}  // namespace tern
