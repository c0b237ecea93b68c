// The corpora of `tern demo`, cut from the GCIDE dictionary (dict-gcide):
//  - general: definitions with no medical field label, for pretraining;
//  - medical: definitions labelled Med., Anat., Physiol., Pathol., Surg.,
//    Pharm. or Therap., for LoRA fine-tuning and held-out evaluation.
// A definition is an entry's text without its citation lines ("[1913 Webster]")
// and surrounding blank space; texts shared by several headwords appear once. Medical texts longer
// than max_medical_bytes (multi-sense monsters) are left out so each fine-tuning document is one
// definition. The medical list is in a seeded order, so the same seed picks the same documents; the
// general list keeps index order and stops before general_bytes. Reentrant.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

struct DemoCorpus {
  std::vector<std::string> general;
  std::vector<std::string> medical;
};

Result<DemoCorpus> demo_corpus(const std::string& gcide_dir, size_t general_bytes,
                               size_t medical_count, size_t max_medical_bytes, uint64_t seed);

}  // namespace tern
