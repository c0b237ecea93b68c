// Log lines: one line per event, "[level] component: message", to stderr by
// default or to a sink the program (or a test) installs. Used where an event
// must leave a trace without failing an operation, e.g. a peer rejected by the
// network layer while the node keeps serving others.
//
// Thread-safe: lines from concurrent threads never interleave; the sink is
// called under a mutex.
#pragma once

#include <functional>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace tern {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarn = 2, kError = 3 };

std::string_view log_level_name(LogLevel level);

using LogSink = std::function<void(LogLevel, std::string_view component, std::string_view message)>;

// Installs `sink` (an empty function restores stderr). Returns the previous one.
LogSink set_log_sink(LogSink sink);
// Lines below `level` are dropped (default kInfo).
void set_log_level(LogLevel level);

void log_line(LogLevel level, std::string_view component, std::string_view message);

// log(LogLevel::kWarn, "net", "rejected ", peer, ": ", reason) - pieces are
// streamed, so numbers need no to_string.
template <typename... Pieces>
void log(LogLevel level, std::string_view component, const Pieces&... pieces) {
  std::ostringstream out;
  (out << ... << pieces);
  log_line(level, component, out.str());
}

// Collects every line logged while it lives (tests assert on them); restores
// the previous sink on destruction. Not nestable across threads' expectations:
// it captures lines from all threads.
class LogCapture {
 public:
  LogCapture();
  ~LogCapture();
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Lines so far, formatted as "[level] component: message".
  std::vector<std::string> lines() const;
  // True if some line contains `needle`.
  bool contains(std::string_view needle) const;

 private:
  LogSink previous_;
  struct Shared;
  std::shared_ptr<Shared> shared_;
};

}  // namespace tern
