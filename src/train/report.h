// Run reports: a self-contained HTML page, a JSONL metrics log, and process memory figures.
//
// render_html_report() turns a RunReport into one HTML file that needs nothing else to display:
// CSS is inline, charts are inline SVG line charts (axes, 1/2/5×10^k ticks or decades on a log
// axis, axis titles, a legend, one colour per series), and there is no JavaScript. Every string
// from the report is HTML-escaped (& < > " '), so sample text or config values cannot inject
// markup. Non-finite points (and non-positive ones on a log axis) are not drawn: the line breaks
// there. A chart with nothing to draw shows a "No data to plot." note. The output depends only on
// the report: same report, same bytes.
//
// MetricsLog appends one JSON object per line to a file and hands each line to the OS before
// write() returns, so a crashed run keeps every record it wrote.
//
// Thread-safety: the free functions are thread-safe (they touch no shared state besides the files
// they are given). A MetricsLog is not synchronized; use one per thread or lock around it.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace tern {

struct Series {
  std::string name;
  std::vector<std::pair<double, double>> points;  // (x, y), drawn in the given order
};

struct Chart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  bool log_y = false;  // decades on the y axis; points with y <= 0 are not drawn
};

struct ReportTable {
  std::string title;
  std::vector<std::string> header;
  std::vector<std::vector<std::string>> rows;
};

struct RunReport {
  std::string title, subtitle;
  std::vector<std::pair<std::string, std::string>> summary;  // headline figures, shown first
  std::vector<Chart> charts;
  std::vector<ReportTable> tables;
  std::vector<std::pair<std::string, std::string>> config;  // key/value rows
  std::vector<std::pair<std::string, std::string>> texts;   // (title, preformatted block)
};

std::string render_html_report(const RunReport& report);

// Writes render_html_report(report) to `path` atomically: a temporary file next to it (removed
// again on failure), fsync, rename, fsync of the directory. Errors name the path.
Status write_html_report(const std::string& path, const RunReport& report);

// A number in at most `digits` significant digits, short enough for a tick label or a summary
// cell: "0", "0.25", "120", "12.5k", "3M", "1.5e-05", "2e+18". Suffixes k/M/G/T cover 1e3..1e15;
// below 1e-4 and from 1e15 up it switches to exponent notation. "nan", "inf", "-inf" otherwise.
std::string format_compact(double value, int digits = 3);

// Appends JSON objects to a file, one per line (JSON Lines).
class MetricsLog {
 public:
  enum class Mode { kAppend, kTruncate };

  // Opens or creates `path`. kAppend keeps the existing lines; if the file ends in a torn line
  // (no final newline, e.g. after a crash) the next record starts on a fresh line.
  static Result<MetricsLog> open(const std::string& path, Mode mode);

  MetricsLog(MetricsLog&& other) noexcept;
  MetricsLog& operator=(MetricsLog&& other) noexcept;
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  ~MetricsLog();

  // Writes `record` (must be a JSON object) as one line, handed to one O_APPEND write(2), so
  // concurrent appenders do not interleave within a line. Invalid UTF-8 in strings becomes
  // U+FFFD; NaN and infinite numbers become null (JSON has no such values). Not fsynced: the
  // line survives a process crash, not a power loss.
  Status write(const nlohmann::json& record);

  const std::string& path() const { return path_; }

 private:
  MetricsLog(int fd, std::string path, bool needs_newline)
      : fd_(fd), path_(std::move(path)), needs_newline_(needs_newline) {}

  int fd_ = -1;
  std::string path_;
  bool needs_newline_ = false;  // the file ends in a torn line
};

// Peak resident set size of this process (VmHWM in /proc/self/status), in bytes; 0 if unavailable.
int64_t peak_rss_bytes();
// Current resident set size (VmRSS), in bytes; 0 if unavailable.
int64_t current_rss_bytes();

}  // namespace tern
