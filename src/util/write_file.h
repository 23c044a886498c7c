// WriteFileWithMode: writes a whole file that must never be readable beyond `mode`, e.g. the
// embedded nats-server's config, which may hold a password.
//
// The file is created with `mode` from the start (open with O_CREAT), so there is no moment in
// which it exists with wider permissions; an existing file is truncated and its mode set to
// `mode` (fchmod) before anything is written, whatever its old mode and the process umask. The
// file is replaced in place, not renamed over: a reader may see it half written.
//
// Thread safety: no shared state; concurrent writers of one path interleave.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "util/status.h"

namespace marmot {

// Returns an IoError naming `path`, the step (open, chmod, write, close) and errno's text.
Status WriteFileWithMode(const std::string& path, std::string_view contents, mode_t mode);

}  // namespace marmot
