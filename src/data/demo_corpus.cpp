#include "data/demo_corpus.h"

#include <array>
#include <string_view>
#include <unordered_set>

#include "core/rng.h"
#include "data/gcide.h"

namespace tern {
namespace {

std::string trim(std::string_view s) {
  const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return std::string(s);
}

}  // namespace

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

Result<DemoCorpus> demo_corpus(const std::string& gcide_dir, size_t general_bytes,
                               size_t medical_count, size_t max_medical_bytes, uint64_t seed) {
  TERN_ASSIGN_OR_RETURN(std::vector<GcideEntry> entries, read_gcide_entries(gcide_dir));
  DemoCorpus corpus;
  std::unordered_set<std::string> seen;
  size_t general_size = 0;
  bool general_full = false;
  for (GcideEntry& e : entries) {
    std::string text = trim(e.text);
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
