#include "train/checkpoint.h"

#include <zlib.h>

#include <cstring>
#include <nlohmann/json.hpp>

#include "format/gguf.h"

namespace tern {
namespace {

constexpr const char* kType = "tern.checkpoint";
constexpr uint32_t kVersion = 1;

std::vector<int64_t> ggml_dims(const TensorInfo& info) {
  return {info.shape.rbegin(), info.shape.rend()};  // ggml lists the contiguous dim first
}

std::vector<uint8_t> float_bytes(std::span<const float> values) {
  std::vector<uint8_t> bytes(values.size() * sizeof(float));
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// CRC-32 over the tensors (name, then bytes, in layout order) and the state values.
class Digest {
 public:
  void add(const void* data, size_t size) {
    const auto* p = static_cast<const Bytef*>(data);
    while (size > 0) {  // zlib takes uInt lengths
      const auto chunk = static_cast<uInt>(std::min<size_t>(size, 1u << 30));
      crc_ = crc32(crc_, p, chunk);
      p += chunk;
      size -= chunk;
    }
  }
  void add(const std::string& s) { add(s.data(), s.size()); }
  void add_u64(uint64_t v) { add(&v, sizeof v); }
  uint32_t value() const { return static_cast<uint32_t>(crc_); }

 private:
  uLong crc_ = crc32(0L, Z_NULL, 0);
};

std::string lora_json(const LoraConfig& lora) {
  nlohmann::json targets = nlohmann::json::array();
  for (LinearId id : lora.targets) targets.push_back(std::string(linear_short_name(id)));
  return nlohmann::json{{"rank", lora.rank}, {"alpha", lora.alpha}, {"targets", targets}}.dump();
}

Result<LoraConfig> parse_lora_json(const std::string& text) {
  const nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("rank") || !j["rank"].is_number_integer() ||
      !j.contains("alpha") || !j["alpha"].is_number() || !j.contains("targets") ||
      !j["targets"].is_array()) {
    return Status::Error("LoRA config: expected {rank, alpha, targets}, got " + text);
  }
  LoraConfig lora;
  lora.rank = j["rank"].get<int64_t>();
  lora.alpha = j["alpha"].get<float>();
  lora.targets.clear();
  for (const auto& t : j["targets"]) {
    if (!t.is_string())
      return Status::Error("LoRA config: target " + t.dump() + " is not a string");
    TERN_ASSIGN_OR_RETURN(LinearId id, parse_linear_id(t.get<std::string>()));
    lora.targets.push_back(id);
  }
  TERN_RETURN_IF_ERROR(lora.validate());
  return lora;
}

struct State {
  uint64_t train_step = 0;
  uint64_t optimizer_step = 0;
  Rng::State rng{};
};

void digest_state(Digest& d, const std::string& config, const State& s) {
  d.add(config);
  d.add_u64(s.train_step);
  d.add_u64(s.optimizer_step);
  for (uint64_t w : s.rng.words) d.add_u64(w);
  d.add_u64(s.rng.has_spare ? 1 : 0);
  d.add(&s.rng.spare, sizeof s.rng.spare);
}

// The three flat buffers a checkpoint stores, with their tensor-name prefixes.
struct Section {
  const char* prefix;
  const FlatBuffer* buffer;
};

}  // namespace

Status save_checkpoint(const std::string& path, const BitNetModel& model, const Trainer& trainer) {
  gguf::GgufWriter w;
  const std::string config = model_config_to_json(model.config());
  State state;
  state.train_step = static_cast<uint64_t>(trainer.steps_done());
  state.optimizer_step = static_cast<uint64_t>(trainer.optimizer().step_count());
  state.rng = trainer.rng_state();
  w.set_string("general.type", kType);
  w.set_u32("tern.checkpoint.version", kVersion);
  w.set_string("tern.model.config", config);
  if (model.is_lora()) w.set_string("tern.lora.config", lora_json(model.lora_config()));
  w.set_u64("tern.train.step", state.train_step);
  w.set_u64("tern.optimizer.step", state.optimizer_step);
  // Stored as i64 (same bits): GGUF readers widely reject u64 values above INT64_MAX.
  std::vector<int64_t> rng_words;
  for (uint64_t word : state.rng.words) rng_words.push_back(static_cast<int64_t>(word));
  w.set_value("tern.rng.words", gguf::Value::array(rng_words));
  w.set_bool("tern.rng.has_spare", state.rng.has_spare);
  w.set_value("tern.rng.spare", gguf::Value::f64(state.rng.spare));

  Digest digest;
  const Section sections[] = {{"param/", &model.params()},
                              {"adam.m/", &trainer.optimizer().first_moment()},
                              {"adam.v/", &trainer.optimizer().second_moment()}};
  for (const Section& section : sections) {
    for (const TensorInfo& info : model.layout().tensors()) {
      const std::string name = section.prefix + info.name;
      std::vector<uint8_t> bytes = float_bytes(section.buffer->view(info));
      digest.add(name);
      digest.add(bytes.data(), bytes.size());
      w.add_tensor(name, GgmlType::kF32, ggml_dims(info), std::move(bytes));
    }
  }
  digest_state(digest, config, state);
  w.set_u32("tern.checkpoint.crc32", digest.value());
  return w.write(path).with_context("save checkpoint '" + path + "'");
}

namespace {

Result<CheckpointHeader> header_of(const gguf::GgufFile& f) {
  TERN_ASSIGN_OR_RETURN(std::string type, f.get_string("general.type"));
  if (type != kType) return Status::Error("general.type is '" + type + "', not '" + kType + "'");
  TERN_ASSIGN_OR_RETURN(int64_t version, f.get_int("tern.checkpoint.version"));
  if (version != kVersion) {
    return Status::Error("checkpoint version " + std::to_string(version) + " (this tern reads " +
                         std::to_string(kVersion) + ")");
  }
  CheckpointHeader h;
  TERN_ASSIGN_OR_RETURN(std::string config, f.get_string("tern.model.config"));
  TERN_ASSIGN_OR_RETURN(h.model, parse_model_config(config));
  if (f.has("tern.lora.config")) {
    TERN_ASSIGN_OR_RETURN(std::string lora, f.get_string("tern.lora.config"));
    TERN_ASSIGN_OR_RETURN(h.lora, parse_lora_json(lora));
  }
  TERN_ASSIGN_OR_RETURN(h.step, f.get_int("tern.train.step"));
  return h;
}

}  // namespace

Result<CheckpointHeader> read_checkpoint_header(const std::string& path) {
  Result<gguf::GgufFile> file = gguf::GgufFile::open(path);
  if (!file.ok()) return file.status().with_context("read checkpoint");
  Result<CheckpointHeader> header = header_of(file.value());
  if (!header.ok()) return header.status().with_context("read checkpoint '" + path + "'");
  return header;
}

Status load_checkpoint(const std::string& path, BitNetModel& model, Trainer& trainer) {
  const std::string context = "load checkpoint '" + path + "'";
  Result<gguf::GgufFile> opened = gguf::GgufFile::open(path);
  if (!opened.ok()) return opened.status().with_context("load checkpoint");
  const gguf::GgufFile& f = opened.value();
  Result<CheckpointHeader> header = header_of(f);
  if (!header.ok()) return header.status().with_context(context);
  if (model_config_to_json(header.value().model) != model_config_to_json(model.config()) ||
      header.value().lora.has_value() != model.is_lora()) {
    return Status::Error(context + ": the checkpoint was written for another model configuration");
  }

  // Read and verify everything into staging buffers before touching the run.
  State state;
  Result<std::string> config = f.get_string("tern.model.config");
  Result<int64_t> opt_step = f.get_int("tern.optimizer.step");
  Result<std::vector<int64_t>> words = f.get_int_array("tern.rng.words");
  Result<bool> has_spare = f.get_bool("tern.rng.has_spare");
  Result<double> spare = f.get_float("tern.rng.spare");
  Result<int64_t> crc = f.get_int("tern.checkpoint.crc32");
  for (const Status& s :
       {opt_step.status(), words.status(), has_spare.status(), spare.status(), crc.status()}) {
    if (!s.ok()) return s.with_context(context);
  }
  if (words.value().size() != 4 || header.value().step < 0 || opt_step.value() < 0) {
    return Status::Error(context + ": malformed step or RNG state");
  }
  state.train_step = static_cast<uint64_t>(header.value().step);
  state.optimizer_step = static_cast<uint64_t>(opt_step.value());
  for (int i = 0; i < 4; ++i) state.rng.words[i] = static_cast<uint64_t>(words.value()[i]);
  state.rng.has_spare = has_spare.value();
  state.rng.spare = spare.value();

  const TensorLayout& layout = model.layout();
  FlatBuffer staged[3] = {FlatBuffer(layout.buffer_size()), FlatBuffer(layout.buffer_size()),
                          FlatBuffer(layout.buffer_size())};
  const char* prefixes[3] = {"param/", "adam.m/", "adam.v/"};
  Digest digest;
  for (int s = 0; s < 3; ++s) {
    for (const TensorInfo& info : layout.tensors()) {
      const std::string name = prefixes[s] + info.name;
      const gguf::TensorInfo* t = f.find_tensor(name);
      if (t == nullptr) return Status::Error(context + ": no tensor '" + name + "'");
      if (t->type != GgmlType::kF32 || t->dims != ggml_dims(info)) {
        return Status::Error(context + ": tensor '" + name + "' has another type or shape");
      }
      const std::span<const uint8_t> bytes = f.tensor_bytes(*t);
      digest.add(name);
      digest.add(bytes.data(), bytes.size());
      std::memcpy(staged[s].view(info).data(), bytes.data(), bytes.size());
    }
  }
  digest_state(digest, config.value(), state);
  if (digest.value() != static_cast<uint32_t>(crc.value())) {
    return Status::Error(context + ": checksum mismatch (stored " + std::to_string(crc.value()) +
                         ", computed " + std::to_string(digest.value()) + "): the file is corrupt");
  }

  // Copy, not move: the model keeps pointers into its parameter buffer.
  FlatBuffer* targets[3] = {&model.params(), &trainer.optimizer().first_moment(),
                            &trainer.optimizer().second_moment()};
  for (int s = 0; s < 3; ++s) {
    std::memcpy(targets[s]->data(), staged[s].data(), sizeof(float) * staged[s].size());
  }
  trainer.optimizer().set_step_count(static_cast<int64_t>(state.optimizer_step));
  trainer.restore(static_cast<int64_t>(state.train_step), state.rng);
  return Status::Ok();
}

}  // namespace tern
