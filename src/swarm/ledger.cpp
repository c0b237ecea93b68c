#include "swarm/ledger.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <utility>

#include "swarm/event_codec.h"

namespace tern::swarm {
namespace {

// PRAGMA application_id of a tern ledger: "tern" as a big-endian int32.
constexpr int32_t kApplicationId = 0x7465726E;
// Bounded wait for another connection's lock (never hang on a stuck writer).
constexpr int kBusyTimeoutMs = 5000;

std::string quoted(const std::string& path) {
  return "'" + path + "'";
}

Status sqlite_error(sqlite3* db, const std::string& op, const std::string& path) {
  return Status::Error("ledger " + quoted(path) + ": " + op + ": " +
                       (db ? sqlite3_errmsg(db) : "out of memory"));
}

// A prepared statement, finalized on destruction.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  Status prepare(sqlite3* db, const char* sql, const std::string& op, const std::string& path) {
    if (sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr) != SQLITE_OK) {
      return sqlite_error(db, op, path);
    }
    return Status::Ok();
  }
  sqlite3_stmt* get() const { return stmt_; }

 private:
  sqlite3_stmt* stmt_ = nullptr;
};

Status exec(sqlite3* db, const char* sql, const std::string& op, const std::string& path) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) {
    return sqlite_error(db, op, path);
  }
  return Status::Ok();
}

void bind_blob(sqlite3_stmt* s, int index, std::span<const uint8_t> bytes) {
  // SQLITE_TRANSIENT: SQLite copies; our buffers die before the statement runs out.
  sqlite3_bind_blob64(s, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT);
}

std::span<const uint8_t> column_blob(sqlite3_stmt* s, int column) {
  const void* data = sqlite3_column_blob(s, column);
  const int size = sqlite3_column_bytes(s, column);
  if (data == nullptr || size <= 0) return {};
  return {static_cast<const uint8_t*>(data), static_cast<size_t>(size)};
}

void hash_u64(Blake2bHasher& h, uint64_t v) {
  uint8_t le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<uint8_t>(v >> (8 * i));
  h.update(std::span<const uint8_t>(le, 8));
}

Blake2bDigest genesis_hash(const net::NodeId& coordinator, std::span<const uint8_t> config) {
  Blake2bHasher h;
  h.update(std::string_view("tern-ledger-genesis-v1"));
  hash_u64(h, kLedgerFormatVersion);
  h.update(coordinator.key);
  hash_u64(h, config.size());
  h.update(config);
  return h.finish();
}

Blake2bDigest entry_hash(uint64_t seq, const Blake2bDigest& prev, std::span<const uint8_t> event,
                         const Blake2bDigest& snapshot_hash) {
  Blake2bHasher h;
  h.update(std::string_view("tern-ledger-entry-v1"));
  hash_u64(h, seq);
  h.update(prev);
  hash_u64(h, event.size());
  h.update(event);
  h.update(snapshot_hash);
  return h.finish();
}

template <size_t N>
bool to_array(std::span<const uint8_t> bytes, std::array<uint8_t, N>& out) {
  if (bytes.size() != N) return false;
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return true;
}

struct Connection {
  sqlite3* db = nullptr;
  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (db) sqlite3_close_v2(db);
  }
};

Status open_connection(Connection& c, const std::string& path, int flags, const std::string& op) {
  const int rc = sqlite3_open_v2(path.c_str(), &c.db, flags, nullptr);
  if (rc != SQLITE_OK) return sqlite_error(c.db, op + ": open", path);
  sqlite3_extended_result_codes(c.db, 1);
  sqlite3_busy_timeout(c.db, kBusyTimeoutMs);
  return Status::Ok();
}

Status configure_for_writing(sqlite3* db, const std::string& path) {
  // journal_mode answers with the mode in effect; anything but "wal" means the
  // file (or its file system) refused WAL.
  Statement wal;
  TERN_RETURN_IF_ERROR(wal.prepare(db, "PRAGMA journal_mode=WAL", "set journal_mode", path));
  if (sqlite3_step(wal.get()) != SQLITE_ROW) return sqlite_error(db, "set journal_mode", path);
  const auto* mode = reinterpret_cast<const char*>(sqlite3_column_text(wal.get(), 0));
  if (mode == nullptr || std::string(mode) != "wal") {
    return Status::Error("ledger " + quoted(path) + ": cannot use WAL journal mode (got " +
                         (mode ? mode : "nothing") + ")");
  }
  return exec(db, "PRAGMA synchronous=FULL", "set synchronous", path);
}

struct Meta {
  net::NodeId coordinator;
  std::vector<uint8_t> config_bytes;
  CoordinatorConfig config;
  Blake2bDigest genesis{};
};

// Reads and checks the meta row. Errors start with `op` and name the path.
Result<Meta> read_meta(sqlite3* db, const std::string& path, const std::string& op) {
  const std::string where = op + " " + quoted(path) + ": ";
  Statement app_id;
  TERN_RETURN_IF_ERROR(app_id.prepare(db, "PRAGMA application_id", op + ": read header", path));
  const int rc = sqlite3_step(app_id.get());
  if (rc != SQLITE_ROW) {
    const int code = sqlite3_errcode(db) & 0xff;
    if (code == SQLITE_NOTADB) {
      return Status::Error(where + "not a SQLite database (" + sqlite3_errmsg(db) + ")");
    }
    return sqlite_error(db, op + ": read header", path);
  }
  const int id = sqlite3_column_int(app_id.get(), 0);
  if (id != kApplicationId) {
    return Status::Error(where + "not a tern ledger (SQLite application_id " + std::to_string(id) +
                         ", expected " + std::to_string(kApplicationId) + ")");
  }
  Statement s;
  TERN_RETURN_IF_ERROR(
      s.prepare(db, "SELECT format_version, coordinator, config, meta_signature FROM meta",
                op + ": read meta", path));
  if (sqlite3_step(s.get()) != SQLITE_ROW) {
    return Status::Error(where + "meta table has no row");
  }
  Meta meta;
  const int64_t version = sqlite3_column_int64(s.get(), 0);
  if (version != static_cast<int64_t>(kLedgerFormatVersion)) {
    return Status::Error(where + "format version " + std::to_string(version) + " (expected " +
                         std::to_string(kLedgerFormatVersion) + ")");
  }
  if (!to_array(column_blob(s.get(), 1), meta.coordinator.key)) {
    return Status::Error(where + "meta coordinator key is " +
                         std::to_string(column_blob(s.get(), 1).size()) + " bytes (expected 32)");
  }
  const auto config = column_blob(s.get(), 2);
  meta.config_bytes.assign(config.begin(), config.end());
  net::Ed25519Signature signature{};
  if (!to_array(column_blob(s.get(), 3), signature)) {
    return Status::Error(where + "meta signature is " +
                         std::to_string(column_blob(s.get(), 3).size()) + " bytes (expected 64)");
  }
  if (sqlite3_step(s.get()) != SQLITE_DONE) {
    return Status::Error(where + "meta table must hold exactly one row");
  }
  meta.genesis = genesis_hash(meta.coordinator, meta.config_bytes);
  if (!net::verify_signature(meta.coordinator, meta.genesis, signature)) {
    return Status::Error(where + "meta signature does not verify with coordinator key " +
                         meta.coordinator.to_string());
  }
  Result<CoordinatorConfig> decoded = decode_config(meta.config_bytes);
  if (!decoded.ok()) return decoded.status().with_context(where + "meta config");
  meta.config = std::move(decoded).value();
  return meta;
}

// Replays and checks every entry (see ledger.h); stops at the first failure.
struct Walk {
  VerifyReport report;
  std::optional<Coordinator> coordinator;
  Blake2bDigest last_hash{};
};

Result<Walk> walk_entries(sqlite3* db, const std::string& path, const Meta& meta,
                          const std::string& op) {
  Walk walk;
  walk.report.coordinator = meta.coordinator;
  Result<Coordinator> fresh = Coordinator::create(meta.config);
  if (!fresh.ok()) {
    return fresh.status().with_context(op + " " + quoted(path) + ": meta config");
  }
  walk.coordinator.emplace(std::move(fresh).value());
  walk.last_hash = meta.genesis;
  VerifyReport& report = walk.report;
  auto fail = [&report](uint64_t seq, std::string reason) {
    report.ok = false;
    report.failed = seq;
    report.reason = std::move(reason);
  };
  auto record_state = [&walk]() {
    const Snapshot& s = walk.coordinator->snapshot();
    walk.report.state = s.state;
    walk.report.epoch = s.epoch;
    walk.report.step = s.step;
    walk.report.snapshot_hash = s.hash();
  };
  record_state();

  Statement s;
  TERN_RETURN_IF_ERROR(s.prepare(db,
                                 "SELECT seq, event, snapshot_hash, prev_hash, entry_hash, "
                                 "signature FROM entries ORDER BY seq",
                                 op + ": read entries", path));
  uint64_t seq = 0;
  for (;; ++seq) {
    const int rc = sqlite3_step(s.get());
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) {
      const int code = rc & 0xff;
      // A damaged page is the entry's failure; a lock or I/O error is not.
      if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) {
        fail(seq, std::string("unreadable: ") + sqlite3_errmsg(db));
        return walk;
      }
      return sqlite_error(db, op + ": read entry " + std::to_string(seq), path);
    }
    const int64_t stored_seq = sqlite3_column_int64(s.get(), 0);
    if (stored_seq != static_cast<int64_t>(seq)) {
      fail(seq, "missing (the next stored entry has seq " + std::to_string(stored_seq) + ")");
      return walk;
    }
    for (int column = 1; column <= 5; ++column) {
      if (sqlite3_column_type(s.get(), column) != SQLITE_BLOB) {
        fail(seq, std::string(sqlite3_column_name(s.get(), column)) + " is not a blob");
        return walk;
      }
    }
    const std::span<const uint8_t> event_bytes = column_blob(s.get(), 1);
    Blake2bDigest snapshot_hash{};
    Blake2bDigest prev_hash{};
    Blake2bDigest stored_entry_hash{};
    net::Ed25519Signature signature{};
    if (!to_array(column_blob(s.get(), 2), snapshot_hash)) {
      fail(seq, "snapshot_hash is not 32 bytes");
      return walk;
    }
    if (!to_array(column_blob(s.get(), 3), prev_hash)) {
      fail(seq, "prev_hash is not 32 bytes");
      return walk;
    }
    if (!to_array(column_blob(s.get(), 4), stored_entry_hash)) {
      fail(seq, "entry_hash is not 32 bytes");
      return walk;
    }
    if (!to_array(column_blob(s.get(), 5), signature)) {
      fail(seq, "signature is not 64 bytes");
      return walk;
    }
    if (prev_hash != walk.last_hash) {
      fail(seq, seq == 0 ? "prev_hash is not the genesis hash of meta (coordinator, config)"
                         : "prev_hash does not link to entry " + std::to_string(seq - 1));
      return walk;
    }
    const Blake2bDigest computed = entry_hash(seq, prev_hash, event_bytes, snapshot_hash);
    if (computed != stored_entry_hash) {
      fail(seq, "entry_hash does not match the entry (event, snapshot_hash, prev_hash, seq)");
      return walk;
    }
    if (!net::verify_signature(meta.coordinator, computed, signature)) {
      fail(seq, "signature does not verify with coordinator key " + meta.coordinator.to_string());
      return walk;
    }
    Result<Event> event = decode_event(event_bytes);
    if (!event.ok()) {
      fail(seq, event.status().message());
      return walk;
    }
    Status applied = walk.coordinator->apply(event.value());
    if (!applied.ok()) {
      fail(seq, "coordinator rejects the event: " + applied.message());
      return walk;
    }
    record_state();
    if (report.snapshot_hash != snapshot_hash) {
      fail(seq, "snapshot hash after the event is " + to_hex(report.snapshot_hash) +
                    ", the entry stores " + to_hex(snapshot_hash));
      return walk;
    }
    report.entries = seq + 1;
    walk.last_hash = computed;
  }
  report.ok = true;
  return walk;
}

Result<Blake2bDigest> read_tail(sqlite3* db, const std::string& path, const Blake2bDigest& genesis,
                                uint64_t& next_seq) {
  Statement s;
  TERN_RETURN_IF_ERROR(s.prepare(db,
                                 "SELECT seq, entry_hash FROM entries ORDER BY seq DESC LIMIT 1",
                                 "read last entry", path));
  const int rc = sqlite3_step(s.get());
  if (rc == SQLITE_DONE) {
    next_seq = 0;
    return genesis;
  }
  if (rc != SQLITE_ROW) return sqlite_error(db, "read last entry", path);
  Blake2bDigest hash{};
  const int64_t seq = sqlite3_column_int64(s.get(), 0);
  if (seq < 0 || !to_array(column_blob(s.get(), 1), hash)) {
    return Status::Error("open ledger " + quoted(path) + ": last entry (seq " +
                         std::to_string(seq) + ") is malformed");
  }
  next_seq = static_cast<uint64_t>(seq) + 1;
  return hash;
}

}  // namespace

struct Ledger::Db {
  Connection connection;
};

Ledger::Ledger(std::string path, std::unique_ptr<Db> db, net::Identity coordinator,
               CoordinatorConfig config)
    : path_(std::move(path)),
      db_(std::move(db)),
      coordinator_(std::move(coordinator)),
      config_(std::move(config)) {}

Ledger::Ledger(Ledger&&) noexcept = default;
Ledger& Ledger::operator=(Ledger&&) noexcept = default;
Ledger::~Ledger() = default;

Result<Ledger> Ledger::create(const std::string& path, const net::Identity& coordinator,
                              const CoordinatorConfig& config) {
  const std::string op = "create ledger " + quoted(path);
  TERN_RETURN_IF_ERROR(config.validate().with_context(op));
  // O_EXCL makes "refuse an existing file" atomic; an empty file is a valid
  // empty SQLite database.
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) {
    if (errno == EEXIST) return Status::Error(op + ": file exists (refusing to overwrite it)");
    return Status::Error(op + ": " + std::strerror(errno));
  }
  ::close(fd);
  auto db = std::make_unique<Db>();
  auto created = [&]() -> Status {
    TERN_RETURN_IF_ERROR(
        open_connection(db->connection, path, SQLITE_OPEN_READWRITE, "create ledger"));
    sqlite3* c = db->connection.db;
    TERN_RETURN_IF_ERROR(configure_for_writing(c, path));
    TERN_RETURN_IF_ERROR(exec(c,
                              "BEGIN IMMEDIATE;"
                              "PRAGMA application_id=1952805486;"
                              "CREATE TABLE meta (format_version INTEGER NOT NULL,"
                              " coordinator BLOB NOT NULL, config BLOB NOT NULL,"
                              " created_ms INTEGER NOT NULL, meta_signature BLOB NOT NULL);"
                              "CREATE TABLE entries (seq INTEGER PRIMARY KEY, event BLOB NOT NULL,"
                              " snapshot_hash BLOB NOT NULL, prev_hash BLOB NOT NULL,"
                              " entry_hash BLOB NOT NULL, signature BLOB NOT NULL);",
                              "create tables", path));
    const std::vector<uint8_t> config_bytes = encode_config(config);
    const Blake2bDigest genesis = genesis_hash(coordinator.id(), config_bytes);
    const net::Ed25519Signature signature = coordinator.sign(genesis);
    const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                               std::chrono::system_clock::now().time_since_epoch())
                               .count();
    Statement insert;
    TERN_RETURN_IF_ERROR(insert.prepare(c,
                                        "INSERT INTO meta (format_version, coordinator, config,"
                                        " created_ms, meta_signature) VALUES (?, ?, ?, ?, ?)",
                                        "write meta", path));
    sqlite3_bind_int64(insert.get(), 1, static_cast<int64_t>(kLedgerFormatVersion));
    bind_blob(insert.get(), 2, coordinator.id().key);
    bind_blob(insert.get(), 3, config_bytes);
    sqlite3_bind_int64(insert.get(), 4, now_ms);
    bind_blob(insert.get(), 5, signature);
    if (sqlite3_step(insert.get()) != SQLITE_DONE) return sqlite_error(c, "write meta", path);
    return exec(c, "COMMIT", "commit meta", path);
  }();
  static_assert(kApplicationId == 1952805486);
  if (!created.ok()) {
    db.reset();
    ::unlink(path.c_str());
    ::unlink((path + "-wal").c_str());
    ::unlink((path + "-shm").c_str());
    return created;
  }
  Ledger ledger(path, std::move(db), coordinator, config);
  ledger.last_hash_ = genesis_hash(coordinator.id(), encode_config(config));
  return ledger;
}

Result<Ledger> Ledger::open(const std::string& path, const net::Identity& coordinator) {
  const std::string op = "open ledger";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::Error(op + " " + quoted(path) + ": " + std::strerror(errno));
  }
  auto db = std::make_unique<Db>();
  TERN_RETURN_IF_ERROR(open_connection(db->connection, path, SQLITE_OPEN_READWRITE, op));
  sqlite3* c = db->connection.db;
  TERN_ASSIGN_OR_RETURN(Meta meta, read_meta(c, path, op));
  if (meta.coordinator != coordinator.id()) {
    return Status::Error(op + " " + quoted(path) + ": the ledger belongs to coordinator " +
                         meta.coordinator.to_string() + ", not " + coordinator.id().to_string());
  }
  TERN_RETURN_IF_ERROR(configure_for_writing(c, path));
  uint64_t next_seq = 0;
  TERN_ASSIGN_OR_RETURN(Blake2bDigest tail, read_tail(c, path, meta.genesis, next_seq));
  Ledger ledger(path, std::move(db), coordinator, std::move(meta.config));
  ledger.next_seq_ = next_seq;
  ledger.last_hash_ = tail;
  return ledger;
}

Status Ledger::append(const Event& event, const Snapshot& snapshot) {
  TERN_CHECK(snapshot.event_count == next_seq_ + 1, "ledger append: snapshot after event ",
             snapshot.event_count, " but the ledger holds ", next_seq_, " entries");
  const std::vector<uint8_t> event_bytes = encode_event(event);
  const Blake2bDigest snapshot_hash = snapshot.hash();
  const Blake2bDigest hash = entry_hash(next_seq_, last_hash_, event_bytes, snapshot_hash);
  const net::Ed25519Signature signature = coordinator_.sign(hash);
  sqlite3* c = db_->connection.db;
  const std::string op = "append entry " + std::to_string(next_seq_);

  TERN_RETURN_IF_ERROR(exec(c, "BEGIN IMMEDIATE", op + ": begin", path_));
  auto body = [&]() -> Status {
    // Inside the write lock: a second writer would have moved the tail.
    Statement last;
    TERN_RETURN_IF_ERROR(last.prepare(c, "SELECT max(seq) FROM entries", op, path_));
    if (sqlite3_step(last.get()) != SQLITE_ROW) return sqlite_error(c, op + ": read tail", path_);
    const bool empty = sqlite3_column_type(last.get(), 0) == SQLITE_NULL;
    const int64_t max_seq = sqlite3_column_int64(last.get(), 0);
    if (empty ? next_seq_ != 0 : max_seq + 1 != static_cast<int64_t>(next_seq_)) {
      return Status::Error(
          "ledger " + quoted(path_) + ": " + op + ": the file holds " +
          (empty ? std::string("no entries") : "entries up to seq " + std::to_string(max_seq)) +
          " (another writer?)");
    }
    Statement insert;
    TERN_RETURN_IF_ERROR(insert.prepare(c,
                                        "INSERT INTO entries (seq, event, snapshot_hash,"
                                        " prev_hash, entry_hash, signature)"
                                        " VALUES (?, ?, ?, ?, ?, ?)",
                                        op, path_));
    sqlite3_bind_int64(insert.get(), 1, static_cast<int64_t>(next_seq_));
    bind_blob(insert.get(), 2, event_bytes);
    bind_blob(insert.get(), 3, snapshot_hash);
    bind_blob(insert.get(), 4, last_hash_);
    bind_blob(insert.get(), 5, hash);
    bind_blob(insert.get(), 6, signature);
    if (sqlite3_step(insert.get()) != SQLITE_DONE) return sqlite_error(c, op + ": insert", path_);
    return exec(c, "COMMIT", op + ": commit", path_);
  }();
  if (!body.ok()) {
    // No-op if COMMIT already ended the transaction.
    sqlite3_exec(c, "ROLLBACK", nullptr, nullptr, nullptr);
    return body;
  }
  ++next_seq_;
  last_hash_ = hash;
  return Status::Ok();
}

Result<Coordinator> Ledger::replay() const {
  const std::string op = "replay ledger";
  sqlite3* c = db_->connection.db;
  TERN_ASSIGN_OR_RETURN(Meta meta, read_meta(c, path_, op));
  TERN_ASSIGN_OR_RETURN(Walk walk, walk_entries(c, path_, meta, op));
  if (!walk.report.ok) {
    return Status::Error(op + " " + quoted(path_) + ": entry " +
                         std::to_string(*walk.report.failed) + ": " + walk.report.reason);
  }
  if (walk.report.entries != next_seq_ || walk.last_hash != last_hash_) {
    return Status::Error(op + " " + quoted(path_) + ": the file holds " +
                         std::to_string(walk.report.entries) + " entries but this ledger wrote " +
                         std::to_string(next_seq_) + " (another writer?)");
  }
  return std::move(*walk.coordinator);
}

Result<VerifyReport> verify_ledger(const std::string& path, const VerifyOptions& options) {
  const std::string op = "verify ledger";
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return Status::Error(op + " " + quoted(path) + ": " + std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode)) {
    return Status::Error(op + " " + quoted(path) + ": not a regular file");
  }
  Connection connection;
  TERN_RETURN_IF_ERROR(open_connection(connection, path, SQLITE_OPEN_READONLY, op));
  // One read transaction: a consistent view even while a writer appends.
  TERN_RETURN_IF_ERROR(exec(connection.db, "BEGIN", op + ": begin", path));
  TERN_ASSIGN_OR_RETURN(Meta meta, read_meta(connection.db, path, op));
  if (options.coordinator && *options.coordinator != meta.coordinator) {
    return Status::Error(op + " " + quoted(path) + ": signed by coordinator " +
                         meta.coordinator.to_string() + ", expected " +
                         options.coordinator->to_string());
  }
  TERN_ASSIGN_OR_RETURN(Walk walk, walk_entries(connection.db, path, meta, op));
  return std::move(walk.report);
}

}  // namespace tern::swarm
