// `tern generate`: text from a model GGUF (optionally with a LoRA adapter), as a
// one-shot continuation of a prompt or an interactive chat; or, with
// --random-preset, a decode-speed measurement on a randomly initialized model.
#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "core/rng.h"
#include "data/prepare.h"
#include "model/config.h"
#include "model/weight_source.h"
#include "train/generate.h"
#include "train/load_model.h"

namespace tern::cli {
namespace generate_cmd {
namespace {

// A reply ends when the model starts the next header of the chat template.
constexpr const char* kTurnStop = "\n### ";

struct GenerateArgs {
  std::string model;
  std::string lora;
  std::string random_preset;
  bool random_f16 = false;
  std::optional<std::string> prompt;
  bool chat = false;
  int64_t prompt_tokens = 128;
  int64_t max_tokens = 256;
  SamplerConfig sampler;
  bool json = false;
};

const char* stop_name(StopReason stop) {
  switch (stop) {
    case StopReason::kEos:
      return "eos";
    case StopReason::kMaxTokens:
      return "max_tokens";
    case StopReason::kStopString:
      return "stop_string";
    case StopReason::kCacheFull:
      return "context_full";
  }
  return "unknown";
}

void print_stats(const GenerateStats& stats, bool json) {
  if (json) {
    const nlohmann::json j = {{"prompt_tokens", stats.prompt_tokens},
                              {"generated_tokens", stats.generated_tokens},
                              {"prefill_tokens_per_s", stats.prefill_tokens_per_s()},
                              {"decode_tokens_per_s", stats.decode_tokens_per_s()},
                              {"stop", stop_name(stats.stop)}};
    std::printf("%s\n", j.dump().c_str());
    std::fflush(stdout);
    return;
  }
  std::fprintf(stderr, "[prefill %lld tokens, %.1f tokens/s; decode %lld tokens, %.1f tokens/s]\n",
               static_cast<long long>(stats.prompt_tokens), stats.prefill_tokens_per_s(),
               static_cast<long long>(stats.generated_tokens), stats.decode_tokens_per_s());
}

void print_text(std::string_view text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fflush(stdout);
}

// --random-preset: a frozen model of random weights, random prompt ids.
int run_random(const GenerateArgs& args) {
  Result<ModelConfig> config = preset_config(args.random_preset);
  if (!config.ok()) return fail("generate", config.status());
  RandomInitSource init(args.sampler.seed, 0.02f, args.random_f16);
  Result<BitNetModel> model = BitNetModel::create_frozen(config.value(), init);
  if (!model.ok()) return fail("generate", model.status());
  Result<KvDecoder> decoder = KvDecoder::create(model.value());
  if (!decoder.ok()) return fail("generate", decoder.status());
  Rng rng(derive_seed(args.sampler.seed, "prompt"));
  std::vector<int32_t> prompt(static_cast<size_t>(args.prompt_tokens));
  for (int32_t& t : prompt) t = static_cast<int32_t>(rng.below(config.value().vocab));
  Sampler sampler(args.sampler, config.value().vocab);
  Result<GenerateStats> stats = generate(decoder.value(), sampler, nullptr, prompt,
                                         {args.max_tokens, ""}, [](std::string_view) {});
  if (!stats.ok()) return fail("generate", stats.status());
  const GenerateStats& s = stats.value();
  if (args.json) {
    const nlohmann::json j = {{"preset", args.random_preset},
                              {"f16", args.random_f16},
                              {"prompt_tokens", s.prompt_tokens},
                              {"generated_tokens", s.generated_tokens},
                              {"prefill_tokens_per_s", s.prefill_tokens_per_s()},
                              {"decode_tokens_per_s", s.decode_tokens_per_s()},
                              {"weight_bytes", decoder.value().weight_bytes()}};
    std::printf("%s\n", j.dump().c_str());
  } else {
    std::printf(
        "%s: %lld weight bytes; prefill %lld tokens, %.1f tokens/s; decode %lld tokens, "
        "%.1f tokens/s\n",
        args.random_preset.c_str(), static_cast<long long>(decoder.value().weight_bytes()),
        static_cast<long long>(s.prompt_tokens), s.prefill_tokens_per_s(),
        static_cast<long long>(s.generated_tokens), s.decode_tokens_per_s());
  }
  return 0;
}

// Reads one user message per line until EOF or a full context. The whole
// conversation stays in the decoder's cache; each turn only prefills what is new.
int run_chat(const GenerateArgs& args, KvDecoder& decoder, Sampler& sampler,
             const Tokenizer& tokenizer) {
  const bool interactive = isatty(STDIN_FILENO) != 0;
  std::string carry;  // end of the previous reply: in the transcript, not yet in the cache
  std::string line;
  bool first = true;
  for (;;) {
    if (interactive) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    // Tokenized piece by piece exactly as `tern data prepare` renders chat data
    // (encode_chat), then the assistant header that asks for the reply.
    std::vector<int32_t> tokens;
    const Vocab& vocab = tokenizer.vocab();
    if (first && vocab.add_bos && vocab.bos_id >= 0) tokens.push_back(vocab.bos_id);
    first = false;
    auto append = [&](const std::vector<int32_t>& more) {
      tokens.insert(tokens.end(), more.begin(), more.end());
    };
    append(tokenizer.encode(carry, /*add_special=*/false, /*parse_special=*/false));
    const ChatMessage message{ChatRole::kUser, line};
    append(encode_chat(tokenizer, std::span(&message, 1)).tokens);
    append(tokenizer.encode(chat_header(ChatRole::kAssistant), false, false));
    if (static_cast<int64_t>(tokens.size()) > decoder.capacity() - decoder.position()) {
      std::fprintf(stderr,
                   "tern generate: the context is full (%lld of %lld tokens used, this message "
                   "needs %zu); ending the conversation\n",
                   static_cast<long long>(decoder.position()),
                   static_cast<long long>(decoder.capacity()), tokens.size());
      return 0;
    }
    Result<GenerateStats> stats =
        generate(decoder, sampler, &tokenizer, tokens, {args.max_tokens, kTurnStop}, print_text);
    if (!stats.ok()) return fail("generate", stats.status());
    print_text("\n");
    print_stats(stats.value(), args.json);
    switch (stats.value().stop) {
      case StopReason::kEos:  // the EOS in the cache ends the conversation so far
        carry.clear();
        break;
      case StopReason::kStopString:  // the cache ends before the "\n" that began the header
        carry = stats.value().uncached_text + "\n";
        break;
      case StopReason::kMaxTokens:
        carry = "\n";
        break;
      case StopReason::kCacheFull:
        std::fprintf(stderr,
                     "tern generate: the context is full (%lld tokens); ending the "
                     "conversation\n",
                     static_cast<long long>(decoder.capacity()));
        return 0;
    }
  }
  return 0;
}

int run_generate(const GenerateArgs& args) {
  const Status sampler_ok = args.sampler.validate();
  if (!sampler_ok.ok()) return fail("generate", sampler_ok);
  if (args.model.empty() == args.random_preset.empty()) {
    return fail("generate", Status::Error("give exactly one of --model and --random-preset"));
  }
  if (!args.random_preset.empty()) {
    if (args.prompt.has_value() || args.chat || !args.lora.empty()) {
      return fail(
          "generate",
          Status::Error("--random-preset takes --prompt-tokens, not --prompt, --chat or --lora"));
    }
    return run_random(args);
  }
  if (args.prompt.has_value() == args.chat) {
    return fail("generate", Status::Error("give exactly one of --prompt and --chat"));
  }
  Result<LoadedModel> loaded = load_model(args.model, args.lora);
  if (!loaded.ok()) return fail("generate", loaded.status());
  Result<Tokenizer> tokenizer = require_tokenizer(loaded.value(), args.model);
  if (!tokenizer.ok()) return fail("generate", tokenizer.status());
  Result<KvDecoder> decoder = KvDecoder::create(loaded.value().model);
  if (!decoder.ok()) return fail("generate", decoder.status());
  Sampler sampler(args.sampler, loaded.value().model.config().vocab);
  if (args.chat) return run_chat(args, decoder.value(), sampler, tokenizer.value());

  const std::vector<int32_t> prompt =
      tokenizer.value().encode(*args.prompt, /*add_special=*/true, /*parse_special=*/false);
  if (prompt.empty()) {
    return fail("generate",
                Status::Error("the prompt is empty and the vocabulary adds no BOS token"));
  }
  print_text(*args.prompt);
  Result<GenerateStats> stats = generate(decoder.value(), sampler, &tokenizer.value(), prompt,
                                         {args.max_tokens, ""}, print_text);
  if (!stats.ok())
    return fail("generate", stats.status().with_context("prompt '" + *args.prompt + "'"));
  print_text("\n");
  print_stats(stats.value(), args.json);
  return 0;
}

}  // namespace
}  // namespace generate_cmd

Command add_generate_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "generate", "Generate text with a model (streamed to stdout), or measure decode speed");
  auto args = std::make_shared<generate_cmd::GenerateArgs>();
  CLI::Option* model =
      app->add_option("--model", args->model, "Model GGUF (with tokenizer metadata)");
  app->add_option("--lora", args->lora, "LoRA adapter GGUF to apply to the model")->needs(model);
  CLI::Option* preset =
      app->add_option("--random-preset", args->random_preset,
                      "Measure decode speed on a randomly initialized model of this preset "
                      "instead of --model (see `tern info`)")
          ->excludes(model);
  CLI::Option* prompt = app->add_option("--prompt", args->prompt, "Text to continue");
  app->add_flag("--chat", args->chat,
                "Chat: one user message per line on stdin, replies streamed to stdout "
                "(\"### User:\" / \"### Assistant:\" template); ends at EOF or a full context")
      ->excludes(prompt);
  app->add_option("--prompt-tokens", args->prompt_tokens,
                  "With --random-preset: length of the random prompt")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20))
      ->needs(preset)
      ->capture_default_str();
  app->add_flag("--f16", args->random_f16,
                "With --random-preset: keep the embedding and head (and any dense linear) "
                "in F16, as BitNet checkpoints store them, instead of fp32")
      ->needs(preset);
  app->add_option("--max-tokens", args->max_tokens, "Most tokens to generate (per chat turn)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 30))
      ->capture_default_str();
  app->add_option("--temperature", args->sampler.temperature,
                  "Sampling temperature; 0 = greedy (always the most likely token)")
      ->capture_default_str();
  app->add_option("--top-k", args->sampler.top_k,
                  "Sample among the k most likely tokens; 0 = no limit")
      ->capture_default_str();
  app->add_option("--top-p", args->sampler.top_p,
                  "Sample among the most likely tokens whose probability adds up to p, in (0, 1]")
      ->capture_default_str();
  app->add_option("--seed", args->sampler.seed,
                  "Sampling seed (with --random-preset also the weights and prompt)")
      ->capture_default_str();
  app->add_flag("--json", args->json,
                "Print the speeds as a final JSON line on stdout instead of on stderr");
  return {app, [args]() -> int { return generate_cmd::run_generate(*args); }};
}

}  // namespace tern::cli
