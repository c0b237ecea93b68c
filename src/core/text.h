// Helpers for error messages about untrusted input. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace tern {

// 'value' in single quotes for a message: control bytes, non-ASCII bytes and
// quotes escaped as \xNN, cut after max_shown bytes ("..."), so hostile names
// cannot forge or flood a message.
std::string quote_for_message(std::string_view value, size_t max_shown = 80);

// Value of one base64 digit (A–Z a–z 0–9 + /), or −1 for any other byte.
int base64_digit(char c);

// strerror-style text for an errno value.
std::string errno_text(int err);

}  // namespace tern
