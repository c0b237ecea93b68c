// `tern info`: shows model presets, their configs and parameter counts.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "model/config.h"

namespace tern::cli {

Command add_info_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand("info", "Show model presets and their parameter counts");
  auto preset = std::make_shared<std::string>();
  app->add_option("--preset", *preset, "Print one preset's full config as JSON");
  return {app, [preset]() -> int {
            if (!preset->empty()) {
              Result<ModelConfig> config = preset_config(*preset);
              if (!config.ok()) {
                std::fprintf(stderr, "tern info: %s\n", config.status().message().c_str());
                return 1;
              }
              std::printf("%s\n", model_config_to_json(config.value()).c_str());
              return 0;
            }
            std::printf("%-14s %8s %7s %6s %4s %6s %7s %12s\n", "preset", "linear", "hidden",
                        "layers", "kv", "ffn", "vocab", "params");
            for (const std::string& name : preset_names()) {
              const ModelConfig c = preset_config(name).value();
              std::printf("%-14s %8s %7lld %6lld %4lld %6lld %7lld %12lld\n", name.c_str(),
                          c.linear == LinearKind::kTernary ? "ternary" : "dense",
                          static_cast<long long>(c.hidden), static_cast<long long>(c.layers),
                          static_cast<long long>(c.kv_heads), static_cast<long long>(c.ffn),
                          static_cast<long long>(c.vocab), static_cast<long long>(c.num_params()));
            }
            return 0;
          }};
}

}  // namespace tern::cli
