// UTF-8 helpers and the GPT-2 byte <-> unicode mapping shared by the tokenizers.
//
// UTF-8 validation is strict (RFC 3629): overlong forms, surrogates, code points above
// U+10FFFF, stray continuation bytes and truncated sequences are invalid. Callers decide what
// an invalid byte means (the tokenizers treat it as a lone byte; the streaming decoder turns it
// into U+FFFD).
//
// The byte mapping is the one GPT-2 introduced and llama.cpp stores vocabularies in: printable
// bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other 68 bytes map, in
// increasing byte order, to U+0100, U+0101, ... so every byte string becomes printable text.
//
// Pure functions over immutable tables: thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tern::tokenizer_detail {

enum class Utf8State { kComplete, kIncomplete, kInvalid };

struct Utf8Scan {
  Utf8State state;
  // kComplete: length of the character. kIncomplete: bytes present (all a valid prefix).
  // kInvalid: length of the maximal invalid subpart (lead byte plus the continuation bytes that
  // were still acceptable), at least 1 — the unit replaced by one U+FFFD.
  size_t len;
  uint32_t code_point;  // valid for kComplete only
};

// Classifies the bytes of `s` starting at `pos` (pos < s.size()).
Utf8Scan scan_utf8(std::string_view s, size_t pos);

// Length of the valid character at `pos`, or 0 when the bytes there are not valid UTF-8.
inline size_t valid_utf8_len(std::string_view s, size_t pos) {
  const Utf8Scan scan = scan_utf8(s, pos);
  return scan.state == Utf8State::kComplete ? scan.len : 0;
}

bool is_valid_utf8(std::string_view s);

void append_utf8(std::string& out, uint32_t code_point);

inline constexpr std::string_view kReplacementChar = "\xEF\xBF\xBD";  // U+FFFD

// GPT-2 mapping: the UTF-8 text standing for byte b.
std::string_view byte_to_unicode(uint8_t b);
// Inverse for one code point: the byte it stands for, or -1 when it is not in the mapping.
int unicode_to_byte(uint32_t code_point);
// Maps every byte of `raw`.
std::string bytes_to_unicode(std::string_view raw);
// Inverse of bytes_to_unicode. Returns false (leaving `raw` partial) when `text` is not valid
// UTF-8 or holds a code point outside the mapping.
bool unicode_to_bytes(std::string_view text, std::string& raw);

}  // namespace tern::tokenizer_detail
