// The helpers shared by the tern subcommands (commands.h).
#include "cli/commands.h"

#include <cstdio>

namespace tern::cli {

int fail(std::string_view command, const Status& status) {
  std::fprintf(stderr, "tern %.*s: %s\n", static_cast<int>(command.size()), command.data(),
               status.message().c_str());
  return 1;
}

}  // namespace tern::cli
