// DataServer: the swarm's data provider (`tern data serve`). Serves one shard
// directory over HTTP (cpp-httplib) as described in data_provider.h: the
// manifest, the validation files to anyone, and chunks of the training files
// only to members holding a grant for the round in progress.
//
// Every request is untrusted: malformed or unauthorised ones get a 4xx answer
// with a one-line reason (and a warn log line); none changes what is served.
//
// Thread-safety: run() blocks on the calling thread and answers requests on
// the server's own threads; stop(), port(), manifest_hash() and stats() may be
// called from any thread.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "net/identity.h"
#include "swarm/run_config.h"

namespace tern::swarm {

struct DataServerOptions {
  std::string shard_dir;
  std::string listen = "127.0.0.1:0";  // host:port; port 0 picks a free one
  RunConfig config;                    // the run whose members are served
  net::NodeId coordinator;             // whose signed Status grants access
  std::function<uint64_t()> now_ms;    // Unix ms; default: the system clock
};

struct DataServerStats {
  uint64_t grants = 0;         // grant requests accepted
  uint64_t refused = 0;        // requests answered 4xx
  uint64_t chunks_served = 0;  // file chunks sent
  uint64_t bytes_served = 0;   // file bytes sent
};

class DataServer {
 public:
  // Opens and checks the shards (ShardSet::open), hashes every chunk and binds
  // the listening socket; the manifest hash is known from here on.
  static Result<std::unique_ptr<DataServer>> create(DataServerOptions options);
  ~DataServer();

  int port() const;
  // What [data] provider_hash must be (data_provider.h).
  const std::string& manifest_hash() const;
  // Serves until stop(); an error if the server fails.
  Status run();
  void stop();
  DataServerStats stats() const;

  class Impl;

 private:
  explicit DataServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// The manifest document a shard directory would be served with (opens and
// checks the shards, hashes every chunk): lets an operator or a launcher learn
// the provider hash without starting a server.
Result<std::string> provider_manifest_for(const std::string& shard_dir);

}  // namespace tern::swarm
