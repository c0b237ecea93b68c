#include "swarm/data_server.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <httplib.h>
#include <sodium.h>

#include "core/log.h"
#include "core/mapped_file.h"
#include "data/shards.h"
#include "net/tcp_transport.h"
#include "swarm/data_provider.h"

namespace tern::swarm {
namespace {

// Grant bodies carry a Status (a few KiB for large swarms); anything near
// this is not a grant.
constexpr size_t kMaxRequestBytes = 32u << 20;
// A grant of round r serves rounds r and r + 1 (the predicted next round), so
// it is forgotten, and a Status of round r no longer grants, once a grant of
// round r + 2 arrives.
constexpr uint64_t kGrantRounds = 1;
// One validation request reads at most this many chunks.
constexpr uint64_t kMaxOpenChunksPerRequest = 256;

uint64_t system_now_ms() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

struct ServedFile {
  std::shared_ptr<const MappedFile> map;
  bool train = false;
};

struct Grant {
  net::NodeId member;
  uint64_t round = 0;
  std::map<std::string, std::set<uint64_t>> chunks;  // by file name
};

std::string random_ticket() {
  std::array<uint8_t, 16> bytes{};
  randombytes_buf(bytes.data(), bytes.size());
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (const uint8_t b : bytes) {
    s.push_back(kHex[b >> 4]);
    s.push_back(kHex[b & 15]);
  }
  return s;
}

Result<ProviderManifest> manifest_of(const std::string& dir, const ShardManifest& shards,
                                     std::map<std::string, ServedFile>* files) {
  ProviderManifest m;
  m.vocab = shards.vocab;
  m.token_bytes = shards.token_bytes;
  m.tokenizer_hash = shards.tokenizer_hash;
  m.content_hash = shards.content_hash;
  m.has_loss_mask = shards.has_loss_mask;
  m.train_tokens = shards.train_tokens;
  m.val_tokens = shards.val_tokens;
  for (const bool train : {true, false}) {
    std::vector<std::string> names = {tokens_file(train)};
    if (m.has_loss_mask) names.push_back(mask_file(train));
    for (const std::string& name : names) {
      TERN_ASSIGN_OR_RETURN(auto map, MappedFile::open(dir + "/" + name, dir + "/" + name));
      m.files[name] = hash_provider_file(map->bytes(), m.chunk_bytes);
      if (files != nullptr) (*files)[name] = ServedFile{std::move(map), train};
    }
  }
  return m;
}

}  // namespace

class DataServer::Impl {
 public:
  Status open(DataServerOptions options) {
    options_ = std::move(options);
    if (!options_.now_ms) options_.now_ms = system_now_ms;
    TERN_ASSIGN_OR_RETURN(ShardSet shards, ShardSet::open(options_.shard_dir));
    TERN_RETURN_IF_ERROR(shards.dataset()
                             .check_window(options_.config.data.seq_len)
                             .with_context("data server: " + options_.shard_dir));
    TERN_ASSIGN_OR_RETURN(manifest_, manifest_of(options_.shard_dir, shards.manifest(), &files_));
    document_ = provider_manifest_document(manifest_);
    hash_ = provider_manifest_hash(document_);
    Result<net::TcpAddress> listen = net::parse_tcp_address(options_.listen, true);
    if (!listen.ok()) return listen.status().with_context("data server: --listen");
    server_.set_payload_max_length(kMaxRequestBytes);
    server_.set_tcp_nodelay(true);
    server_.Get("/v1/manifest", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(document_, "application/json");
    });
    server_.Post("/v1/grant", [this](const httplib::Request& req, httplib::Response& res) {
      on_grant(req, res);
    });
    server_.Get(R"(/v1/files/([a-z]+\.[a-z]+))",
                [this](const httplib::Request& req, httplib::Response& res) { on_file(req, res); });
    const std::string& host = listen.value().host;
    const int port = listen.value().port;
    port_ =
        port == 0 ? server_.bind_to_any_port(host) : (server_.bind_to_port(host, port) ? port : -1);
    if (port_ < 0) {
      return Status::Error("data server: cannot listen on " + options_.listen +
                           " (address in use or not local?)");
    }
    return Status::Ok();
  }

  int port() const { return port_; }
  const std::string& hash() const { return hash_; }

  Status run() {
    if (!server_.listen_after_bind()) return Status::Error("data server: the listener failed");
    return Status::Ok();
  }
  void stop() { server_.stop(); }

  DataServerStats stats() const {
    std::lock_guard lock(mutex_);
    return stats_;
  }

 private:
  void refuse(const httplib::Request& req, httplib::Response& res, int status,
              const std::string& why) {
    {
      std::lock_guard lock(mutex_);
      ++stats_.refused;
    }
    log(LogLevel::kWarn, "data", "refused: ", why);
    // cpp-httplib 0.11 applies a request's Range to any answer, so the reason
    // would come back cut to the range or as a bare 416; the request object
    // is the server's own (not const), so clearing its ranges is defined.
    const_cast<httplib::Request&>(req).ranges.clear();
    res.status = status;
    res.set_content(why + "\n", "text/plain");
  }

  void on_grant(const httplib::Request& req, httplib::Response& res) {
    const std::span<const uint8_t> body(reinterpret_cast<const uint8_t*>(req.body.data()),
                                        req.body.size());
    Result<GrantRequest> request = decode_grant_request(body);
    if (!request.ok()) return refuse(req, res, 400, request.status().message());
    Result<GrantedBatches> granted = check_grant_request(request.value(), options_.config,
                                                         options_.coordinator, options_.now_ms());
    if (!granted.ok()) return refuse(req, res, 403, granted.status().message());
    Grant grant;
    grant.member = request.value().member;
    grant.round = granted.value().round;
    const std::vector<int64_t> starts =
        batch_window_starts(options_.config, manifest_.train_tokens, granted.value().batches);
    const int64_t window = options_.config.data.seq_len + 1;
    std::vector<std::string> names = {tokens_file(true)};
    if (manifest_.has_loss_mask) names.push_back(mask_file(true));
    for (const std::string& name : names) {
      const std::vector<uint64_t> chunks = chunks_of_windows(manifest_, name, starts, window);
      grant.chunks[name] = std::set<uint64_t>(chunks.begin(), chunks.end());
    }
    std::string ticket = random_ticket();
    {
      std::unique_lock lock(mutex_);
      if (grant.round + kGrantRounds < newest_round_) {
        const std::string why = "grant: round " + std::to_string(grant.round) +
                                " is over (the run is at " + std::to_string(newest_round_) + ")";
        lock.unlock();
        return refuse(req, res, 403, why);
      }
      newest_round_ = std::max(newest_round_, grant.round);
      std::erase_if(grants_,
                    [&](const auto& g) { return g.second.round + kGrantRounds < newest_round_; });
      grants_[ticket] = std::move(grant);
      ++stats_.grants;
    }
    res.set_content(ticket, "text/plain");
  }

  // Why the request's ticket does not cover chunks [first, last] of training
  // file `name`; empty if it does.
  std::string check_grant(const httplib::Request& req, const std::string& name, uint64_t first,
                          uint64_t last) {
    const std::string auth = req.get_header_value("Authorization");
    const std::string ticket = auth.starts_with("Bearer ") ? auth.substr(7) : std::string();
    std::lock_guard lock(mutex_);
    const auto grant = grants_.find(ticket);
    if (grant == grants_.end()) return name + ": no valid grant (ask POST /v1/grant)";
    const std::set<uint64_t>& allowed = grant->second.chunks[name];
    for (uint64_t c = first; c <= last; ++c) {
      if (allowed.count(c) == 0) {
        return name + ": chunk " + std::to_string(c) + " holds no batch of member " +
               grant->second.member.short_string() + " in round " +
               std::to_string(grant->second.round);
      }
    }
    return "";
  }

  void on_file(const httplib::Request& req, httplib::Response& res) {
    const std::string name = req.matches[1];
    const auto file = files_.find(name);
    if (file == files_.end()) return refuse(req, res, 404, "no file '" + name + "'");
    const uint64_t size = file->second.map->bytes().size();
    if (req.ranges.size() != 1 || req.ranges[0].first < 0 || req.ranges[0].second < 0) {
      return refuse(req, res, 416, name + ": give exactly one Range: bytes=FIRST-LAST");
    }
    const auto first = static_cast<uint64_t>(req.ranges[0].first);
    const auto last = static_cast<uint64_t>(req.ranges[0].second);
    const uint64_t chunk = manifest_.chunk_bytes;
    if (first > last || last >= size || first % chunk != 0 ||
        ((last + 1) % chunk != 0 && last + 1 != size)) {
      return refuse(req, res, 416,
                    name + ": range " + std::to_string(first) + "-" + std::to_string(last) +
                        " is not whole chunks of " + std::to_string(chunk) + " bytes within " +
                        std::to_string(size) + " bytes");
    }
    const uint64_t first_chunk = first / chunk, last_chunk = last / chunk;
    if (file->second.train) {
      const std::string why = check_grant(req, name, first_chunk, last_chunk);
      if (!why.empty()) return refuse(req, res, 403, why);
    } else if (last_chunk - first_chunk + 1 > kMaxOpenChunksPerRequest) {
      return refuse(
          req, res, 416,
          name + ": at most " + std::to_string(kMaxOpenChunksPerRequest) + " chunks per request");
    }
    {
      std::lock_guard lock(mutex_);
      stats_.chunks_served += last_chunk - first_chunk + 1;
      stats_.bytes_served += last - first + 1;
    }
    // httplib answers 206 with the requested range of this provider.
    std::shared_ptr<const MappedFile> map = file->second.map;
    res.set_content_provider(size, "application/octet-stream",
                             [map](size_t offset, size_t length, httplib::DataSink& sink) {
                               const auto bytes = map->bytes();
                               sink.write(reinterpret_cast<const char*>(bytes.data()) + offset,
                                          length);
                               return true;
                             });
  }

  DataServerOptions options_;
  ProviderManifest manifest_;
  std::string document_;
  std::string hash_;
  std::map<std::string, ServedFile> files_;  // immutable once open() returns
  httplib::Server server_;
  int port_ = -1;

  mutable std::mutex mutex_;             // guards the members below
  std::map<std::string, Grant> grants_;  // by ticket
  uint64_t newest_round_ = 0;
  DataServerStats stats_;
};

Result<std::unique_ptr<DataServer>> DataServer::create(DataServerOptions options) {
  auto impl = std::make_unique<Impl>();
  TERN_RETURN_IF_ERROR(impl->open(std::move(options)));
  return std::unique_ptr<DataServer>(new DataServer(std::move(impl)));
}

DataServer::DataServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataServer::~DataServer() = default;
int DataServer::port() const {
  return impl_->port();
}
const std::string& DataServer::manifest_hash() const {
  return impl_->hash();
}
Status DataServer::run() {
  return impl_->run();
}
void DataServer::stop() {
  impl_->stop();
}
DataServerStats DataServer::stats() const {
  return impl_->stats();
}

Result<std::string> provider_manifest_for(const std::string& shard_dir) {
  TERN_ASSIGN_OR_RETURN(ShardSet shards, ShardSet::open(shard_dir));
  TERN_ASSIGN_OR_RETURN(ProviderManifest m, manifest_of(shard_dir, shards.manifest(), nullptr));
  return provider_manifest_document(m);
}

}  // namespace tern::swarm
