// The local files a snapshot store reads an upload from and writes a download to. FilePtr closes
// its file when it goes; a download is closed with CloseLocalFile instead, because a full disk
// often shows only when the last buffer is flushed.
//
// Each error names `what` (the store's operation), the path and errno's text.
#pragma once

#include <cstdio>
#include <memory>
#include <string>

#include "util/status.h"

namespace marmot {

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using FilePtr = std::unique_ptr<std::FILE, FileCloser>;

// Opens `path` for reading.
Result<FilePtr> OpenLocalFile(const std::string& path, const std::string& what);

// Creates (or truncates) `path` for writing.
Result<FilePtr> CreateLocalFile(const std::string& path, const std::string& what);

// Flushes and closes a file written through `file`.
Status CloseLocalFile(FilePtr file, const std::string& path, const std::string& what);

}  // namespace marmot
