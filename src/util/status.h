// Status and Result<T>: how every fallible call in marmot reports failure.
//
// A Status is either OK or carries a message that already reads as a diagnosis: it names the
// object involved (file, table, stream, config key) and the cause. Callers add context on the
// way up with WithContext(), so the line a user finally sees reads like
//   "applying batch: table \"books\": no such column: \"isbn\"".
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace marmot {

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK

  static Status Error(std::string message) { return Status(std::move(message)); }

  bool ok() const { return !message_.has_value(); }
  const std::string& message() const {
    static const std::string kOk = "OK";
    return message_ ? *message_ : kOk;
  }

  // Returns this status with `context + ": "` in front of the message; OK stays OK.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(context + ": " + *message_);
  }

 private:
  explicit Status(std::string message) : message_(std::move(message)) {}
  std::optional<std::string> message_;
};

// Either a value or a failed Status. Accessing value() of a failed Result is a programming error.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : value_(std::move(value)) {}          // NOLINT(google-explicit-constructor)
  Result(Status status) : status_(std::move(status)) {}  // NOLINT(google-explicit-constructor)

  bool ok() const { return value_.has_value(); }
  const Status& status() const { return status_; }
  T& value() & { return *value_; }
  const T& value() const& { return *value_; }
  T&& value() && { return std::move(*value_); }
  T* operator->() { return &*value_; }
  const T* operator->() const { return &*value_; }
  T& operator*() & { return *value_; }
  const T& operator*() const& { return *value_; }

 private:
  std::optional<T> value_;
  Status status_;
};

}  // namespace marmot

// Returns early from the enclosing function when `expr` (a Status) failed.
#define MARMOT_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::marmot::Status marmot_status_ = (expr);        \
    if (!marmot_status_.ok()) return marmot_status_; \
  } while (false)
