#include "tokenizer/unicode.h"

#include <array>

namespace tern::tokenizer_detail {
namespace {

bool is_cont(uint8_t b) {
  return (b & 0xC0) == 0x80;
}

struct ByteTables {
  std::array<std::string, 256> to_text;
  std::array<int, 512> from_code_point;  // every mapped code point is below U+0200
};

const ByteTables& byte_tables() {
  static const ByteTables tables = [] {
    ByteTables t;
    t.from_code_point.fill(-1);
    auto self_mapped = [](int b) {
      return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const int cp = self_mapped(b) ? b : next++;
      append_utf8(t.to_text[b], static_cast<uint32_t>(cp));
      t.from_code_point[cp] = b;
    }
    return t;
  }();
  return tables;
}

}  // namespace

Utf8Scan scan_utf8(std::string_view s, size_t pos) {
  const auto b0 = static_cast<uint8_t>(s[pos]);
  if (b0 < 0x80) return {Utf8State::kComplete, 1, b0};
  size_t need;                   // continuation bytes after the lead
  uint8_t lo = 0x80, hi = 0xBF;  // allowed range of the first continuation byte
  uint32_t cp;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 1;
    cp = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 2;
    cp = b0 & 0x0F;
    if (b0 == 0xE0) lo = 0xA0;  // no overlongs
    if (b0 == 0xED) hi = 0x9F;  // no surrogates
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 3;
    cp = b0 & 0x07;
    if (b0 == 0xF0) lo = 0x90;  // no overlongs
    if (b0 == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return {Utf8State::kInvalid, 1, 0};  // continuation byte, C0/C1, F5..FF
  }
  for (size_t k = 1; k <= need; ++k) {
    if (pos + k >= s.size()) return {Utf8State::kIncomplete, k, 0};
    const auto b = static_cast<uint8_t>(s[pos + k]);
    const bool ok = k == 1 ? (b >= lo && b <= hi) : is_cont(b);
    if (!ok) return {Utf8State::kInvalid, k, 0};
    cp = (cp << 6) | (b & 0x3F);
  }
  return {Utf8State::kComplete, need + 1, cp};
}

bool is_valid_utf8(std::string_view s) {
  size_t pos = 0;
  while (pos < s.size()) {
    // ASCII fast path: most text is mostly ASCII.
    if (static_cast<uint8_t>(s[pos]) < 0x80) {
      ++pos;
      continue;
    }
    const size_t len = valid_utf8_len(s, pos);
    if (len == 0) return false;
    pos += len;
  }
  return true;
}

void append_utf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::string_view byte_to_unicode(uint8_t b) {
  return byte_tables().to_text[b];
}

int unicode_to_byte(uint32_t cp) {
  return cp < 512 ? byte_tables().from_code_point[cp] : -1;
}

std::string bytes_to_unicode(std::string_view raw) {
  const ByteTables& t = byte_tables();
  std::string out;
  out.reserve(raw.size() * 2);
  for (const char c : raw) out += t.to_text[static_cast<uint8_t>(c)];
  return out;
}

bool unicode_to_bytes(std::string_view text, std::string& raw) {
  size_t pos = 0;
  while (pos < text.size()) {
    const Utf8Scan scan = scan_utf8(text, pos);
    if (scan.state != Utf8State::kComplete) return false;
    const int b = unicode_to_byte(scan.code_point);
    if (b < 0) return false;
    raw.push_back(static_cast<char>(b));
    pos += scan.len;
  }
  return true;
}

}  // namespace tern::tokenizer_detail
