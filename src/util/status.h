// Status and Result<T>: how every fallible call in marmot reports failure.
//
// A Status is either OK or carries a code and a message that already reads as a diagnosis: it
// names the object involved (file, table, stream, config key) and the cause. Callers add context
// on the way up with WithContext(), so the line a user finally sees reads like
//   "applying batch: table \"books\": no such column: \"isbn\"".
//
// The code is for callers that decide what to do next (retry, skip, stop); they test the code,
// never the text. Codes are mapped from SQLite (db/sqlite.cpp) and nats.c (stream/nats_client.cpp)
// return codes where the failure starts:
//   kNotFound         the thing asked for does not exist (stream, table, row, file)
//   kBusy             a lock is held by someone else; trying again later may work
//   kIoError          reading or writing storage failed (disk full, permission, I/O)
//   kCorruption       data is damaged or not what it claims to be (not a database, bad message)
//   kInvalidArgument  the request cannot work as asked (bad SQL, bad value, conflicting settings)
//   kUnavailable      a server cannot be reached or did not answer in time
//   kUnknown          anything else
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace marmot {

enum class StatusCode {
  kOk,
  kNotFound,
  kBusy,
  kIoError,
  kCorruption,
  kInvalidArgument,
  kUnavailable,
  kUnknown
};

// "not found", "busy", ...: for log lines and tests.
const char* StatusCodeName(StatusCode code);

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK

  static Status Error(std::string message) { return Status(StatusCode::kUnknown, std::move(message)); }
  static Status Error(StatusCode code, std::string message) { return Status(code, std::move(message)); }
  static Status NotFound(std::string message) { return Status(StatusCode::kNotFound, std::move(message)); }
  static Status Busy(std::string message) { return Status(StatusCode::kBusy, std::move(message)); }
  static Status IoError(std::string message) { return Status(StatusCode::kIoError, std::move(message)); }
  static Status Corruption(std::string message) {
    return Status(StatusCode::kCorruption, std::move(message));
  }
  static Status InvalidArgument(std::string message) {
    return Status(StatusCode::kInvalidArgument, std::move(message));
  }
  static Status Unavailable(std::string message) {
    return Status(StatusCode::kUnavailable, std::move(message));
  }

  bool ok() const { return !message_.has_value(); }
  StatusCode code() const { return code_; }
  bool Is(StatusCode code) const { return code_ == code; }
  const std::string& message() const {
    static const std::string kOk = "OK";
    return message_ ? *message_ : kOk;
  }

  // Returns this status with `context + ": "` in front of the message and the same code; OK stays OK.
  Status WithContext(const std::string& context) const {
    if (ok()) return *this;
    return Status(code_, context + ": " + *message_);
  }

 private:
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  StatusCode code_ = StatusCode::kOk;
  std::optional<std::string> message_;
};

inline const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return "ok";
    case StatusCode::kNotFound:
      return "not found";
    case StatusCode::kBusy:
      return "busy";
    case StatusCode::kIoError:
      return "I/O error";
    case StatusCode::kCorruption:
      return "corruption";
    case StatusCode::kInvalidArgument:
      return "invalid argument";
    case StatusCode::kUnavailable:
      return "unavailable";
    case StatusCode::kUnknown:
      break;
  }
  return "error";
}

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
