// `tern convert`: a Hugging Face checkpoint directory to a model GGUF.
#include <cstdio>
#include <memory>

#include "cli/commands.h"
#include "model/hf_convert.h"

namespace tern::cli {
namespace convert_cmd {
namespace {

struct ConvertArgs {
  std::string hf_dir;
  std::string output;
  std::string ternary_type = "tq2_0";
};

}  // namespace
}  // namespace convert_cmd

Command add_convert_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand(
      "convert", "Convert a Hugging Face checkpoint (BitNet b1.58 2B-4T, 1bitLLM, Llama) to GGUF");
  auto args = std::make_shared<convert_cmd::ConvertArgs>();
  app->add_option("hf_dir", args->hf_dir, "Directory with config.json and *.safetensors")
      ->required();
  app->add_option("-o,--output", args->output, "GGUF file to write")->required();
  app->add_option("--ternary-type", args->ternary_type, "tq2_0 | tq1_0")
      ->check(CLI::IsMember({"tq2_0", "tq1_0"}))
      ->capture_default_str();
  return {app, [args]() -> int {
            ModelWriteOptions options;
            options.ternary_type =
                args->ternary_type == "tq1_0" ? TernaryFileType::kTQ1_0 : TernaryFileType::kTQ2_0;
            const Status s = convert_hf_to_gguf(args->hf_dir, args->output, options);
            if (!s.ok()) return fail("convert", s);
            std::printf("wrote %s\n", args->output.c_str());
            return 0;
          }};
}

}  // namespace tern::cli
