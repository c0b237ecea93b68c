// GCIDE reader: the GNU Collaborative International Dictionary of English in dictd format.
//
// Debian's dict-gcide ships <dir>/gcide.index and <dir>/gcide.dict.dz. Index lines are
// "headword<TAB>offset<TAB>length"; offset and length are dictd base64 numbers (alphabet
// A-Za-z0-9+/, most significant digit first) into the *uncompressed* text. The .dz file is
// dictzip, which is plain gzip to zlib, so we inflate it whole (~40 MB) instead of using the
// dictzip random-access chunks: every caller here wants most of the entries anyway.
//
// Both files are untrusted input: a bad line, offset or gzip stream yields a Status naming the
// file, the line number and the bad value; nothing here CHECKs on file contents.
//
// Data quirks worth knowing (dict-gcide 0.48): many index lines are aliases that point at the
// same slice as another line ("To act the part of" -> the "Act" entry), so entries repeat text;
// the text is ASCII with GCIDE markup ("Zo[\"o]l.", "{Acted}") plus a few stray Latin-1 bytes.
//
// Thread-safety: every function is reentrant and shares no state; call them concurrently freely.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace tern {

struct GcideEntry {
  std::string headword;             // from the index
  std::string text;                 // the entry's raw text from the dict file
  std::vector<std::string> fields;  // distinct field labels in text ("Anat.", "Med."), first-seen
};

inline constexpr const char* kDefaultGcideDir = "/usr/share/dictd";

// Decompresses <dir>/gcide.dict.dz fully into memory. Rejects files that are not gzip and
// streams that are corrupt or truncated.
Result<std::string> read_gcide_text(const std::string& dir = kDefaultGcideDir);

// All dictionary entries, one per index line, in index order. The dictd meta entries
// (headwords starting with "00-", e.g. "00-database-info") are validated but not returned.
// Every offset/length is bounds-checked against the decompressed text.
Result<std::vector<GcideEntry>> read_gcide_entries(const std::string& dir = kDefaultGcideDir);

// Plain training text: the entries' texts (leading/trailing blank space trimmed) joined with
// one blank line between them, in index order. A text shared by several headwords is emitted
// once, at its first index position, so aliases do not duplicate definitions. Stops before the
// first entry that would push the result past max_bytes, so the result is always whole entries
// and at most max_bytes long; max_bytes == 0 means no limit.
Result<std::string> gcide_corpus(const std::string& dir, size_t max_bytes);

// Pure helpers, exposed for tests.

// Decodes a dictd base64 number ("A" = 0, "/" = 63, "BA" = 64). Errors on empty input,
// characters outside A-Za-z0-9+/, and values that do not fit in 64 bits.
Result<uint64_t> decode_dictd_base64(std::string_view digits);

// Field labels written as "(Anat.)" in the text, returned without parentheses, distinct, in
// first-seen order. Whitespace runs inside the parentheses (labels wrapped across lines, as in
// "(Nat.\n   Hist.)") count as one space. After that a label is 2-12 characters, starts with
// an uppercase letter, ends with '.', and contains only ASCII letters, dots, spaces and '&';
// anything else in parentheses (etymologies, cross references) is not a label.
std::vector<std::string> extract_field_labels(std::string_view text);

}  // namespace tern
