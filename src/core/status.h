// Status and Result<T>: the error channel for untrusted input.
//
// Files, peers, configs and command-line arguments can be wrong; functions that
// consume them return a Status (or Result<T>) whose message names the operation
// and the offending value, e.g. "read golden 'x.tgld': record 3 has ndim 9 (max 4)".
// Bugs are not reported this way: they hit TERN_CHECK.
// Value types; not synchronized.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <variant>

#include "core/check.h"

namespace tern {

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  static Status Ok() { return Status(); }
  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  // The error message; empty for OK.
  const std::string& message() const {
    static const std::string kEmpty;
    return message_ ? *message_ : kEmpty;
  }
  // Prefixes the message with context ("while loading X: ...").
  Status with_context(const std::string& context) const {
    return ok() ? *this : Status(context + ": " + *message_);
  }

 private:
  explicit Status(std::string message) : message_(std::move(message)) {}
  std::optional<std::string> message_;
};

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::move(value)) {}        // NOLINT: implicit on purpose
  Result(Status status) : data_(std::move(status)) {  // NOLINT: implicit on purpose
    TERN_CHECK(!std::get<Status>(data_).ok(), "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(data_); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(data_); }
  T& value() & {
    TERN_CHECK(ok(), "value() of failed Result: ", std::get<Status>(data_).message());
    return std::get<T>(data_);
  }
  T&& value() && {
    TERN_CHECK(ok(), "value() of failed Result: ", std::get<Status>(data_).message());
    return std::get<T>(std::move(data_));
  }
  const T& value() const& {
    TERN_CHECK(ok(), "value() of failed Result: ", std::get<Status>(data_).message());
    return std::get<T>(data_);
  }

 private:
  std::variant<T, Status> data_;
};

}  // namespace tern

#define TERN_CONCAT_INNER(a, b) a##b
#define TERN_CONCAT(a, b) TERN_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function if `expr` failed.
#define TERN_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::tern::Status tern_status_ = (expr);        \
    if (!tern_status_.ok()) return tern_status_; \
  } while (0)

// `TERN_ASSIGN_OR_RETURN(auto x, MakeX());` unwraps a Result or returns its Status.
#define TERN_ASSIGN_OR_RETURN(lhs, expr) \
  TERN_ASSIGN_OR_RETURN_IMPL(TERN_CONCAT(tern_result_, __LINE__), lhs, expr)
#define TERN_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

// Coroutine forms of the two macros above (a coroutine must co_return).
#define TERN_CO_RETURN_IF_ERROR(expr)               \
  do {                                              \
    ::tern::Status tern_status_ = (expr);           \
    if (!tern_status_.ok()) co_return tern_status_; \
  } while (0)

// `TERN_CO_ASSIGN_OR_RETURN(auto x, co_await MakeX());`
#define TERN_CO_ASSIGN_OR_RETURN(lhs, expr) \
  TERN_CO_ASSIGN_OR_RETURN_IMPL(TERN_CONCAT(tern_result_, __LINE__), lhs, expr)
#define TERN_CO_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                  \
  if (!tmp.ok()) co_return tmp.status();              \
  lhs = std::move(tmp).value()
