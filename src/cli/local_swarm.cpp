#include "cli/local_swarm.h"

#include "swarm/run_config.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <utility>

#include "core/rng.h"
#include "net/identity.h"
#include "net/tcp_transport.h"
#include "swarm/data_provider.h"
#include "swarm/data_server.h"

namespace tern::cli {
namespace local_swarm_cmd {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr size_t kTailLines = 15;
constexpr size_t kMaxLineBytes = 64 * 1024;  // a longer "line" is cut and handed on in pieces
// After the coordinator exits 0 (the run finished and it lingered), members
// that are still running after this long are reported as stuck.
constexpr double kMembersAfterCoordinatorS = 60.0;

std::string quote(const std::string& s) {
  return "'" + s + "'";
}

// Test keys derived from the seed: the same roster in every run.
net::Identity derived_identity(uint64_t seed, const std::string& name) {
  Rng rng(derive_seed(seed, "local swarm key " + name));
  std::array<uint8_t, 32> bytes{};
  for (size_t i = 0; i < bytes.size(); i += 8) {
    const uint64_t word = rng.next_u64();
    for (size_t j = 0; j < 8; ++j) bytes[i + j] = static_cast<uint8_t>(word >> (8 * j));
  }
  return net::Identity::from_seed(bytes);
}

Status write_key(const net::Identity& identity, const std::string& path) {
  std::error_code ec;
  fs::remove(path, ec);
  if (ec) return Status::Error("cannot remove old key " + quote(path) + ": " + ec.message());
  return identity.save(path);
}

// `data` is the [data] source: shards = "<dir>", or provider and provider_hash.
std::string run_toml(const LocalSwarmOptions& o, const std::string& data) {
  std::ostringstream t;
  char lr[64];
  std::snprintf(lr, sizeof lr, "%.17g", o.lr);
  t << "# Written by tern's local swarm launcher (src/cli/local_swarm.h).\n"
    << "[run]\nname = " << swarm::toml_quote(o.name) << "\nseed = " << o.seed << "\n"
    << "[model]\npreset = " << swarm::toml_quote(o.preset) << "\n";
  if (o.vocab > 0) t << "vocab = " << o.vocab << "\n";
  t << "[data]\n"
    << data << "seq_len = " << o.seq_len << "\n"
    << "[optimizer]\nlr = " << lr << "\noverlap = " << (o.overlap ? "true" : "false") << "\n"
    << "[batch]\nbatches_per_round = " << o.batches_per_round
    << "\nsequences_per_batch = " << o.sequences_per_batch << "\n"
    << "[timing]\nwarmup_ms = " << o.warmup_ms << "\nround_train_ms = " << o.round_train_ms
    << "\nround_witness_ms = " << o.round_witness_ms << "\ncooldown_ms = " << o.cooldown_ms << "\n"
    << "[membership]\nmin_members = " << o.members << "\nmax_members = " << o.members
    << "\nwitnesses_per_round = " << std::min(o.members, o.witnesses_per_round)
    << "\nepochs = " << o.epochs << "\nrounds_per_epoch = " << o.rounds_per_epoch << "\n";
  return t.str();
}

std::string self_exe() {
  std::error_code ec;
  const fs::path p = fs::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("/proc/self/exe") : p.string();
}

std::string describe_wait_status(int wstatus) {
  if (WIFEXITED(wstatus)) return "exited with status " + std::to_string(WEXITSTATUS(wstatus));
  if (WIFSIGNALED(wstatus)) {
    const char* name = sigabbrev_np(WTERMSIG(wstatus));
    return "was killed by signal " + std::to_string(WTERMSIG(wstatus)) +
           (name != nullptr ? std::string(" (SIG") + name + ")" : std::string());
  }
  return "ended with wait status " + std::to_string(wstatus);
}

// Child::member of the processes that are not members.
constexpr int kCoordinator = -1;
constexpr int kDataServer = -2;

struct Child {
  std::string name;
  int member = kCoordinator;
  std::string log_path, out_path;
  pid_t pid = -1;
  int err_fd = -1;  // read end of the child's stderr pipe; -1 once at EOF
  bool reaped = false;
  int wstatus = 0;
  std::string pending;  // bytes after the last newline
  std::deque<std::string> tail;
  std::FILE* log = nullptr;
};

// Owns the children: whatever way the launcher is left, every child still
// running is killed and every child is reaped, and every fd is closed.
class Children {
 public:
  Children() = default;
  Children(const Children&) = delete;
  Children& operator=(const Children&) = delete;
  ~Children() {
    kill_all();
    for (Child& c : list) {
      if (c.err_fd >= 0) close(c.err_fd);
      if (c.log != nullptr) std::fclose(c.log);
    }
  }

  void kill_all() {
    for (Child& c : list) {
      if (c.pid > 0 && !c.reaped) kill(c.pid, SIGKILL);
    }
    for (Child& c : list) {
      if (c.pid > 0 && !c.reaped) {
        while (waitpid(c.pid, &c.wstatus, 0) < 0 && errno == EINTR) {
        }
        c.reaped = true;
      }
    }
  }

  std::deque<Child> list;  // deque: pointers stay valid as members are added
};

// Starts `args` (args[0] is the executable) with stdin from /dev/null, stdout
// to c.out_path and stderr into a pipe that c.err_fd reads.
Status spawn(Child& c, const std::vector<std::string>& args) {
  c.log = std::fopen(c.log_path.c_str(), "we");  // e: O_CLOEXEC
  if (c.log == nullptr) {
    return Status::Error("cannot create " + quote(c.log_path) + ": " + std::strerror(errno));
  }
  const int out_fd = open(c.out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out_fd < 0) {
    return Status::Error("cannot create " + quote(c.out_path) + ": " + std::strerror(errno));
  }
  const int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  int pipe_fds[2];
  if (null_fd < 0 || pipe2(pipe_fds, O_CLOEXEC) != 0) {
    const std::string why = std::strerror(errno);
    close(out_fd);
    if (null_fd >= 0) close(null_fd);
    return Status::Error("cannot set up the pipes of " + c.name + ": " + why);
  }
  std::vector<std::string> owned = args;
  std::vector<char*> argv;
  for (std::string& a : owned) argv.push_back(a.data());
  argv.push_back(nullptr);
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid == 0) {
    // Only async-signal-safe calls from here on.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    dup2(null_fd, STDIN_FILENO);
    dup2(out_fd, STDOUT_FILENO);
    dup2(pipe_fds[1], STDERR_FILENO);
    execv(argv[0], argv.data());
    static const char kMessage[] = "local swarm: exec of the tern binary failed\n";
    [[maybe_unused]] const ssize_t written = write(STDERR_FILENO, kMessage, sizeof kMessage - 1);
    _exit(127);
  }
  const std::string why = pid < 0 ? std::strerror(errno) : "";
  close(out_fd);
  close(null_fd);
  close(pipe_fds[1]);
  if (pid < 0) {
    close(pipe_fds[0]);
    return Status::Error("cannot start " + c.name + ": fork failed: " + why);
  }
  c.pid = pid;
  c.err_fd = pipe_fds[0];
  fcntl(c.err_fd, F_SETFL, fcntl(c.err_fd, F_GETFL) | O_NONBLOCK);
  return Status::Ok();
}

std::string tail_of(const Child& c) {
  std::string out = "; last lines of " + c.log_path + ":";
  if (c.tail.empty()) return out + " (empty)";
  for (const std::string& line : c.tail) out += "\n  " + line;
  return out;
}

Result<nlohmann::json> read_report(const Child& c) {
  std::ifstream in(c.out_path, std::ios::binary);
  if (!in) return Status::Error(c.name + ": cannot read its report " + quote(c.out_path));
  std::string line, last;
  while (std::getline(in, line)) {
    if (!line.empty()) last = line;
  }
  nlohmann::json report = nlohmann::json::parse(last, nullptr, /*allow_exceptions=*/false);
  if (report.is_discarded() || !report.is_object()) {
    return Status::Error(c.name + " exited 0 but printed no JSON report in " + quote(c.out_path) +
                         " (last line: " + quote(last) + ")" + tail_of(c));
  }
  return report;
}

Status validate(const LocalSwarmOptions& o) {
  if (o.dir.empty()) return Status::Error("no working directory given");
  if (o.shards.empty()) return Status::Error("no shard directory given");
  if (o.members < 1 || o.members > 64) {
    return Status::Error("members = " + std::to_string(o.members) + ": must be 1 to 64");
  }
  if (o.witnesses_per_round < 1) {
    return Status::Error("witnesses_per_round = " + std::to_string(o.witnesses_per_round) +
                         ": must be at least 1");
  }
  if (o.threads_per_member < 0 || o.threads_per_member > 1024) {
    return Status::Error("threads_per_member = " + std::to_string(o.threads_per_member) +
                         ": must be 0 to 1024");
  }
  if (o.time_limit_s == 0) return Status::Error("time_limit_s = 0: must be positive");
  if (o.start_timeout_s == 0) return Status::Error("start_timeout_s = 0: must be positive");
  return Status::Ok();
}

// The address in the coordinator's "... listening on HOST:PORT[, ...]" line.
std::string listening_address(const std::string& line) {
  const std::string marker = "listening on ";
  const size_t at = line.find(marker);
  if (at == std::string::npos) return "";
  const size_t begin = at + marker.size();
  size_t end = begin;
  while (end < line.size() && line[end] != ',' && line[end] != ' ') ++end;
  return line.substr(begin, end - begin);
}

class Launcher {
 public:
  Launcher(const LocalSwarmOptions& o, const std::function<void(const LocalSwarmEvent&)>& on_event)
      : o_(o), on_event_(on_event) {}

  Result<LocalSwarmResult> run() {
    TERN_RETURN_IF_ERROR(validate(o_));
    std::error_code ec;
    fs::create_directories(o_.dir, ec);
    if (ec) return Status::Error("cannot create " + quote(o_.dir) + ": " + ec.message());
    dir_ = fs::absolute(o_.dir).lexically_normal();
    const std::string shards = fs::absolute(o_.shards).lexically_normal().string();
    exe_ = o_.tern_exe.empty() ? self_exe() : o_.tern_exe;
    if (access(exe_.c_str(), X_OK) != 0) {
      return Status::Error("the tern binary " + quote(exe_) +
                           " is not executable: " + std::strerror(errno));
    }

    const net::Identity coordinator = derived_identity(o_.seed, "coordinator");
    coordinator_id_ = coordinator.id().to_string();
    TERN_RETURN_IF_ERROR(write_key(coordinator, path("coordinator.key")));
    for (int i = 0; i < o_.members; ++i) {
      const std::string name = "member-" + std::to_string(i);
      TERN_RETURN_IF_ERROR(write_key(derived_identity(o_.seed, name), path(name + ".key")));
    }
    std::string data_source = "shards = " + swarm::toml_quote(shards) + "\n";
    if (o_.data_server) {
      // The provider's URL is part of the config, which the provider itself
      // reads: so its port is chosen here, before anything starts.
      TERN_ASSIGN_OR_RETURN(const uint16_t port, net::free_loopback_port());
      data_listen_ = "127.0.0.1:" + std::to_string(port);
      TERN_ASSIGN_OR_RETURN(const std::string manifest, swarm::provider_manifest_for(shards));
      data_source = "provider = " + swarm::toml_quote("http://" + data_listen_) +
                    "\nprovider_hash = \"" + swarm::provider_manifest_hash(manifest) + "\"\n";
    }
    {
      std::ofstream config(path("run.toml"), std::ios::binary | std::ios::trunc);
      config << run_toml(o_, data_source);
      config.flush();
      if (!config) return Status::Error("cannot write " + quote(path("run.toml")));
    }
    for (const fs::directory_entry& e : fs::directory_iterator(dir_, ec)) {
      if (e.path().filename().string().starts_with("run.db")) fs::remove(e.path(), ec);
    }
    shards_ = shards;

    start_ = Clock::now();
    TERN_RETURN_IF_ERROR(start_coordinator());
    if (o_.data_server) TERN_RETURN_IF_ERROR(start_data_server());
    TERN_RETURN_IF_ERROR(supervise());
    const double wall_s = std::chrono::duration<double>(Clock::now() - start_).count();

    LocalSwarmResult result;
    result.coordinator_address = address_;
    result.wall_s = wall_s;
    TERN_ASSIGN_OR_RETURN(result.coordinator, read_report(children_.list.front()));
    result.weight_hashes_equal = true;
    std::string first_hash;
    for (const Child& c : children_.list) {
      if (c.member == kDataServer) {
        TERN_ASSIGN_OR_RETURN(result.data_server, read_report(c));
        continue;
      }
      if (c.member < 0) continue;
      TERN_ASSIGN_OR_RETURN(nlohmann::json report, read_report(c));
      const auto hash = report.find("weight_hash");
      const std::string h =
          hash != report.end() && hash->is_string() ? hash->get<std::string>() : "";
      if (result.members.empty()) first_hash = h;
      if (h.empty() || h != first_hash) result.weight_hashes_equal = false;
      result.members.push_back(std::move(report));
    }
    return result;
  }

 private:
  std::string path(const std::string& name) const { return (dir_ / name).string(); }

  Child& add_child(const std::string& name, int member) {
    Child& c = children_.list.emplace_back();
    c.name = name;
    c.member = member;
    c.log_path = path(name + ".log");
    c.out_path = path(name + ".out");
    return c;
  }

  Status start_coordinator() {
    Child& c = add_child("coordinator", -1);
    return spawn(c, {exe_, "--threads", "1", "coordinator", "--config", path("run.toml"), "--state",
                     path("run.db"), "--key", path("coordinator.key"), "--listen", "127.0.0.1:0",
                     "--linger-ms", std::to_string(o_.linger_ms)});
  }

  Status start_data_server() {
    Child& c = add_child("data-server", kDataServer);
    return spawn(
        c, {exe_, "--threads", "1", "data", "serve", "--dir", shards_, "--config", path("run.toml"),
            "--coordinator-id", coordinator_id_, "--listen", data_listen_});
  }

  Status start_members() {
    for (int i = 0; i < o_.members; ++i) {
      const std::string name = "member-" + std::to_string(i);
      Child& c = add_child(name, i);
      std::vector<std::string> args = {exe_};
      if (o_.threads_per_member > 0) {
        args.insert(args.end(), {"--threads", std::to_string(o_.threads_per_member)});
      }
      args.insert(args.end(),
                  {"join", "--config", path("run.toml"), "--coordinator", address_,
                   "--coordinator-id", coordinator_id_, "--key", path(name + ".key"), "--listen",
                   "127.0.0.1:0", "--connect-timeout-ms", std::to_string(o_.connect_timeout_ms)});
      if (!o_.data_server) args.insert(args.end(), {"--shards", shards_});
      if (o_.upload_cap > 0)
        args.insert(args.end(), {"--upload-cap", std::to_string(o_.upload_cap)});
      if (i == 0 && !o_.checkpoint.empty()) {
        args.insert(args.end(), {"--checkpoint", fs::absolute(o_.checkpoint).string()});
      }
      TERN_RETURN_IF_ERROR(spawn(c, args));
    }
    members_started_ = true;
    return Status::Ok();
  }

  void handle_line(Child& c, std::string line) {
    if (c.log != nullptr) {
      std::fputs(line.c_str(), c.log);
      std::fputc('\n', c.log);
    }
    c.tail.push_back(line);
    if (c.tail.size() > kTailLines) c.tail.pop_front();
    if (c.member == kCoordinator && address_.empty()) address_ = listening_address(line);
    if (c.member == kDataServer && !listening_address(line).empty()) data_listening_ = true;
    if (on_event_) {
      LocalSwarmEvent event;
      event.member = c.member;
      event.name = c.name;
      event.line = std::move(line);
      if (c.member >= 0) parse_join_progress(event.line, event);
      on_event_(event);
    }
  }

  // Reads what is available on c's pipe; at EOF flushes a last unterminated
  // line and closes the pipe.
  void drain(Child& c) {
    char buffer[8192];
    while (c.err_fd >= 0) {
      const ssize_t got = read(c.err_fd, buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (got <= 0) {  // EOF or an error: nothing more will come
        close(c.err_fd);
        c.err_fd = -1;
        if (!c.pending.empty()) handle_line(c, std::exchange(c.pending, std::string()));
        if (c.log != nullptr) std::fflush(c.log);
        return;
      }
      c.pending.append(buffer, static_cast<size_t>(got));
      size_t start = 0;
      for (size_t nl; (nl = c.pending.find('\n', start)) != std::string::npos; start = nl + 1) {
        handle_line(c, c.pending.substr(start, nl - start));
      }
      c.pending.erase(0, start);
      if (c.pending.size() > kMaxLineBytes) handle_line(c, std::exchange(c.pending, std::string()));
    }
  }

  Status failure(const std::string& what) {
    children_.kill_all();
    for (Child& c : children_.list) {
      if (c.log != nullptr) std::fflush(c.log);
    }
    return Status::Error(what);
  }

  double elapsed_s() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

  Status supervise() {
    std::optional<Clock::time_point> coordinator_done;
    while (true) {
      std::vector<pollfd> fds;
      std::vector<Child*> owners;
      for (Child& c : children_.list) {
        if (c.err_fd >= 0) {
          fds.push_back({c.err_fd, POLLIN, 0});
          owners.push_back(&c);
        }
      }
      if (!fds.empty()) {
        const int ready = poll(fds.data(), fds.size(), 100);
        if (ready < 0 && errno != EINTR) {
          return failure(std::string("poll failed: ") + std::strerror(errno));
        }
        for (size_t i = 0; ready > 0 && i < fds.size(); ++i) {
          if (fds[i].revents != 0) drain(*owners[i]);
        }
      } else {
        usleep(20'000);
      }
      if (!members_started_ && !address_.empty() && (data_listening_ || !o_.data_server)) {
        TERN_RETURN_IF_ERROR(start_members());
      }

      bool all_done = true;
      for (Child& c : children_.list) {
        if (!c.reaped) {
          const pid_t got = waitpid(c.pid, &c.wstatus, WNOHANG);
          if (got == c.pid) {
            c.reaped = true;
          } else if (got < 0 && errno != EINTR) {
            return failure("waitpid of " + c.name + " failed: " + std::strerror(errno));
          }
        }
        if (c.reaped) {
          const bool ok = WIFEXITED(c.wstatus) && WEXITSTATUS(c.wstatus) == 0;
          if (!ok || c.err_fd >= 0) drain(c);  // it exited: the rest is in the pipe
          if (!ok) {
            return failure(c.name + " (pid " + std::to_string(c.pid) + ") " +
                           describe_wait_status(c.wstatus) + " after " +
                           std::to_string(static_cast<int>(elapsed_s())) + " s" + tail_of(c));
          }
          if (c.member < 0 && !members_started_) {
            return failure(c.name + " exited before the members started" + tail_of(c));
          }
          if (c.member == kCoordinator && !coordinator_done) coordinator_done = Clock::now();
        }
        all_done = all_done && c.reaped && c.err_fd < 0;
      }
      if (all_done && members_started_) return Status::Ok();
      stop_data_server_when_the_run_is_over();

      std::string running;
      const Child* first_running = nullptr;
      for (const Child& c : children_.list) {
        if (c.reaped || c.member == kDataServer) continue;
        running += (running.empty() ? "" : ", ") + c.name;
        if (first_running == nullptr) first_running = &c;
      }
      if (first_running == nullptr) continue;
      if (elapsed_s() > static_cast<double>(o_.time_limit_s)) {
        return failure("time limit of " + std::to_string(o_.time_limit_s) +
                       " s passed; still running: " + running + tail_of(*first_running));
      }
      if (!members_started_ && elapsed_s() > static_cast<double>(o_.start_timeout_s)) {
        const Child& waited = address_.empty() ? children_.list.front() : children_.list.back();
        return failure(waited.name + " did not listen within " +
                       std::to_string(o_.start_timeout_s) + " s" + tail_of(waited));
      }
      if (coordinator_done &&
          std::chrono::duration<double>(Clock::now() - *coordinator_done).count() >
              kMembersAfterCoordinatorS) {
        return failure("the coordinator finished, but " + running + " still ran " +
                       std::to_string(static_cast<int>(kMembersAfterCoordinatorS)) + " s later" +
                       tail_of(*first_running));
      }
    }
  }

  // The data server serves until told to stop: once the coordinator and
  // every member have exited, it gets SIGTERM (and then reports).
  void stop_data_server_when_the_run_is_over() {
    Child* server = nullptr;
    for (Child& c : children_.list) {
      if (c.member == kDataServer) {
        server = &c;
      } else if (!c.reaped) {
        return;
      }
    }
    if (server != nullptr && !server->reaped && !data_server_stopped_) {
      kill(server->pid, SIGTERM);
      data_server_stopped_ = true;
    }
  }

  const LocalSwarmOptions& o_;
  const std::function<void(const LocalSwarmEvent&)>& on_event_;
  fs::path dir_;
  std::string exe_, shards_, coordinator_id_, address_, data_listen_;
  bool data_listening_ = false, data_server_stopped_ = false;
  Clock::time_point start_;
  bool members_started_ = false;
  Children children_;
};

}  // namespace
}  // namespace local_swarm_cmd

bool parse_join_progress(const std::string& line, LocalSwarmEvent& event) {
  uint64_t round = 0, epoch = 0, step = 0, members = 0, uploaded = 0, downloaded = 0;
  char loss[64] = {0};
  int consumed = 0;
  const int n =
      std::sscanf(line.c_str(),
                  "join: round %" SCNu64 " epoch %" SCNu64 " step %" SCNu64 " members %" SCNu64
                  " loss %63s uploaded %" SCNu64 " B downloaded %" SCNu64 " B%n",
                  &round, &epoch, &step, &members, loss, &uploaded, &downloaded, &consumed);
  if (n != 7 || consumed == 0) return false;
  char* end = nullptr;
  const double value = std::strtod(loss, &end);
  if (end == loss || *end != '\0') return false;
  event.progress = true;
  event.round = round;
  event.epoch = epoch;
  event.step = step;
  event.members = members;
  event.loss = value;
  event.uploaded = uploaded;
  event.downloaded = downloaded;
  return true;
}

Result<LocalSwarmResult> run_local_swarm(
    const LocalSwarmOptions& options, const std::function<void(const LocalSwarmEvent&)>& on_event) {
  local_swarm_cmd::Launcher launcher(options, on_event);
  Result<LocalSwarmResult> result = launcher.run();
  if (!result.ok()) return result.status().with_context("local swarm in " + options.dir);
  return result;
}

}  // namespace tern::cli
