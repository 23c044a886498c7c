#include "snapshot/webdav_store.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <vector>

#include "snapshot/curl_easy.h"

namespace marmot {
namespace {

constexpr const char* kUrlKey = "snapshot.webdav.url";

std::vector<std::string> PathSegments(std::string_view path) {
  std::vector<std::string> segments;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) slash = path.size();
    std::string_view segment = path.substr(start, slash - start);
    if (!segment.empty() && segment != ".") segments.emplace_back(segment);
    start = slash + 1;
  }
  return segments;
}

// The content of the next element whose local name (namespace prefix ignored) is `local`, from
// `from` on. Enough XML for a PROPFIND answer: no CDATA, and the elements asked for never nest.
struct XmlElement {
  bool found = false;
  std::string_view content;
  size_t end = 0;  // just past the closing tag
};

XmlElement FindElement(std::string_view xml, size_t from, std::string_view local) {
  XmlElement element;
  for (size_t open = xml.find('<', from); open != std::string_view::npos; open = xml.find('<', open + 1)) {
    size_t name_begin = open + 1;
    if (name_begin >= xml.size() || xml[name_begin] == '/' || xml[name_begin] == '?' ||
        xml[name_begin] == '!') {
      continue;
    }
    size_t name_end = xml.find_first_of(" \t\r\n/>", name_begin);
    if (name_end == std::string_view::npos) return element;
    std::string_view name = xml.substr(name_begin, name_end - name_begin);
    size_t colon = name.rfind(':');
    if ((colon == std::string_view::npos ? name : name.substr(colon + 1)) != local) continue;
    size_t gt = xml.find('>', name_end);
    if (gt == std::string_view::npos) return element;
    element.found = true;
    if (xml[gt - 1] == '/') {  // <D:collection/>
      element.end = gt + 1;
      return element;
    }
    std::string closing = "</" + std::string(name);
    size_t close = xml.find(closing, gt + 1);
    if (close == std::string_view::npos) close = xml.size();
    element.content = xml.substr(gt + 1, close - gt - 1);
    size_t close_gt = xml.find('>', close);
    element.end = close_gt == std::string_view::npos ? xml.size() : close_gt + 1;
    return element;
  }
  return element;
}

std::string_view Trim(std::string_view text) {
  size_t begin = text.find_first_not_of(" \t\r\n");
  if (begin == std::string_view::npos) return {};
  size_t end = text.find_last_not_of(" \t\r\n");
  return text.substr(begin, end - begin + 1);
}

// The last path segment of a PROPFIND href ("/dav/snapshots/a.db" or "http://h/dav/a.db").
std::string NameFromHref(std::string_view href) {
  href = Trim(href);
  while (!href.empty() && href.back() == '/') href.remove_suffix(1);
  size_t slash = href.rfind('/');
  std::string segment(slash == std::string_view::npos ? href : href.substr(slash + 1));
  size_t amp;
  while ((amp = segment.find("&amp;")) != std::string::npos) segment.replace(amp, 5, "&");
  int length = 0;
  char* decoded = curl_easy_unescape(nullptr, segment.c_str(), static_cast<int>(segment.size()), &length);
  if (decoded == nullptr) return segment;
  std::string out(decoded, static_cast<size_t>(length));
  curl_free(decoded);
  return out;
}

constexpr const char* kPropfindBody =
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>"
    "<D:propfind xmlns:D=\"DAV:\"><D:prop><D:resourcetype/><D:getcontentlength/></D:prop></D:propfind>";

class WebDavStore : public SnapshotStore {
 public:
  WebDavStore(std::string root_url, std::vector<std::string> dir_levels, std::string login,
              std::string secret)
      : root_url_(std::move(root_url)),
        dir_levels_(std::move(dir_levels)),
        login_(std::move(login)),
        secret_(std::move(secret)) {
    collection_url_ = root_url_;
    for (const std::string& level : dir_levels_) collection_url_ += level + "/";
  }

  std::string Describe() const override { return "webdav store " + collection_url_; }

  Status Put(const std::string& name, const std::string& local_path, ProgressSink* progress) override {
    std::string what = Describe() + ": uploading " + name;
    std::error_code ec;
    uint64_t size = std::filesystem::file_size(local_path, ec);
    if (ec) return Status::IoError(what + ": cannot read local file " + local_path + ": " + ec.message());
    Result<FilePtr> file = OpenLocalFile(local_path, what);
    if (!file.ok()) return file.status();
    MARMOT_RETURN_IF_ERROR(MakeCollection(what));

    std::string partial = name + ".partial";
    CurlEasy put;
    Prepare(put, "PUT", ObjectUrl(partial));
    put.UploadFrom(file->get(), size, progress);
    Status uploaded = Judge(put.Perform(what), what, "the directory does not exist");
    if (uploaded.ok()) {
      // Overwrite: T replaces an object of that name in one step on the server.
      CurlEasy move;
      Prepare(move, "MOVE", ObjectUrl(partial));
      move.AddHeader("Destination: " + ObjectUrl(name));
      move.AddHeader("Overwrite: T");
      uploaded =
          Judge(move.Perform(what + " (MOVE from " + partial + ")"), what, "the uploaded part vanished");
    }
    if (!uploaded.ok()) RemoveQuietly(partial);
    return uploaded;
  }

  Status Get(const std::string& name, const std::string& local_path, ProgressSink* progress) override {
    std::string what = Describe() + ": downloading " + name;
    Result<FilePtr> file = CreateLocalFile(local_path, what);
    if (!file.ok()) return file.status();
    CurlEasy get;
    Prepare(get, "GET", ObjectUrl(name));
    get.Set(CURLOPT_FAILONERROR, 1L);  // an error page must not land in the local file
    get.DownloadTo(file->get(), progress);
    MARMOT_RETURN_IF_ERROR(Judge(get.Perform(what), what, "no such object", &get));
    MARMOT_RETURN_IF_ERROR(CloseLocalFile(std::move(*file), local_path, what));
    return Status();
  }

  Result<std::vector<StoredObject>> List() override {
    std::string what = Describe() + ": listing";
    CurlEasy propfind;
    PreparePropfind(propfind, collection_url_, "1");
    Result<long> code = propfind.Perform(what);
    if (code.ok() && *code == 404) return std::vector<StoredObject>{};  // nothing uploaded yet
    MARMOT_RETURN_IF_ERROR(Judge(code, what, "the directory does not exist"));

    std::vector<StoredObject> objects;
    std::string_view xml = propfind.body();
    for (XmlElement response = FindElement(xml, 0, "response"); response.found;
         response = FindElement(xml, response.end, "response")) {
      if (FindElement(response.content, 0, "collection").found) continue;  // the directory itself, subdirs
      XmlElement href = FindElement(response.content, 0, "href");
      if (!href.found) continue;
      std::string name = NameFromHref(href.content);
      if (name.empty() || name.ends_with(".partial")) continue;
      XmlElement length = FindElement(response.content, 0, "getcontentlength");
      uint64_t size =
          length.found ? std::strtoull(std::string(Trim(length.content)).c_str(), nullptr, 10) : 0;
      objects.push_back(StoredObject{name, size});
    }
    return objects;
  }

  Status Remove(const std::string& name) override {
    std::string what = Describe() + ": removing " + name;
    CurlEasy del;
    Prepare(del, "DELETE", ObjectUrl(name));
    Result<long> code = del.Perform(what);
    if (code.ok() && *code == 404) return Status();
    return Judge(code, what, "no such object");
  }

 private:
  std::string ObjectUrl(const std::string& name) const { return collection_url_ + UrlEncode(name); }

  void Prepare(CurlEasy& curl, const char* method, const std::string& url) const {
    curl.Set(CURLOPT_URL, url.c_str());
    if (std::strcmp(method, "PUT") != 0 && std::strcmp(method, "GET") != 0)
      curl.Set(CURLOPT_CUSTOMREQUEST, method);
    if (!login_.empty() || !secret_.empty()) {
      curl.Set(CURLOPT_HTTPAUTH, static_cast<long>(CURLAUTH_BASIC));
      curl.Set(CURLOPT_USERNAME, login_.c_str());
      curl.Set(CURLOPT_PASSWORD, secret_.c_str());
    }
    curl.CollectBody();  // answers and error pages; GET replaces this with DownloadTo
  }

  void PreparePropfind(CurlEasy& curl, const std::string& url, const char* depth) const {
    Prepare(curl, "PROPFIND", url);
    curl.AddHeader(std::string("Depth: ") + depth);
    curl.AddHeader("Content-Type: application/xml; charset=utf-8");
    curl.Set(CURLOPT_POSTFIELDS, kPropfindBody);
  }

  // OK for a 2xx answer; otherwise the failure in the SnapshotStore's words. `missing` says what a
  // 404 means for this request. `failed_on_error` is the handle when it ran with FAILONERROR, whose
  // HTTP errors come back as a failed transfer.
  static Status Judge(const Result<long>& code, const std::string& what, const char* missing,
                      CurlEasy* failed_on_error = nullptr) {
    long http = code.ok() ? *code : 0;
    if (!code.ok()) {
      if (failed_on_error != nullptr)
        curl_easy_getinfo(failed_on_error->get(), CURLINFO_RESPONSE_CODE, &http);
      if (http < 400) return code.status();
    }
    if (http >= 200 && http < 300) return Status();
    std::string status = " (HTTP " + std::to_string(http) + ")";
    switch (http) {
      case 401:
        return Status::InvalidArgument(what + ": wrong credentials" + status +
                                       "; check login and secret in " + kUrlKey);
      case 403:
        return Status::InvalidArgument(what + ": access denied" + status);
      case 404:
        return Status::NotFound(what + ": " + missing + status);
      case 409:
        return Status::NotFound(what + ": the directory does not exist" + status);
      case 507:
        return Status::IoError(what + ": the server's disk is full" + status);
      case 502:
      case 503:
      case 504:
        return Status::Unavailable(what + ": server unavailable" + status);
      default:
        return Status::Error(what + ": the server refused the request" + status);
    }
  }

  // Creates the levels of `dir` that are missing (MKCOL answers 405 for an existing one).
  Status MakeCollection(const std::string& what) const {
    CurlEasy probe;
    PreparePropfind(probe, collection_url_, "0");
    Result<long> code = probe.Perform(what + " (checking the directory)");
    if (!code.ok() || *code != 404 || dir_levels_.empty()) {
      return Judge(code, what + " (checking the directory)", "the directory does not exist");
    }
    std::string url = root_url_;
    for (const std::string& level : dir_levels_) {
      url += level + "/";
      CurlEasy mkcol;
      Prepare(mkcol, "MKCOL", url);
      std::string step = what + " (creating directory " + url + ")";
      Result<long> made = mkcol.Perform(step);
      if (made.ok() && *made == 405) continue;  // exists
      MARMOT_RETURN_IF_ERROR(Judge(made, step, "the parent directory does not exist"));
    }
    return Status();
  }

  // Best effort after a failed upload; the .partial name is never listed anyway.
  void RemoveQuietly(const std::string& name) const {
    CurlEasy del;
    Prepare(del, "DELETE", ObjectUrl(name));
    (void)del.Perform("");
  }

  std::string root_url_;                 // base URL, ending in '/'
  std::vector<std::string> dir_levels_;  // `dir`, percent-encoded levels
  std::string collection_url_;           // root_url_ + dir, ending in '/'
  std::string login_;
  std::string secret_;  // never in messages
};

}  // namespace

Result<std::unique_ptr<SnapshotStore>> OpenWebDavStore(const WebDavSnapshotConfig& config) {
  auto invalid = [](const std::string& why) {
    return Status::InvalidArgument(std::string(kUrlKey) + " " + why);
  };
  if (config.url.empty())
    return invalid("is empty; expected https://host/path?dir=/snapshots&login=USER&secret=PASS");
  CurlUrlPtr url(curl_url());
  if (!url) return Status::Error("libcurl could not allocate a URL parser");
  CURLUcode parsed = curl_url_set(url.get(), CURLUPART_URL, config.url.c_str(), 0);
  if (parsed != CURLUE_OK) return invalid(std::string("is not a valid URL: ") + curl_url_strerror(parsed));
  std::string scheme = UrlPart(url.get(), CURLUPART_SCHEME);
  if (scheme != "http" && scheme != "https") {
    return invalid("must start with http:// or https://, not " + scheme + "://");
  }
  if (UrlPart(url.get(), CURLUPART_HOST).empty()) return invalid("has no host name");

  std::string login = UrlPart(url.get(), CURLUPART_USER, CURLU_URLDECODE);
  std::string secret = UrlPart(url.get(), CURLUPART_PASSWORD, CURLU_URLDECODE);
  std::string dir;
  std::string query = UrlPart(url.get(), CURLUPART_QUERY);
  for (const auto& [key, value] : QueryParameters(query, /*plus_is_space=*/true)) {
    if (key == "dir") {
      dir = value;
    } else if (key == "login") {
      login = value;
    } else if (key == "secret") {
      secret = value;
    } else {
      return invalid("has an unknown query parameter \"" + key + "\" (known: dir, login, secret)");
    }
  }
  std::vector<std::string> dir_levels;
  for (const std::string& level : PathSegments(dir)) {
    if (level == "..") return invalid("has dir=" + dir + ", which must not contain \"..\"");
    dir_levels.push_back(UrlEncode(level));
  }
  if (!secret.empty() && login.empty()) return invalid("has a secret but no login");

  std::string path = UrlPart(url.get(), CURLUPART_PATH);
  if (path.empty() || path.back() != '/') path += '/';
  for (CURLUPart part : {CURLUPART_QUERY, CURLUPART_FRAGMENT, CURLUPART_USER, CURLUPART_PASSWORD}) {
    curl_url_set(url.get(), part, nullptr, 0);
  }
  curl_url_set(url.get(), CURLUPART_PATH, path.c_str(), 0);
  std::string root_url = UrlPart(url.get(), CURLUPART_URL);
  if (root_url.empty()) return invalid("could not be rebuilt without its query");
  return std::unique_ptr<SnapshotStore>(
      new WebDavStore(std::move(root_url), std::move(dir_levels), std::move(login), std::move(secret)));
}

}  // namespace marmot
