#include "snapshot/curl_easy.h"

#include <mutex>

namespace marmot {
namespace {

constexpr size_t kMaxCollectedBody = 16u << 20;

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

CurlEasy::CurlEasy() {
  InitCurlOnce();
  curl_.reset(curl_easy_init());
  if (!curl_) {
    status_ = Status::Error("libcurl could not create a transfer handle (out of memory?)");
    return;
  }
  Set(CURLOPT_ERRORBUFFER, error_);
  Set(CURLOPT_NOSIGNAL, 1L);
  Set(CURLOPT_CONNECTTIMEOUT, 10L);
  // A transfer that moves less than 1 KiB/s for 60 s is given up (a dead server), however large.
  Set(CURLOPT_LOW_SPEED_LIMIT, 1024L);
  Set(CURLOPT_LOW_SPEED_TIME, 60L);
}

void CurlEasy::AddHeader(const std::string& header) {
  curl_slist* list = curl_slist_append(headers_.get(), header.c_str());
  if (list != nullptr) {
    (void)headers_.release();
    headers_.reset(list);
  }
  Set(CURLOPT_HTTPHEADER, headers_.get());
}

void CurlEasy::UploadFrom(std::FILE* file, uint64_t size, ProgressSink* progress) {
  upload_ = file;
  progress_ = progress;
  Set(CURLOPT_UPLOAD, 1L);
  Set(CURLOPT_READFUNCTION, &CurlEasy::OnRead);
  Set(CURLOPT_READDATA, this);
  Set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(size));
}

void CurlEasy::DownloadTo(std::FILE* file, ProgressSink* progress) {
  download_ = file;
  progress_ = progress;
  collect_ = false;
  Set(CURLOPT_WRITEFUNCTION, &CurlEasy::OnWrite);
  Set(CURLOPT_WRITEDATA, this);
}

void CurlEasy::CollectBody() {
  download_ = nullptr;
  collect_ = true;
  body_.clear();
  Set(CURLOPT_WRITEFUNCTION, &CurlEasy::OnWrite);
  Set(CURLOPT_WRITEDATA, this);
}

size_t CurlEasy::OnRead(char* buffer, size_t size, size_t count, void* self) {
  auto* c = static_cast<CurlEasy*>(self);
  size_t n = std::fread(buffer, 1, size * count, c->upload_);
  if (n == 0 && std::ferror(c->upload_)) return CURL_READFUNC_ABORT;
  if (c->progress_ != nullptr && n > 0) c->progress_->Advance(n);
  return n;
}

size_t CurlEasy::OnWrite(char* data, size_t size, size_t count, void* self) {
  auto* c = static_cast<CurlEasy*>(self);
  size_t n = size * count;
  if (c->download_ != nullptr) {
    if (std::fwrite(data, 1, n, c->download_) != n) {
      c->write_failed_ = true;
      return 0;  // makes libcurl stop with CURLE_WRITE_ERROR
    }
    if (c->progress_ != nullptr) c->progress_->Advance(n);
    return n;
  }
  if (c->collect_ && c->body_.size() + n <= kMaxCollectedBody) c->body_.append(data, n);
  return n;
}

Result<long> CurlEasy::Perform(const std::string& what) {
  MARMOT_RETURN_IF_ERROR(status_);
  error_[0] = '\0';
  write_failed_ = false;
  CURLcode rc = curl_easy_perform(curl_.get());
  if (rc != CURLE_OK) {
    std::string reason = error_[0] != '\0' ? error_ : curl_easy_strerror(rc);
    if (write_failed_)
      return Status::IoError(what + ": writing the downloaded data to a local file failed (disk full?)");
    switch (rc) {
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_CONNECT:
      case CURLE_OPERATION_TIMEDOUT:
      case CURLE_SEND_ERROR:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
        return Status::Unavailable(what + ": server unreachable: " + reason);
      case CURLE_LOGIN_DENIED:
        return Status::InvalidArgument(what + ": wrong credentials: " + reason);
      case CURLE_REMOTE_FILE_NOT_FOUND:
        return Status::NotFound(what + ": not found: " + reason);
      case CURLE_REMOTE_DISK_FULL:
        return Status::IoError(what + ": the server's disk is full: " + reason);
      case CURLE_READ_ERROR:
        return Status::IoError(what + ": reading the local file failed: " + reason);
      default:
        return Status::Error(what + ": " + reason);
    }
  }
  long code = 0;
  curl_easy_getinfo(curl_.get(), CURLINFO_RESPONSE_CODE, &code);
  return code;
}

std::string UrlEncode(const std::string& text) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
        c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    }
  }
  return out;
}

std::string UrlPart(CURLU* url, CURLUPart part, unsigned int flags) {
  char* value = nullptr;
  if (curl_url_get(url, part, &value, flags) != CURLUE_OK || value == nullptr) return "";
  std::string out = value;
  curl_free(value);
  return out;
}

std::string PercentDecode(std::string text, bool plus_is_space) {
  if (plus_is_space) {
    for (char& c : text) {
      if (c == '+') c = ' ';
    }
  }
  int length = 0;
  char* decoded = curl_easy_unescape(nullptr, text.c_str(), static_cast<int>(text.size()), &length);
  if (decoded == nullptr) return text;
  std::string out(decoded, static_cast<size_t>(length));
  curl_free(decoded);
  return out;
}

std::vector<std::pair<std::string, std::string>> QueryParameters(const std::string& query,
                                                                 bool plus_is_space) {
  std::vector<std::pair<std::string, std::string>> params;
  size_t start = 0;
  while (start < query.size()) {
    size_t amp = query.find('&', start);
    if (amp == std::string::npos) amp = query.size();
    std::string pair = query.substr(start, amp - start);
    start = amp + 1;
    if (pair.empty()) continue;
    size_t eq = pair.find('=');
    params.emplace_back(PercentDecode(pair.substr(0, eq), plus_is_space),
                        eq == std::string::npos ? "" : PercentDecode(pair.substr(eq + 1), plus_is_space));
  }
  return params;
}

}  // namespace marmot
