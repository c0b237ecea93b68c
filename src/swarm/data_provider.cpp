#include "swarm/data_provider.h"

#include <algorithm>
#include <string>
#include <utility>

#include <nlohmann/json.hpp>

#include "core/le_reader.h"
#include "core/le_writer.h"
#include "data/token_dataset.h"

namespace tern::swarm {
namespace {

using nlohmann::json;

constexpr uint8_t kGrantVersion = 1;
// A Status of a very large swarm still fits; a forged length stays bounded.
constexpr size_t kMaxStatusBodyBytes = 16u << 20;

Result<Blake2bDigest> digest_from_hex(const std::string& hex) {
  Blake2bDigest d{};
  if (hex.size() != 2 * d.size()) return Status::Error("is not 64 hex digits");
  for (size_t i = 0; i < d.size(); ++i) {
    int v = 0;
    for (int k = 0; k < 2; ++k) {
      const char c = hex[2 * i + static_cast<size_t>(k)];
      const int nibble = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (nibble < 0) return Status::Error("is not lowercase hex");
      v = v * 16 + nibble;
    }
    d[i] = static_cast<uint8_t>(v);
  }
  return d;
}

// Bytes a split's file must hold: tokens * width for token files, one byte
// per token for masks.
uint64_t expected_file_bytes(const ProviderManifest& m, const std::string& name) {
  const bool train = name.starts_with("train.");
  const auto tokens = static_cast<uint64_t>(train ? m.train_tokens : m.val_tokens);
  return name.ends_with(".tokens") ? tokens * static_cast<uint64_t>(m.token_bytes) : tokens;
}

int item_bytes(const ProviderManifest& m, const std::string& name) {
  return name.ends_with(".tokens") ? m.token_bytes : 1;
}

}  // namespace

std::string tokens_file(bool train) {
  return train ? "train.tokens" : "val.tokens";
}
std::string mask_file(bool train) {
  return train ? "train.mask" : "val.mask";
}

std::string provider_manifest_document(const ProviderManifest& m) {
  json files = json::object();
  for (const auto& [name, file] : m.files) {
    json chunks = json::array();
    for (const Blake2bDigest& d : file.chunks) chunks.push_back(to_hex(d));
    files[name] = {{"bytes", file.bytes}, {"chunks", std::move(chunks)}};
  }
  const json doc = {{"format", kProviderFormat},      {"vocab", m.vocab},
                    {"token_bytes", m.token_bytes},   {"tokenizer_hash", m.tokenizer_hash},
                    {"content_hash", m.content_hash}, {"has_loss_mask", m.has_loss_mask},
                    {"train_tokens", m.train_tokens}, {"val_tokens", m.val_tokens},
                    {"chunk_bytes", m.chunk_bytes},   {"files", std::move(files)}};
  return doc.dump();
}

Result<ProviderManifest> parse_provider_manifest(std::string_view document) {
  const json doc = json::parse(document, nullptr, /*allow_exceptions=*/false);
  const auto bad = [](const std::string& field, const std::string& problem) {
    return Status::Error("provider manifest: " + field + " " + problem);
  };
  if (!doc.is_object()) return bad("document", "is not a JSON object");
  const auto integer = [&](const char* key, int64_t lo, int64_t hi) -> Result<int64_t> {
    if (!doc.contains(key) || !doc[key].is_number_integer()) {
      return bad(key, "is missing or not an integer");
    }
    const int64_t v = doc[key].get<int64_t>();
    if (v < lo || v > hi) {
      return bad(key, "= " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " +
                          std::to_string(hi) + "]");
    }
    return v;
  };
  const auto text = [&](const char* key) -> Result<std::string> {
    if (!doc.contains(key) || !doc[key].is_string()) return bad(key, "is missing or not a string");
    return doc[key].get<std::string>();
  };
  TERN_ASSIGN_OR_RETURN(std::string format, text("format"));
  if (format != kProviderFormat) {
    return bad("format", "is '" + format + "' (expected " + std::string(kProviderFormat) + ")");
  }
  ProviderManifest m;
  TERN_ASSIGN_OR_RETURN(m.vocab, integer("vocab", 1, (int64_t{1} << 31) - 1));
  TERN_ASSIGN_OR_RETURN(const int64_t width, integer("token_bytes", 2, 4));
  if (width == 3) return bad("token_bytes", "= 3 (expected 2 or 4)");
  m.token_bytes = static_cast<int>(width);
  TERN_ASSIGN_OR_RETURN(m.tokenizer_hash, text("tokenizer_hash"));
  TERN_ASSIGN_OR_RETURN(m.content_hash, text("content_hash"));
  if (!doc.contains("has_loss_mask") || !doc["has_loss_mask"].is_boolean()) {
    return bad("has_loss_mask", "is missing or not a boolean");
  }
  m.has_loss_mask = doc["has_loss_mask"].get<bool>();
  constexpr int64_t kMaxTokens = int64_t{1} << 40;
  TERN_ASSIGN_OR_RETURN(m.train_tokens, integer("train_tokens", 0, kMaxTokens));
  TERN_ASSIGN_OR_RETURN(m.val_tokens, integer("val_tokens", 0, kMaxTokens));
  // Chunks are whole pages, so a reader can map and drop them page by page.
  TERN_ASSIGN_OR_RETURN(const int64_t chunk, integer("chunk_bytes", 4096, 16 << 20));
  if ((chunk & (chunk - 1)) != 0) {
    return bad("chunk_bytes", "= " + std::to_string(chunk) + " is not a power of two");
  }
  m.chunk_bytes = static_cast<uint32_t>(chunk);
  if (!doc.contains("files") || !doc["files"].is_object()) {
    return bad("files", "is missing or not an object");
  }
  std::vector<std::string> names = {tokens_file(true), tokens_file(false)};
  if (m.has_loss_mask) names.insert(names.end(), {mask_file(true), mask_file(false)});
  if (doc["files"].size() != names.size()) {
    return bad("files", "lists " + std::to_string(doc["files"].size()) + " files (expected " +
                            std::to_string(names.size()) + ")");
  }
  for (const std::string& name : names) {
    const std::string field = "files." + name;
    if (!doc["files"].contains(name) || !doc["files"][name].is_object()) {
      return bad(field, "is missing");
    }
    const json& f = doc["files"][name];
    if (!f.contains("bytes") || !f["bytes"].is_number_unsigned()) {
      return bad(field + ".bytes", "is missing or not an unsigned integer");
    }
    ProviderFile file;
    file.bytes = f["bytes"].get<uint64_t>();
    if (file.bytes != expected_file_bytes(m, name)) {
      return bad(field + ".bytes", "= " + std::to_string(file.bytes) + " does not match the " +
                                       "token count (expected " +
                                       std::to_string(expected_file_bytes(m, name)) + ")");
    }
    const uint64_t expected_chunks = (file.bytes + m.chunk_bytes - 1) / m.chunk_bytes;
    if (!f.contains("chunks") || !f["chunks"].is_array() || f["chunks"].size() != expected_chunks) {
      return bad(field + ".chunks",
                 "is missing or does not list " + std::to_string(expected_chunks) + " digests");
    }
    for (size_t i = 0; i < f["chunks"].size(); ++i) {
      const json& c = f["chunks"][i];
      Result<Blake2bDigest> d =
          c.is_string() ? digest_from_hex(c.get<std::string>()) : Status::Error("is not a string");
      if (!d.ok()) return bad(field + ".chunks[" + std::to_string(i) + "]", d.status().message());
      file.chunks.push_back(d.value());
    }
    m.files[name] = std::move(file);
  }
  return m;
}

std::string provider_manifest_hash(std::string_view document) {
  return blake2b_256_hex(document);
}

ProviderFile hash_provider_file(std::span<const uint8_t> bytes, uint32_t chunk_bytes) {
  ProviderFile f;
  f.bytes = bytes.size();
  for (size_t at = 0; at < bytes.size(); at += chunk_bytes) {
    Blake2bHasher h;
    h.update(bytes.subspan(at, std::min<size_t>(chunk_bytes, bytes.size() - at)));
    f.chunks.push_back(h.finish());
  }
  return f;
}

Rng swarm_batch_rng(uint64_t run_seed, uint64_t batch) {
  return Rng(derive_seed(run_seed, "swarm batch " + std::to_string(batch)));
}

std::vector<int64_t> batch_window_starts(const RunConfig& config, int64_t train_tokens,
                                         std::span<const BatchRange> batches) {
  std::vector<int64_t> starts;
  for (const BatchRange& range : batches) {
    for (uint64_t b = range.begin; b < range.end; ++b) {
      Rng rng = swarm_batch_rng(config.run.seed, b);
      for (uint32_t s = 0; s < config.batch.sequences_per_batch; ++s) {
        starts.push_back(draw_train_window(rng, train_tokens, config.data.seq_len));
      }
    }
  }
  return starts;
}

std::vector<uint64_t> chunks_of_windows(const ProviderManifest& manifest, const std::string& name,
                                        std::span<const int64_t> starts, int64_t window_tokens) {
  const auto width = static_cast<uint64_t>(item_bytes(manifest, name));
  std::vector<uint64_t> chunks;
  for (const int64_t start : starts) {
    const uint64_t first = static_cast<uint64_t>(start) * width / manifest.chunk_bytes;
    const uint64_t last =
        (static_cast<uint64_t>(start + window_tokens) * width - 1) / manifest.chunk_bytes;
    for (uint64_t c = first; c <= last; ++c) chunks.push_back(c);
  }
  std::sort(chunks.begin(), chunks.end());
  chunks.erase(std::unique(chunks.begin(), chunks.end()), chunks.end());
  return chunks;
}

std::vector<uint8_t> grant_signing_bytes(const net::SignedMessage& status,
                                         const net::NodeId& member) {
  LeWriter w;
  for (const char c : kGrantDomainTag) w.u8(static_cast<uint8_t>(c));
  w.bytes(status.id());
  w.bytes(member.key);
  return std::move(w.out());
}

std::vector<uint8_t> encode_grant_request(const net::SignedMessage& status,
                                          const net::Identity& member) {
  LeWriter w;
  w.u8(kGrantVersion);
  w.bytes(status.run_id);
  w.bytes(status.sender.key);
  w.u64(status.seq);
  w.u64(status.expiry_ms);
  w.u16(status.kind);
  w.byte_string(status.body);
  w.bytes(status.signature);
  w.bytes(member.id().key);
  w.bytes(member.sign(grant_signing_bytes(status, member.id())));
  return std::move(w.out());
}

Result<GrantRequest> decode_grant_request(std::span<const uint8_t> bytes) {
  LeReader r(bytes, "grant request");
  TERN_ASSIGN_OR_RETURN(const uint8_t version, r.u8("version"));
  if (version != kGrantVersion) {
    return r.error("version", 0, "is " + std::to_string(version) + " (expected 1)");
  }
  GrantRequest g;
  TERN_ASSIGN_OR_RETURN(g.status.run_id, r.fixed<16>("run_id"));
  TERN_ASSIGN_OR_RETURN(g.status.sender.key, r.bytes32("coordinator"));
  TERN_ASSIGN_OR_RETURN(g.status.seq, r.u64("seq"));
  TERN_ASSIGN_OR_RETURN(g.status.expiry_ms, r.u64("expiry_ms"));
  TERN_ASSIGN_OR_RETURN(g.status.kind, r.u16("kind"));
  TERN_ASSIGN_OR_RETURN(g.status.body, r.byte_string("status body", kMaxStatusBodyBytes));
  TERN_ASSIGN_OR_RETURN(g.status.signature, r.fixed<64>("status signature"));
  TERN_ASSIGN_OR_RETURN(g.member.key, r.bytes32("member"));
  TERN_ASSIGN_OR_RETURN(g.member_signature, r.fixed<64>("member signature"));
  TERN_RETURN_IF_ERROR(r.finish());
  return g;
}

Result<GrantedBatches> check_grant_request(const GrantRequest& g, const RunConfig& config,
                                           const net::NodeId& coordinator, uint64_t now_ms) {
  if (g.status.run_id != config.run.id) {
    return Status::Error("grant: the status is of run " + run_id_hex(g.status.run_id) +
                         ", not this provider's run " + run_id_hex(config.run.id));
  }
  if (g.status.sender != coordinator) {
    return Status::Error("grant: the status is signed by " + g.status.sender.short_string() +
                         ", not the run's coordinator " + coordinator.short_string());
  }
  if (g.status.kind != static_cast<uint16_t>(SwarmKind::kStatus)) {
    return Status::Error("grant: message kind " + std::to_string(g.status.kind) +
                         " is not a Status");
  }
  TERN_RETURN_IF_ERROR(net::verify_message(g.status).with_context("grant: status"));
  if (g.status.expiry_ms < now_ms) {
    return Status::Error("grant: the status expired at " + std::to_string(g.status.expiry_ms) +
                         " ms (now " + std::to_string(now_ms) + ")");
  }
  if (!net::verify_signature(g.member, grant_signing_bytes(g.status, g.member),
                             g.member_signature)) {
    return Status::Error("grant: bad signature of member " + g.member.short_string());
  }
  TERN_ASSIGN_OR_RETURN(const StatusMessage st, decode_status(g.status.body));
  if (st.config_hash != config_hash(config)) {
    return Status::Error("grant: the status is of another run config (config hash differs)");
  }
  if (!st.in_round) return Status::Error("grant: the status is not of a round");
  GrantedBatches granted;
  granted.round = st.round;
  Result<RoundPlan> plan =
      plan_from_status(st, config.run.seed, config.membership.witnesses_per_round);
  if (!plan.ok()) return plan.status().with_context("grant");
  const auto add_member_batches = [&](const RoundPlan& p) {
    for (const MemberAssignment& a : p.assignment) {
      if (a.member == g.member) {
        granted.batches.insert(granted.batches.end(), a.batches.begin(), a.batches.end());
      }
    }
  };
  add_member_batches(plan.value());
  if (const std::optional<RoundPlan> next = predict_next_plan(
          st, config.run.seed, config.batch.batches_per_round,
          config.membership.witnesses_per_round, config.membership.rounds_per_epoch)) {
    add_member_batches(*next);
  }
  if (granted.batches.empty()) {
    return Status::Error("grant: member " + g.member.short_string() +
                         " is assigned no batch in round " + std::to_string(st.round));
  }
  return granted;
}

}  // namespace tern::swarm
