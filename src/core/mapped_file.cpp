#include "core/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "core/text.h"

namespace tern {

Result<std::shared_ptr<const MappedFile>> MappedFile::open(const std::string& path,
                                                           const std::string& label) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::Error(label + ": open: " + errno_text(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    const int err = errno;
    ::close(fd);
    return Status::Error(label + ": stat: " + errno_text(err));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::Error(label + ": not a regular file");
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  const auto size = static_cast<size_t>(st.st_size);
  if (size > 0) {  // mmap rejects length 0
    void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    const int err = errno;
    if (map == MAP_FAILED) {
      ::close(fd);
      return Status::Error(label + ": mmap: " + errno_text(err));
    }
    file->map_ = map;
    file->data_ = static_cast<const uint8_t*>(map);
    file->size_ = size;
  }
  ::close(fd);  // the mapping keeps the file alive
  return std::shared_ptr<const MappedFile>(std::move(file));
}

std::shared_ptr<const MappedFile> MappedFile::from_buffer(std::vector<uint8_t> bytes) {
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->buffer_ = std::move(bytes);
  file->data_ = file->buffer_.data();
  file->size_ = file->buffer_.size();
  return file;
}

MappedFile::~MappedFile() {
  if (map_ != nullptr) munmap(map_, size_);
}

}  // namespace tern
