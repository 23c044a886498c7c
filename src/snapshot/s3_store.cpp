// S3Store: the S3 flavour of SnapshotStore (see s3_store.h for what it promises). Each request is
// one fresh CurlEasy; the XML answers are read with a few careful string searches (S3's answers
// are flat and machine-written; no XML library is needed for UploadId, Key, Size, Code, ...).
#include "snapshot/s3_store.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string_view>
#include <vector>

#include "snapshot/curl_easy.h"
#include "util/sha256.h"

namespace marmot {
namespace {

constexpr uint64_t kMaxParts = 10000;
constexpr size_t kMaxErrorBody = 64 << 10;
// SHA-256 of no bytes: the payload hash of GET and DELETE.
constexpr const char* kEmptySha256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

std::string XmlUnescape(std::string_view text) {
  static const std::pair<std::string_view, char> kEntities[] = {
      {"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    auto entity = std::find_if(std::begin(kEntities), std::end(kEntities),
                               [&](const auto& e) { return text.substr(i, e.first.size()) == e.first; });
    if (entity == std::end(kEntities)) {
      out.push_back(text[i]);
    } else {
      out.push_back(entity->second);
      i += entity->first.size() - 1;
    }
  }
  return out;
}

// The unescaped text of the first <tag>...</tag> in `xml` at or after `*pos`; moves `*pos` past
// it. S3's elements carry no attributes except the root's namespace, which is never asked for.
std::optional<std::string> XmlElement(std::string_view xml, std::string_view tag, size_t* pos = nullptr) {
  std::string open = "<" + std::string(tag) + ">";
  std::string close = "</" + std::string(tag) + ">";
  size_t start = xml.find(open, pos != nullptr ? *pos : 0);
  if (start == std::string_view::npos) return std::nullopt;
  start += open.size();
  size_t end = xml.find(close, start);
  if (end == std::string_view::npos) return std::nullopt;
  if (pos != nullptr) *pos = end + close.size();
  return XmlUnescape(xml.substr(start, end - start));
}

bool ValidObjectName(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
  });
}

// Request body from `remaining` bytes of an open file, counted on `progress`. Bounded: libcurl
// must not send past the Content-Length of a part.
struct FileSlice {
  std::FILE* file = nullptr;
  uint64_t remaining = 0;
  ProgressSink* progress = nullptr;
  bool read_failed = false;
};

size_t ReadSlice(char* buffer, size_t size, size_t count, void* user) {
  auto* slice = static_cast<FileSlice*>(user);
  size_t want = static_cast<size_t>(std::min<uint64_t>(size * count, slice->remaining));
  size_t n = want == 0 ? 0 : std::fread(buffer, 1, want, slice->file);
  if (n < want && std::ferror(slice->file)) {
    slice->read_failed = true;
    return CURL_READFUNC_ABORT;
  }
  slice->remaining -= n;
  if (slice->progress != nullptr && n > 0) slice->progress->Advance(n);
  return n;
}

// Response body of a download: into the file when the answer is a success, else kept as the
// error document (so an S3 error never lands in the user's file).
struct DownloadSink {
  CURL* curl = nullptr;
  std::FILE* file = nullptr;
  ProgressSink* progress = nullptr;
  std::string error_body;
  bool write_failed = false;
};

size_t WriteDownload(char* data, size_t size, size_t count, void* user) {
  auto* sink = static_cast<DownloadSink*>(user);
  size_t n = size * count;
  long code = 0;
  curl_easy_getinfo(sink->curl, CURLINFO_RESPONSE_CODE, &code);
  if (code < 200 || code >= 300) {
    if (sink->error_body.size() + n <= kMaxErrorBody) sink->error_body.append(data, n);
    return n;
  }
  if (std::fwrite(data, 1, n, sink->file) != n) {
    sink->write_failed = true;
    return 0;
  }
  if (sink->progress != nullptr) sink->progress->Advance(n);
  return n;
}

// Keeps the ETag header of the last response (an UploadPart's ETag goes into the completion).
size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  std::string_view line(data, size * count);
  auto* etag = static_cast<std::string*>(user);
  if (line.size() > 5 && strncasecmp(line.data(), "etag:", 5) == 0) {
    line.remove_prefix(5);
    while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' '))
      line.remove_suffix(1);
    *etag = std::string(line);
  }
  return size * count;
}

struct Reply {
  long code = 0;
  std::string body;  // the answer's XML, or a download's error document
  std::string etag;
};

struct Request {
  const char* method = "GET";                // GET, PUT, POST, DELETE
  std::string key{};                         // object key; empty for the bucket itself
  std::string query{};                       // encoded and sorted by name, as SigV4's canonical form wants
  std::string body{};                        // small in-memory body (POST)
  const std::string* upload_path = nullptr;  // PUT: the slice [offset, offset+size) of this file
  uint64_t offset = 0;
  uint64_t size = 0;
  std::FILE* download = nullptr;  // GET into this file
  ProgressSink* progress = nullptr;
};

class S3Store final : public SnapshotStore {
 public:
  S3Store(const S3SnapshotConfig& config, const S3StoreOptions& options, std::string prefix)
      : config_(config), options_(options), region_(options.region), prefix_(std::move(prefix)) {
    base_url_ = std::string(config.use_ssl ? "https://" : "http://") + config.endpoint;
  }

  std::string Describe() const override {
    return "s3 store " + base_url_ + "/" + config_.bucket + (prefix_.empty() ? "" : "/" + prefix_);
  }

  Status Put(const std::string& name, const std::string& local_path, ProgressSink* progress) override {
    std::string what = Describe() + ": uploading " + name;
    MARMOT_RETURN_IF_ERROR(CheckName(name, what));
    std::error_code ec;
    uint64_t size = std::filesystem::file_size(local_path, ec);
    if (ec) return Status::IoError(what + ": cannot read " + local_path + ": " + ec.message());
    if (size > options_.multipart_threshold) return PutMultipart(name, local_path, size, progress, what);
    Request req{
        .method = "PUT", .key = Key(name), .upload_path = &local_path, .size = size, .progress = progress};
    return Check(Send(req, what), what);
  }

  Status Get(const std::string& name, const std::string& local_path, ProgressSink* progress) override {
    std::string what = Describe() + ": downloading " + name;
    MARMOT_RETURN_IF_ERROR(CheckName(name, what));
    Result<FilePtr> file = CreateLocalFile(local_path, what);
    if (!file.ok()) return file.status();
    Request req{.method = "GET", .key = Key(name), .download = file->get(), .progress = progress};
    MARMOT_RETURN_IF_ERROR(Check(Send(req, what), what));
    return CloseLocalFile(std::move(*file), local_path, what);
  }

  Result<std::vector<StoredObject>> List() override {
    std::string what = Describe() + ": listing objects";
    std::string list_prefix = prefix_.empty() ? "" : prefix_ + "/";
    std::vector<StoredObject> objects;
    std::string token;
    while (true) {
      std::string query = token.empty() ? "" : "continuation-token=" + UrlEncode(token) + "&";
      query += "list-type=2&max-keys=" + std::to_string(options_.list_page_size) +
               "&prefix=" + UrlEncode(list_prefix);
      Result<Reply> reply = Send(Request{.method = "GET", .query = query}, what);
      MARMOT_RETURN_IF_ERROR(Check(reply, what));
      const std::string& xml = reply->body;
      size_t pos = 0;
      while (std::optional<std::string> contents = XmlElement(xml, "Contents", &pos)) {
        std::optional<std::string> key = XmlElement(*contents, "Key");
        std::optional<std::string> size = XmlElement(*contents, "Size");
        if (!key || !size || key->compare(0, list_prefix.size(), list_prefix) != 0) continue;
        std::string name = key->substr(list_prefix.size());
        if (name.empty() || name.find('/') != std::string::npos) continue;  // not one of ours
        objects.push_back(StoredObject{name, std::strtoull(size->c_str(), nullptr, 10)});
      }
      if (XmlElement(xml, "IsTruncated").value_or("false") != "true") return objects;
      token = XmlElement(xml, "NextContinuationToken").value_or("");
      if (token.empty())
        return Status::Error(what + ": the server said the listing goes on but gave no continuation token");
    }
  }

  Status Remove(const std::string& name) override {
    std::string what = Describe() + ": deleting " + name;
    MARMOT_RETURN_IF_ERROR(CheckName(name, what));
    Result<Reply> reply = Send(Request{.method = "DELETE", .key = Key(name)}, what);
    Status status = Check(reply, what);
    // S3 answers 204 for a missing key anyway; others say NoSuchKey, which is fine too.
    if (status.Is(StatusCode::kNotFound) && reply.ok() &&
        XmlElement(reply->body, "Code").value_or("") == "NoSuchKey") {
      return Status();
    }
    return status;
  }

 private:
  static Status CheckName(const std::string& name, const std::string& what) {
    if (ValidObjectName(name)) return Status();
    return Status::InvalidArgument(what + ": not a valid object name (letters, digits, '-', '_', '.')");
  }

  std::string Key(const std::string& name) const { return prefix_.empty() ? name : prefix_ + "/" + name; }

  std::string Url(const Request& req) const {
    std::string url = base_url_ + "/" + UrlEncode(config_.bucket);
    if (!req.key.empty()) {
      url += "/";
      size_t start = 0;
      while (true) {  // each '/'-separated segment encoded on its own: '/' stays a separator
        size_t slash = req.key.find('/', start);
        url += UrlEncode(req.key.substr(start, slash - start));
        if (slash == std::string::npos) break;
        url += "/";
        start = slash + 1;
      }
    }
    return req.query.empty() ? url : url + "?" + req.query;
  }

  // Runs one request and returns the server's answer (any HTTP status); a transport failure is
  // the Status. Signs again once for the region AWS names in AuthorizationHeaderMalformed.
  Result<Reply> Send(const Request& req, const std::string& what) {
    for (int attempt = 0;; ++attempt) {
      CurlEasy curl;
      MARMOT_RETURN_IF_ERROR(curl.status());
      std::string url = Url(req);
      curl.Set(CURLOPT_URL, url.c_str());
      std::string sigv4 = "aws:amz:" + region_ + ":s3";
      if (!config_.access_key.empty()) {
        curl.Set(CURLOPT_AWS_SIGV4, sigv4.c_str());
        curl.Set(CURLOPT_USERNAME, config_.access_key.c_str());
        curl.Set(CURLOPT_PASSWORD, config_.secret.c_str());
      }
      if (!config_.session_token.empty()) curl.AddHeader("x-amz-security-token: " + config_.session_token);
      Reply reply;
      curl.Set(CURLOPT_HEADERFUNCTION, &OnHeader);
      curl.Set(CURLOPT_HEADERDATA, &reply.etag);

      FilePtr upload;
      FileSlice slice;
      std::string payload_hash = kEmptySha256;
      if (req.upload_path != nullptr) {
        upload.reset(std::fopen(req.upload_path->c_str(), "rb"));
        if (!upload || fseeko(upload.get(), static_cast<off_t>(req.offset), SEEK_SET) != 0) {
          return Status::IoError(what + ": cannot read " + *req.upload_path + ": " + std::strerror(errno));
        }
        slice = FileSlice{upload.get(), req.size, req.progress};
        curl.Set(CURLOPT_UPLOAD, 1L);
        curl.Set(CURLOPT_READFUNCTION, &ReadSlice);
        curl.Set(CURLOPT_READDATA, &slice);
        curl.Set(CURLOPT_INFILESIZE_LARGE, static_cast<curl_off_t>(req.size));
        payload_hash = "UNSIGNED-PAYLOAD";  // hashing a 1 GB file first would read it twice
      } else if (std::strcmp(req.method, "POST") == 0) {
        curl.Set(CURLOPT_POSTFIELDS, req.body.c_str());
        curl.Set(CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
        curl.AddHeader("Content-Type: application/xml");
        payload_hash = Sha256Hex(req.body);
      } else if (std::strcmp(req.method, "GET") != 0) {
        curl.Set(CURLOPT_CUSTOMREQUEST, req.method);
      }
      curl.AddHeader("x-amz-content-sha256: " + payload_hash);

      DownloadSink sink{curl.get(), req.download, req.progress, {}, false};
      if (req.download != nullptr) {
        curl.Set(CURLOPT_WRITEFUNCTION, &WriteDownload);
        curl.Set(CURLOPT_WRITEDATA, &sink);
      } else {
        curl.CollectBody();
      }

      Result<long> code = curl.Perform(what);
      if (slice.read_failed) return Status::IoError(what + ": reading " + *req.upload_path + " failed");
      if (sink.write_failed) return Status::IoError(what + ": writing the download failed (disk full?)");
      if (!code.ok()) return code.status();
      reply.code = *code;
      reply.body = req.download != nullptr ? sink.error_body : curl.body();
      std::optional<std::string> region = XmlElement(reply.body, "Region");
      if (attempt == 0 && reply.code == 400 && region && *region != region_ &&
          XmlElement(reply.body, "Code").value_or("") == "AuthorizationHeaderMalformed") {
        region_ = *region;
        if (req.download != nullptr &&
            (std::fflush(req.download) != 0 || ftruncate(fileno(req.download), 0) != 0)) {
          return Status::IoError(what + ": cannot truncate the download file: " + std::strerror(errno));
        }
        if (req.download != nullptr) std::rewind(req.download);
        continue;
      }
      return reply;
    }
  }

  // OK for a 2xx answer that is not an S3 error document, else the error in the user's words.
  Status Check(const Result<Reply>& reply, const std::string& what) const {
    if (!reply.ok()) return reply.status();
    const std::string& body = reply->body;
    // CompleteMultipartUpload can fail after its 200 header: the body is then an <Error>.
    bool error_body = body.find("<Error>") != std::string::npos;
    if (reply->code >= 200 && reply->code < 300 && !error_body) return Status();
    std::string code = XmlElement(body, "Code").value_or("");
    std::string detail = code.empty() ? "HTTP " + std::to_string(reply->code) : code;
    if (std::optional<std::string> message = XmlElement(body, "Message")) detail += ": " + *message;
    detail = " (S3 said " + detail + ")";
    if (code == "NoSuchBucket") return Status::NotFound(what + ": no such bucket " + config_.bucket + detail);
    if (code == "InvalidAccessKeyId" || code == "SignatureDoesNotMatch" || code == "AccessDenied" ||
        (code.empty() && (reply->code == 401 || reply->code == 403))) {
      return Status::InvalidArgument(what + ": wrong credentials (snapshot.s3.access_key/secret)" + detail);
    }
    if (code == "NoSuchKey" || (code.empty() && reply->code == 404)) {
      return Status::NotFound(what + ": no such object" + detail);
    }
    if (code == "PermanentRedirect" || reply->code == 301) {
      std::string endpoint = XmlElement(body, "Endpoint").value_or("another endpoint");
      return Status::InvalidArgument(what + ": the bucket is served by " + endpoint +
                                     " (set snapshot.s3.endpoint to it)" + detail);
    }
    if (reply->code == 503 || code == "SlowDown" || code == "ServiceUnavailable") {
      return Status::Unavailable(what + ": server busy, try again later" + detail);
    }
    return Status::Error(what + ": the server refused" + detail);
  }

  Status PutMultipart(const std::string& name, const std::string& local_path, uint64_t size,
                      ProgressSink* progress, const std::string& what) {
    std::string key = Key(name);
    Result<Reply> created = Send(Request{.method = "POST", .key = key, .query = "uploads="}, what);
    MARMOT_RETURN_IF_ERROR(Check(created, what + " (starting a multipart upload)"));
    std::string upload_id = XmlElement(created->body, "UploadId").value_or("");
    if (upload_id.empty())
      return Status::Error(what + ": the server started a multipart upload without an UploadId");
    std::string id_query = "uploadId=" + UrlEncode(upload_id);

    uint64_t part_size = std::max<uint64_t>({options_.part_size, (size + kMaxParts - 1) / kMaxParts, 1});
    std::string completion = "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">";
    Status status;
    for (uint64_t offset = 0, part = 1; offset < size && status.ok(); offset += part_size, ++part) {
      std::string part_what = what + " (part " + std::to_string(part) + ")";
      Request req{.method = "PUT",
                  .key = key,
                  .query = "partNumber=" + std::to_string(part) + "&" + id_query,
                  .upload_path = &local_path,
                  .offset = offset,
                  .size = std::min(part_size, size - offset),
                  .progress = progress};
      Result<Reply> reply = Send(req, part_what);
      status = Check(reply, part_what);
      if (status.ok() && reply->etag.empty()) status = Status::Error(part_what + ": the server sent no ETag");
      if (status.ok()) {  // an ETag is a quoted hex string: nothing to escape
        completion += "<Part><PartNumber>" + std::to_string(part) + "</PartNumber><ETag>" + reply->etag +
                      "</ETag></Part>";
      }
    }
    completion += "</CompleteMultipartUpload>";
    if (status.ok()) {
      Request req{.method = "POST", .key = key, .query = id_query, .body = completion};
      status = Check(Send(req, what), what + " (completing the multipart upload)");
    }
    if (!status.ok()) {
      // Best effort: parts of an unfinished upload are stored (and billed) until aborted.
      (void)Send(Request{.method = "DELETE", .key = key, .query = id_query}, what);
    }
    return status;
  }

  S3SnapshotConfig config_;
  S3StoreOptions options_;
  std::string region_;
  std::string prefix_;  // path without leading or trailing '/'
  std::string base_url_;
};

}  // namespace

Result<std::unique_ptr<SnapshotStore>> OpenS3Store(const S3SnapshotConfig& config) {
  return OpenS3Store(config, S3StoreOptions{});
}

Result<std::unique_ptr<SnapshotStore>> OpenS3Store(const S3SnapshotConfig& config,
                                                   const S3StoreOptions& options) {
  auto has_any = [](const std::string& text, const char* chars) {
    return text.find_first_of(chars) != std::string::npos;
  };
  const std::pair<bool, std::string> problems[] = {
      {config.endpoint.empty(), "snapshot.s3.endpoint is empty: set the S3 service's host[:port]"},
      {config.endpoint.find("://") != std::string::npos,
       "snapshot.s3.endpoint must be host[:port] without a scheme (use_ssl = true selects https)"},
      {has_any(config.endpoint, "/@?# \t"),
       "snapshot.s3.endpoint must be host[:port] only (no path or user)"},
      {config.bucket.empty(), "snapshot.s3.bucket is empty: set the bucket's name"},
      {has_any(config.bucket, "/?# \t"), "snapshot.s3.bucket \"" + config.bucket + "\" is not a bucket name"},
      {config.access_key.empty() && (!config.secret.empty() || !config.session_token.empty()),
       "snapshot.s3.access_key is empty but snapshot.s3.secret or session_token is set"},
      {!config.access_key.empty() && config.secret.empty(),
       "snapshot.s3.secret is empty but snapshot.s3.access_key is set"},
      {options.multipart_threshold == 0 || options.list_page_size < 1,
       "S3 store options: multipart_threshold and list_page_size must be positive"},
  };
  for (const auto& [bad, message] : problems) {
    if (bad) return Status::InvalidArgument(message);
  }
  std::string prefix = config.path;
  while (!prefix.empty() && prefix.front() == '/') prefix.erase(0, 1);
  while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
  return std::unique_ptr<SnapshotStore>(new S3Store(config, options, prefix));
}

}  // namespace marmot
