#include "swarm/ledger.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "swarm/event_codec.h"
#include "swarm/swarm_test_util.h"

namespace tern::swarm {
namespace {

namespace fs = std::filesystem;
using testing::attest_all;
using testing::node;
using testing::train_all;

net::Identity identity(uint8_t tag) {
  std::array<uint8_t, 32> seed{};
  seed.fill(tag);
  return net::Identity::from_seed(seed);
}

CoordinatorConfig run_config(uint32_t epochs = 2) {
  CoordinatorConfig c;
  c.run_seed = 7;
  c.min_members = 4;
  c.max_members = 4;
  c.witnesses_per_round = 3;
  c.warmup_ms = 100;
  c.round_train_ms = 1000;
  c.round_witness_ms = 500;
  c.cooldown_ms = 200;
  c.rounds_per_epoch = 3;
  c.epochs = epochs;
  c.batches_per_round = 8;
  return c;
}

void tick_to_deadline(Coordinator& c, uint64_t& now) {
  now = std::max(now, c.snapshot().deadline_ms);
  Status s = c.apply(Tick{now});
  ASSERT_TRUE(s.ok()) << s.message();
}

// The happy path: 4 members, warmup, 3 honest rounds and a cooldown per epoch.
// Calls `after_each(c)` after every step so a caller can persist as it goes.
template <typename F>
void drive_happy_path(Coordinator& c, uint64_t& now, F after_each) {
  for (int i = 1; i <= 4; ++i) {
    ASSERT_TRUE(c.apply(Join{now++, node(i)}).ok());
    after_each(c);
  }
  while (c.state() != State::kFinished) {
    ASSERT_EQ(c.state(), State::kWarmup);
    tick_to_deadline(c, now);
    after_each(c);
    while (c.state() == State::kRoundTrain) {
      train_all(c, now);
      after_each(c);
      attest_all(c, now);
      after_each(c);
    }
    ASSERT_EQ(c.state(), State::kCooldown);
    tick_to_deadline(c, now);
    after_each(c);
  }
}

Coordinator make_coordinator(const CoordinatorConfig& config) {
  auto c = Coordinator::create(config);
  TERN_CHECK(c.ok(), c.status().message());
  return std::move(c).value();
}

// Appends every event `c` accepted since the ledger's last entry, each with the
// snapshot right after it (as the server does), using `mirror` to step through.
Status persist_new_events(const Coordinator& c, Coordinator& mirror, Ledger& ledger) {
  for (size_t i = ledger.size(); i < c.events().size(); ++i) {
    TERN_RETURN_IF_ERROR(mirror.apply(c.events()[i]));
    TERN_RETURN_IF_ERROR(ledger.append(c.events()[i], mirror.snapshot()));
  }
  return Status::Ok();
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = fs::temp_directory_path() / "tern_ledger_test_XXXXXX";
    TERN_CHECK(::mkdtemp(pattern.data()) != nullptr, "mkdtemp failed");
    path_ = pattern;
  }
  ~TempDir() { fs::remove_all(path_); }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
};

// One realistic ledger, written once and copied by each test that edits it.
class swarm_ledger : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    master_ = dir_->file("master.db");
    Coordinator c = make_coordinator(run_config());
    Coordinator mirror = make_coordinator(run_config());
    Result<Ledger> ledger = Ledger::create(master_, identity(1), run_config());
    ASSERT_TRUE(ledger.ok()) << ledger.status().message();
    uint64_t now = 0;
    drive_happy_path(c, now, [&](const Coordinator& x) {
      Status s = persist_new_events(x, mirror, ledger.value());
      ASSERT_TRUE(s.ok()) << s.message();
    });
    events_ = new std::vector<Event>(c.events());
    final_hash_ = c.snapshot().hash();
    final_step_ = c.step();
  }
  static void TearDownTestSuite() {
    delete dir_;
    delete events_;
  }

  // A fresh copy of the master ledger.
  std::string copy(const std::string& name) const {
    const std::string path = dir_->file(name);
    fs::remove(path);
    fs::copy_file(master_, path);
    return path;
  }
  uint64_t n() const { return events_->size(); }

  static TempDir* dir_;
  static std::string master_;
  static std::vector<Event>* events_;
  static Blake2bDigest final_hash_;
  static uint64_t final_step_;
};
TempDir* swarm_ledger::dir_ = nullptr;
std::string swarm_ledger::master_;
std::vector<Event>* swarm_ledger::events_ = nullptr;
Blake2bDigest swarm_ledger::final_hash_{};
uint64_t swarm_ledger::final_step_ = 0;

// Runs SQL on a ledger file directly (as an attacker or a damaged disk would).
void sql(const std::string& path, const std::string& statement) {
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
  char* error = nullptr;
  const int rc = sqlite3_exec(db, statement.c_str(), nullptr, nullptr, &error);
  const std::string message = error ? error : "";
  sqlite3_free(error);
  sqlite3_close(db);
  ASSERT_EQ(rc, SQLITE_OK) << message;
}

std::vector<uint8_t> read_blob(const std::string& path, const std::string& column, uint64_t seq) {
  sqlite3* db = nullptr;
  TERN_CHECK(sqlite3_open(path.c_str(), &db) == SQLITE_OK, "open");
  sqlite3_stmt* s = nullptr;
  const std::string q = "SELECT " + column + " FROM entries WHERE seq = " + std::to_string(seq);
  TERN_CHECK(sqlite3_prepare_v2(db, q.c_str(), -1, &s, nullptr) == SQLITE_OK, "prepare");
  TERN_CHECK(sqlite3_step(s) == SQLITE_ROW, "no row ", seq);
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(s, 0));
  std::vector<uint8_t> out(p, p + sqlite3_column_bytes(s, 0));
  sqlite3_finalize(s);
  sqlite3_close(db);
  return out;
}

void write_blob(const std::string& path, const std::string& table, const std::string& column,
                const std::string& where, const std::vector<uint8_t>& bytes) {
  sqlite3* db = nullptr;
  TERN_CHECK(sqlite3_open(path.c_str(), &db) == SQLITE_OK, "open");
  sqlite3_stmt* s = nullptr;
  const std::string q = "UPDATE " + table + " SET " + column + " = ? " + where;
  TERN_CHECK(sqlite3_prepare_v2(db, q.c_str(), -1, &s, nullptr) == SQLITE_OK, "prepare");
  sqlite3_bind_blob(s, 1, bytes.data(), static_cast<int>(bytes.size()), SQLITE_TRANSIENT);
  TERN_CHECK(sqlite3_step(s) == SQLITE_DONE, "update");
  TERN_CHECK(sqlite3_changes(db) == 1, "update changed ", sqlite3_changes(db), " rows");
  sqlite3_finalize(s);
  sqlite3_close(db);
}

VerifyReport verify_ok(const std::string& path, const VerifyOptions& options = {}) {
  Result<VerifyReport> r = verify_ledger(path, options);
  TERN_CHECK(r.ok(), r.status().message());
  return r.value();
}

TEST_F(swarm_ledger, RealisticRunVerifies) {
  ASSERT_EQ(n(), 4u + 2 * (1 + 3 * 7 + 1));
  const VerifyReport r = verify_ok(master_, {identity(1).id()});
  EXPECT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.entries, n());
  EXPECT_FALSE(r.failed.has_value());
  EXPECT_EQ(r.state, State::kFinished);
  EXPECT_EQ(r.step, 6u);
  EXPECT_EQ(r.step, final_step_);
  EXPECT_EQ(r.snapshot_hash, final_hash_);
  EXPECT_EQ(r.coordinator, identity(1).id());
  // The stored events are the coordinator's, byte for byte.
  for (uint64_t seq : {uint64_t{0}, n() / 2, n() - 1}) {
    EXPECT_EQ(read_blob(master_, "event", seq), encode_event((*events_)[seq]));
  }
}

TEST_F(swarm_ledger, OneFlippedByteFailsAtExactlyThatEntry) {
  struct Column {
    const char* name;
    const char* reason;
  };
  const Column columns[] = {
      {"event", "entry_hash does not match"},
      {"snapshot_hash", "entry_hash does not match"},
      {"prev_hash", "prev_hash"},
      {"entry_hash", "entry_hash does not match"},
      {"signature", "signature does not verify"},
  };
  for (uint64_t seq : {uint64_t{0}, n() / 2, n() - 1}) {
    for (const Column& column : columns) {
      SCOPED_TRACE(std::string(column.name) + " of entry " + std::to_string(seq));
      const std::string path = copy("flip.db");
      std::vector<uint8_t> bytes = read_blob(path, column.name, seq);
      bytes[(seq * 7) % bytes.size()] ^= 0x10;
      write_blob(path, "entries", column.name, "WHERE seq = " + std::to_string(seq), bytes);
      const VerifyReport r = verify_ok(path);
      EXPECT_FALSE(r.ok);
      ASSERT_TRUE(r.failed.has_value());
      EXPECT_EQ(*r.failed, seq);
      EXPECT_EQ(r.entries, seq);
      EXPECT_NE(r.reason.find(column.reason), std::string::npos) << r.reason;
    }
  }
}

TEST_F(swarm_ledger, FlippedByteInTheFileFailsAtThatEntry) {
  // The acceptance check on the raw file: find entry k's event bytes on disk
  // (the master is closed, so everything is in the main file) and flip one.
  const uint64_t seq = n() / 2;
  const std::string path = copy("raw.db");
  std::ifstream in(path, std::ios::binary);
  std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const std::vector<uint8_t> event = read_blob(path, "event", seq);
  auto at = std::search(file.begin(), file.end(), event.begin(), event.end());
  ASSERT_NE(at, file.end());
  ASSERT_EQ(std::search(at + 1, file.end(), event.begin(), event.end()), file.end());
  const size_t offset = static_cast<size_t>(at - file.begin()) + event.size() / 2;
  std::fstream out(path, std::ios::binary | std::ios::in | std::ios::out);
  out.seekp(static_cast<std::streamoff>(offset));
  const char flipped = static_cast<char>(file[offset] ^ 0x01);
  out.write(&flipped, 1);
  out.close();
  const VerifyReport r = verify_ok(path);
  EXPECT_FALSE(r.ok);
  ASSERT_TRUE(r.failed.has_value());
  EXPECT_EQ(*r.failed, seq);
}

TEST_F(swarm_ledger, TruncatedLogIsAVerifiedPrefix) {
  const uint64_t keep = n() - 5;
  const std::string path = copy("truncated.db");
  sql(path, "DELETE FROM entries WHERE seq >= " + std::to_string(keep));
  const VerifyReport r = verify_ok(path);
  EXPECT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.entries, keep);
  Coordinator c = make_coordinator(run_config());
  for (uint64_t i = 0; i < keep; ++i) ASSERT_TRUE(c.apply((*events_)[i]).ok());
  EXPECT_EQ(r.snapshot_hash, c.snapshot().hash());
  EXPECT_EQ(r.state, c.state());
  EXPECT_EQ(r.step, c.step());
}

TEST_F(swarm_ledger, MissingMiddleEntryFailsThere) {
  const std::string path = copy("gap.db");
  sql(path, "DELETE FROM entries WHERE seq = 10");
  const VerifyReport r = verify_ok(path);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.failed, 10u);
  EXPECT_NE(r.reason.find("missing (the next stored entry has seq 11)"), std::string::npos)
      << r.reason;
}

TEST_F(swarm_ledger, ReopenReplayContinuesTheRun) {
  const std::string path = copy("reopen.db");
  Result<Ledger> ledger = Ledger::open(path, identity(1));
  ASSERT_TRUE(ledger.ok()) << ledger.status().message();
  EXPECT_EQ(ledger.value().size(), n());
  Result<Coordinator> c = ledger.value().replay();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c.value().snapshot().hash(), final_hash_);
  EXPECT_EQ(c.value().events().size(), n());
  // The run goes on from the replayed state.
  const Event tick = Tick{c.value().snapshot().now_ms + 1};
  ASSERT_TRUE(c.value().apply(tick).ok());
  ASSERT_TRUE(ledger.value().append(tick, c.value().snapshot()).ok());
  const VerifyReport r = verify_ok(path);
  EXPECT_TRUE(r.ok) << r.reason;
  EXPECT_EQ(r.entries, n() + 1);
  EXPECT_EQ(r.snapshot_hash, c.value().snapshot().hash());
}

TEST_F(swarm_ledger, ReplayReportsTheFailingEntry) {
  const std::string path = copy("replay_bad.db");
  std::vector<uint8_t> sig = read_blob(path, "signature", 3);
  sig[0] ^= 1;
  write_blob(path, "entries", "signature", "WHERE seq = 3", sig);
  Result<Ledger> ledger = Ledger::open(path, identity(1));
  ASSERT_TRUE(ledger.ok()) << ledger.status().message();
  Result<Coordinator> c = ledger.value().replay();
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.status().message().find("entry 3: signature does not verify"), std::string::npos)
      << c.status().message();
}

TEST_F(swarm_ledger, OtherKeysAreRefused) {
  const std::string path = copy("keys.db");
  Result<Ledger> wrong = Ledger::open(path, identity(2));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.status().message().find("belongs to coordinator " + identity(1).id().to_string()),
            std::string::npos)
      << wrong.status().message();
  Result<VerifyReport> pinned = verify_ledger(path, {identity(2).id()});
  ASSERT_FALSE(pinned.ok());
  EXPECT_NE(pinned.status().message().find("expected " + identity(2).id().to_string()),
            std::string::npos);
  // An entry signed (validly) by another key fails at that entry.
  const uint64_t seq = 5;
  const std::vector<uint8_t> hash = read_blob(path, "entry_hash", seq);
  const net::Ed25519Signature other = identity(2).sign(hash);
  write_blob(path, "entries", "signature", "WHERE seq = 5",
             std::vector<uint8_t>(other.begin(), other.end()));
  const VerifyReport r = verify_ok(path);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.failed, seq);
  // Swapping the key in meta breaks the meta signature.
  const std::string swapped = copy("swapped.db");
  const auto key = identity(2).id().key;
  write_blob(swapped, "meta", "coordinator", "", std::vector<uint8_t>(key.begin(), key.end()));
  Result<VerifyReport> s = verify_ledger(swapped);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("meta signature does not verify"), std::string::npos)
      << s.status().message();
}

TEST_F(swarm_ledger, TamperedConfigIsRefused) {
  const std::string path = copy("config.db");
  CoordinatorConfig other = run_config();
  other.run_seed = 8;
  write_blob(path, "meta", "config", "", encode_config(other));
  Result<VerifyReport> r = verify_ledger(path);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("meta signature does not verify"), std::string::npos);
}

TEST_F(swarm_ledger, SignedButWrongContentFailsAtThatEntry) {
  // The coordinator's own key signs an entry whose snapshot hash is wrong, and
  // then one whose event the state machine rejects.
  TempDir dir;
  for (int variant = 0; variant < 2; ++variant) {
    const std::string path = dir.file("wrong" + std::to_string(variant) + ".db");
    Result<Ledger> ledger = Ledger::create(path, identity(1), run_config());
    ASSERT_TRUE(ledger.ok()) << ledger.status().message();
    Coordinator c = make_coordinator(run_config());
    for (uint64_t i = 0; i < 2; ++i) {
      ASSERT_TRUE(c.apply((*events_)[i]).ok());
      ASSERT_TRUE(ledger.value().append((*events_)[i], c.snapshot()).ok());
    }
    Snapshot next = c.snapshot();
    next.event_count += 1;
    if (variant == 0) {
      next.now_ms += 1;  // not what applying the event gives
      ASSERT_TRUE(ledger.value().append((*events_)[2], next).ok());
    } else {
      ASSERT_TRUE(ledger.value().append(TrainDone{50, node(9), 0, {{0, 1}}, {}}, next).ok());
    }
    const VerifyReport r = verify_ok(path);
    EXPECT_FALSE(r.ok);
    EXPECT_EQ(r.failed, 2u);
    EXPECT_EQ(r.entries, 2u);
    EXPECT_NE(r.reason.find(variant == 0 ? "snapshot hash after the event"
                                         : "coordinator rejects the event"),
              std::string::npos)
        << r.reason;
  }
}

TEST_F(swarm_ledger, UndecodableEventFailsAtThatEntry) {
  TempDir dir;
  const std::string path = dir.file("undecodable.db");
  Result<Ledger> ledger = Ledger::create(path, identity(1), run_config());
  ASSERT_TRUE(ledger.ok());
  Coordinator c = make_coordinator(run_config());
  ASSERT_TRUE(c.apply((*events_)[0]).ok());
  ASSERT_TRUE(ledger.value().append((*events_)[0], c.snapshot()).ok());
  // Entry 0 rewritten with a garbage event, correctly hashed and signed: only
  // the decoder can object.
  const std::vector<uint8_t> garbage = {1, 9, 0};
  const std::vector<uint8_t> prev = read_blob(path, "prev_hash", 0);
  const std::vector<uint8_t> snap = read_blob(path, "snapshot_hash", 0);
  Blake2bHasher h;
  h.update(std::string_view("tern-ledger-entry-v1"));
  const uint8_t zero8[8] = {};
  h.update(std::span<const uint8_t>(zero8, 8));
  h.update(prev);
  const uint8_t len[8] = {3};
  h.update(std::span<const uint8_t>(len, 8));
  h.update(garbage);
  h.update(snap);
  const Blake2bDigest entry = h.finish();
  const net::Ed25519Signature sig = identity(1).sign(entry);
  write_blob(path, "entries", "event", "WHERE seq = 0", garbage);
  write_blob(path, "entries", "entry_hash", "WHERE seq = 0",
             std::vector<uint8_t>(entry.begin(), entry.end()));
  write_blob(path, "entries", "signature", "WHERE seq = 0",
             std::vector<uint8_t>(sig.begin(), sig.end()));
  const VerifyReport r = verify_ok(path);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.failed, 0u);
  EXPECT_NE(r.reason.find("decode event: tag at offset 1 is 9"), std::string::npos) << r.reason;
}

TEST_F(swarm_ledger, FileErrorsAreClear) {
  TempDir dir;
  // create refuses an existing file and leaves it alone.
  const std::string existing = copy("existing.db");
  const auto size = fs::file_size(existing);
  Result<Ledger> again = Ledger::create(existing, identity(1), run_config());
  ASSERT_FALSE(again.ok());
  EXPECT_NE(again.status().message().find("file exists"), std::string::npos);
  EXPECT_EQ(fs::file_size(existing), size);
  // An invalid config is refused before anything is created.
  CoordinatorConfig bad = run_config();
  bad.min_members = 0;
  EXPECT_FALSE(Ledger::create(dir.file("bad.db"), identity(1), bad).ok());
  EXPECT_FALSE(fs::exists(dir.file("bad.db")));
  // Missing files.
  Result<Ledger> missing = Ledger::open(dir.file("missing.db"), identity(1));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("missing.db"), std::string::npos);
  Result<VerifyReport> vmissing = verify_ledger(dir.file("missing.db"));
  ASSERT_FALSE(vmissing.ok());
  EXPECT_NE(vmissing.status().message().find("missing.db': No such file"), std::string::npos)
      << vmissing.status().message();
  // Not SQLite at all.
  const std::string text = dir.file("text.db");
  std::ofstream(text) << "this is not a database, just some text that is long enough\n"
                      << std::string(200, 'x');
  Result<VerifyReport> vtext = verify_ledger(text);
  ASSERT_FALSE(vtext.ok());
  EXPECT_NE(vtext.status().message().find("not a SQLite database"), std::string::npos)
      << vtext.status().message();
  EXPECT_FALSE(Ledger::open(text, identity(1)).ok());
  // SQLite, but not a ledger.
  const std::string other = dir.file("other.db");
  sql(other, "CREATE TABLE t (x INTEGER)");
  Result<VerifyReport> vother = verify_ledger(other);
  ASSERT_FALSE(vother.ok());
  EXPECT_NE(vother.status().message().find("not a tern ledger"), std::string::npos)
      << vother.status().message();
  // A directory.
  EXPECT_FALSE(verify_ledger(dir.file("")).ok());
}

TEST_F(swarm_ledger, SecondWriterCannotForkTheChain) {
  const std::string path = copy("two_writers.db");
  Result<Ledger> a = Ledger::open(path, identity(1));
  Result<Ledger> b = Ledger::open(path, identity(1));
  ASSERT_TRUE(a.ok() && b.ok());
  Result<Coordinator> c = a.value().replay();
  ASSERT_TRUE(c.ok());
  const Event tick = Tick{c.value().snapshot().now_ms + 1};
  ASSERT_TRUE(c.value().apply(tick).ok());
  ASSERT_TRUE(a.value().append(tick, c.value().snapshot()).ok());
  Status second = b.value().append(tick, c.value().snapshot());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.message().find("another writer"), std::string::npos) << second.message();
  EXPECT_TRUE(verify_ok(path).ok);
}

// kill -9 in the middle of appending: what is on disk is a consistent,
// verifiable prefix that holds at least every acknowledged entry, and the run
// continues from it.
TEST_F(swarm_ledger, KillNineLeavesAVerifiablePrefix) {
  TempDir dir;
  const std::string path = dir.file("killed.db");
  int acks[2];
  ASSERT_EQ(::pipe(acks), 0);
  const pid_t child = ::fork();
  if (child < 0) {
    ::close(acks[0]);
    ::close(acks[1]);
    GTEST_SKIP() << "fork unavailable";
  }
  if (child == 0) {
    ::close(acks[0]);
    Result<Ledger> ledger = Ledger::create(path, identity(1), run_config(1000));
    if (!ledger.ok()) ::_exit(2);
    Coordinator c = make_coordinator(run_config(1000));
    Coordinator mirror = make_coordinator(run_config(1000));
    uint64_t now = 0;
    // Stops by itself only if the parent never kills it.
    for (int i = 0; i < 4; ++i) (void)c.apply(Join{now++, node(i + 1)});
    while (ledger.value().size() < 5000) {
      if (c.state() == State::kRoundTrain) {
        train_all(c, now);
        attest_all(c, now);
      } else {
        now = std::max(now + 1, c.snapshot().deadline_ms);
        (void)c.apply(Tick{now});
      }
      for (size_t i = ledger.value().size(); i < c.events().size(); ++i) {
        if (!mirror.apply(c.events()[i]).ok()) ::_exit(3);
        if (!ledger.value().append(c.events()[i], mirror.snapshot()).ok()) ::_exit(4);
        const uint64_t size = ledger.value().size();
        if (::write(acks[1], &size, sizeof size) != sizeof size) ::_exit(5);
      }
    }
    ::_exit(0);
  }
  ::close(acks[1]);
  uint64_t acked = 0;
  while (acked < 60) {
    uint64_t size = 0;
    if (::read(acks[0], &size, sizeof size) != sizeof size) break;
    acked = size;
  }
  ::kill(child, SIGKILL);
  int status = 0;
  ::waitpid(child, &status, 0);
  ::close(acks[0]);
  ASSERT_GE(acked, 60u) << "child stopped early, status " << status;
  ASSERT_TRUE(WIFSIGNALED(status));

  const VerifyReport r = verify_ok(path);
  EXPECT_TRUE(r.ok) << "entry " << r.failed.value_or(0) << ": " << r.reason;
  EXPECT_GE(r.entries, acked);
  Result<Ledger> ledger = Ledger::open(path, identity(1));
  ASSERT_TRUE(ledger.ok()) << ledger.status().message();
  EXPECT_EQ(ledger.value().size(), r.entries);
  Result<Coordinator> c = ledger.value().replay();
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c.value().snapshot().hash(), r.snapshot_hash);
  // The run continues: a few more events on top of the recovered state.
  uint64_t now = c.value().snapshot().now_ms;
  Coordinator& coordinator = c.value();
  for (int i = 0; i < 3; ++i) {
    now = std::max(now + 1, coordinator.snapshot().deadline_ms);
    const Event tick = Tick{now};
    ASSERT_TRUE(coordinator.apply(tick).ok());
    ASSERT_TRUE(ledger.value().append(tick, coordinator.snapshot()).ok());
  }
  const VerifyReport after = verify_ok(path);
  EXPECT_TRUE(after.ok) << after.reason;
  EXPECT_EQ(after.entries, r.entries + 3);
}

// Not a check: writes sample ledgers for tests/cli/ledger_test.sh when
// TERN_LEDGER_SAMPLE_DIR is set (sample.db verifies, flipped.db has entry 20's
// signature flipped).
TEST_F(swarm_ledger, ExportSamplesForCliTest) {
  const char* out = std::getenv("TERN_LEDGER_SAMPLE_DIR");
  if (out == nullptr) GTEST_SKIP() << "TERN_LEDGER_SAMPLE_DIR not set";
  const fs::path dir(out);
  fs::copy_file(master_, dir / "sample.db", fs::copy_options::overwrite_existing);
  const std::string flipped = (dir / "flipped.db").string();
  fs::copy_file(master_, flipped, fs::copy_options::overwrite_existing);
  std::vector<uint8_t> sig = read_blob(flipped, "signature", 20);
  sig[0] ^= 1;
  write_blob(flipped, "entries", "signature", "WHERE seq = 20", sig);
}

}  // namespace
}  // namespace tern::swarm
