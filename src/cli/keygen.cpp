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
              return fail("keygen", Status::Error("give exactly one of --out FILE or --show FILE"));
            }
            if (!out->empty()) {
              const net::Identity identity = net::Identity::generate();
              Status saved = identity.save(*out);
              if (!saved.ok()) return fail("keygen", saved);
              std::printf("%s\n", identity.id().to_string().c_str());
              return 0;
            }
            Result<net::Identity> loaded = net::Identity::load(*show);
            if (!loaded.ok()) return fail("keygen", loaded.status());
            std::printf("%s\n", loaded.value().id().to_string().c_str());
            return 0;
          }};
}

}  // namespace tern::cli
