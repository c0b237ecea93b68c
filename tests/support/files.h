// Whole-file helpers for tests: read a file's bytes, write bytes to a file.
// Failures show up as the assertions that follow them (an empty read).
#pragma once

#include <fstream>
#include <sstream>
#include <string>

namespace tern::testing {

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

inline void write_file(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
}

}  // namespace tern::testing
