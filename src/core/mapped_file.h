// MappedFile: the bytes of a whole file, mapped read-only, or of an owned buffer.
//
// Readers of large untrusted files (GGUF, safetensors) parse straight from the
// mapping and hand out spans into it; sharing the object through shared_ptr
// keeps those spans valid. Immutable after creation: safe to read from any thread.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "core/status.h"

namespace tern {

class MappedFile {
 public:
  // Maps `path`. Errors read "<label>: open: <reason>", "<label>: not a regular
  // file", …; an empty file maps to zero bytes (the caller judges that).
  static Result<std::shared_ptr<const MappedFile>> open(const std::string& path,
                                                        const std::string& label);
  static std::shared_ptr<const MappedFile> from_buffer(std::vector<uint8_t> bytes);

  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  std::span<const uint8_t> bytes() const { return {data_, size_}; }

 private:
  MappedFile() = default;

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  void* map_ = nullptr;          // set when mapped
  std::vector<uint8_t> buffer_;  // set when built from memory
};

}  // namespace tern
