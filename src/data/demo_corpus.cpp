#include "data/demo_corpus.h"

#include <array>
#include <string_view>
#include <unordered_set>

#include "core/rng.h"
#include "data/gcide.h"
#include "tokenizer/unicode.h"

namespace tern {
namespace {

std::string trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return std::string(s);
}

// The entry's text without its source tags: lines that hold only a bracketed
// citation such as "[1913 Webster]" or "[PJC]". They follow nearly every
// sense, carry no meaning, and would dominate what a small model learns.
std::string without_citations(std::string_view text) {
  std::string out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string_view::npos) end = text.size();
    const std::string line = trim(text.substr(start, end - start));
    const bool citation =
        line.size() >= 2 && line.size() <= 40 && line.front() == '[' && line.back() == ']';
    if (!citation) {
      out.append(text.substr(start, end - start));
      out.push_back('\n');
    }
    start = end + 1;
  }
  return trim(out);
}

// GCIDE is ASCII with a few stray Latin-1 bytes; read those as Latin-1 so the
// corpus is valid UTF-8 (as `tern data prepare` requires).
std::string latin1_strays_to_utf8(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t len = tokenizer_detail::valid_utf8_len(text, i);
    if (len > 0) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      tokenizer_detail::append_utf8(out, static_cast<unsigned char>(text[i]));
      ++i;
    }
  }
  return out;
}

// True if `fields` (GcideEntry::fields) contains a medical label.
bool is_medical_entry(const std::vector<std::string>& fields) {
  static constexpr std::array<std::string_view, 7> kLabels = {
      "Med.", "Anat.", "Physiol.", "Pathol.", "Surg.", "Pharm.", "Therap."};
  for (const std::string& f : fields) {
    for (std::string_view label : kLabels) {
      if (f == label) return true;
    }
  }
  return false;
}

}  // namespace

Result<DemoCorpus> demo_corpus(const std::string& gcide_dir, size_t general_bytes,
                               size_t medical_count, size_t max_medical_bytes, uint64_t seed) {
  TERN_ASSIGN_OR_RETURN(std::vector<GcideEntry> entries, read_gcide_entries(gcide_dir));
  DemoCorpus corpus;
  std::unordered_set<std::string> seen;
  size_t general_size = 0;
  bool general_full = false;
  for (GcideEntry& e : entries) {
    std::string text = latin1_strays_to_utf8(without_citations(e.text));
    if (text.empty() || !seen.insert(text).second) continue;
    if (is_medical_entry(e.fields)) {
      if (text.size() <= max_medical_bytes) corpus.medical.push_back(std::move(text));
    } else if (!general_full) {
      general_full = general_size + text.size() > general_bytes;
      if (!general_full) {
        general_size += text.size() + 2;
        corpus.general.push_back(std::move(text));
      }
    }
  }
  if (corpus.medical.size() < medical_count) {
    return Status::Error("demo corpus: GCIDE in '" + gcide_dir + "' has " +
                         std::to_string(corpus.medical.size()) + " medical definitions, need " +
                         std::to_string(medical_count));
  }
  // Fisher–Yates with the seeded Rng, then keep the first medical_count.
  Rng rng(seed);
  for (size_t i = corpus.medical.size() - 1; i > 0; --i) {
    std::swap(corpus.medical[i], corpus.medical[rng.below(i + 1)]);
  }
  corpus.medical.resize(medical_count);
  return corpus;
}

}  // namespace tern
