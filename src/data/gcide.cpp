#include "data/gcide.h"

#include "core/text.h"

#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <limits>
#include <system_error>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace tern {
namespace {

// The real text is ~40 MB; the cap only stops a hostile or broken file from eating all memory.
constexpr size_t kMaxTextBytes = size_t{1} << 30;
constexpr size_t kMaxIndexBytes = size_t{256} << 20;

std::string join_path(const std::string& dir, const char* name) {
  return (std::filesystem::path(dir) / name).string();
}

std::string quote_value(std::string_view value) {
  return quote_for_message(value, 60);
}

bool is_ascii_letter(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}
bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

// Owns a gzFile so every early return closes it.
class GzReader {
 public:
  explicit GzReader(gzFile file) : file_(file) {}
  GzReader(const GzReader&) = delete;
  GzReader& operator=(const GzReader&) = delete;
  ~GzReader() {
    if (file_ != nullptr) gzclose(file_);
  }
  gzFile get() const { return file_; }
  // Closes now and reports what gzclose says (it notices a stream that ended mid-member).
  int close() {
    const int ret = gzclose(file_);
    file_ = nullptr;
    return ret;
  }

 private:
  gzFile file_;
};

Result<std::string> read_small_file(const std::string& path) {
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const std::string why = errno != 0 ? ": " + errno_text(errno) : "";
    return Status::Error("read gcide: cannot open " + quote_value(path) + why);
  }
  std::string data;
  char buf[1 << 16];
  while (in.read(buf, sizeof buf) || in.gcount() > 0) {
    data.append(buf, static_cast<size_t>(in.gcount()));
    if (data.size() > kMaxIndexBytes) {
      return Status::Error("read gcide: " + quote_value(path) + " is larger than " +
                           std::to_string(kMaxIndexBytes) + " bytes");
    }
  }
  if (in.bad()) return Status::Error("read gcide: error reading " + quote_value(path));
  return data;
}

// One index line, validated against the text. The headword views the index buffer.
struct IndexRecord {
  std::string_view headword;
  uint64_t offset = 0;
  uint64_t length = 0;
};

bool is_meta_headword(std::string_view headword) {
  return headword.starts_with("00-");
}

// Parses the whole index; returns only the non-meta records, in file order.
Result<std::vector<IndexRecord>> parse_index(std::string_view index, size_t text_size,
                                             const std::string& path) {
  std::vector<IndexRecord> records;
  records.reserve(static_cast<size_t>(std::count(index.begin(), index.end(), '\n')) + 1);
  size_t line_no = 0;
  size_t pos = 0;
  while (pos < index.size()) {
    size_t end = index.find('\n', pos);
    if (end == std::string_view::npos) end = index.size();
    std::string_view line = index.substr(pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;  // a blank line carries nothing and harms nothing

    const std::string where =
        "read gcide: " + quote_value(path) + " line " + std::to_string(line_no);
    const size_t tab1 = line.find('\t');
    const size_t tab2 = tab1 == std::string_view::npos ? tab1 : line.find('\t', tab1 + 1);
    if (tab2 == std::string_view::npos || line.find('\t', tab2 + 1) != std::string_view::npos ||
        tab1 == 0) {
      return Status::Error(where + ": expected 'headword<TAB>offset<TAB>length', got " +
                           quote_value(line));
    }
    IndexRecord rec;
    rec.headword = line.substr(0, tab1);
    const std::string_view offset_digits = line.substr(tab1 + 1, tab2 - tab1 - 1);
    const std::string_view length_digits = line.substr(tab2 + 1);
    Result<uint64_t> offset = decode_dictd_base64(offset_digits);
    if (!offset.ok()) return offset.status().with_context(where + ": bad offset");
    Result<uint64_t> length = decode_dictd_base64(length_digits);
    if (!length.ok()) return length.status().with_context(where + ": bad length");
    rec.offset = offset.value();
    rec.length = length.value();
    // Written so it cannot overflow: offset + length might wrap for hostile values.
    if (rec.offset > text_size || rec.length > text_size - rec.offset) {
      return Status::Error(where + ": entry " + quote_value(rec.headword) + " at offset " +
                           std::to_string(rec.offset) + " (" + quote_value(offset_digits) +
                           ") length " + std::to_string(rec.length) + " (" +
                           quote_value(length_digits) + ") runs past the end of the text (" +
                           std::to_string(text_size) + " bytes)");
    }
    if (!is_meta_headword(rec.headword)) records.push_back(rec);
  }
  return records;
}

struct Loaded {
  std::string text;
  std::string index;
  std::vector<IndexRecord> records;  // views into `index`
};

Status load(const std::string& dir, Loaded* out) {
  TERN_ASSIGN_OR_RETURN(out->text, read_gcide_text(dir));
  const std::string index_path = join_path(dir, "gcide.index");
  TERN_ASSIGN_OR_RETURN(out->index, read_small_file(index_path));
  TERN_ASSIGN_OR_RETURN(out->records, parse_index(out->index, out->text.size(), index_path));
  return Status::Ok();
}

std::string_view slice(const std::string& text, const IndexRecord& rec) {
  return std::string_view(text).substr(static_cast<size_t>(rec.offset),
                                       static_cast<size_t>(rec.length));
}

// Identifies a text slice; aliases share one.
uint64_t slice_key(const IndexRecord& rec) {
  // Offsets and lengths are bounded by kMaxTextBytes (2^30), so 32 bits each suffice.
  return (rec.offset << 32) | rec.length;
}

}  // namespace

Result<uint64_t> decode_dictd_base64(std::string_view digits) {
  if (digits.empty()) return Status::Error("dictd base64: empty number");
  uint64_t value = 0;
  for (size_t i = 0; i < digits.size(); ++i) {
    const int d = base64_digit(digits[i]);
    if (d < 0) {
      return Status::Error("dictd base64 " + quote_value(digits) + ": invalid character " +
                           quote_value(digits.substr(i, 1)) + " at position " + std::to_string(i));
    }
    if (value > (std::numeric_limits<uint64_t>::max() >> 6)) {
      return Status::Error("dictd base64 " + quote_value(digits) +
                           ": value does not fit in 64 bits");
    }
    value = (value << 6) | static_cast<uint64_t>(d);
  }
  return value;
}

std::vector<std::string> extract_field_labels(std::string_view text) {
  // Longest raw span worth looking at: 12 label chars plus the indentation of a wrapped line.
  constexpr size_t kMaxRaw = 40;
  std::vector<std::string> labels;
  std::string label;
  size_t pos = 0;
  while ((pos = text.find('(', pos)) != std::string_view::npos) {
    const size_t start = pos + 1;
    pos = start;
    const std::string_view window = text.substr(start, kMaxRaw);
    const size_t close = window.find_first_of("()");
    if (close == std::string_view::npos || window[close] == '(') continue;
    label.clear();
    for (const char c : window.substr(0, close)) {
      if (is_space(c)) {
        if (label.empty() || label.back() != ' ') label += ' ';
      } else {
        label += c;
      }
    }
    if (label.size() < 2 || label.size() > 12) continue;
    if (label.front() < 'A' || label.front() > 'Z' || label.back() != '.') continue;
    const bool allowed = std::all_of(label.begin(), label.end(), [](char c) {
      return is_ascii_letter(c) || c == '.' || c == ' ' || c == '&';
    });
    if (!allowed) continue;
    if (std::find(labels.begin(), labels.end(), label) == labels.end()) labels.push_back(label);
    pos = start + close + 1;
  }
  return labels;
}

Result<std::string> read_gcide_text(const std::string& dir) {
  const std::string path = join_path(dir, "gcide.dict.dz");
  errno = 0;
  GzReader gz(gzopen(path.c_str(), "rb"));
  if (gz.get() == nullptr) {
    const std::string why = errno != 0 ? ": " + errno_text(errno) : "";
    return Status::Error("read gcide: cannot open " + quote_value(path) + why);
  }
  // A bigger input buffer than zlib's 8 KiB default: fewer syscalls, ~15% faster here.
  gzbuffer(gz.get(), 1 << 18);

  // dictzip text is ~3x its compressed size, so 4x usually means one allocation and no copies.
  std::error_code size_error;
  const uintmax_t compressed = std::filesystem::file_size(path, size_error);
  const size_t guess =
      size_error ? 0 : static_cast<size_t>(std::min<uintmax_t>(compressed, kMaxTextBytes / 4)) * 4;
  std::string text;
  text.resize(std::max<size_t>(guess, size_t{1} << 16));
  size_t used = 0;
  for (;;) {
    if (used == text.size()) {
      if (text.size() > kMaxTextBytes) {
        return Status::Error("read gcide: " + quote_value(path) + " inflates to more than " +
                             std::to_string(kMaxTextBytes) + " bytes");
      }
      text.resize(std::min(text.size() * 2, kMaxTextBytes + 1));
    }
    const auto want = static_cast<unsigned>(std::min<size_t>(text.size() - used, 1u << 30));
    const int got = gzread(gz.get(), text.data() + used, want);
    if (got < 0) break;  // gzerror below says why
    if (got == 0) break;
    used += static_cast<size_t>(got);
  }
  int err = Z_OK;
  const char* message = gzerror(gz.get(), &err);
  if (err != Z_OK) {
    return Status::Error("read gcide: " + quote_value(path) +
                         ": gzip error: " + (message != nullptr ? message : "unknown"));
  }
  // zlib silently copies non-gzip input through; a .dz that is not gzip is a broken file.
  if (gzdirect(gz.get())) {
    return Status::Error("read gcide: " + quote_value(path) + " is not gzip data");
  }
  if (const int ret = gz.close(); ret != Z_OK) {
    return Status::Error("read gcide: " + quote_value(path) + ": gzip error on close (code " +
                         std::to_string(ret) + ")");
  }
  text.resize(used);
  text.shrink_to_fit();
  return text;
}

Result<std::vector<GcideEntry>> read_gcide_entries(const std::string& dir) {
  Loaded loaded;
  TERN_RETURN_IF_ERROR(load(dir, &loaded));

  std::vector<GcideEntry> entries;
  entries.reserve(loaded.records.size());
  // Aliases share a slice; scanning it for labels once per slice saves most of the work.
  std::unordered_map<uint64_t, size_t> first_with_slice;
  first_with_slice.reserve(loaded.records.size());
  for (const IndexRecord& rec : loaded.records) {
    GcideEntry entry;
    entry.headword = std::string(rec.headword);
    const std::string_view text = slice(loaded.text, rec);
    entry.text = std::string(text);
    const auto [it, inserted] = first_with_slice.try_emplace(slice_key(rec), entries.size());
    entry.fields = inserted ? extract_field_labels(text) : entries[it->second].fields;
    entries.push_back(std::move(entry));
  }
  return entries;
}

Result<std::string> gcide_corpus(const std::string& dir, size_t max_bytes) {
  Loaded loaded;
  TERN_RETURN_IF_ERROR(load(dir, &loaded));

  std::string corpus;
  std::unordered_set<uint64_t> emitted;
  emitted.reserve(loaded.records.size());
  for (const IndexRecord& rec : loaded.records) {
    if (!emitted.insert(slice_key(rec)).second) continue;
    std::string_view text = slice(loaded.text, rec);
    // Leading spaces are kept: they are indentation (the "0" entry starts with a quotation).
    while (!text.empty() && (text.front() == '\n' || text.front() == '\r')) text.remove_prefix(1);
    while (!text.empty() && is_space(text.back())) text.remove_suffix(1);
    if (text.empty()) continue;
    const size_t separator = corpus.empty() ? 0 : 2;
    if (max_bytes != 0 && corpus.size() + separator + text.size() > max_bytes) break;
    if (separator != 0) corpus += "\n\n";
    corpus += text;
  }
  return corpus;
}

}  // namespace tern
