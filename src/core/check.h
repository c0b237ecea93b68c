// CHECK: invariant assertions that stay on in every build type.
//
// A failed CHECK is a bug in tern, never bad user input (that gets a Status).
// It prints file:line, the condition and an optional message, then aborts.
// Thread-safe: only writes to stderr and aborts.
#pragma once

#include <sstream>
#include <string>

namespace tern::detail {

[[noreturn]] void check_failed(const char* file, int line, const char* condition,
                               const std::string& message);

// Builds the optional message from any streamable arguments.
template <typename... Args>
std::string check_message(const Args&... args) {
  if constexpr (sizeof...(Args) == 0) {
    return {};
  } else {
    std::ostringstream out;
    (out << ... << args);
    return out.str();
  }
}

}  // namespace tern::detail

#define TERN_CHECK(cond, ...)                                                   \
  do {                                                                          \
    if (!(cond)) [[unlikely]] {                                                 \
      ::tern::detail::check_failed(__FILE__, __LINE__, #cond,                   \
                                   ::tern::detail::check_message(__VA_ARGS__)); \
    }                                                                           \
  } while (0)
