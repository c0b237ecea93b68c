#include "swarm/remote_batches.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>

#include "core/check.h"
#include "core/hash.h"
#include "swarm/data_provider.h"

namespace tern::swarm {
namespace {

// Consecutive chunks fetched in one request, at most.
constexpr uint64_t kChunksPerRequest = 64;

// Zero-filled memory the kernel commits page by page as it is written, so a
// dataset of the provider's full size costs only what was fetched.
class LazyRegion {
 public:
  explicit LazyRegion(size_t size) : size_(size) {
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    TERN_CHECK(p != MAP_FAILED, "mmap of ", size_, " bytes for remote shards failed");
    data_ = static_cast<uint8_t*>(p);
  }
  ~LazyRegion() {
    if (data_ != nullptr) ::munmap(data_, size_);
  }
  LazyRegion(const LazyRegion&) = delete;
  LazyRegion& operator=(const LazyRegion&) = delete;

  uint8_t* data() { return data_; }
  // Gives pages back to the kernel; they read as zeros again.
  void drop(size_t offset, size_t length) { ::madvise(data_ + offset, length, MADV_DONTNEED); }

 private:
  size_t size_ = 0;
  uint8_t* data_ = nullptr;
};

struct Regions {
  std::map<std::string, std::unique_ptr<LazyRegion>> by_file;
};

}  // namespace

class RemoteBatches::Impl {
 public:
  Impl(const RunConfig& config, const net::Identity& identity)
      : config_(config), identity_(identity), http_(config.data.provider) {
    http_.set_connection_timeout(10, 0);
    http_.set_read_timeout(60, 0);
    http_.set_write_timeout(30, 0);
    http_.set_keep_alive(true);
    // Requests are small and on the round's critical path: no Nagle delay.
    http_.set_tcp_nodelay(true);
  }

  Status open(int64_t eval_windows) {
    const std::string& url = config_.data.provider;
    httplib::Result res = http_.Get("/v1/manifest");
    if (!res) {
      return Status::Error("data provider " + url + ": GET /v1/manifest failed (" +
                           httplib::to_string(res.error()) + ")");
    }
    if (res->status != 200) {
      return Status::Error("data provider " + url + ": GET /v1/manifest answered " +
                           std::to_string(res->status));
    }
    received_ += res->body.size();
    const std::string hash = provider_manifest_hash(res->body);
    if (hash != config_.data.provider_hash) {
      return Status::Error("data provider " + url + ": manifest hash " + hash +
                           " differs from [data] provider_hash " + config_.data.provider_hash);
    }
    TERN_ASSIGN_OR_RETURN(manifest_, parse_provider_manifest(res->body));
    for (const auto& [name, file] : manifest_.files) {
      regions_->by_file[name] = std::make_unique<LazyRegion>(file.bytes);
    }
    const auto stream = [&](bool train) {
      const std::string tokens = tokens_file(train);
      const uint8_t* mask =
          manifest_.has_loss_mask ? regions_->by_file.at(mask_file(train))->data() : nullptr;
      return TokenStream::borrowed(regions_, regions_->by_file.at(tokens)->data(),
                                   manifest_.token_bytes,
                                   train ? manifest_.train_tokens : manifest_.val_tokens, mask);
    };
    TERN_ASSIGN_OR_RETURN(dataset_,
                          TokenDataset::from_streams(stream(true), stream(false), manifest_.vocab));
    TERN_RETURN_IF_ERROR(
        dataset_.check_window(config_.data.seq_len).with_context("data provider " + url));
    // The fixed validation windows, open to anyone.
    std::vector<int64_t> starts;
    for (int64_t w = 0; w < eval_windows; ++w) {
      starts.push_back(
          val_window_start(w, eval_windows, manifest_.val_tokens, config_.data.seq_len));
    }
    return fetch_windows(false, starts, "");
  }

  const TokenDataset& dataset() const { return dataset_; }
  uint64_t received() const { return received_; }

  Status fetch_batches(std::span<const BatchRange> batches, const net::SignedMessage& status) {
    const std::vector<int64_t> starts =
        batch_window_starts(config_, manifest_.train_tokens, batches);
    if (ticket_status_ != status.id()) {
      TERN_ASSIGN_OR_RETURN(ticket_, request_grant(status));
      ticket_status_ = status.id();
    }
    return fetch_windows(true, starts, ticket_);
  }

 private:
  Result<std::string> request_grant(const net::SignedMessage& status) {
    const std::vector<uint8_t> body = encode_grant_request(status, identity_);
    httplib::Result res = http_.Post("/v1/grant", reinterpret_cast<const char*>(body.data()),
                                     body.size(), "application/octet-stream");
    if (!res) {
      return Status::Error("data provider " + config_.data.provider + ": POST /v1/grant failed (" +
                           httplib::to_string(res.error()) + ")");
    }
    if (res->status != 200) {
      std::string why = res->body.substr(0, 300);
      while (!why.empty() && why.back() == '\n') why.pop_back();
      return Status::Error("data provider " + config_.data.provider + " refused a grant (" +
                           std::to_string(res->status) + "): " + why);
    }
    received_ += res->body.size();
    return res->body;
  }

  // Fetches the chunks of every file of a split that windows at `starts` need.
  Status fetch_windows(bool train, const std::vector<int64_t>& starts, const std::string& ticket) {
    std::vector<std::string> names = {tokens_file(train)};
    if (manifest_.has_loss_mask) names.push_back(mask_file(train));
    const int64_t window = config_.data.seq_len + 1;
    for (const std::string& name : names) {
      const std::vector<uint64_t> needed = chunks_of_windows(manifest_, name, starts, window);
      std::set<uint64_t>& held = held_[name];
      if (train &&
          resident_train_bytes_ + needed.size() * manifest_.chunk_bytes > kResidentTrainBytes) {
        drop_train_chunks_except(needed);
      }
      std::vector<uint64_t> missing;
      for (const uint64_t c : needed) {
        if (held.count(c) == 0) missing.push_back(c);
      }
      for (size_t i = 0; i < missing.size();) {
        size_t j = i + 1;
        while (j < missing.size() && missing[j] == missing[j - 1] + 1 &&
               j - i < kChunksPerRequest) {
          ++j;
        }
        TERN_RETURN_IF_ERROR(fetch_run(name, missing[i], missing[j - 1], ticket));
        for (size_t k = i; k < j; ++k) held.insert(missing[k]);
        if (train) resident_train_bytes_ += (j - i) * manifest_.chunk_bytes;
        i = j;
      }
    }
    return Status::Ok();
  }

  void drop_train_chunks_except(const std::vector<uint64_t>& keep) {
    const std::set<uint64_t> keep_set(keep.begin(), keep.end());
    for (const std::string& name : {tokens_file(true), mask_file(true)}) {
      auto held = held_.find(name);
      if (held == held_.end()) continue;
      const ProviderFile& file = manifest_.files.at(name);
      for (auto it = held->second.begin(); it != held->second.end();) {
        if (keep_set.count(*it)) {
          ++it;
          continue;
        }
        const uint64_t at = *it * manifest_.chunk_bytes;
        regions_->by_file.at(name)->drop(
            at, std::min<uint64_t>(manifest_.chunk_bytes, file.bytes - at));
        it = held->second.erase(it);
      }
    }
    resident_train_bytes_ = 0;
    for (const auto& [name, chunks] : held_) {
      if (name.starts_with("train."))
        resident_train_bytes_ += chunks.size() * manifest_.chunk_bytes;
    }
  }

  // Fetches chunks [first, last] of `name`, checks them and copies them in.
  Status fetch_run(const std::string& name, uint64_t first, uint64_t last,
                   const std::string& ticket) {
    const ProviderFile& file = manifest_.files.at(name);
    const uint64_t begin = first * manifest_.chunk_bytes;
    const uint64_t end = std::min<uint64_t>((last + 1) * manifest_.chunk_bytes, file.bytes);
    const std::string what = "data provider " + config_.data.provider + ": " + name + " chunks " +
                             std::to_string(first) + "-" + std::to_string(last);
    httplib::Headers headers = {
        {"Range", "bytes=" + std::to_string(begin) + "-" + std::to_string(end - 1)}};
    if (!ticket.empty()) headers.emplace("Authorization", "Bearer " + ticket);
    httplib::Result res = http_.Get("/v1/files/" + name, headers);
    if (!res)
      return Status::Error(what + ": request failed (" + httplib::to_string(res.error()) + ")");
    if (res->status != 206) {
      std::string why = res->body.substr(0, 300);
      while (!why.empty() && why.back() == '\n') why.pop_back();
      return Status::Error(what + ": answered " + std::to_string(res->status) + ": " + why);
    }
    if (res->body.size() != end - begin) {
      return Status::Error(what + ": got " + std::to_string(res->body.size()) +
                           " bytes (expected " + std::to_string(end - begin) + ")");
    }
    received_ += res->body.size();
    const auto* bytes = reinterpret_cast<const uint8_t*>(res->body.data());
    for (uint64_t c = first; c <= last; ++c) {
      const uint64_t at = c * manifest_.chunk_bytes - begin;
      const uint64_t n = std::min<uint64_t>(manifest_.chunk_bytes, end - begin - at);
      Blake2bHasher h;
      h.update(std::span<const uint8_t>(bytes + at, n));
      if (h.finish() != file.chunks[c]) {
        return Status::Error("data provider " + config_.data.provider + ": " + name + " chunk " +
                             std::to_string(c) + " does not match the manifest's digest");
      }
    }
    TERN_RETURN_IF_ERROR(check_values(name, bytes, end - begin));
    std::memcpy(regions_->by_file.at(name)->data() + begin, bytes, end - begin);
    return Status::Ok();
  }

  // Tokens below the vocabulary, mask bytes 0 or 1 (the shard format's rules).
  Status check_values(const std::string& name, const uint8_t* bytes, uint64_t n) const {
    if (name.ends_with(".mask")) {
      for (uint64_t i = 0; i < n; ++i) {
        if (bytes[i] > 1) {
          return Status::Error("data provider: " + name + " byte " + std::to_string(i) + " is " +
                               std::to_string(bytes[i]) + " (masks hold 0 or 1)");
        }
      }
      return Status::Ok();
    }
    const auto width = static_cast<uint64_t>(manifest_.token_bytes);
    for (uint64_t i = 0; i + width <= n; i += width) {
      uint64_t token = 0;
      for (uint64_t k = 0; k < width; ++k) token |= uint64_t{bytes[i + k]} << (8 * k);
      if (token >= static_cast<uint64_t>(manifest_.vocab)) {
        return Status::Error("data provider: " + name + " token " + std::to_string(token) +
                             " outside the vocabulary of " + std::to_string(manifest_.vocab));
      }
    }
    return Status::Ok();
  }

  RunConfig config_;
  net::Identity identity_;
  httplib::Client http_;
  ProviderManifest manifest_;
  std::shared_ptr<Regions> regions_ = std::make_shared<Regions>();
  TokenDataset dataset_;
  std::map<std::string, std::set<uint64_t>> held_;  // chunks fetched, by file
  uint64_t resident_train_bytes_ = 0;
  std::atomic<uint64_t> received_ = 0;
  std::string ticket_;
  net::MessageId ticket_status_{};
};

Result<std::unique_ptr<RemoteBatches>> RemoteBatches::open(const RunConfig& config,
                                                           const net::Identity& identity,
                                                           int64_t eval_windows) {
  const std::string& url = config.data.provider;
  if (!url.starts_with("http://") && !url.starts_with("https://")) {
    return Status::Error("[data] provider = '" + url + "': expected an http:// or https:// URL");
  }
  auto impl = std::make_unique<Impl>(config, identity);
  TERN_RETURN_IF_ERROR(impl->open(eval_windows));
  return std::unique_ptr<RemoteBatches>(new RemoteBatches(std::move(impl)));
}

RemoteBatches::RemoteBatches(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
RemoteBatches::~RemoteBatches() = default;
const TokenDataset& RemoteBatches::dataset() const {
  return impl_->dataset();
}
Status RemoteBatches::fetch_batches(std::span<const BatchRange> batches,
                                    const net::SignedMessage& status) {
  return impl_->fetch_batches(batches, status);
}
uint64_t RemoteBatches::bytes_received() const {
  return impl_->received();
}

}  // namespace tern::swarm
