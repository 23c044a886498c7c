#include "snapshot/sftp_store.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>
#include <vector>

#include "snapshot/curl_easy.h"

namespace marmot {
namespace {

constexpr const char* kUrlKey = "snapshot.sftp.url";

// A path for an SFTP quote command, in double quotes (libcurl's quote syntax).
std::string QuotePath(const std::string& path) {
  std::string out = "\"";
  for (char c : path) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  return out + "\"";
}

std::vector<std::string_view> Words(std::string_view line, size_t max_words, size_t* rest) {
  std::vector<std::string_view> words;
  size_t pos = 0;
  while (words.size() < max_words) {
    size_t begin = line.find_first_not_of(" \t", pos);
    if (begin == std::string_view::npos) break;
    size_t end = line.find_first_of(" \t", begin);
    if (end == std::string_view::npos) end = line.size();
    words.push_back(line.substr(begin, end - begin));
    pos = end;
  }
  size_t rest_begin = line.find_first_not_of(" \t", pos);
  *rest = rest_begin == std::string_view::npos ? line.size() : rest_begin;
  return words;
}

bool ParseSize(std::string_view text, uint64_t* size) {
  if (text.empty()) return false;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  *size = value;
  return true;
}

struct SftpLogin {
  std::string user;
  std::string password;  // never in messages
  std::string key_file;
  std::string passphrase;  // never in messages
  std::string known_hosts;
};

// What libcurl found when it looked the server's host key up in the known_hosts file.
int OnHostKey(CURL*, const curl_khkey*, const curl_khkey*, curl_khmatch match, void* found) {
  *static_cast<int*>(found) = match;
  return match == CURLKHMATCH_OK ? CURLKHSTAT_FINE : CURLKHSTAT_REJECT;
}

class SftpStore : public SnapshotStore {
 public:
  SftpStore(std::string server_url, std::string dir, SftpLogin login)
      : server_url_(std::move(server_url)), dir_(std::move(dir)), login_(std::move(login)) {
    std::string encoded_dir;
    size_t start = 0;
    while (start < dir_.size()) {  // dir_ starts with '/'; encode each level, keep the slashes
      size_t slash = dir_.find('/', start + 1);
      if (slash == std::string::npos) slash = dir_.size();
      encoded_dir += "/" + UrlEncode(dir_.substr(start + 1, slash - start - 1));
      start = slash;
    }
    dir_url_ = server_url_ + encoded_dir + "/";
    std::string user_at = UrlEncode(login_.user) + "@";
    description_ = "sftp store sftp://" + user_at + server_url_.substr(std::strlen("sftp://")) + dir_;
  }

  std::string Describe() const override { return description_; }

  Status Put(const std::string& name, const std::string& local_path, ProgressSink* progress) override {
    std::string what = Describe() + ": uploading " + name;
    std::error_code ec;
    uint64_t size = std::filesystem::file_size(local_path, ec);
    if (ec) return Status::IoError(what + ": cannot read local file " + local_path + ": " + ec.message());
    Result<FilePtr> file = OpenLocalFile(local_path, what);
    if (!file.ok()) return file.status();

    std::string partial = name + ".partial";
    CurlEasy put;
    Prepare(put, dir_url_ + UrlEncode(partial));
    put.Set(CURLOPT_FTP_CREATE_MISSING_DIRS, static_cast<long>(CURLFTP_CREATE_DIR));
    put.UploadFrom(file->get(), size, progress);
    // After the upload: drop an existing object ('*': a missing one is fine), then rename.
    CurlSlistPtr commands(curl_slist_append(nullptr, ("*rm " + QuotePath(ObjectPath(name))).c_str()));
    curl_slist_append(
        commands.get(),
        ("rename " + QuotePath(ObjectPath(partial)) + " " + QuotePath(ObjectPath(name))).c_str());
    put.Set(CURLOPT_POSTQUOTE, commands.get());
    Status uploaded = Explain(put.Perform(what).status(), what);
    if (!uploaded.ok()) RemoveQuietly(partial);
    return uploaded;
  }

  Status Get(const std::string& name, const std::string& local_path, ProgressSink* progress) override {
    std::string what = Describe() + ": downloading " + name;
    Result<FilePtr> file = CreateLocalFile(local_path, what);
    if (!file.ok()) return file.status();
    CurlEasy get;
    Prepare(get, dir_url_ + UrlEncode(name));
    get.DownloadTo(file->get(), progress);
    MARMOT_RETURN_IF_ERROR(Explain(get.Perform(what).status(), what));
    MARMOT_RETURN_IF_ERROR(CloseLocalFile(std::move(*file), local_path, what));
    return Status();
  }

  Result<std::vector<StoredObject>> List() override {
    std::string what = Describe() + ": listing";
    CurlEasy list;
    Prepare(list, dir_url_);  // a URL ending in '/' reads the directory, one "ls -l" line per entry
    list.CollectBody();
    Status listed = list.Perform(what).status();
    if (listed.Is(StatusCode::kNotFound)) return std::vector<StoredObject>{};  // nothing uploaded yet
    MARMOT_RETURN_IF_ERROR(Explain(listed, what));

    std::vector<StoredObject> objects;
    std::string_view body = list.body();
    for (size_t start = 0; start < body.size();) {
      size_t end = body.find('\n', start);
      if (end == std::string_view::npos) end = body.size();
      std::string_view line = body.substr(start, end - start);
      start = end + 1;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      // "-rw-r--r--  1 owner group  1234 Nov 29 14:38 name": '-' marks a regular file.
      if (line.empty() || line[0] != '-') continue;
      size_t rest = 0;
      std::vector<std::string_view> words = Words(line, 8, &rest);
      std::string name(line.substr(rest));
      if (words.size() < 8 || name.empty() || name.ends_with(".partial")) continue;
      StoredObject object{name, 0};
      if (!ParseSize(words[4], &object.size)) {
        Result<uint64_t> size = StatSize(name);  // a server with another listing layout
        MARMOT_RETURN_IF_ERROR(size.status());
        object.size = *size;
      }
      objects.push_back(std::move(object));
    }
    return objects;
  }

  Status Remove(const std::string& name) override {
    std::string what = Describe() + ": removing " + name;
    Status removed = RunCommand("rm " + QuotePath(ObjectPath(name)), what);
    if (removed.ok() || !removed.Is(StatusCode::kUnknown)) return removed;
    // The rm failed on the server: fine when there was nothing to remove.
    Result<uint64_t> size = StatSize(name);
    if (!size.ok() && size.status().Is(StatusCode::kNotFound)) return Status();
    return removed;
  }

 private:
  std::string ObjectPath(const std::string& name) const { return dir_ + "/" + name; }

  void Prepare(CurlEasy& curl, const std::string& url) const {
    curl.Set(CURLOPT_URL, url.c_str());
    curl.Set(CURLOPT_USERNAME, login_.user.c_str());
    if (!login_.password.empty()) curl.Set(CURLOPT_PASSWORD, login_.password.c_str());
    if (!login_.key_file.empty()) {
      curl.Set(CURLOPT_SSH_PRIVATE_KEYFILE, login_.key_file.c_str());
      curl.Set(CURLOPT_SSH_PUBLIC_KEYFILE, "");  // libssh2 derives it from the private key
      if (!login_.passphrase.empty()) curl.Set(CURLOPT_KEYPASSWD, login_.passphrase.c_str());
    }
    host_key_match_ = -1;
    if (!login_.known_hosts.empty()) {
      curl.Set(CURLOPT_SSH_KNOWNHOSTS, login_.known_hosts.c_str());
      curl.Set(CURLOPT_SSH_KEYFUNCTION, &OnHostKey);
      curl.Set(CURLOPT_SSH_KEYDATA, &host_key_match_);
    }
  }

  // Runs one SFTP command ("rm ...") without a transfer.
  Status RunCommand(const std::string& command, const std::string& what) const {
    CurlEasy curl;
    Prepare(curl, server_url_ + "/");
    curl.Set(CURLOPT_NOBODY, 1L);
    CurlSlistPtr commands(curl_slist_append(nullptr, command.c_str()));
    curl.Set(CURLOPT_QUOTE, commands.get());
    return Explain(curl.Perform(what).status(), what);
  }

  // The size of object `name` (kNotFound when missing), asked without downloading it.
  Result<uint64_t> StatSize(const std::string& name) const {
    CurlEasy curl;
    Prepare(curl, dir_url_ + UrlEncode(name));
    curl.Set(CURLOPT_NOBODY, 1L);
    std::string what = Describe() + ": reading the size of " + name;
    MARMOT_RETURN_IF_ERROR(Explain(curl.Perform(what).status(), what));
    curl_off_t size = -1;
    curl_easy_getinfo(curl.get(), CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &size);
    return static_cast<uint64_t>(size < 0 ? 0 : size);
  }

  void RemoveQuietly(const std::string& name) const {
    (void)RunCommand("*rm " + QuotePath(ObjectPath(name)), Describe() + ": removing " + name);
  }

  // Says why the last request failed when the cause is the login or the host key.
  Status Explain(const Status& status, const std::string& what) const {
    if (status.ok()) return status;
    if (host_key_match_ == CURLKHMATCH_MISMATCH || host_key_match_ == CURLKHMATCH_MISSING) {
      return Status::InvalidArgument(
          what +
          (host_key_match_ == CURLKHMATCH_MISSING
               ? ": the server's host key is not listed in the known_hosts file " + login_.known_hosts
               : ": the server's host key DIFFERS from the one in the known_hosts file " +
                     login_.known_hosts +
                     " (the server got a new key, or another machine is posing as it); nothing was sent"));
    }
    if (!status.Is(StatusCode::kInvalidArgument)) return status;
    return Status::InvalidArgument(status.message() + " (check the user, password and key in " + kUrlKey +
                                   ")");
  }

  std::string server_url_;  // "sftp://host:port", no credentials
  std::string dir_;         // "/srv/snapshots" or "/~/snapshots", decoded, no trailing '/'
  std::string dir_url_;     // server_url_ + encoded dir_ + "/"
  SftpLogin login_;
  std::string description_;
  mutable int host_key_match_ = -1;  // curl_khmatch of the last request; -1: not checked
};

Status CheckReadable(const std::string& path, const std::string& what) {
  std::ifstream file(path);
  if (!file) {
    return Status::InvalidArgument(std::string(kUrlKey) + ": cannot read the " + what + " file " + path +
                                   ": " + std::strerror(errno));
  }
  return Status();
}

}  // namespace

Result<std::unique_ptr<SnapshotStore>> OpenSftpStore(const SftpSnapshotConfig& config) {
  auto invalid = [](const std::string& why) {
    return Status::InvalidArgument(std::string(kUrlKey) + " " + why);
  };
  if (config.url.empty()) return invalid("is empty; expected sftp://user:password@host:port/path");
  CurlUrlPtr url(curl_url());
  if (!url) return Status::Error("libcurl could not allocate a URL parser");
  CURLUcode parsed = curl_url_set(url.get(), CURLUPART_URL, config.url.c_str(), CURLU_NON_SUPPORT_SCHEME);
  if (parsed != CURLUE_OK) return invalid(std::string("is not a valid URL: ") + curl_url_strerror(parsed));
  std::string scheme = UrlPart(url.get(), CURLUPART_SCHEME);
  if (scheme != "sftp") return invalid("must start with sftp://, not " + scheme + "://");
  std::string host = UrlPart(url.get(), CURLUPART_HOST);
  if (host.empty()) return invalid("has no host name");
  SftpLogin login;
  login.user = UrlPart(url.get(), CURLUPART_USER, CURLU_URLDECODE);
  login.password = UrlPart(url.get(), CURLUPART_PASSWORD, CURLU_URLDECODE);
  if (login.user.empty()) return invalid("has no user name (sftp://USER@host/path)");
  std::string port = UrlPart(url.get(), CURLUPART_PORT, CURLU_DEFAULT_PORT);
  if (port.empty()) port = "22";

  std::string query = UrlPart(url.get(), CURLUPART_QUERY);
  for (const auto& [key, value] : QueryParameters(query, /*plus_is_space=*/false)) {
    if (key == "key") {
      login.key_file = value;
    } else if (key == "known_hosts") {
      login.known_hosts = value;
    } else if (key == "passphrase") {
      login.passphrase = value;
    } else {
      return invalid("has an unknown query parameter \"" + key + "\" (known: key, passphrase, known_hosts)");
    }
  }
  if (!login.key_file.empty()) MARMOT_RETURN_IF_ERROR(CheckReadable(login.key_file, "key"));
  if (!login.known_hosts.empty()) MARMOT_RETURN_IF_ERROR(CheckReadable(login.known_hosts, "known_hosts"));
  if (!login.passphrase.empty() && login.key_file.empty()) return invalid("has a passphrase but no key");

  std::string dir = UrlPart(url.get(), CURLUPART_PATH, CURLU_URLDECODE);
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty() || dir == "/" || dir == "/~") {
    return invalid("must name the directory for snapshots, e.g. sftp://user@host:22/srv/snapshots");
  }
  if (dir.find("/../") != std::string::npos || dir.ends_with("/.."))
    return invalid("must not contain \"..\"");
  return std::unique_ptr<SnapshotStore>(
      new SftpStore("sftp://" + host + ":" + port, std::move(dir), std::move(login)));
}

}  // namespace marmot
