// Tests for the HTML run report, the JSONL metrics log and the RSS readers.
#include "train/report.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

namespace tern::report_test {
namespace {

namespace fs = std::filesystem;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// A fresh, empty directory per test, removed afterwards.
class ReportDir {
 public:
  explicit ReportDir(const std::string& name)
      : path_(fs::temp_directory_path() /
              ("tern_report_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~ReportDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    for (const auto& entry : fs::directory_iterator(path_)) {
      names.push_back(entry.path().filename().string());
    }
    return names;
  }

 private:
  fs::path path_;
};

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) lines.push_back(line);
  return lines;
}

// Contents of every <text class="css_class" ...>...</text> element, in document order.
// (Plain string scanning: std::regex trips GCC 12 warnings in the sanitizer build.)
std::vector<std::string> svg_texts(const std::string& html, const std::string& css_class) {
  const std::string open = "<text class=\"" + css_class + "\"";
  std::vector<std::string> found;
  for (size_t at = html.find(open); at != std::string::npos; at = html.find(open, at + 1)) {
    const size_t begin = html.find('>', at) + 1;
    found.push_back(html.substr(begin, html.find("</text>", begin) - begin));
  }
  return found;
}

// The attributes of each series line before its d attribute (the stroke style), and the d values.
std::vector<std::pair<std::string, std::string>> line_elements(const std::string& html) {
  const std::string open = "<path class=\"line\" ";
  std::vector<std::pair<std::string, std::string>> found;
  for (size_t at = html.find(open); at != std::string::npos; at = html.find(open, at + 1)) {
    const size_t style = at + open.size();
    const size_t d = html.find(" d=\"", style);
    const size_t d_begin = d + 4;
    found.emplace_back(html.substr(style, d - style),
                       html.substr(d_begin, html.find('"', d_begin) - d_begin));
  }
  return found;
}

std::vector<std::string> line_paths(const std::string& html) {
  std::vector<std::string> paths;
  for (const auto& element : line_elements(html)) paths.push_back(element.second);
  return paths;
}

// Whether a number printed as nan or inf made it into the page (as a coordinate or a label);
// words that merely contain the letters, like "dominant", do not count.
bool has_non_finite_number(const std::string& html) {
  const auto is_letter = [&](size_t i) {
    return std::isalpha(static_cast<unsigned char>(html[i]));
  };
  for (const std::string word : {"nan", "inf"}) {
    for (size_t at = html.find(word); at != std::string::npos; at = html.find(word, at + 1)) {
      const size_t after = at + word.size();
      if ((at == 0 || !is_letter(at - 1)) && (after == html.size() || !is_letter(after))) {
        return true;
      }
    }
  }
  return false;
}

size_t count_of(const std::string& text, const std::string& needle) {
  size_t count = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) {
    ++count;
  }
  return count;
}

RunReport one_chart(Chart chart) {
  RunReport report;
  report.title = "test";
  report.charts.push_back(std::move(chart));
  return report;
}

Chart line_chart(std::vector<std::pair<double, double>> points, bool log_y = false) {
  Chart chart;
  chart.title = "loss";
  chart.x_label = "step";
  chart.y_label = "loss";
  chart.log_y = log_y;
  chart.series.push_back(Series{"train", std::move(points)});
  return chart;
}

TEST(ReportHtml, EscapesEveryUserString) {
  const std::string evil = "<script>alert(1)</script>";
  RunReport report;
  report.title = evil;
  report.subtitle = evil;
  report.summary = {{evil, evil}};
  Chart chart = line_chart({{0, 1}, {1, 2}});
  chart.title = evil;
  chart.x_label = evil;
  chart.y_label = evil;
  chart.series[0].name = evil;
  report.charts.push_back(chart);
  report.tables.push_back(ReportTable{evil, {evil}, {{evil}}});
  report.config = {{"prompt", evil}};
  report.texts = {{evil, evil}};

  const std::string html = render_html_report(report);
  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_NE(html.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);

  report.config = {{"quotes", "a\"b'c&d"}};
  const std::string quoted = render_html_report(report);
  EXPECT_NE(quoted.find("a&quot;b&#39;c&amp;d"), std::string::npos);
  EXPECT_EQ(quoted.find("a\"b'c&d"), std::string::npos);
}

TEST(ReportHtml, SelfContainedWithSectionsInOrder) {
  RunReport report;
  report.title = "Run 7";
  report.summary = {{"final loss", "2.31"}};
  report.charts.push_back(line_chart({{0, 3}, {1, 2}}));
  report.tables.push_back(ReportTable{"evals", {"step", "loss"}, {{"10", "2.5"}}});
  report.config = {{"lr", "0.001"}};
  report.texts = {{"sample", "once upon a time"}};
  const std::string html = render_html_report(report);

  EXPECT_EQ(html.find("<script"), std::string::npos);
  EXPECT_EQ(html.find("http://", html.find("</svg>")), std::string::npos) << "external link";
  EXPECT_EQ(html.find("src="), std::string::npos);
  const size_t summary = html.find("final loss");
  const size_t chart = html.find("<svg");
  const size_t table = html.find("evals");
  const size_t config = html.find("0.001");
  const size_t text = html.find("once upon a time");
  ASSERT_NE(text, std::string::npos);
  EXPECT_LT(summary, chart);
  EXPECT_LT(chart, table);
  EXPECT_LT(table, config);
  EXPECT_LT(config, text);
  EXPECT_EQ(render_html_report(report), html) << "rendering is deterministic";
}

TEST(ReportHtml, SeriesBecomesPathThroughEveryPoint) {
  std::vector<std::pair<double, double>> points;
  for (int i = 0; i < 7; ++i) points.emplace_back(i, 10.0 - i);
  const std::vector<std::string> paths =
      line_paths(render_html_report(one_chart(line_chart(points))));
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(count_of(paths[0], "M"), 1u);
  EXPECT_EQ(count_of(paths[0], "L"), 6u);
}

TEST(ReportHtml, SeriesGetDistinctColoursAndLegendEntries) {
  Chart chart;
  for (int s = 0; s < 12; ++s) {
    const double y = s;
    chart.series.push_back(Series{"run" + std::to_string(s), {{0, y}, {1, y + 1}}});
  }
  const std::string html = render_html_report(one_chart(chart));
  std::vector<std::string> styles;
  for (const auto& element : line_elements(html)) styles.push_back(element.first);
  ASSERT_EQ(styles.size(), 12u);
  for (size_t i = 0; i < styles.size(); ++i) {
    for (size_t j = i + 1; j < styles.size(); ++j) EXPECT_NE(styles[i], styles[j]) << i << " " << j;
  }
  const std::vector<std::string> legend = svg_texts(html, "legend");
  ASSERT_EQ(legend.size(), 12u);
  EXPECT_EQ(legend[0], "run0");
  EXPECT_EQ(legend[11], "run11");
}

TEST(ReportHtml, NiceTicksForKnownRange) {
  const std::string html = render_html_report(one_chart(line_chart({{0, 0}, {10, 10}})));
  const std::vector<std::string> expected = {"0", "2", "4", "6", "8", "10"};
  EXPECT_EQ(svg_texts(html, "xtick"), expected);
  EXPECT_EQ(svg_texts(html, "ytick"), expected);
  EXPECT_EQ(svg_texts(html, "xlabel"), std::vector<std::string>{"step"});
  EXPECT_EQ(svg_texts(html, "ylabel"), std::vector<std::string>{"loss"});
}

TEST(ReportHtml, TicksCoverDataWithOneTwoFiveSteps) {
  // Loss-like values: the axis must cover [1.83, 4.12] with a 1/2/5×10^k step.
  const std::string html =
      render_html_report(one_chart(line_chart({{1, 4.12}, {500, 2.6}, {1000, 1.83}})));
  const std::vector<std::string> y = svg_texts(html, "ytick");
  ASSERT_GE(y.size(), 3u);
  std::vector<double> values;
  for (const std::string& label : y) values.push_back(std::stod(label));
  EXPECT_LE(values.front(), 1.83);
  EXPECT_GE(values.back(), 4.12);
  const double step = values[1] - values[0];
  const double mantissa = step / std::pow(10.0, std::floor(std::log10(step)));
  EXPECT_TRUE(std::abs(mantissa - 1) < 1e-9 || std::abs(mantissa - 2) < 1e-9 ||
              std::abs(mantissa - 5) < 1e-9)
      << step;
  EXPECT_EQ(svg_texts(html, "xtick").back(), "1k");
}

TEST(ReportHtml, NonFinitePointsAreSkipped) {
  const std::string html = render_html_report(
      one_chart(line_chart({{0, 1}, {1, 2}, {2, kNaN}, {3, 4}, {4, 5}, {kInf, 6}, {6, -kInf}})));
  const std::vector<std::string> paths = line_paths(html);
  ASSERT_EQ(paths.size(), 1u);
  // Two runs of two points; the line breaks at the NaN instead of bridging it.
  EXPECT_EQ(count_of(paths[0], "M"), 2u);
  EXPECT_EQ(count_of(paths[0], "L"), 2u);
  EXPECT_FALSE(has_non_finite_number(html));
  // The x axis spans only the finite points.
  EXPECT_EQ(svg_texts(html, "xtick").back(), "4");
}

TEST(ReportHtml, LogAxisTicksArePowersOfTen) {
  const std::string html = render_html_report(
      one_chart(line_chart({{0, 50}, {1, 3}, {2, 0.05}, {3, 0}, {4, -1}}, /*log_y=*/true)));
  const std::vector<std::string> expected = {"0.01", "0.1", "1", "10", "100"};
  EXPECT_EQ(svg_texts(html, "ytick"), expected);
  // Zero and negative values cannot be placed on a log axis and are left out.
  const std::vector<std::string> paths = line_paths(html);
  ASSERT_EQ(paths.size(), 1u);
  EXPECT_EQ(count_of(paths[0], "L"), 2u);
}

TEST(ReportHtml, LogAxisOverManyDecadesKeepsFewTicks) {
  const std::string html =
      render_html_report(one_chart(line_chart({{0, 1e-30}, {1, 1e30}}, /*log_y=*/true)));
  const std::vector<std::string> ticks = svg_texts(html, "ytick");
  EXPECT_LE(ticks.size(), 9u);
  EXPECT_EQ(ticks.front(), "1e-32");
  EXPECT_EQ(ticks.back(), "1e+32");
}

TEST(ReportHtml, EmptyChartsRenderANote) {
  Chart no_series;
  no_series.title = "nothing";
  Chart empty_series = line_chart({});
  Chart only_nan = line_chart({{kNaN, 1}, {2, kNaN}});
  Chart log_non_positive = line_chart({{0, 0}, {1, -3}}, /*log_y=*/true);
  for (const Chart& chart : {no_series, empty_series, only_nan, log_non_positive}) {
    const std::string html = render_html_report(one_chart(chart));
    EXPECT_NE(html.find("No data to plot."), std::string::npos) << chart.title;
    EXPECT_EQ(html.find("<svg"), std::string::npos);
  }
}

TEST(ReportHtml, SinglePointAndConstantSeriesGetARange) {
  const std::string single = render_html_report(one_chart(line_chart({{5, 3}})));
  EXPECT_NE(single.find("<circle class=\"dot\""), std::string::npos);
  EXPECT_GE(svg_texts(single, "ytick").size(), 2u);
  EXPECT_FALSE(has_non_finite_number(single));

  const std::string constant = render_html_report(one_chart(line_chart({{0, 0}, {1, 0}, {2, 0}})));
  const std::vector<std::string> y = svg_texts(constant, "ytick");
  ASSERT_GE(y.size(), 2u);
  EXPECT_LT(std::stod(y.front()), 0.0);
  EXPECT_GT(std::stod(y.back()), 0.0);
  EXPECT_FALSE(has_non_finite_number(constant));
}

TEST(ReportHtml, ExtremeMagnitudesStayFinite) {
  for (const auto& points :
       std::vector<std::vector<std::pair<double, double>>>{{{0, 1e-300}, {1, 3e-300}},
                                                           {{0, -1.7e308}, {1, 1.7e308}},
                                                           {{0, 1.0}, {1, 1.0 + 1e-15}},
                                                           {{0, 5e-324}, {1, 1e-323}},
                                                           {{0, 1e15}, {1, 4e15}}}) {
    const std::string html = render_html_report(one_chart(line_chart(points)));
    EXPECT_FALSE(has_non_finite_number(html)) << points[1].second;
    EXPECT_GE(svg_texts(html, "ytick").size(), 2u);
    EXPECT_EQ(line_paths(html).size(), 1u);
  }
  const std::string tiny = render_html_report(one_chart(line_chart({{0, 1e-5}, {1, 3e-5}})));
  const std::vector<std::string> ticks = svg_texts(tiny, "ytick");
  ASSERT_FALSE(ticks.empty());
  EXPECT_NE(std::find(ticks.begin(), ticks.end(), "2e-05"), ticks.end());
}

TEST(ReportHtml, FormatCompact) {
  EXPECT_EQ(format_compact(0), "0");
  EXPECT_EQ(format_compact(-0.0), "0");
  EXPECT_EQ(format_compact(1.5e-5), "1.5e-05");
  EXPECT_EQ(format_compact(12000), "12k");
  EXPECT_EQ(format_compact(12345), "12.3k");
  EXPECT_EQ(format_compact(999.9), "1k");
  EXPECT_EQ(format_compact(120), "120");
  EXPECT_EQ(format_compact(0.25), "0.25");
  EXPECT_EQ(format_compact(0.0001), "0.0001");
  EXPECT_EQ(format_compact(-3.25e6), "-3.25M");
  EXPECT_EQ(format_compact(7e12), "7T");
  EXPECT_EQ(format_compact(2e18), "2e+18");
  EXPECT_EQ(format_compact(1.000002, 7), "1.000002");
  EXPECT_EQ(format_compact(kNaN), "nan");
  EXPECT_EQ(format_compact(-kInf), "-inf");
}

TEST(ReportHtml, WriteCreatesFileAtomically) {
  ReportDir dir("write");
  RunReport report;
  report.title = "written";
  report.charts.push_back(line_chart({{0, 1}, {1, 2}}));
  const std::string path = dir.file("report.html");
  ASSERT_TRUE(write_html_report(path, report).ok());
  EXPECT_EQ(read_text(path), render_html_report(report));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"report.html"});

  // Overwriting replaces the whole file.
  report.title = "second";
  report.charts.clear();
  ASSERT_TRUE(write_html_report(path, report).ok());
  EXPECT_EQ(read_text(path), render_html_report(report));
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"report.html"});
}

TEST(ReportHtml, WriteToUnwritablePathFailsCleanly) {
  ReportDir dir("unwritable");
  const std::string path = dir.file("missing/sub/report.html");
  const Status status = write_html_report(path, RunReport{});
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find(path), std::string::npos) << status.message();
  EXPECT_TRUE(dir.entries().empty());

  // The target is a directory: the rename fails and the temporary file is removed again.
  fs::create_directories(dir.file("taken/child"));
  const Status over_dir = write_html_report(dir.file("taken"), RunReport{});
  ASSERT_FALSE(over_dir.ok());
  EXPECT_NE(over_dir.message().find(dir.file("taken")), std::string::npos) << over_dir.message();
  EXPECT_EQ(dir.entries(), std::vector<std::string>{"taken"});
}

TEST(MetricsLog, LinesParseBackInOrder) {
  ReportDir dir("metrics");
  const std::string path = dir.file("metrics.jsonl");
  {
    Result<MetricsLog> log = MetricsLog::open(path, MetricsLog::Mode::kTruncate);
    ASSERT_TRUE(log.ok()) << log.status().message();
    for (int step = 0; step < 3; ++step) {
      ASSERT_TRUE(log.value().write({{"step", step}, {"loss", 4.0 - step}, {"tag", "a\nb"}}).ok());
    }
    // Invalid UTF-8 (e.g. a half-generated sample) is replaced, not a failure.
    ASSERT_TRUE(log.value().write({{"sample", std::string("ab\xff")}}).ok());
  }
  const std::vector<std::string> lines = lines_of(read_text(path));
  ASSERT_EQ(lines.size(), 4u);
  for (int step = 0; step < 3; ++step) {
    const nlohmann::json record = nlohmann::json::parse(lines[static_cast<size_t>(step)]);
    ASSERT_TRUE(record.is_object());
    EXPECT_EQ(record["step"], step);
    EXPECT_EQ(record["loss"], 4.0 - step);
    EXPECT_EQ(record["tag"], "a\nb");
  }
  EXPECT_EQ(nlohmann::json::parse(lines[3])["sample"], "ab\xEF\xBF\xBD");
}

TEST(MetricsLog, AppendKeepsEarlierLinesAndTruncateDropsThem) {
  ReportDir dir("append");
  const std::string path = dir.file("metrics.jsonl");
  {
    auto log = MetricsLog::open(path, MetricsLog::Mode::kTruncate);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE(log.value().write({{"step", 1}}).ok());
  }
  {
    auto log = MetricsLog::open(path, MetricsLog::Mode::kAppend);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE(log.value().write({{"step", 2}}).ok());
  }
  std::vector<std::string> lines = lines_of(read_text(path));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(lines[0])["step"], 1);
  EXPECT_EQ(nlohmann::json::parse(lines[1])["step"], 2);

  {
    auto log = MetricsLog::open(path, MetricsLog::Mode::kTruncate);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE(log.value().write({{"step", 3}}).ok());
  }
  lines = lines_of(read_text(path));
  ASSERT_EQ(lines.size(), 1u);
  EXPECT_EQ(nlohmann::json::parse(lines[0])["step"], 3);
}

TEST(MetricsLog, AppendAfterTornLineStartsFreshLine) {
  ReportDir dir("torn");
  const std::string path = dir.file("metrics.jsonl");
  std::ofstream(path) << "{\"step\":1}\n{\"step\":2,\"lo";  // a crash mid-line
  {
    auto log = MetricsLog::open(path, MetricsLog::Mode::kAppend);
    ASSERT_TRUE(log.ok());
    ASSERT_TRUE(log.value().write({{"step", 3}}).ok());
    ASSERT_TRUE(log.value().write({{"step", 4}}).ok());
  }
  const std::vector<std::string> lines = lines_of(read_text(path));
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1], "{\"step\":2,\"lo");
  EXPECT_EQ(nlohmann::json::parse(lines[2])["step"], 3);
  EXPECT_EQ(nlohmann::json::parse(lines[3])["step"], 4);
}

TEST(MetricsLog, ErrorsNameTheFile) {
  ReportDir dir("errors");
  const std::string missing = dir.file("no/such/dir/metrics.jsonl");
  const auto open_failed = MetricsLog::open(missing, MetricsLog::Mode::kAppend);
  ASSERT_FALSE(open_failed.ok());
  EXPECT_NE(open_failed.status().message().find(missing), std::string::npos);

  if (!fs::exists("/dev/full")) GTEST_SKIP() << "/dev/full is not available";
  auto full = MetricsLog::open("/dev/full", MetricsLog::Mode::kAppend);
  ASSERT_TRUE(full.ok()) << full.status().message();
  const Status status = full.value().write({{"step", 1}});
  ASSERT_FALSE(status.ok());
  EXPECT_NE(status.message().find("/dev/full"), std::string::npos) << status.message();
}

TEST(MetricsLog, MovedLogKeepsWriting) {
  ReportDir dir("move");
  const std::string path = dir.file("metrics.jsonl");
  auto opened = MetricsLog::open(path, MetricsLog::Mode::kTruncate);
  ASSERT_TRUE(opened.ok());
  MetricsLog log = std::move(opened).value();
  ASSERT_TRUE(log.write({{"step", 1}}).ok());
  MetricsLog other = std::move(log);
  ASSERT_TRUE(other.write({{"step", 2}}).ok());
  EXPECT_EQ(other.path(), path);
  EXPECT_EQ(lines_of(read_text(path)).size(), 2u);
}

TEST(Rss, PeakCoversCurrentAfterTouchingMemory) {
  constexpr size_t kBytes = size_t{64} << 20;
  std::vector<char> block(kBytes);
  // Write every page so it is resident, then read it back so the writes are not optimized away.
  for (size_t i = 0; i < kBytes; i += 4096) block[i] = static_cast<char>(i >> 12);
  size_t checksum = 0;
  for (size_t i = 0; i < kBytes; i += 4096) checksum += static_cast<unsigned char>(block[i]);
  EXPECT_GT(checksum, 0u);

  // Current first: the peak read afterwards can only be larger.
  const int64_t current = current_rss_bytes();
  const int64_t peak = peak_rss_bytes();
  EXPECT_GE(current, static_cast<int64_t>(kBytes));
  EXPECT_GT(peak, 0);
  EXPECT_GE(peak, current);
}

}  // namespace
}  // namespace tern::report_test
