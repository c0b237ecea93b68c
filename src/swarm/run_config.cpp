#include "swarm/run_config.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <set>
#include <utility>

#include "core/text.h"

// toml++ is used header-only and without exceptions, in this file only: parse
// errors come back as values, and no other translation unit depends on how the
// distribution built its shared library.
#define TOML_HEADER_ONLY 1
#define TOML_EXCEPTIONS 0
#define TOML_ENABLE_FORMATTERS 0
#include <toml++/toml.h>

namespace tern::swarm {
namespace {

constexpr uint64_t kMaxTimeoutMs = 86'400'000;  // one day: larger is a unit mistake
constexpr int64_t kMaxScheduleBatches = int64_t{1} << 40;
constexpr int64_t kMaxSeqLen = int64_t{1} << 20;
constexpr size_t kMaxConfigBytes = size_t{1} << 20;
constexpr std::string_view kHashDomain = "tern-run-config-v1\n";

const char* const kSections[] = {"run",   "model",  "data",       "optimizer",
                                 "batch", "timing", "membership", "allowlist"};

std::string format_double(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), v);
  TERN_CHECK(ec == std::errc(), "to_chars(double) failed");
  std::string s(buf, end);
  // TOML needs a '.' or an exponent to read the text back as a float.
  if (s.find_first_of(".en") == std::string::npos) s += ".0";
  return s;
}

const char* type_name(const toml::node& node) {
  switch (node.type()) {
    case toml::node_type::table:
      return "a table";
    case toml::node_type::array:
      return "an array";
    case toml::node_type::string:
      return "a string";
    case toml::node_type::integer:
      return "an integer";
    case toml::node_type::floating_point:
      return "a float";
    case toml::node_type::boolean:
      return "a boolean";
    case toml::node_type::date:
      return "a date";
    case toml::node_type::time:
      return "a time";
    case toml::node_type::date_time:
      return "a date-time";
    default:
      return "nothing";
  }
}

// A node's value as it might appear in the file, short and safe to print.
std::string render(const toml::node& node, int depth = 0) {
  if (auto s = node.as_string()) return quote_for_message(s->get(), 60);
  if (auto i = node.as_integer()) return std::to_string(i->get());
  if (auto f = node.as_floating_point()) return format_double(f->get());
  if (auto b = node.as_boolean()) return b->get() ? "true" : "false";
  if (auto a = node.as_array()) {
    if (depth > 0) return "[...]";
    std::string out = "[";
    for (size_t i = 0; i < a->size(); ++i) {
      if (out.size() > 100) {
        out += ", ...";
        break;
      }
      if (i > 0) out += ", ";
      out += render(*a->get(i), depth + 1);
    }
    return out + "]";
  }
  if (node.is_table()) return "{...}";
  return std::string("<") + (type_name(node) + 2) + ">";  // skip "a "
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] != b[j - 1] ? 1 : 0)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// The closest candidate within a small edit distance, or "".
std::string closest(std::string_view word, const std::vector<std::string>& candidates) {
  const size_t limit = std::min<size_t>(2, std::max<size_t>(1, word.size() / 3));
  std::string best;
  size_t best_distance = limit + 1;
  for (const auto& c : candidates) {
    const size_t d = edit_distance(word, c);
    if (d < best_distance) {
      best_distance = d;
      best = c;
    }
  }
  return best;
}

struct Issue {
  uint64_t line = 0;  // 0: no position (a missing key)
  uint64_t column = 0;
  std::string text;
};

// Collects the issues of one file; every message starts with the location.
class Issues {
 public:
  explicit Issues(std::string_view source) : source_(source) {}

  void add(const toml::source_region* where, const std::string& text) {
    Issue issue;
    if (where != nullptr && where->begin.line > 0) {
      issue.line = where->begin.line;
      issue.column = where->begin.column;
      issue.text = source_ + ":" + std::to_string(issue.line) + ":" + std::to_string(issue.column) +
                   ": " + text;
    } else {
      issue.text = source_ + ": " + text;
    }
    issues_.push_back(std::move(issue));
  }
  bool empty() const { return issues_.empty(); }

  // All issues in file order (positionless ones last), one per line.
  Status status() {
    std::stable_sort(issues_.begin(), issues_.end(), [](const Issue& a, const Issue& b) {
      const uint64_t la = a.line == 0 ? UINT64_MAX : a.line;
      const uint64_t lb = b.line == 0 ? UINT64_MAX : b.line;
      return la != lb ? la < lb : a.column < b.column;
    });
    std::string text;
    for (const auto& issue : issues_) {
      if (!text.empty()) text += "\n";
      text += issue.text;
    }
    return Status::Error(text);
  }

 private:
  std::string source_;
  std::vector<Issue> issues_;
};

// One [section]: typed getters that record which keys the schema knows, so the
// rest can be reported as unknown afterwards.
class Section {
 public:
  Section(Issues& issues, const toml::table& root, std::string name)
      : issues_(issues), name_(std::move(name)) {
    const toml::node* node = root.get(name_);
    if (node == nullptr) return;
    table_ = node->as_table();
    if (table_ == nullptr) {
      issues_.add(&node->source(), "[" + name_ + "] = " + render(*node) + ": must be a table (a [" +
                                       name_ + "] section), got " + type_name(*node));
    }
  }

  bool present() const { return table_ != nullptr; }
  const std::string& name() const { return name_; }
  const std::vector<std::string>& known() const { return known_; }
  const toml::table* table() const { return table_; }

  const toml::node* take(std::string_view key) {
    known_.emplace_back(key);
    return table_ != nullptr ? table_->get(key) : nullptr;
  }

  // "[section] key = value: problem", at the value's position.
  void bad(const toml::node& node, std::string_view key, const std::string& problem) {
    issues_.add(&node.source(),
                "[" + name_ + "] " + std::string(key) + " = " + render(node) + ": " + problem);
  }
  void missing(std::string_view key, const std::string& what) {
    issues_.add(table_ != nullptr ? &table_->source() : nullptr,
                "[" + name_ + "] " + std::string(key) + " is required (" + what + ")");
  }
  void wrong_type(const toml::node& node, std::string_view key, const char* expected) {
    bad(node, key, std::string("expected ") + expected + ", got " + type_name(node));
  }

  std::optional<int64_t> integer(std::string_view key, int64_t lo, int64_t hi,
                                 const std::string& rule = "") {
    const toml::node* node = take(key);
    if (node == nullptr) return std::nullopt;
    const auto* v = node->as_integer();
    if (v == nullptr) {
      wrong_type(*node, key, "an integer");
      return std::nullopt;
    }
    if (v->get() < lo || v->get() > hi) {
      bad(*node, key,
          rule.empty()
              ? "must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]"
              : rule);
      return std::nullopt;
    }
    return v->get();
  }

  // Integers are accepted where a float is expected ("lr = 1" means 1.0).
  // `ok` must reject NaN itself (comparisons with NaN are false).
  template <typename Pred>
  std::optional<double> real(std::string_view key, Pred ok, const std::string& rule) {
    const toml::node* node = take(key);
    if (node == nullptr) return std::nullopt;
    double value = 0.0;
    if (const auto* f = node->as_floating_point()) {
      value = f->get();
    } else if (const auto* i = node->as_integer()) {
      value = static_cast<double>(i->get());
    } else {
      wrong_type(*node, key, "a number");
      return std::nullopt;
    }
    if (!std::isfinite(value) || !ok(value)) {
      bad(*node, key, rule);
      return std::nullopt;
    }
    return value;
  }

  std::optional<std::string> string(std::string_view key) {
    const toml::node* node = take(key);
    if (node == nullptr) return std::nullopt;
    const auto* v = node->as_string();
    if (v == nullptr) {
      wrong_type(*node, key, "a string");
      return std::nullopt;
    }
    return v->get();
  }

  std::optional<bool> boolean(std::string_view key) {
    const toml::node* node = take(key);
    if (node == nullptr) return std::nullopt;
    const auto* v = node->as_boolean();
    if (v == nullptr) {
      wrong_type(*node, key, "a boolean (true or false)");
      return std::nullopt;
    }
    return v->get();
  }

  const toml::array* array(std::string_view key) {
    const toml::node* node = take(key);
    if (node == nullptr) return nullptr;
    const auto* v = node->as_array();
    if (v == nullptr) wrong_type(*node, key, "an array");
    return v;
  }

  const toml::node* node(std::string_view key) const {
    return table_ != nullptr ? table_->get(key) : nullptr;
  }

 private:
  Issues& issues_;
  std::string name_;
  const toml::table* table_ = nullptr;
  std::vector<std::string> known_;
};

bool has_control_chars(std::string_view s) {
  return std::any_of(s.begin(), s.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
}

bool valid_run_name(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
  });
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// N bytes written as 2N hex digits (either case), e.g. a run id or a digest.
template <size_t N>
std::optional<std::array<uint8_t, N>> parse_hex_bytes(std::string_view s) {
  if (s.size() != 2 * N) return std::nullopt;
  std::array<uint8_t, N> out{};
  for (size_t i = 0; i < N; ++i) {
    const int hi = hex_digit(s[2 * i]);
    const int lo = hex_digit(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return out;
}

bool valid_provider_url(std::string_view url) {
  std::string_view rest;
  if (url.starts_with("https://")) {
    rest = url.substr(8);
  } else if (url.starts_with("http://")) {
    rest = url.substr(7);
  } else {
    return false;
  }
  if (rest.empty() || rest[0] == '/') return false;  // no host
  return std::none_of(url.begin(), url.end(),
                      [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; });
}

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// ---- Sections. Each reads its keys into `c`, reporting per-field issues. A
// missing section reads as an empty one: its required keys are reported, and
// its keys are still registered for the "it belongs in [...]" hints. ----

struct Parsed {
  RunConfig c;
  bool id_given = false;
  bool witnesses_given = false;
  bool lora_targets_given = false;
  const toml::node* decay_fraction_node = nullptr;
};

void read_run(Section& s, Parsed& p) {
  auto& r = p.c.run;
  if (auto name = s.string("name")) {
    if (valid_run_name(*name)) {
      r.name = *name;
    } else {
      s.bad(*s.node("name"), "name", "must be 1 to 64 characters of A-Z a-z 0-9 . _ -");
    }
  } else if (s.node("name") == nullptr) {
    s.missing("name", "a string, e.g. name = \"demo-run\"");
  }
  if (auto seed = s.integer("seed", 0, std::numeric_limits<int64_t>::max(),
                            "must be a non-negative integer")) {
    r.seed = static_cast<uint64_t>(*seed);
  }
  if (auto id = s.string("id")) {
    if (auto parsed = parse_hex_bytes<16>(*id)) {
      r.id = *parsed;
      p.id_given = true;
    } else {
      s.bad(*s.node("id"), "id", "must be 32 hex digits (or omit it to derive it)");
    }
  }
}

void read_model(Section& s, Parsed& p) {
  auto& m = p.c.model;
  auto preset = s.string("preset");
  auto gguf = s.string("gguf");
  if (preset && gguf) {
    s.bad(*s.node("gguf"), "gguf",
          "conflicts with preset = " + quote_for_message(*preset) + " (give one of them)");
  } else if (preset) {
    if (preset_config(*preset).ok()) {
      m.preset = *preset;
    } else {
      s.bad(*s.node("preset"), "preset", "unknown preset (one of " + join(preset_names()) + ")");
    }
  } else if (gguf) {
    if (gguf->empty() || has_control_chars(*gguf)) {
      s.bad(*s.node("gguf"), "gguf", "must be a non-empty path without control characters");
    } else {
      m.gguf = *gguf;
    }
  } else if (s.node("preset") == nullptr && s.node("gguf") == nullptr) {
    s.missing("preset", "give preset = \"<name>\" or gguf = \"<path>\"");
  }

  if (auto vocab = s.integer("vocab", 256, int64_t{1} << 24)) {
    if (gguf) {
      s.bad(*s.node("vocab"), "vocab", "applies to a preset only (a gguf fixes its vocabulary)");
    } else {
      m.vocab = *vocab;
    }
  }
  if (auto hash = s.string("gguf_hash")) {
    if (!gguf) {
      s.bad(*s.node("gguf_hash"), "gguf_hash", "needs gguf (it is the hash of that file)");
    } else if (auto digest = parse_hex_bytes<32>(*hash)) {
      m.gguf_hash = *digest;
    } else {
      s.bad(*s.node("gguf_hash"), "gguf_hash",
            "must be 64 hex digits, the BLAKE2b-256 of the file (b2sum -l 256 FILE)");
    }
  }

  auto rank = s.integer("lora_rank", 1, 4096);
  auto alpha = s.real(
      "lora_alpha", [](double v) { return v > 0.0 && v <= 1e6; }, "must be a number in (0, 1e6]");
  std::vector<LinearId> targets;
  bool targets_ok = true;
  if (const toml::array* arr = s.array("lora_targets")) {
    p.lora_targets_given = true;
    if (arr->empty()) {
      s.bad(*s.node("lora_targets"), "lora_targets", "must name at least one projection");
      targets_ok = false;
    }
    for (size_t i = 0; i < arr->size(); ++i) {
      const toml::node& e = *arr->get(i);
      const std::string key = "lora_targets[" + std::to_string(i) + "]";
      const auto* str = e.as_string();
      if (str == nullptr) {
        s.wrong_type(e, key, "a string");
        targets_ok = false;
        continue;
      }
      auto id = parse_linear_id(str->get());
      if (!id.ok()) {
        s.bad(e, key, "unknown projection (one of q, k, v, o, gate, up, down)");
        targets_ok = false;
      } else if (std::find(targets.begin(), targets.end(), id.value()) != targets.end()) {
        s.bad(e, key, "listed twice");
        targets_ok = false;
      } else {
        targets.push_back(id.value());
      }
    }
  } else if (s.node("lora_targets") != nullptr) {
    targets_ok = false;
  }
  if (rank) {
    m.lora_rank = *rank;
    m.lora_alpha = alpha ? *alpha : 2.0 * static_cast<double>(*rank);
    if (p.lora_targets_given && targets_ok) {
      m.lora_targets = targets;
    } else {
      m.lora_targets = LoraConfig{}.targets;
    }
  }
}

void read_data(Section& s, Parsed& p) {
  auto& d = p.c.data;
  auto shards = s.string("shards");
  auto provider = s.string("provider");
  if (shards && provider) {
    s.bad(*s.node("provider"), "provider",
          "conflicts with shards = " + quote_for_message(*shards) + " (give one of them)");
  } else if (shards) {
    if (shards->empty() || has_control_chars(*shards)) {
      s.bad(*s.node("shards"), "shards", "must be a non-empty path without control characters");
    } else {
      d.shards = *shards;
    }
  } else if (provider) {
    if (valid_provider_url(*provider)) {
      d.provider = *provider;
    } else {
      s.bad(*s.node("provider"), "provider",
            "must be an http:// or https:// URL with a host and no spaces");
    }
  } else if (s.node("shards") == nullptr && s.node("provider") == nullptr) {
    s.missing("shards", "give shards = \"<dir>\" or provider = \"<url>\"");
  }
  // The provider's manifest hash: what members check its data against.
  if (auto hash = s.string("provider_hash")) {
    if (shards) {
      s.bad(*s.node("provider_hash"), "provider_hash", "needs provider (not shards)");
    } else if (auto digest = parse_hex_bytes<32>(*hash)) {
      d.provider_hash = to_hex(*digest);  // canonical: lowercase
    } else {
      s.bad(*s.node("provider_hash"), "provider_hash",
            "must be 64 hex digits (as `tern data serve` and `tern data info` print)");
    }
  } else if (provider && s.node("provider_hash") == nullptr) {
    s.missing("provider_hash",
              "the provider's manifest hash, 64 hex digits (`tern data serve` prints it)");
  }
  if (auto seq = s.integer("seq_len", 1, kMaxSeqLen)) {
    d.seq_len = *seq;
  } else if (s.node("seq_len") == nullptr) {
    s.missing("seq_len", "an integer, tokens per sequence");
  }
}

void read_optimizer(Section& s, Parsed& p) {
  auto& o = p.c.optimizer;
  if (auto v = s.integer("chunk", 1, 256)) o.chunk = *v;
  if (auto v = s.integer("topk", 1, 65536)) o.topk = *v;
  if (auto v = s.string("values")) {
    if (*v == "sign") {
      o.values = DemoValues::kSign;
    } else if (*v == "fp16") {
      o.values = DemoValues::kFp16;
    } else {
      s.bad(*s.node("values"), "values", "must be \"sign\" or \"fp16\"");
    }
  }
  if (auto v = s.real(
          "beta", [](double x) { return x >= 0.0 && x < 1.0; }, "must be a number in [0, 1)")) {
    o.beta = *v;
  }
  if (auto v = s.real(
          "lr", [](double x) { return x > 0.0 && x <= 1.0; }, "must be a number in (0, 1]")) {
    o.lr = *v;
  } else if (s.node("lr") == nullptr) {
    s.missing("lr", "a number, the peak learning rate");
  }
  if (auto v = s.real(
          "min_lr", [](double x) { return x >= 0.0 && x <= 1.0; }, "must be a number in [0, 1]")) {
    o.min_lr = *v;
  } else {
    o.min_lr = o.lr / 10.0;
  }
  if (auto v = s.string("schedule")) {
    auto kind = parse_schedule_kind(*v);
    if (kind.ok()) {
      o.schedule = kind.value();
    } else {
      s.bad(*s.node("schedule"), "schedule", "must be \"constant\", \"cosine\" or \"wsd\"");
    }
  }
  if (auto v = s.integer("warmup_steps", 0, kMaxScheduleBatches)) o.warmup_steps = *v;
  if (auto v = s.real(
          "decay_fraction", [](double x) { return x > 0.0 && x <= 1.0; },
          "must be a number in (0, 1]")) {
    o.decay_fraction = *v;
    p.decay_fraction_node = s.node("decay_fraction");
  }
  if (auto v = s.real(
          "weight_decay", [](double x) { return x >= 0.0 && x < 1.0; },
          "must be a number in [0, 1)")) {
    o.weight_decay = *v;
  }
  if (auto v = s.boolean("overlap")) o.overlap = *v;
}

void read_batch(Section& s, Parsed& p) {
  auto& b = p.c.batch;
  if (auto v = s.integer("batches_per_round", 1, int64_t{1} << 24)) {
    b.batches_per_round = static_cast<uint32_t>(*v);
  }
  if (auto v = s.integer("sequences_per_batch", 1, 65536)) {
    b.sequences_per_batch = static_cast<uint32_t>(*v);
  }
}

void read_timing(Section& s, Parsed& p) {
  auto& t = p.c.timing;
  const std::string rule =
      "must be a positive integer (1 to " + std::to_string(kMaxTimeoutMs) + " ms)";
  const auto lo = int64_t{1};
  const auto hi = static_cast<int64_t>(kMaxTimeoutMs);
  if (auto v = s.integer("warmup_ms", lo, hi, rule)) t.warmup_ms = static_cast<uint64_t>(*v);
  if (auto v = s.integer("round_train_ms", lo, hi, rule)) {
    t.round_train_ms = static_cast<uint64_t>(*v);
  }
  if (auto v = s.integer("round_witness_ms", lo, hi, rule)) {
    t.round_witness_ms = static_cast<uint64_t>(*v);
  }
  if (auto v = s.integer("cooldown_ms", lo, hi, rule)) t.cooldown_ms = static_cast<uint64_t>(*v);
}

void read_membership(Section& s, Parsed& p) {
  auto& m = p.c.membership;
  const int64_t u32max = std::numeric_limits<uint32_t>::max();
  if (auto v = s.integer("min_members", 1, 100'000)) m.min_members = static_cast<uint32_t>(*v);
  if (auto v = s.integer("max_members", 1, 100'000)) m.max_members = static_cast<uint32_t>(*v);
  if (auto v = s.integer("witnesses_per_round", 1, 1000)) {
    m.witnesses_per_round = static_cast<uint32_t>(*v);
    p.witnesses_given = true;
  } else {
    m.witnesses_per_round = std::min<uint32_t>(3, m.min_members);
  }
  if (auto v = s.integer("epochs", 1, u32max)) m.epochs = static_cast<uint32_t>(*v);
  if (auto v = s.integer("rounds_per_epoch", 1, u32max)) {
    m.rounds_per_epoch = static_cast<uint32_t>(*v);
  }
  if (auto v = s.integer("total_steps", 0, kMaxScheduleBatches)) {
    m.total_steps = static_cast<uint64_t>(*v);
  }
}

void read_allowlist(Section& s, Parsed& p) {
  if (!s.present()) {
    s.take("members");
    return;
  }
  const toml::array* arr = s.array("members");
  if (arr == nullptr) {
    if (s.node("members") == nullptr) {
      s.missing("members", "an array of node ids when [allowlist] is present");
    }
    return;
  }
  if (arr->empty()) {
    s.bad(*s.node("members"), "members",
          "must list at least one node id (omit [allowlist] to admit anyone)");
    return;
  }
  std::vector<net::NodeId> members;
  std::vector<std::pair<net::NodeId, size_t>> seen;  // sorted by id, for duplicates
  bool ok = true;
  for (size_t i = 0; i < arr->size(); ++i) {
    const toml::node& e = *arr->get(i);
    const std::string key = "members[" + std::to_string(i) + "]";
    const auto* str = e.as_string();
    if (str == nullptr) {
      s.wrong_type(e, key, "a node id string (\"tern...\")");
      ok = false;
      continue;
    }
    auto id = net::NodeId::parse(str->get());
    if (!id.ok()) {
      s.bad(e, key, id.status().message());
      ok = false;
      continue;
    }
    auto pos = std::lower_bound(seen.begin(), seen.end(), std::make_pair(id.value(), size_t{0}));
    if (pos != seen.end() && pos->first == id.value()) {
      s.bad(e, key, "duplicate of members[" + std::to_string(pos->second) + "]");
      ok = false;
      continue;
    }
    seen.insert(pos, {id.value(), i});
    members.push_back(id.value());
  }
  if (ok) p.c.allowlist = std::move(members);
}

// Unknown keys and sections, reported once the schema of every section is known.
void report_unknown(Issues& issues, const toml::table& root, std::vector<Section>& sections) {
  std::vector<std::string> section_names(std::begin(kSections), std::end(kSections));
  for (auto&& [key, node] : root) {
    const std::string name(key.str());
    if (std::find(section_names.begin(), section_names.end(), name) != section_names.end()) {
      continue;
    }
    if (!node.is_table()) {
      // A key above the first [section] header.
      std::string text = "unknown top-level key " + quote_for_message(name);
      for (const Section& s : sections) {
        const auto& known = s.known();
        if (std::find(known.begin(), known.end(), name) != known.end()) {
          text += " (it belongs in [" + s.name() + "])";
          break;
        }
      }
      issues.add(&key.source(), text + "; keys go in sections: " + join(section_names));
      continue;
    }
    std::string text = "unknown section " + quote_for_message(name);
    const std::string guess = closest(name, section_names);
    if (!guess.empty()) text += " (did you mean [" + guess + "]?)";
    text += "; sections are " + join(section_names);
    issues.add(&key.source(), text);
  }
  for (Section& s : sections) {
    if (!s.present()) continue;
    for (auto&& [key, node] : *s.table()) {
      const std::string name(key.str());
      const auto& known = s.known();
      if (std::find(known.begin(), known.end(), name) != known.end()) continue;
      std::string text = "[" + s.name() + "] unknown key " + quote_for_message(name);
      std::string guess = closest(name, known);
      if (!guess.empty()) {
        text += " (did you mean " + guess + "?)";
      } else {
        for (const Section& other : sections) {
          const auto& ok = other.known();
          if (&other != &s && std::find(ok.begin(), ok.end(), name) != ok.end()) {
            text += " (it belongs in [" + other.name() + "])";
            break;
          }
        }
      }
      issues.add(&key.source(), text);
    }
  }
}

// Checks between fields; runs only when every field is valid on its own.
void check_cross_fields(Issues& issues, Parsed& p, Section& model, Section& data,
                        Section& optimizer, Section& membership) {
  const RunConfig& c = p.c;
  const auto& o = c.optimizer;
  const auto& m = c.membership;
  if (!c.model.preset.empty()) {
    const ModelConfig preset = preset_config(c.model.preset).value();
    if (c.data.seq_len > preset.max_seq) {
      data.bad(*data.node("seq_len"), "seq_len",
               "exceeds the max_seq " + std::to_string(preset.max_seq) + " of [model] preset " +
                   quote_for_message(c.model.preset));
    }
  }
  if (c.model.lora_rank == 0) {
    for (const char* key : {"lora_alpha", "lora_targets"}) {
      if (const toml::node* n = model.node(key)) {
        model.bad(*n, key, "needs lora_rank (LoRA is off without it)");
      }
    }
  }
  if (o.topk > o.chunk * o.chunk) {
    optimizer.bad(*optimizer.node("topk"), "topk",
                  "must be <= chunk * chunk = " + std::to_string(o.chunk * o.chunk) +
                      " (coefficients in a block)");
  }
  if (o.min_lr > o.lr) {
    const toml::node* n = optimizer.node("min_lr");
    if (n != nullptr) {
      optimizer.bad(*n, "min_lr", "must be <= lr = " + format_double(o.lr));
    }
  }
  if (p.decay_fraction_node != nullptr && o.schedule != ScheduleKind::kWsd) {
    optimizer.bad(*p.decay_fraction_node, "decay_fraction",
                  "only used by schedule = \"wsd\" (remove it or change the schedule)");
  }
  if (m.min_members > m.max_members) {
    if (const toml::node* n = membership.node("min_members")) {
      membership.bad(*n, "min_members",
                     "must be <= max_members = " + std::to_string(m.max_members));
    } else {
      membership.bad(*membership.node("max_members"), "max_members",
                     "must be >= min_members = " + std::to_string(m.min_members));
    }
  }
  if (p.witnesses_given && m.witnesses_per_round > m.min_members) {
    membership.bad(*membership.node("witnesses_per_round"), "witnesses_per_round",
                   "must be <= min_members = " + std::to_string(m.min_members) +
                       " (a round may have only min_members members)");
  }
  const uint64_t steps = effective_total_steps(c);
  const uint64_t bpr = c.batch.batches_per_round;
  if (steps > static_cast<uint64_t>(kMaxScheduleBatches) / bpr) {
    const char* key = m.total_steps > 0 ? "total_steps" : "rounds_per_epoch";
    const toml::node* n = membership.node(key);
    const std::string text = "the schedule of " + std::to_string(steps) + " steps x " +
                             std::to_string(bpr) + " batches_per_round exceeds 2^40 batches";
    if (n != nullptr) {
      membership.bad(*n, key, text);
    } else {
      issues.add(nullptr, "[membership] " + text);
    }
  }
  if (static_cast<uint64_t>(o.warmup_steps) > steps) {
    optimizer.bad(*optimizer.node("warmup_steps"), "warmup_steps",
                  "must be <= the run's total steps = " + std::to_string(steps) +
                      (m.total_steps > 0 ? " ([membership] total_steps)"
                                         : " ([membership] epochs * rounds_per_epoch)"));
  }
}

void put_string(std::string& out, std::string_view key, std::string_view value) {
  out += key;
  out += " = ";
  out += toml_quote(value);
  out += "\n";
}

void put_int(std::string& out, std::string_view key, uint64_t value) {
  out += key;
  out += " = " + std::to_string(value) + "\n";
}

void put_double(std::string& out, std::string_view key, double value) {
  out += key;
  out += " = " + format_double(value) + "\n";
}

}  // namespace

Result<RunConfig> parse_run_config(std::string_view toml_text, std::string_view source_name) {
  const std::string source(source_name);
  toml::parse_result parsed = toml::parse(toml_text, source_name);
  if (!parsed) {
    const toml::parse_error& err = parsed.error();
    return Status::Error(source + ":" + std::to_string(err.source().begin.line) + ":" +
                         std::to_string(err.source().begin.column) +
                         ": TOML syntax error: " + std::string(err.description()));
  }
  const toml::table& root = parsed.table();

  Issues issues(source);
  std::vector<Section> sections;
  sections.reserve(std::size(kSections));
  for (const char* name : kSections) sections.emplace_back(issues, root, name);
  Parsed p;
  read_run(sections[0], p);
  read_model(sections[1], p);
  read_data(sections[2], p);
  read_optimizer(sections[3], p);
  read_batch(sections[4], p);
  read_timing(sections[5], p);
  read_membership(sections[6], p);
  read_allowlist(sections[7], p);
  report_unknown(issues, root, sections);
  if (!issues.empty()) return issues.status();

  check_cross_fields(issues, p, sections[1], sections[2], sections[3], sections[6]);
  if (!issues.empty()) return issues.status();

  RunConfig& c = p.c;
  if (!p.id_given) c.run.id = derive_run_id(c.run.name, c.run.seed);

  // The consumers' own validation, as a guard: the checks above are meant to
  // be at least as strict, so a failure here is reported, not hidden.
  Status guard = to_coordinator_config(c).validate();
  if (guard.ok()) guard = to_demo_config(c).validate();
  if (guard.ok()) guard = to_lr_schedule(c).validate();
  if (guard.ok()) {
    if (auto lora = to_lora_config(c)) guard = lora->validate();
  }
  if (!guard.ok()) return Status::Error(source + ": " + guard.message());
  return c;
}

Result<RunConfig> load_run_config(const std::string& path) {
  const std::string op = "load run config " + quote_for_message(path);
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Status::Error(op + ": cannot open: " + errno_text(errno));
  std::string text;
  char buf[65536];
  bool too_big = false;
  while (true) {
    const size_t n = std::fread(buf, 1, sizeof(buf), f);
    text.append(buf, n);
    if (text.size() > kMaxConfigBytes) {
      too_big = true;
      break;
    }
    if (n < sizeof(buf)) break;
  }
  const bool read_error = std::ferror(f) != 0;
  const int err = errno;
  std::fclose(f);
  if (too_big) {
    return Status::Error(op + ": larger than " + std::to_string(kMaxConfigBytes) + " bytes");
  }
  if (read_error) return Status::Error(op + ": read failed: " + errno_text(err));
  return parse_run_config(text, path);
}

std::string toml_quote(std::string_view value) {
  std::string out = "\"";
  for (char ch : value) {
    const auto c = static_cast<unsigned char>(ch);
    if (ch == '"' || ch == '\\') {
      out += '\\';
      out += ch;
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += ch;
    }
  }
  return out + "\"";
}

std::string to_toml(const RunConfig& c) {
  std::string out = "# tern run config, canonical form (docs/run-config.md)\n\n[run]\n";
  put_string(out, "name", c.run.name);
  put_string(out, "id", run_id_hex(c.run.id));
  put_int(out, "seed", c.run.seed);

  out += "\n[model]\n";
  if (!c.model.preset.empty()) put_string(out, "preset", c.model.preset);
  if (!c.model.gguf.empty()) put_string(out, "gguf", c.model.gguf);
  if (c.model.gguf_hash) put_string(out, "gguf_hash", to_hex(*c.model.gguf_hash));
  if (c.model.vocab > 0) put_int(out, "vocab", static_cast<uint64_t>(c.model.vocab));
  if (c.model.lora_rank > 0) {
    put_int(out, "lora_rank", static_cast<uint64_t>(c.model.lora_rank));
    put_double(out, "lora_alpha", c.model.lora_alpha);
    out += "lora_targets = [";
    for (size_t i = 0; i < c.model.lora_targets.size(); ++i) {
      out +=
          (i > 0 ? ", \"" : "\"") + std::string(linear_short_name(c.model.lora_targets[i])) + "\"";
    }
    out += "]\n";
  }

  out += "\n[data]\n";
  if (!c.data.shards.empty()) put_string(out, "shards", c.data.shards);
  if (!c.data.provider.empty()) put_string(out, "provider", c.data.provider);
  if (!c.data.provider_hash.empty()) put_string(out, "provider_hash", c.data.provider_hash);
  put_int(out, "seq_len", static_cast<uint64_t>(c.data.seq_len));

  const auto& o = c.optimizer;
  out += "\n[optimizer]\n";
  put_int(out, "chunk", static_cast<uint64_t>(o.chunk));
  put_int(out, "topk", static_cast<uint64_t>(o.topk));
  put_string(out, "values", demo_values_name(o.values));
  put_double(out, "beta", o.beta);
  put_double(out, "lr", o.lr);
  put_double(out, "min_lr", o.min_lr);
  put_string(out, "schedule",
             o.schedule == ScheduleKind::kConstant ? "constant"
             : o.schedule == ScheduleKind::kCosine ? "cosine"
                                                   : "wsd");
  put_int(out, "warmup_steps", static_cast<uint64_t>(o.warmup_steps));
  if (o.schedule == ScheduleKind::kWsd) put_double(out, "decay_fraction", o.decay_fraction);
  put_double(out, "weight_decay", o.weight_decay);
  out += std::string("overlap = ") + (o.overlap ? "true" : "false") + "\n";

  out += "\n[batch]\n";
  put_int(out, "batches_per_round", c.batch.batches_per_round);
  put_int(out, "sequences_per_batch", c.batch.sequences_per_batch);

  out += "\n[timing]\n";
  put_int(out, "warmup_ms", c.timing.warmup_ms);
  put_int(out, "round_train_ms", c.timing.round_train_ms);
  put_int(out, "round_witness_ms", c.timing.round_witness_ms);
  put_int(out, "cooldown_ms", c.timing.cooldown_ms);

  const auto& m = c.membership;
  out += "\n[membership]\n";
  put_int(out, "min_members", m.min_members);
  put_int(out, "max_members", m.max_members);
  put_int(out, "witnesses_per_round", m.witnesses_per_round);
  put_int(out, "epochs", m.epochs);
  put_int(out, "rounds_per_epoch", m.rounds_per_epoch);
  put_int(out, "total_steps", m.total_steps);

  if (c.allowlist) {
    out += "\n[allowlist]\nmembers = [\n";
    for (const auto& id : *c.allowlist) out += "  \"" + id.to_string() + "\",\n";
    out += "]\n";
  }
  return out;
}

Blake2bDigest config_hash(const RunConfig& config) {
  Blake2bHasher hasher;
  hasher.update(kHashDomain);
  hasher.update(to_toml(config));
  return hasher.finish();
}

RunId derive_run_id(std::string_view name, uint64_t seed) {
  Blake2bHasher hasher;
  hasher.update(std::string_view("tern-run-id-v1"));
  uint8_t len[4];
  const auto n = static_cast<uint32_t>(name.size());
  for (int i = 0; i < 4; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  hasher.update(std::span<const uint8_t>(len, 4));
  hasher.update(name);
  uint8_t le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(seed >> (8 * i));
  hasher.update(std::span<const uint8_t>(le, 8));
  const Blake2bDigest digest = hasher.finish();
  RunId id{};
  std::copy_n(digest.begin(), id.size(), id.begin());
  return id;
}

std::string run_id_hex(const RunId& id) {
  static const char kHex[] = "0123456789abcdef";
  std::string out;
  for (uint8_t b : id) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

uint64_t effective_total_steps(const RunConfig& config) {
  const auto& m = config.membership;
  return m.total_steps > 0 ? m.total_steps : uint64_t{m.epochs} * m.rounds_per_epoch;
}

CoordinatorConfig to_coordinator_config(const RunConfig& c) {
  CoordinatorConfig out;
  out.run_seed = c.run.seed;
  out.min_members = c.membership.min_members;
  out.max_members = c.membership.max_members;
  out.witnesses_per_round = c.membership.witnesses_per_round;
  out.warmup_ms = c.timing.warmup_ms;
  out.round_train_ms = c.timing.round_train_ms;
  out.round_witness_ms = c.timing.round_witness_ms;
  out.cooldown_ms = c.timing.cooldown_ms;
  out.rounds_per_epoch = c.membership.rounds_per_epoch;
  out.epochs = c.membership.epochs;
  out.total_steps = c.membership.total_steps;
  out.batches_per_round = c.batch.batches_per_round;
  out.allowlist = c.allowlist;
  return out;
}

DemoConfig to_demo_config(const RunConfig& c) {
  DemoConfig out;
  out.chunk = c.optimizer.chunk;
  out.topk = c.optimizer.topk;
  out.beta = c.optimizer.beta;
  out.weight_decay = c.optimizer.weight_decay;
  out.values = c.optimizer.values;
  return out;
}

LrSchedule to_lr_schedule(const RunConfig& c) {
  LrSchedule out;
  out.kind = c.optimizer.schedule;
  out.peak_lr = c.optimizer.lr;
  out.min_lr = c.optimizer.min_lr;
  out.warmup_steps = c.optimizer.warmup_steps;
  out.total_steps = static_cast<int64_t>(effective_total_steps(c));
  out.decay_fraction = c.optimizer.decay_fraction;
  return out;
}

Result<ModelConfig> to_model_config(const RunConfig& c) {
  if (c.model.preset.empty()) {
    return Status::Error("run config: [model] gguf = " + c.model.gguf +
                         ": the model's config comes from the file");
  }
  TERN_ASSIGN_OR_RETURN(ModelConfig model, preset_config(c.model.preset));
  if (c.model.vocab > 0) model.vocab = c.model.vocab;
  return model;
}

std::optional<LoraConfig> to_lora_config(const RunConfig& c) {
  if (c.model.lora_rank == 0) return std::nullopt;
  LoraConfig out;
  out.rank = c.model.lora_rank;
  out.alpha = static_cast<float>(c.model.lora_alpha);
  out.targets = c.model.lora_targets;
  return out;
}

}  // namespace tern::swarm
