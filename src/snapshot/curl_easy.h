// CurlEasy: one libcurl easy handle with its header list, owned (RAII), plus the bits every curl
// based store needs: global init once, a Status from a failed transfer, upload from and download
// into a file with progress. Also libcurl's URL parser (CurlUrlPtr, UrlPart), with which the
// WebDAV and SFTP stores take their configured URL apart.
//
//   CurlEasy curl;
//   MARMOT_RETURN_IF_ERROR(curl.status());
//   curl.Set(CURLOPT_URL, url.c_str());
//   Result<long> code = curl.Perform("s3 store http://... PUT snapshot-1.db.zst");
//
// Thread safety: one handle per thread at a time (libcurl's rule).
#pragma once

#include <curl/curl.h>

#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "snapshot/snapshot_store.h"
#include "util/local_file.h"
#include "util/status.h"

namespace marmot {

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};
using CurlSlistPtr = std::unique_ptr<curl_slist, CurlSlistDeleter>;

struct CurlEasyDeleter {
  void operator()(CURL* curl) const { curl_easy_cleanup(curl); }
};

class CurlEasy {
 public:
  CurlEasy();
  CurlEasy(const CurlEasy&) = delete;
  CurlEasy& operator=(const CurlEasy&) = delete;

  // Not OK when libcurl could not make a handle.
  const Status& status() const { return status_; }
  CURL* get() const { return curl_.get(); }

  template <typename T>
  void Set(CURLoption option, T value) {
    curl_easy_setopt(curl_.get(), option, value);
  }
  // Adds "Name: value" to the request's headers (kept until the handle goes).
  void AddHeader(const std::string& header);

  // Sends the request body from `file` (size `size`) and counts it on `progress` (may be null).
  void UploadFrom(std::FILE* file, uint64_t size, ProgressSink* progress);
  // Writes the response body to `file`, counting it on `progress` (may be null).
  void DownloadTo(std::FILE* file, ProgressSink* progress);
  // Collects the response body in memory (for small answers: listings, errors), up to 16 MiB.
  void CollectBody();
  const std::string& body() const { return body_; }

  // Runs the transfer. A transport failure (unreachable, TLS, authentication refused by the
  // protocol, timeout) is a Status "<what>: <curl's reason>"; otherwise the response code (HTTP
  // status, or 0 for SFTP) is returned for the caller to judge.
  Result<long> Perform(const std::string& what);

 private:
  static size_t OnRead(char* buffer, size_t size, size_t count, void* self);
  static size_t OnWrite(char* data, size_t size, size_t count, void* self);

  std::unique_ptr<CURL, CurlEasyDeleter> curl_;
  CurlSlistPtr headers_;
  Status status_;
  char error_[CURL_ERROR_SIZE] = {};
  std::FILE* upload_ = nullptr;
  std::FILE* download_ = nullptr;
  ProgressSink* progress_ = nullptr;
  bool collect_ = false;
  std::string body_;
  bool write_failed_ = false;
};

// Percent-encodes `text` for a URL path segment or query value (RFC 3986 unreserved kept).
std::string UrlEncode(const std::string& text);

// A URL handle of libcurl's URL API (curl_url()), owned; curl_url_set fills it from a string.
struct CurlUrlDeleter {
  void operator()(CURLU* url) const { curl_url_cleanup(url); }
};
using CurlUrlPtr = std::unique_ptr<CURLU, CurlUrlDeleter>;

// The `part` (scheme, host, user, query, ...) of `url` as curl_url_get gives it with `flags`
// (e.g. CURLU_URLDECODE); "" when the URL has no such part or libcurl fails.
std::string UrlPart(CURLU* url, CURLUPart part, unsigned int flags = 0);

// Undoes %XX escapes; with `plus_is_space` a '+' is a space too (HTML forms, Go's url.ParseQuery).
std::string PercentDecode(std::string text, bool plus_is_space);

// The name=value pairs of a URL query ("a=1&b=2"), decoded with PercentDecode, in order; a pair
// without '=' has an empty value.
std::vector<std::pair<std::string, std::string>> QueryParameters(const std::string& query,
                                                                 bool plus_is_space);

}  // namespace marmot
