// StringMap<T>: std::unordered_map keyed by std::string that can be probed with a
// std::string_view (C++20 heterogeneous lookup), so the tokenizers look up substrings of their
// input without allocating. Same thread-safety as std::unordered_map.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace tern::tokenizer_detail {

struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

}  // namespace tern::tokenizer_detail
