// `tern keygen`: creates a node key file (mode 0600, never overwriting one) or
// shows the node id of an existing one. The id goes to stdout alone, so
// scripts can capture it.
#include <cstdio>
#include <memory>
#include <string>

#include "cli/commands.h"
#include "net/identity.h"

namespace tern::cli {

Command add_keygen_command(CLI::App& root) {
  CLI::App* app = root.add_subcommand("keygen", "Create a node key file or show its node id");
  auto out = std::make_shared<std::string>();
  auto show = std::make_shared<std::string>();
  CLI::Option* out_option =
      app->add_option("--out", *out, "Create a new key file here (refuses an existing file)");
  CLI::Option* show_option =
      app->add_option("--show", *show, "Print the node id of an existing key file");
  out_option->excludes(show_option);
  return {app, [out, show]() -> int {
            if (out->empty() == show->empty()) {
              std::fprintf(stderr, "tern keygen: give exactly one of --out FILE or --show FILE\n");
              return 1;
            }
            if (!out->empty()) {
              const net::Identity identity = net::Identity::generate();
              Status saved = identity.save(*out);
              if (!saved.ok()) {
                std::fprintf(stderr, "tern keygen: %s\n", saved.message().c_str());
                return 1;
              }
              std::printf("%s\n", identity.id().to_string().c_str());
              return 0;
            }
            Result<net::Identity> loaded = net::Identity::load(*show);
            if (!loaded.ok()) {
              std::fprintf(stderr, "tern keygen: %s\n", loaded.status().message().c_str());
              return 1;
            }
            std::printf("%s\n", loaded.value().id().to_string().c_str());
            return 0;
          }};
}

}  // namespace tern::cli
