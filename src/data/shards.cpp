#include "data/shards.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "core/hash.h"
#include "core/mapped_file.h"
#include "core/text.h"

namespace tern {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kFormatName = "tern.shards";
constexpr int64_t kFormatVersion = 1;
constexpr const char* kManifestName = "manifest.json";
// A manifest is a few hundred bytes plus the source names; anything near this
// is not one of ours and is refused before parsing.
constexpr size_t kMaxManifestBytes = size_t{16} << 20;
// Counts above this would overflow byte sizes (count × 8).
constexpr int64_t kMaxCount = std::numeric_limits<int64_t>::max() / 8;
constexpr const char* kSplitNames[2] = {"train", "val"};

std::string quote(const std::string& s) {
  return quote_for_message(s, 200);
}

// The data files of a shard directory in the fixed order the content hash uses.
std::vector<std::string> data_file_names(bool has_mask) {
  std::vector<std::string> names;
  for (const char* split : kSplitNames) {
    names.push_back(std::string(split) + ".tokens");
    names.push_back(std::string(split) + ".idx");
    if (has_mask) names.push_back(std::string(split) + ".mask");
  }
  return names;
}

// BLAKE2b-256 over (u64 LE name length, name, 32-byte file digest) for every
// data file in data_file_names() order.
std::string content_hash(const std::vector<std::pair<std::string, Blake2bDigest>>& files) {
  Blake2bHasher hasher;
  for (const auto& [name, digest] : files) {
    uint8_t len[8];
    for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(uint64_t{name.size()} >> (8 * i));
    hasher.update(std::span<const uint8_t>(len, 8));
    hasher.update(name);
    hasher.update(digest);
  }
  return to_hex(hasher.finish());
}

bool is_hex_digest(const std::string& s) {
  if (s.size() != 64) return false;
  for (const char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// ---- writing ----

// A file written through a buffer, hashed on the way, fsynced on close.
class FileSink {
 public:
  static Result<std::unique_ptr<FileSink>> create(const std::string& path) {
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd < 0) return Status::Error("create " + quote(path) + ": " + errno_text(errno));
    return std::unique_ptr<FileSink>(new FileSink(fd, path));
  }
  ~FileSink() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileSink(const FileSink&) = delete;
  FileSink& operator=(const FileSink&) = delete;

  void append(const void* data, size_t n) {
    const auto* p = static_cast<const uint8_t*>(data);
    hasher_.update(std::span<const uint8_t>(p, n));
    buffer_.insert(buffer_.end(), p, p + n);
    if (buffer_.size() >= kFlushBytes) flush();
  }
  void append_le(uint64_t v, int width) {
    uint8_t b[8];
    for (int i = 0; i < width; ++i) b[i] = static_cast<uint8_t>(v >> (8 * i));
    append(b, static_cast<size_t>(width));
  }

  // Flushes, fsyncs and closes; returns the file's digest.
  Result<Blake2bDigest> close() {
    flush();
    if (status_.ok() && ::fsync(fd_) != 0) status_ = Status::Error("fsync: " + errno_text(errno));
    if (::close(fd_) != 0 && status_.ok()) status_ = Status::Error("close: " + errno_text(errno));
    fd_ = -1;
    if (!status_.ok()) return status_.with_context("write " + quote(path_));
    return hasher_.finish();
  }

 private:
  static constexpr size_t kFlushBytes = size_t{1} << 20;
  FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}

  void flush() {
    size_t done = 0;
    while (status_.ok() && done < buffer_.size()) {
      const ssize_t n = ::write(fd_, buffer_.data() + done, buffer_.size() - done);
      if (n < 0) {
        if (errno == EINTR) continue;
        status_ = Status::Error("write: " + errno_text(errno));
      } else {
        done += static_cast<size_t>(n);
      }
    }
    buffer_.clear();
  }

  int fd_;
  std::string path_;
  Blake2bHasher hasher_;
  std::vector<uint8_t> buffer_;
  Status status_;
};

Status fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::Error("open directory " + quote(dir) + ": " + errno_text(errno));
  const bool ok = ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  if (!ok) return Status::Error("fsync directory " + quote(dir) + ": " + errno_text(err));
  return Status::Ok();
}

// "out/" and "out" name the same directory; siblings are made next to "out".
std::string normalize_dir(const std::string& dir) {
  fs::path p(dir);
  while (!p.empty() && p.filename().empty() && p != p.root_path()) p = p.parent_path();
  return p.string();
}

std::string parent_of(const std::string& dir) {
  const std::string parent = fs::path(dir).parent_path().string();
  return parent.empty() ? "." : parent;
}

Result<std::string> make_temp_dir(const std::string& prefix) {
  std::string name = prefix + "XXXXXX";
  if (::mkdtemp(name.data()) == nullptr) {
    return Status::Error("create temporary directory " + quote(prefix + "XXXXXX") + ": " +
                         errno_text(errno));
  }
  // mkdtemp makes the directory private (0700); the finished shard directory
  // should carry the permissions `mkdir` would give under the user's umask.
  // The umask is read from /proc (umask() itself would change it for every
  // thread); where that is unavailable the directory stays private.
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("Umask:")) {
      const unsigned long mask = std::strtoul(line.c_str() + 6, nullptr, 8);
      ::chmod(name.c_str(), static_cast<mode_t>(0777 & ~mask));
      break;
    }
  }
  return name;
}

Result<std::pair<std::string, Blake2bDigest>> write_tokens(const std::string& dir,
                                                           const std::string& name,
                                                           const std::vector<int32_t>& tokens,
                                                           int width) {
  TERN_ASSIGN_OR_RETURN(auto sink, FileSink::create(dir + "/" + name));
  for (const int32_t t : tokens) sink->append_le(static_cast<uint32_t>(t), width);
  TERN_ASSIGN_OR_RETURN(Blake2bDigest digest, sink->close());
  return std::pair{name, digest};
}

Result<std::pair<std::string, Blake2bDigest>> write_index(const std::string& dir,
                                                          const std::string& name,
                                                          const ShardSplit& split) {
  TERN_ASSIGN_OR_RETURN(auto sink, FileSink::create(dir + "/" + name));
  for (const uint64_t start : split.document_starts) sink->append_le(start, 8);
  sink->append_le(split.tokens.size(), 8);
  TERN_ASSIGN_OR_RETURN(Blake2bDigest digest, sink->close());
  return std::pair{name, digest};
}

Result<std::pair<std::string, Blake2bDigest>> write_mask(const std::string& dir,
                                                         const std::string& name,
                                                         const std::vector<uint8_t>& mask) {
  TERN_ASSIGN_OR_RETURN(auto sink, FileSink::create(dir + "/" + name));
  sink->append(mask.data(), mask.size());
  TERN_ASSIGN_OR_RETURN(Blake2bDigest digest, sink->close());
  return std::pair{name, digest};
}

void check_split(const ShardSplit& s, const ShardContents& c) {
  for (const int32_t t : s.tokens) TERN_CHECK(t >= 0 && t < c.vocab, "token ", t, " outside vocab");
  TERN_CHECK(c.has_loss_mask ? s.mask.size() == s.tokens.size() : s.mask.empty(),
             "mask size does not match");
  for (const uint8_t m : s.mask) TERN_CHECK(m <= 1, "mask byte ", int{m});
  uint64_t previous = 0;
  for (const uint64_t start : s.document_starts) {
    TERN_CHECK(start >= previous && start <= s.tokens.size(), "document start ", start);
    previous = start;
  }
  TERN_CHECK(s.document_starts.empty() || s.document_starts.front() == 0);
}

// Writes every file into `tmp` and returns the manifest.
Result<ShardManifest> write_files(const std::string& tmp, const ShardContents& c) {
  ShardManifest m;
  m.tokenizer_hash = c.tokenizer_hash;
  m.vocab = c.vocab;
  m.token_bytes = shard_token_bytes(c.vocab);
  m.train_tokens = static_cast<int64_t>(c.train.tokens.size());
  m.val_tokens = static_cast<int64_t>(c.val.tokens.size());
  m.train_documents = static_cast<int64_t>(c.train.document_starts.size());
  m.val_documents = static_cast<int64_t>(c.val.document_starts.size());
  m.has_loss_mask = c.has_loss_mask;
  m.sources = c.sources;

  std::vector<std::pair<std::string, Blake2bDigest>> digests;
  for (int i = 0; i < 2; ++i) {
    const ShardSplit& s = i == 0 ? c.train : c.val;
    const std::string split = kSplitNames[i];
    TERN_ASSIGN_OR_RETURN(auto tokens,
                          write_tokens(tmp, split + ".tokens", s.tokens, m.token_bytes));
    digests.push_back(std::move(tokens));
    TERN_ASSIGN_OR_RETURN(auto index, write_index(tmp, split + ".idx", s));
    digests.push_back(std::move(index));
    if (c.has_loss_mask) {
      TERN_ASSIGN_OR_RETURN(auto mask, write_mask(tmp, split + ".mask", s.mask));
      digests.push_back(std::move(mask));
    }
  }
  m.content_hash = content_hash(digests);

  json files = json::object();
  for (const auto& [name, digest] : digests) files[name] = to_hex(digest);
  const json manifest = {
      {"format", kFormatName},
      {"version", kFormatVersion},
      {"tokenizer_hash", m.tokenizer_hash},
      {"vocab", m.vocab},
      {"token_bytes", m.token_bytes},
      {"has_loss_mask", m.has_loss_mask},
      {"splits",
       {{"train", {{"tokens", m.train_tokens}, {"documents", m.train_documents}}},
        {"val", {{"tokens", m.val_tokens}, {"documents", m.val_documents}}}}},
      {"files", files},
      {"content_hash", m.content_hash},
      {"sources", m.sources},
  };
  // Source names may be arbitrary bytes: replace invalid UTF-8 rather than throw.
  const std::string text = manifest.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
  TERN_ASSIGN_OR_RETURN(auto sink, FileSink::create(tmp + "/" + kManifestName));
  sink->append(text.data(), text.size());
  TERN_RETURN_IF_ERROR(sink->close().status());
  TERN_RETURN_IF_ERROR(fsync_dir(tmp));
  return m;
}

// Moves the complete directory `tmp` to `dir`, replacing an existing `dir` only
// once the new one is in place.
Status install(const std::string& tmp, const std::string& dir) {
  struct stat st {};
  const std::string parent = parent_of(dir);
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno != ENOENT) return Status::Error("stat " + quote(dir) + ": " + errno_text(errno));
    if (std::rename(tmp.c_str(), dir.c_str()) != 0) {
      return Status::Error("rename " + quote(tmp) + " to " + quote(dir) + ": " + errno_text(errno));
    }
    return fsync_dir(parent);
  }
  // rename(2) replaces an empty directory, so the old one moves onto a fresh
  // unique empty name.
  TERN_ASSIGN_OR_RETURN(const std::string old, make_temp_dir(dir + ".old-"));
  if (std::rename(dir.c_str(), old.c_str()) != 0) {
    const Status error =
        Status::Error("rename " + quote(dir) + " to " + quote(old) + ": " + errno_text(errno));
    ::rmdir(old.c_str());
    return error;
  }
  if (std::rename(tmp.c_str(), dir.c_str()) != 0) {
    const Status error =
        Status::Error("rename " + quote(tmp) + " to " + quote(dir) + ": " + errno_text(errno));
    std::rename(old.c_str(), dir.c_str());  // put the previous shards back
    return error;
  }
  TERN_RETURN_IF_ERROR(fsync_dir(parent));
  // The new shards are in place; a leftover old copy wastes space but damages nothing.
  std::error_code ignored;
  fs::remove_all(old, ignored);
  return Status::Ok();
}

// ---- reading ----

// Strict accessors for the manifest: every field present and of the right type.
class ManifestReader {
 public:
  explicit ManifestReader(std::string path) : path_(std::move(path)) {}

  Status error(const std::string& field, const std::string& what) const {
    return Status::Error("shards " + quote(path_) + ": field '" + field + "' " + what);
  }

  Result<const json*> get(const json& object, const std::string& key,
                          const std::string& field) const {
    const auto it = object.find(key);
    if (it == object.end()) return error(field, "is missing");
    return &*it;
  }
  Status only_keys(const json& object, const std::set<std::string>& keys,
                   const std::string& where) const {
    for (const auto& [key, value] : object.items()) {
      if (keys.count(key) == 0) {
        return Status::Error("shards " + quote(path_) + ": unknown field " + quote(key) +
                             (where.empty() ? "" : " in '" + where + "'"));
      }
    }
    return Status::Ok();
  }
  Result<int64_t> integer(const json& object, const std::string& key, const std::string& field,
                          int64_t lo, int64_t hi) const {
    TERN_ASSIGN_OR_RETURN(const json* v, get(object, key, field));
    if (!v->is_number_integer())
      return error(field, std::string("is a ") + v->type_name() + ", not an integer");
    if (v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi)) {
      return error(field, "is " + std::to_string(v->get<uint64_t>()) + ", outside [" +
                              std::to_string(lo) + ", " + std::to_string(hi) + "]");
    }
    const auto x = v->get<int64_t>();
    if (x < lo || x > hi) {
      return error(field, "is " + std::to_string(x) + ", outside [" + std::to_string(lo) + ", " +
                              std::to_string(hi) + "]");
    }
    return x;
  }
  Result<std::string> string(const json& object, const std::string& key,
                             const std::string& field) const {
    TERN_ASSIGN_OR_RETURN(const json* v, get(object, key, field));
    if (!v->is_string())
      return error(field, std::string("is a ") + v->type_name() + ", not a string");
    return v->get<std::string>();
  }
  Result<std::string> digest(const json& object, const std::string& key,
                             const std::string& field) const {
    TERN_ASSIGN_OR_RETURN(std::string s, string(object, key, field));
    if (!is_hex_digest(s)) {
      return error(field, "is " + quote(s) + ", not 64 lowercase hex digits");
    }
    return s;
  }
  Result<const json*> object(const json& parent, const std::string& key,
                             const std::string& field) const {
    TERN_ASSIGN_OR_RETURN(const json* v, get(parent, key, field));
    if (!v->is_object()) return error(field, "is not an object");
    return v;
  }

 private:
  std::string path_;
};

Result<std::pair<ShardManifest, std::map<std::string, std::string>>> read_manifest(
    const std::string& path) {
  TERN_ASSIGN_OR_RETURN(auto file, MappedFile::open(path, "shards " + quote(path)));
  const std::span<const uint8_t> bytes = file->bytes();
  if (bytes.size() > kMaxManifestBytes) {
    return Status::Error("shards " + quote(path) + ": " + std::to_string(bytes.size()) +
                         " bytes is too large for a manifest");
  }
  json root;
  try {
    root = json::parse(bytes.begin(), bytes.end());
  } catch (const json::exception& e) {
    return Status::Error("shards " + quote(path) + ": not valid JSON: " + e.what());
  }
  const ManifestReader r(path);
  if (!root.is_object()) return Status::Error("shards " + quote(path) + ": not a JSON object");
  TERN_RETURN_IF_ERROR(r.only_keys(root,
                                   {"format", "version", "tokenizer_hash", "vocab", "token_bytes",
                                    "has_loss_mask", "splits", "files", "content_hash", "sources"},
                                   ""));
  TERN_ASSIGN_OR_RETURN(const std::string format, r.string(root, "format", "format"));
  if (format != kFormatName) {
    return r.error("format", "is " + quote(format) + ", expected '" + kFormatName + "'");
  }
  ShardManifest m;
  TERN_ASSIGN_OR_RETURN(m.format_version, r.integer(root, "version", "version", 0,
                                                    std::numeric_limits<int64_t>::max()));
  if (m.format_version != kFormatVersion) {
    return r.error("version", "is " + std::to_string(m.format_version) +
                                  ", this tern reads version " + std::to_string(kFormatVersion));
  }
  TERN_ASSIGN_OR_RETURN(m.tokenizer_hash, r.digest(root, "tokenizer_hash", "tokenizer_hash"));
  TERN_ASSIGN_OR_RETURN(m.vocab,
                        r.integer(root, "vocab", "vocab", 1, std::numeric_limits<int32_t>::max()));
  TERN_ASSIGN_OR_RETURN(const int64_t token_bytes,
                        r.integer(root, "token_bytes", "token_bytes", 2, 4));
  if (token_bytes != shard_token_bytes(m.vocab)) {
    return r.error("token_bytes", "is " + std::to_string(token_bytes) + " but a vocab of " +
                                      std::to_string(m.vocab) + " uses " +
                                      std::to_string(shard_token_bytes(m.vocab)));
  }
  m.token_bytes = static_cast<int>(token_bytes);
  TERN_ASSIGN_OR_RETURN(const json* mask, r.get(root, "has_loss_mask", "has_loss_mask"));
  if (!mask->is_boolean())
    return r.error("has_loss_mask", std::string("is a ") + mask->type_name() + ", not a boolean");
  m.has_loss_mask = mask->get<bool>();

  TERN_ASSIGN_OR_RETURN(const json* splits, r.object(root, "splits", "splits"));
  TERN_RETURN_IF_ERROR(r.only_keys(*splits, {"train", "val"}, "splits"));
  for (const char* name : kSplitNames) {
    const std::string field = std::string("splits.") + name;
    TERN_ASSIGN_OR_RETURN(const json* split, r.object(*splits, name, field));
    TERN_RETURN_IF_ERROR(r.only_keys(*split, {"tokens", "documents"}, field));
    TERN_ASSIGN_OR_RETURN(const int64_t tokens,
                          r.integer(*split, "tokens", field + ".tokens", 0, kMaxCount));
    TERN_ASSIGN_OR_RETURN(const int64_t documents,
                          r.integer(*split, "documents", field + ".documents", 0, kMaxCount - 1));
    (name == std::string("train") ? m.train_tokens : m.val_tokens) = tokens;
    (name == std::string("train") ? m.train_documents : m.val_documents) = documents;
  }

  const std::vector<std::string> names = data_file_names(m.has_loss_mask);
  TERN_ASSIGN_OR_RETURN(const json* files, r.object(root, "files", "files"));
  TERN_RETURN_IF_ERROR(
      r.only_keys(*files, std::set<std::string>(names.begin(), names.end()), "files"));
  std::map<std::string, std::string> digests;
  for (const std::string& name : names) {
    TERN_ASSIGN_OR_RETURN(digests[name], r.digest(*files, name, "files." + name));
  }
  TERN_ASSIGN_OR_RETURN(m.content_hash, r.digest(root, "content_hash", "content_hash"));
  TERN_ASSIGN_OR_RETURN(const json* sources, r.get(root, "sources", "sources"));
  if (!sources->is_array()) return r.error("sources", "is not an array");
  for (size_t i = 0; i < sources->size(); ++i) {
    const json& s = (*sources)[i];
    if (!s.is_string()) return r.error("sources[" + std::to_string(i) + "]", "is not a string");
    m.sources.push_back(s.get<std::string>());
  }
  return std::pair{std::move(m), std::move(digests)};
}

uint64_t read_le(const uint8_t* p, int width) {
  uint64_t v = 0;
  for (int i = 0; i < width; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// Keeps a split's token and mask mappings alive for the TokenStream.
struct SplitMappings {
  std::shared_ptr<const MappedFile> tokens, mask;
};

struct OpenedFile {
  std::shared_ptr<const MappedFile> file;
  Blake2bDigest digest;
};

// Maps `dir/name`, checks its size and its digest against the manifest.
Result<OpenedFile> open_data_file(const std::string& dir, const std::string& name,
                                  uint64_t expected_size, const std::string& expected_digest) {
  const std::string path = dir + "/" + name;
  const std::string label = "shards " + quote(path);
  TERN_ASSIGN_OR_RETURN(auto file, MappedFile::open(path, label));
  if (file->bytes().size() != expected_size) {
    return Status::Error(label + ": size " + std::to_string(file->bytes().size()) +
                         " bytes, the manifest implies " + std::to_string(expected_size));
  }
  Blake2bHasher hasher;
  hasher.update(file->bytes());
  const Blake2bDigest digest = hasher.finish();
  if (to_hex(digest) != expected_digest) {
    return Status::Error(label + ": BLAKE2b-256 " + to_hex(digest) +
                         " does not match the manifest's " + expected_digest);
  }
  return OpenedFile{std::move(file), digest};
}

}  // namespace

int shard_token_bytes(int64_t vocab) {
  return vocab > 65536 ? 4 : 2;
}

Status check_shard_output(const std::string& dir_in) {
  const std::string dir = normalize_dir(dir_in);
  const std::string context = "output " + quote(dir);
  if (dir.empty()) return Status::Error("output directory: empty path");
  struct stat st {};
  if (::lstat(dir.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::Error(context + ": stat: " + errno_text(errno));
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status::Error(context + " exists and is not a directory; refusing to replace it");
  }
  std::error_code ec;
  const bool empty = fs::is_empty(dir, ec);
  if (ec) return Status::Error(context + ": " + ec.message());
  if (!empty && !fs::exists(dir + "/" + kManifestName, ec)) {
    return Status::Error(context + " is a non-empty directory without " + kManifestName +
                         "; refusing to replace it");
  }
  return Status::Ok();
}

Result<ShardManifest> write_shard_set(const std::string& dir_in, const ShardContents& contents) {
  TERN_CHECK(contents.vocab >= 1 && contents.vocab <= std::numeric_limits<int32_t>::max());
  check_split(contents.train, contents);
  check_split(contents.val, contents);
  const std::string dir = normalize_dir(dir_in);
  const std::string context = "write shards " + quote(dir);
  TERN_RETURN_IF_ERROR(check_shard_output(dir).with_context(context));
  Result<std::string> tmp = make_temp_dir(dir + ".tmp-");
  if (!tmp.ok()) return tmp.status().with_context(context);
  Result<ShardManifest> manifest = write_files(tmp.value(), contents);
  Status status = manifest.ok() ? install(tmp.value(), dir) : manifest.status();
  if (!status.ok()) {
    std::error_code ignored;
    fs::remove_all(tmp.value(), ignored);
    return status.with_context(context);
  }
  return manifest;
}

Result<ShardSet> ShardSet::open(const std::string& dir) {
  TERN_ASSIGN_OR_RETURN(auto parsed, read_manifest(dir + "/" + kManifestName));
  auto& [manifest, digests] = parsed;
  const auto width = static_cast<uint64_t>(manifest.token_bytes);

  std::vector<std::pair<std::string, Blake2bDigest>> file_digests;
  TokenStream streams[2];
  for (int i = 0; i < 2; ++i) {
    const std::string split = kSplitNames[i];
    const auto count = static_cast<uint64_t>(i == 0 ? manifest.train_tokens : manifest.val_tokens);
    const auto documents =
        static_cast<uint64_t>(i == 0 ? manifest.train_documents : manifest.val_documents);

    const std::string tokens_name = split + ".tokens";
    TERN_ASSIGN_OR_RETURN(OpenedFile tokens,
                          open_data_file(dir, tokens_name, count * width, digests[tokens_name]));
    file_digests.emplace_back(tokens_name, tokens.digest);
    const uint8_t* data = tokens.file->bytes().data();

    const std::string idx_name = split + ".idx";
    TERN_ASSIGN_OR_RETURN(OpenedFile idx,
                          open_data_file(dir, idx_name, (documents + 1) * 8, digests[idx_name]));
    file_digests.emplace_back(idx_name, idx.digest);
    const uint8_t* index = idx.file->bytes().data();
    uint64_t previous = 0;
    for (uint64_t d = 0; d <= documents; ++d) {
      const uint64_t start = read_le(index + d * 8, 8);
      const bool bad = (d == 0 && start != 0) || start < previous || start > count ||
                       (d == documents && start != count);
      if (bad) {
        return Status::Error(
            "shards " + quote(dir + "/" + idx_name) + ": entry " + std::to_string(d) +
            " (byte offset " + std::to_string(d * 8) + ") is " + std::to_string(start) +
            "; entries must start at 0, never decrease and end at the token count " +
            std::to_string(count));
      }
      previous = start;
    }

    auto owner = std::make_shared<SplitMappings>();
    owner->tokens = tokens.file;
    const uint8_t* mask = nullptr;
    if (manifest.has_loss_mask) {
      const std::string mask_name = split + ".mask";
      TERN_ASSIGN_OR_RETURN(OpenedFile mask_file,
                            open_data_file(dir, mask_name, count, digests[mask_name]));
      file_digests.emplace_back(mask_name, mask_file.digest);
      const std::span<const uint8_t> bytes = mask_file.file->bytes();
      for (size_t b = 0; b < bytes.size(); ++b) {
        if (bytes[b] > 1) {
          return Status::Error("shards " + quote(dir + "/" + mask_name) + ": byte " +
                               std::to_string(bytes[b]) + " at offset " + std::to_string(b) +
                               " is not 0 or 1");
        }
      }
      mask = bytes.data();
      owner->mask = std::move(mask_file.file);
    }
    streams[i] = TokenStream::borrowed(std::move(owner), data, manifest.token_bytes,
                                       static_cast<int64_t>(count), mask);
  }
  const std::string actual = content_hash(file_digests);
  if (actual != manifest.content_hash) {
    return Status::Error("shards " + quote(dir + "/" + kManifestName) + ": content_hash " +
                         manifest.content_hash + " does not match the files' " + actual);
  }
  // from_streams checks every token against the vocabulary (once, here).
  Result<TokenDataset> dataset =
      TokenDataset::from_streams(std::move(streams[0]), std::move(streams[1]), manifest.vocab);
  if (!dataset.ok()) return dataset.status().with_context("shards " + quote(dir));
  ShardSet set;
  set.manifest_ = std::move(manifest);
  set.dataset_ = std::move(dataset).value();
  return set;
}

}  // namespace tern
