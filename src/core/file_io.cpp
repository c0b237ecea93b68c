#include "core/file_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>

#include "core/text.h"

namespace tern {

Status write_all(int fd, const void* data, size_t n, size_t& written) {
  const auto* bytes = static_cast<const char*>(data);
  written = 0;
  while (written < n) {
    const ssize_t done = ::write(fd, bytes + written, n - written);
    if (done < 0) {
      if (errno == EINTR) continue;
      return Status::Error("write: " + errno_text(errno));
    }
    written += static_cast<size_t>(done);
  }
  return Status::Ok();
}

Status write_file_atomically(const std::string& path, const std::string& context,
                             const std::function<Status(int fd)>& write_body) {
  const std::string tmp = path + ".tmp";
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::Error(context + ": create " + quote_for_message(tmp, 4096) + ": " +
                         errno_text(errno));
  }
  Status status = write_body(fd);
  if (status.ok() && ::fsync(fd) != 0) status = Status::Error("fsync: " + errno_text(errno));
  if (::close(fd) != 0 && status.ok()) status = Status::Error("close: " + errno_text(errno));
  if (status.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) {
    status = Status::Error("rename " + quote_for_message(tmp, 4096) + ": " + errno_text(errno));
  }
  if (!status.ok()) {
    ::unlink(tmp.c_str());
    return status.with_context(context);
  }
  // Make the rename itself durable. A failure here leaves a complete file in
  // place, so it is reported without undoing anything.
  std::filesystem::path dir = std::filesystem::path(path).parent_path();
  if (dir.empty()) dir = std::filesystem::path(".");
  const int dir_fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd < 0) return Status::Error(context + ": open directory: " + errno_text(errno));
  const bool synced = ::fsync(dir_fd) == 0;
  const int err = errno;
  ::close(dir_fd);
  if (!synced) return Status::Error(context + ": fsync directory: " + errno_text(err));
  return Status::Ok();
}

}  // namespace tern
