// Low-level file writing shared by every module that saves something:
// complete writes to a descriptor, and atomic replacement of a file.
//
// write_file_atomically: the content goes to "<path>.tmp", is fsynced, renamed
// over `path`, and the directory is fsynced, so a reader (or a crash) sees
// either the old file or the complete new one, never a torn one. On failure
// the temporary is removed and `path` is untouched. Errors start with
// `context` and name the failing call. Reentrant; two writers of the same path
// at once are the caller's problem.
#pragma once

#include <cstddef>
#include <functional>
#include <string>

#include "core/status.h"

namespace tern {

// Writes all of [data, data + n) to fd, retrying short writes and EINTR.
// `written` counts the bytes that reached the file, so a caller can tell a
// clean failure from a torn one.
Status write_all(int fd, const void* data, size_t n, size_t& written);

// `write_body` writes the content to the temporary file's descriptor.
Status write_file_atomically(const std::string& path, const std::string& context,
                             const std::function<Status(int fd)>& write_body);

}  // namespace tern
