#include "train/report.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string_view>

#include "core/file_io.h"
#include "core/text.h"

namespace tern {
namespace {

// Paths in messages are shown whole (up to PATH_MAX), not cut at quote_for_message's default.
std::string quote_path(const std::string& path) {
  return quote_for_message(path, 4096);
}

// ---- HTML -------------------------------------------------------------------------------------

void append_escaped(std::string& out, std::string_view text) {
  for (const char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
}

std::string escaped(std::string_view text) {
  std::string out;
  append_escaped(out, text);
  return out;
}

// SVG coordinate with one decimal: plenty at screen resolution and keeps long series small.
// to_chars, unlike printf, ignores the locale.
std::string coord(double v) {
  std::array<char, 64> buf;
  const auto end =
      std::to_chars(buf.data(), buf.data() + buf.size(), v, std::chars_format::fixed, 1);
  return std::string(buf.data(), end.ptr);
}

// Cuts `text` to at most `max_chars` UTF-8 code points, marking the cut with an ellipsis.
std::string truncate_utf8(const std::string& text, size_t max_chars) {
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;  // continuation byte
    if (chars == max_chars) return text.substr(0, i) + "\u2026";
    ++chars;
  }
  return text;
}

// Plot geometry, in SVG user units.
constexpr double kWidth = 720;
constexpr double kLeft = 72, kRight = 700, kTop = 16, kBottom = 276;
constexpr double kLegendTop = kBottom + 60, kLegendRow = 18;
constexpr int kTargetTicks = 5;
constexpr int kMaxLogTicks = 8;
constexpr size_t kMaxLegendChars = 60;

// Ten well-separated colours (the Tableau 10 set); past ten series the colours repeat with a
// different dash pattern, so every series stays distinguishable.
constexpr std::array<const char*, 10> kPalette = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e",
                                                  "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                                  "#bcbd22", "#17becf"};
constexpr std::array<const char*, 3> kDashes = {"", "6 3", "2 3"};

std::string series_style(size_t index) {
  std::string style = "stroke=\"" + std::string(kPalette[index % kPalette.size()]) + "\"";
  const char* dash = kDashes[(index / kPalette.size()) % kDashes.size()];
  if (*dash != '\0') style += " stroke-dasharray=\"" + std::string(dash) + "\"";
  return style;
}

// An axis in "axis units": the value itself on a linear axis, log10 of it on a log axis.
struct Axis {
  double lo = 0, hi = 1;
  std::vector<double> ticks;  // axis units, ascending, within [lo, hi]
  std::vector<std::string> labels;
  std::vector<double> minor;  // unlabelled grid lines (2×..9× within each decade of a log axis)

  // Position in [0, 1]. Ranges wider than the largest double (-1e308..1e308) are halved first.
  double fraction(double v) const {
    return std::isfinite(hi - lo) ? (v - lo) / (hi - lo) : (v / 2 - lo / 2) / (hi / 2 - lo / 2);
  }
};

// 1, 2 or 5 times a power of ten, at least `raw`.
double nice_step(double raw) {
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  if (!(magnitude > 0) || !std::isfinite(magnitude)) return raw;  // subnormal range
  const double norm = raw / magnitude;
  const double multiple = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10;
  return multiple * magnitude;
}

// `round_out` widens the axis to the ticks around the data (a y axis that starts and ends on a
// label); otherwise the axis spans exactly the data (no empty margin after the last step).
Axis linear_axis(double lo, double hi, bool round_out) {
  constexpr double kMax = std::numeric_limits<double>::max();
  // Constant (or constant up to rounding) data still gets a range to draw in, centred on it.
  const double magnitude = std::max(std::abs(lo), std::abs(hi));
  if (!(hi - lo > magnitude * 1e-9)) {
    const double centre = lo / 2 + hi / 2;
    // Below the normal doubles a tenth of the value may round to nothing.
    const double pad = magnitude >= std::numeric_limits<double>::min() ? magnitude * 0.1 : 1.0;
    lo = std::max(centre - pad, -kMax);
    hi = std::min(centre + pad, kMax);
  }
  Axis axis;
  const double step = nice_step(hi / kTargetTicks - lo / kTargetTicks);
  const double first = std::floor(lo / step), last = std::ceil(hi / step);
  // Rounding out is skipped where it would leave the doubles.
  axis.lo = round_out && std::isfinite(first * step) ? first * step : lo;
  axis.hi = round_out && std::isfinite(last * step) ? last * step : hi;
  if (last - first <= 4 * kTargetTicks) {
    for (double i = first; i <= last; i += 1) {
      const double tick = i * step;
      // The slack keeps a tick that lands on the data's end up to rounding (6 × 0.05 > 0.3).
      const double slack = step * 1e-9;
      if (tick >= axis.lo - slack && tick <= axis.hi + slack) axis.ticks.push_back(tick);
    }
  }
  if (axis.ticks.size() < 2) axis.ticks = {axis.lo, axis.hi};
  // Enough significant digits to tell neighbouring ticks apart, e.g. 1.000002 next to 1.000004.
  // Degenerate steps (subnormal ranges) fall back to the most digits.
  const double largest = std::max(std::abs(axis.ticks.front()), std::abs(axis.ticks.back()));
  const double digits = std::floor(std::log10(largest)) - std::floor(std::log10(step)) + 1;
  const int label_digits =
      std::isfinite(digits) ? static_cast<int>(std::clamp(digits, 1.0, 15.0)) : 15;
  for (const double tick : axis.ticks) axis.labels.push_back(format_compact(tick, label_digits));
  return axis;
}

// "1e-07" style label for 10^exponent, computed from the exponent so that decades whose value
// underflows a double are still labelled.
std::string decade_label(int exponent) {
  if (exponent >= -4 && exponent < 15) return format_compact(std::pow(10.0, exponent), 1);
  const int magnitude = std::abs(exponent);
  return std::string("1e") + (exponent < 0 ? "-" : "+") + (magnitude < 10 ? "0" : "") +
         std::to_string(magnitude);
}

// `lo` and `hi` are log10 of the smallest and largest value; ticks fall on whole decades.
Axis log_axis(double lo, double hi) {
  Axis axis;
  double first = std::floor(lo), last = std::ceil(hi);
  if (last == first) last = first + 1;
  const double step = std::max(1.0, std::ceil((last - first) / kMaxLogTicks));
  first = std::floor(first / step) * step;
  last = std::ceil(last / step) * step;
  axis.lo = first;
  axis.hi = last;
  for (double e = first; e <= last; e += step) {
    axis.ticks.push_back(e);
    axis.labels.push_back(decade_label(static_cast<int>(e)));
    // Few decades leave wide gaps between labels; intermediate grid lines help read values.
    if (step == 1 && last - first <= 4 && e < last) {
      for (int m = 2; m <= 9; ++m) axis.minor.push_back(e + std::log10(m));
    }
  }
  return axis;
}

// A series reduced to what can be drawn: runs of consecutive plottable points, in axis units.
using Segment = std::vector<std::pair<double, double>>;

std::vector<Segment> plottable_segments(const Series& series, bool log_y) {
  std::vector<Segment> segments(1);
  for (const auto& [x, y] : series.points) {
    const bool drawable = std::isfinite(x) && std::isfinite(y) && (!log_y || y > 0);
    if (!drawable) {
      if (!segments.back().empty()) segments.emplace_back();
      continue;
    }
    segments.back().emplace_back(x, log_y ? std::log10(y) : y);
  }
  if (segments.back().empty()) segments.pop_back();
  return segments;
}

void render_chart(std::string& out, const Chart& chart) {
  out += "<figure class=\"chart\">\n<figcaption>";
  append_escaped(out, chart.title);
  out += "</figcaption>\n";

  std::vector<std::vector<Segment>> series_segments;
  double x_min = std::numeric_limits<double>::infinity(), x_max = -x_min;
  double y_min = x_min, y_max = -x_min;
  for (const Series& series : chart.series) {
    series_segments.push_back(plottable_segments(series, chart.log_y));
    for (const Segment& segment : series_segments.back()) {
      for (const auto& [x, y] : segment) {
        x_min = std::min(x_min, x);
        x_max = std::max(x_max, x);
        y_min = std::min(y_min, y);
        y_max = std::max(y_max, y);
      }
    }
  }
  if (!(x_min <= x_max)) {
    out += "<p class=\"note\">No data to plot.</p>\n</figure>\n";
    return;
  }

  const Axis x_axis = linear_axis(x_min, x_max, /*round_out=*/false);
  const Axis y_axis =
      chart.log_y ? log_axis(y_min, y_max) : linear_axis(y_min, y_max, /*round_out=*/true);
  const auto px = [&](double x) { return coord(kLeft + x_axis.fraction(x) * (kRight - kLeft)); };
  const auto py = [&](double y) { return coord(kBottom - y_axis.fraction(y) * (kBottom - kTop)); };
  const double height = kLegendTop + kLegendRow * static_cast<double>(chart.series.size());
  const std::string w = coord(kWidth), h = coord(height);

  out += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + w + "\" height=\"" + h +
         "\" viewBox=\"0 0 " + w + " " + h + "\" role=\"img\" aria-label=\"" +
         escaped(chart.title) + "\">\n";
  // Grid and ticks first, so the data lines are drawn on top.
  for (size_t i = 0; i < x_axis.ticks.size(); ++i) {
    const std::string x = px(x_axis.ticks[i]);
    out += "<line class=\"grid\" x1=\"" + x + "\" y1=\"" + coord(kTop) + "\" x2=\"" + x +
           "\" y2=\"" + coord(kBottom + 4) + "\"/>\n";
    out += "<text class=\"xtick\" x=\"" + x + "\" y=\"" + coord(kBottom + 18) +
           "\" text-anchor=\"middle\">" + x_axis.labels[i] + "</text>\n";
  }
  for (const double minor : y_axis.minor) {
    const std::string y = py(minor);
    out += "<line class=\"grid minor\" x1=\"" + coord(kLeft) + "\" y1=\"" + y + "\" x2=\"" +
           coord(kRight) + "\" y2=\"" + y + "\"/>\n";
  }
  for (size_t i = 0; i < y_axis.ticks.size(); ++i) {
    const std::string y = py(y_axis.ticks[i]);
    out += "<line class=\"grid\" x1=\"" + coord(kLeft - 4) + "\" y1=\"" + y + "\" x2=\"" +
           coord(kRight) + "\" y2=\"" + y + "\"/>\n";
    out += "<text class=\"ytick\" x=\"" + coord(kLeft - 7) + "\" y=\"" + y +
           "\" text-anchor=\"end\" dominant-baseline=\"middle\">" + y_axis.labels[i] + "</text>\n";
  }
  out += "<path class=\"axis\" d=\"M" + coord(kLeft) + " " + coord(kTop) + " V" + coord(kBottom) +
         " H" + coord(kRight) + "\"/>\n";
  out += "<text class=\"xlabel\" x=\"" + coord((kLeft + kRight) / 2) + "\" y=\"" +
         coord(kBottom + 40) + "\" text-anchor=\"middle\">" + escaped(chart.x_label) + "</text>\n";
  const std::string label_x = coord(16), label_y = coord((kTop + kBottom) / 2);
  out += "<text class=\"ylabel\" x=\"" + label_x + "\" y=\"" + label_y +
         "\" text-anchor=\"middle\" transform=\"rotate(-90 " + label_x + " " + label_y + ")\">" +
         escaped(chart.y_label) + (chart.log_y ? " (log scale)" : "") + "</text>\n";

  for (size_t s = 0; s < chart.series.size(); ++s) {
    const std::string style = series_style(s);
    std::string path;
    for (const Segment& segment : series_segments[s]) {
      if (segment.size() == 1) {
        // A lone point has no line to draw; mark it instead.
        out += "<circle class=\"dot\" cx=\"" + px(segment[0].first) + "\" cy=\"" +
               py(segment[0].second) + "\" r=\"2.5\" fill=\"" + kPalette[s % kPalette.size()] +
               "\"/>\n";
        continue;
      }
      for (size_t i = 0; i < segment.size(); ++i) {
        path += (i == 0 ? (path.empty() ? "M" : " M") : " L") + px(segment[i].first) + " " +
                py(segment[i].second);
      }
    }
    if (!path.empty()) {
      out += "<path class=\"line\" " + style + " d=\"" + path + "\"/>\n";
    }
    const double row = kLegendTop + kLegendRow * static_cast<double>(s);
    out += "<line class=\"swatch\" " + style + " x1=\"" + coord(kLeft) + "\" y1=\"" + coord(row) +
           "\" x2=\"" + coord(kLeft + 24) + "\" y2=\"" + coord(row) + "\"/>\n";
    out += "<text class=\"legend\" x=\"" + coord(kLeft + 32) + "\" y=\"" + coord(row) +
           "\" dominant-baseline=\"middle\">" +
           escaped(truncate_utf8(chart.series[s].name, kMaxLegendChars)) + "</text>\n";
  }
  out += "</svg>\n</figure>\n";
}

void render_pairs(std::string& out, const char* css_class,
                  const std::vector<std::pair<std::string, std::string>>& pairs) {
  out += "<table class=\"";
  out += css_class;
  out += "\">\n";
  for (const auto& [key, value] : pairs) {
    out += "<tr><th>" + escaped(key) + "</th><td>" + escaped(value) + "</td></tr>\n";
  }
  out += "</table>\n";
}

void render_table(std::string& out, const ReportTable& table) {
  out += "<h3>" + escaped(table.title) + "</h3>\n<table class=\"data\">\n";
  if (!table.header.empty()) {
    out += "<thead><tr>";
    for (const std::string& cell : table.header) out += "<th>" + escaped(cell) + "</th>";
    out += "</tr></thead>\n";
  }
  out += "<tbody>\n";
  for (const auto& row : table.rows) {
    out += "<tr>";
    for (const std::string& cell : row) out += "<td>" + escaped(cell) + "</td>";
    out += "</tr>\n";
  }
  out += "</tbody>\n</table>\n";
}

constexpr std::string_view kStyle = R"css(
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #222;
       background: #fafafa; margin: 0; line-height: 1.4; }
main { max-width: 980px; margin: 0 auto; padding: 24px; }
h1 { margin: 0 0 4px; font-size: 26px; }
h2 { margin: 32px 0 12px; font-size: 19px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
h3 { margin: 20px 0 8px; font-size: 15px; }
.subtitle { margin: 0; color: #666; }
table { border-collapse: collapse; background: #fff; margin-bottom: 8px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: left; vertical-align: top; }
thead th { background: #f0f0f0; }
td { font-variant-numeric: tabular-nums; }
table.summary th { font-weight: normal; color: #555; }
table.summary td { font-size: 20px; font-weight: 600; }
table.config td, table.config th { font-family: ui-monospace, Menlo, Consolas, monospace;
                                   font-size: 13px; }
figure.chart { margin: 0 0 24px; background: #fff; border: 1px solid #ddd; padding: 8px; }
figcaption { font-weight: 600; margin-bottom: 4px; }
svg { max-width: 100%; height: auto; }
svg text { font-size: 11px; fill: #333; }
svg .xlabel, svg .ylabel { font-size: 12px; }
svg .grid { stroke: #e6e6e6; stroke-width: 1; }
svg .grid.minor { stroke: #f3f3f3; }
svg .axis { stroke: #444; stroke-width: 1; fill: none; }
svg .line { fill: none; stroke-width: 1.6; stroke-linejoin: round; }
svg .swatch { stroke-width: 2.5; }
.note { color: #888; font-style: italic; }
pre { background: #fff; border: 1px solid #ddd; padding: 10px; white-space: pre-wrap;
      word-break: break-word; font-size: 13px; }
)css";

}  // namespace

std::string format_compact(double value, int digits) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value > 0 ? "inf" : "-inf";
  if (value == 0) return "0";
  // Round once in scientific form, then lay the rounded digits out: the layout must follow the
  // rounded exponent (999.9 at three digits is "1k", not "1e+03" or "1000").
  std::array<char, 64> buf;
  const auto end = std::to_chars(buf.data(), buf.data() + buf.size(), value,
                                 std::chars_format::scientific, std::clamp(digits, 1, 17) - 1);
  std::string_view sci(buf.data(), static_cast<size_t>(end.ptr - buf.data()));  // "-1.25e+04"
  std::string out = value < 0 ? "-" : "";
  if (value < 0) sci.remove_prefix(1);
  const size_t e_pos = sci.find('e');
  std::string significand;
  for (const char c : sci.substr(0, e_pos)) {
    if (c != '.') significand += c;
  }
  while (significand.size() > 1 && significand.back() == '0') significand.pop_back();
  // to_chars writes the exponent like printf: a sign and at least two digits ("e-05").
  const std::string_view exponent_text = sci.substr(e_pos + 1);
  int exponent = 0;
  for (const char c : exponent_text.substr(1)) exponent = exponent * 10 + (c - '0');
  if (exponent_text.front() == '-') exponent = -exponent;

  if (exponent < -4 || exponent >= 15) {
    out += significand.substr(0, 1);
    if (significand.size() > 1) out += "." + significand.substr(1);
    out += "e";
    out += exponent_text;
    return out;
  }
  static constexpr std::array<const char*, 5> kSuffixes = {"", "k", "M", "G", "T"};
  const int group = exponent >= 3 ? exponent / 3 : 0;
  const int int_digits = exponent - 3 * group + 1;  // digits before the point; <= 0 below 1
  if (int_digits <= 0) {
    out += "0." + std::string(static_cast<size_t>(-int_digits), '0') + significand;
  } else {
    const auto n = static_cast<size_t>(int_digits);
    if (significand.size() < n) significand.append(n - significand.size(), '0');
    out += significand.substr(0, n);
    if (significand.size() > n) out += "." + significand.substr(n);
  }
  out += kSuffixes[static_cast<size_t>(group)];
  return out;
}

std::string render_html_report(const RunReport& report) {
  const std::string title = report.title.empty() ? "Run report" : report.title;
  std::string out;
  out += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  out += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  out += "<title>" + escaped(title) + "</title>\n<style>";
  out += kStyle;
  out += "</style>\n</head>\n<body>\n<main>\n";
  out += "<h1>" + escaped(title) + "</h1>\n";
  if (!report.subtitle.empty()) {
    out += "<p class=\"subtitle\">" + escaped(report.subtitle) + "</p>\n";
  }
  if (!report.summary.empty()) {
    out += "<section>\n<h2>Summary</h2>\n";
    render_pairs(out, "summary", report.summary);
    out += "</section>\n";
  }
  if (!report.charts.empty()) {
    out += "<section>\n<h2>Charts</h2>\n";
    for (const Chart& chart : report.charts) render_chart(out, chart);
    out += "</section>\n";
  }
  if (!report.tables.empty()) {
    out += "<section>\n<h2>Tables</h2>\n";
    for (const ReportTable& table : report.tables) render_table(out, table);
    out += "</section>\n";
  }
  if (!report.config.empty()) {
    out += "<section>\n<h2>Configuration</h2>\n";
    render_pairs(out, "config", report.config);
    out += "</section>\n";
  }
  if (!report.texts.empty()) {
    out += "<section>\n<h2>Texts</h2>\n";
    for (const auto& [heading, text] : report.texts) {
      out += "<h3>" + escaped(heading) + "</h3>\n<pre>" + escaped(text) + "</pre>\n";
    }
    out += "</section>\n";
  }
  out += "</main>\n</body>\n</html>\n";
  return out;
}

Status write_html_report(const std::string& path, const RunReport& report) {
  const std::string html = render_html_report(report);
  return write_file_atomically(path, "write html report " + quote_path(path), [&](int fd) {
    size_t written = 0;
    return write_all(fd, html.data(), html.size(), written);
  });
}

// ---- MetricsLog -------------------------------------------------------------------------------

Result<MetricsLog> MetricsLog::open(const std::string& path, Mode mode) {
  const std::string context = "open metrics log " + quote_path(path);
  // Read access too, to look at the last byte of an existing file.
  const int flags =
      O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | (mode == Mode::kTruncate ? O_TRUNC : 0);
  const int fd = ::open(path.c_str(), flags, 0644);
  if (fd < 0) return Status::Error(context + ": " + errno_text(errno));
  bool torn = false;
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::Error(context + ": stat: " + errno_text(err));
  }
  if (S_ISREG(st.st_mode) && st.st_size > 0) {
    char last = '\n';
    if (::pread(fd, &last, 1, st.st_size - 1) != 1) {
      const int err = errno;
      ::close(fd);
      return Status::Error(context + ": read last byte: " + errno_text(err));
    }
    torn = last != '\n';
  }
  return MetricsLog(fd, path, torn);
}

MetricsLog::MetricsLog(MetricsLog&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      needs_newline_(other.needs_newline_) {}

MetricsLog& MetricsLog::operator=(MetricsLog&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    needs_newline_ = other.needs_newline_;
  }
  return *this;
}

MetricsLog::~MetricsLog() {
  if (fd_ >= 0) ::close(fd_);
}

Status MetricsLog::write(const nlohmann::json& record) {
  TERN_CHECK(fd_ >= 0, "write to a moved-from MetricsLog");
  TERN_CHECK(record.is_object(), "metrics record must be a JSON object, not ", record.type_name());
  std::string line = needs_newline_ ? "\n" : "";
  line += record.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  line += '\n';
  size_t written = 0;
  const Status status = write_all(fd_, line.data(), line.size(), written);
  if (!status.ok()) {
    // Part of the line may be in the file; start the next record on a line of its own.
    if (written > 0) needs_newline_ = true;
    return status.with_context("write metrics log " + quote_path(path_));
  }
  needs_newline_ = false;
  return Status::Ok();
}

// ---- Memory -----------------------------------------------------------------------------------

namespace {

// A "Key:   1234 kB" line of /proc/self/status, in bytes; 0 if absent or unreadable.
int64_t proc_status_bytes(std::string_view key) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.size() <= key.size() || line.compare(0, key.size(), key) != 0 ||
        line[key.size()] != ':') {
      continue;
    }
    const size_t begin = line.find_first_not_of(" \t", key.size() + 1);
    if (begin == std::string::npos) return 0;
    int64_t kib = 0;
    const auto [end, ec] = std::from_chars(line.data() + begin, line.data() + line.size(), kib);
    if (ec != std::errc() || std::string_view(end, line.data() + line.size()) != " kB") return 0;
    return kib * 1024;
  }
  return 0;
}

}  // namespace

int64_t peak_rss_bytes() {
  return proc_status_bytes("VmHWM");
}

int64_t current_rss_bytes() {
  return proc_status_bytes("VmRSS");
}

}  // namespace tern
