#include "core/log.h"

#include <cstdio>
#include <memory>
#include <mutex>

namespace tern {
namespace {

std::mutex& log_mutex() {
  static std::mutex mutex;
  return mutex;
}
LogSink& current_sink() {
  static LogSink sink;
  return sink;
}
LogLevel& min_level() {
  static LogLevel level = LogLevel::kInfo;
  return level;
}

std::string format_line(LogLevel level, std::string_view component, std::string_view message) {
  std::string line = "[";
  line += log_level_name(level);
  line += "] ";
  line += component;
  line += ": ";
  line += message;
  return line;
}

}  // namespace

std::string_view log_level_name(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug:
      return "debug";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kError:
      return "error";
  }
  return "?";
}

LogSink set_log_sink(LogSink sink) {
  std::lock_guard<std::mutex> lock(log_mutex());
  LogSink previous = std::move(current_sink());
  current_sink() = std::move(sink);
  return previous;
}

void set_log_level(LogLevel level) {
  std::lock_guard<std::mutex> lock(log_mutex());
  min_level() = level;
}

void log_line(LogLevel level, std::string_view component, std::string_view message) {
  std::lock_guard<std::mutex> lock(log_mutex());
  if (level < min_level()) return;
  if (current_sink()) {
    current_sink()(level, component, message);
    return;
  }
  const std::string line = format_line(level, component, message);
  std::fprintf(stderr, "%s\n", line.c_str());
}

struct LogCapture::Shared {
  mutable std::mutex mutex;
  std::vector<std::string> lines;
};

LogCapture::LogCapture() : shared_(std::make_shared<Shared>()) {
  std::shared_ptr<Shared> shared = shared_;
  previous_ =
      set_log_sink([shared](LogLevel level, std::string_view component, std::string_view message) {
        std::lock_guard<std::mutex> lock(shared->mutex);
        shared->lines.push_back(format_line(level, component, message));
      });
}

LogCapture::~LogCapture() {
  set_log_sink(std::move(previous_));
}

std::vector<std::string> LogCapture::lines() const {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  return shared_->lines;
}

bool LogCapture::contains(std::string_view needle) const {
  std::lock_guard<std::mutex> lock(shared_->mutex);
  for (const std::string& line : shared_->lines) {
    if (line.find(needle) != std::string::npos) return true;
  }
  return false;
}

}  // namespace tern
