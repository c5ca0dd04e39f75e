// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/run_db.hpp"

#include <fmt/format.h>
#include <sqlite3.h>

#include <algorithm>
#include <concepts>
#include <iterator>
#include <limits>
#include <memory>
#include <mutex>
#include <string_view>
#include <utility>

namespace na64::daq {

namespace {

// Files are named with six digits (run_files.hpp), so no run may pass this.
constexpr std::int64_t kMaxRunNumber = 999999;
constexpr int kBusyTimeoutMs = 5000;

// The version this program writes and reads, in PRAGMA user_version. A new
// file gets kSchema (version 1) and then every upgrade in kUpgrades, so that
// a new file and an upgraded one are the same; a file of a version between
// them is upgraded, any other version is refused.
constexpr int kSchemaVersion = 2;

// The per-line columns follow trigger::TriggerLine: invisible, beam, random.
static_assert(trigger::kNumLines == 3, "the spills table has one column per trigger line");

constexpr const char* kSchema = R"sql(
CREATE TABLE runs (
  number        INTEGER PRIMARY KEY CHECK (number BETWEEN 1 AND 999999),
  start_unix_ms INTEGER NOT NULL,
  stop_unix_ms  INTEGER NOT NULL DEFAULT 0,
  comment       TEXT NOT NULL,
  config_hash   TEXT NOT NULL,
  config_text   TEXT NOT NULL,
  ended         TEXT NOT NULL DEFAULT ''
);
CREATE TABLE run_counter (
  id          INTEGER PRIMARY KEY CHECK (id = 0),
  last_number INTEGER NOT NULL
);
INSERT INTO run_counter (id, last_number) VALUES (0, 0);
CREATE TABLE run_comments (
  id      INTEGER PRIMARY KEY,
  run     INTEGER NOT NULL REFERENCES runs (number),
  unix_ms INTEGER NOT NULL,
  text    TEXT NOT NULL
);
CREATE INDEX run_comments_by_run ON run_comments (run, id);
CREATE TABLE spills (
  run                       INTEGER NOT NULL REFERENCES runs (number),
  spill                     INTEGER NOT NULL,
  threshold_set             INTEGER NOT NULL,
  particles                 INTEGER NOT NULL,
  built                     INTEGER NOT NULL,
  incomplete                INTEGER NOT NULL,
  accepted_invisible        INTEGER NOT NULL,
  accepted_beam             INTEGER NOT NULL,
  accepted_random           INTEGER NOT NULL,
  accepted_events           INTEGER NOT NULL,
  written                   INTEGER NOT NULL,
  bytes                     INTEGER NOT NULL,
  decode_errors             INTEGER NOT NULL,
  seconds                   REAL NOT NULL,
  dead_time                 REAL NOT NULL,
  shadow_set                INTEGER NOT NULL,
  shadow_accepted_invisible INTEGER NOT NULL,
  shadow_accepted_beam      INTEGER NOT NULL,
  shadow_accepted_random    INTEGER NOT NULL,
  shadow_overlap_invisible  INTEGER NOT NULL,
  shadow_overlap_beam       INTEGER NOT NULL,
  shadow_overlap_random     INTEGER NOT NULL,
  PRIMARY KEY (run, spill)
);
CREATE TABLE threshold_sets (
  id                INTEGER PRIMARY KEY AUTOINCREMENT,
  created_unix_ms   INTEGER NOT NULL,
  author            TEXT NOT NULL,
  comment           TEXT NOT NULL,
  ecal_max_gev      REAL NOT NULL,
  preshower_min_gev REAL NOT NULL,
  hcal_max_gev      REAL NOT NULL,
  srd_min_gev       REAL NOT NULL,
  srd_max_gev       REAL NOT NULL,
  veto_max_gev      REAL NOT NULL,
  beam_prescale     INTEGER NOT NULL,
  random_period     INTEGER NOT NULL
);
CREATE TABLE threshold_activations (
  id          INTEGER PRIMARY KEY,
  run         INTEGER NOT NULL REFERENCES runs (number),
  first_spill INTEGER NOT NULL,
  set_id      INTEGER NOT NULL REFERENCES threshold_sets (id),
  shadow      INTEGER NOT NULL CHECK (shadow IN (0, 1))
);
CREATE INDEX threshold_activations_by_run ON threshold_activations (run, first_spill, id);
PRAGMA user_version = 1;
)sql";

// kUpgrades[v - 1] takes a file from version v to v + 1.
constexpr const char* kUpgrades[] = {
    // 2: the data-quality verdict of each spill (reasons one per line), and
    // the monitor's alarms.
    R"sql(
ALTER TABLE spills ADD COLUMN verdict TEXT NOT NULL DEFAULT '';
ALTER TABLE spills ADD COLUMN verdict_reasons TEXT NOT NULL DEFAULT '';
CREATE TABLE alarms (
  id                   INTEGER PRIMARY KEY AUTOINCREMENT,
  run                  INTEGER NOT NULL,
  condition            TEXT NOT NULL,
  level                TEXT NOT NULL CHECK (level IN ('warning', 'error')),
  text                 TEXT NOT NULL,
  first_spill          INTEGER NOT NULL,
  last_spill           INTEGER NOT NULL,
  raised_unix_ms       INTEGER NOT NULL,
  last_unix_ms         INTEGER NOT NULL,
  acknowledged_by      TEXT NOT NULL DEFAULT '',
  acknowledged_unix_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX alarms_by_acknowledgement ON alarms (acknowledged_unix_ms, id);
PRAGMA user_version = 2;
)sql",
};
static_assert(std::size(kUpgrades) == kSchemaVersion - 1, "one upgrade per version after the first");

constexpr const char* kRunColumns =
    "number, start_unix_ms, stop_unix_ms, comment, config_hash, config_text, ended";
constexpr const char* kSpillColumns =
    "run, spill, threshold_set, particles, built, incomplete, "
    "accepted_invisible, accepted_beam, accepted_random, accepted_events, written, bytes, decode_errors, "
    "seconds, dead_time, shadow_set, "
    "shadow_accepted_invisible, shadow_accepted_beam, shadow_accepted_random, "
    "shadow_overlap_invisible, shadow_overlap_beam, shadow_overlap_random, verdict, verdict_reasons";
constexpr const char* kAlarmColumns =
    "id, run, condition, level, text, first_spill, last_spill, raised_unix_ms, last_unix_ms, acknowledged_by, "
    "acknowledged_unix_ms";
constexpr const char* kThresholdSetColumns =
    "id, created_unix_ms, author, comment, ecal_max_gev, preshower_min_gev, hcal_max_gev, "
    "srd_min_gev, srd_max_gev, veto_max_gev, beam_prescale, random_period";

// One connection and the file it was opened on: every error names both.
class Connection {
 public:
  explicit Connection(std::filesystem::path file) : file_(std::move(file)) {
    sqlite3* db = nullptr;
    const int rc = ::sqlite3_open_v2(file_.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr);
    db_.reset(db);  // even a failed open may hand back a handle, which must be closed
    if (rc != SQLITE_OK) {
      throw DatabaseError(fmt::format("run database {}: cannot open: {}", file_.string(),
                                      db != nullptr ? ::sqlite3_errmsg(db) : ::sqlite3_errstr(rc)));
    }
    ::sqlite3_extended_result_codes(db, 1);
    ::sqlite3_busy_timeout(db, kBusyTimeoutMs);
  }

  [[nodiscard]] sqlite3* handle() const noexcept { return db_.get(); }
  [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }

  /// An SQLite call failed during `operation`.
  [[noreturn]] void fail(std::string_view operation) const {
    throw DatabaseError(
        fmt::format("run database {}: {}: {}", file_.string(), operation, ::sqlite3_errmsg(handle())));
  }
  /// The call is refused for a reason of ours, not SQLite's.
  [[noreturn]] void refuse(std::string_view operation, std::string_view why) const {
    throw DatabaseError(fmt::format("run database {}: {}: {}", file_.string(), operation, why));
  }
  /// Statements without values only (schema, transaction control).
  void exec(const char* sql, std::string_view operation) const {
    if (::sqlite3_exec(handle(), sql, nullptr, nullptr, nullptr) != SQLITE_OK) fail(operation);
  }

 private:
  struct Close {
    void operator()(sqlite3* db) const noexcept { ::sqlite3_close_v2(db); }
  };
  std::filesystem::path file_;
  std::unique_ptr<sqlite3, Close> db_;
};

// A prepared statement whose parameters are bound in order, from 1.
class Statement {
 public:
  Statement(const Connection& c, std::string_view sql, std::string_view operation)
      : c_(c), operation_(operation) {
    if (::sqlite3_prepare_v2(c_.handle(), sql.data(), static_cast<int>(sql.size()), &stmt_, nullptr) != SQLITE_OK) {
      c_.fail(operation_);
    }
  }
  ~Statement() { ::sqlite3_finalize(stmt_); }
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Unsigned 64-bit counters are stored as their two's-complement int64,
  // which reads back to the same value.
  template <std::integral T>
  Statement& bind(T value) {
    return check(::sqlite3_bind_int64(stmt_, ++index_, static_cast<sqlite3_int64>(value)));
  }
  Statement& bind(double value) { return check(::sqlite3_bind_double(stmt_, ++index_, value)); }
  Statement& bind(std::string_view value) {
    return check(::sqlite3_bind_text64(stmt_, ++index_, value.data() != nullptr ? value.data() : "", value.size(),
                                        SQLITE_TRANSIENT, SQLITE_UTF8));
  }

  /// True while there is a row to read.
  bool step() {
    const int rc = ::sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    c_.fail(operation_);
  }
  /// For statements that return no rows.
  void run() {
    if (step()) c_.refuse(operation_, "statement unexpectedly returned a row");
  }

  [[nodiscard]] std::int64_t i64(int column) const { return ::sqlite3_column_int64(stmt_, column); }
  [[nodiscard]] std::uint64_t u64(int column) const { return static_cast<std::uint64_t>(i64(column)); }
  [[nodiscard]] std::uint32_t u32(int column) const { return static_cast<std::uint32_t>(i64(column)); }
  [[nodiscard]] double real(int column) const { return ::sqlite3_column_double(stmt_, column); }
  [[nodiscard]] std::string text(int column) const {
    const auto* p = ::sqlite3_column_text(stmt_, column);
    if (p == nullptr) return {};
    return {reinterpret_cast<const char*>(p), static_cast<std::size_t>(::sqlite3_column_bytes(stmt_, column))};
  }

 private:
  Statement& check(int rc) {
    if (rc != SQLITE_OK) c_.fail(operation_);
    return *this;
  }

  const Connection& c_;
  std::string operation_;
  sqlite3_stmt* stmt_ = nullptr;
  int index_ = 0;
};

// Rolls back unless committed. Writers take the write lock at BEGIN
// (IMMEDIATE), so a read-then-write such as run numbering cannot interleave
// with another writer, and lock waits happen at BEGIN under the busy timeout.
class Transaction {
 public:
  enum class Mode { Read, Write };
  Transaction(const Connection& c, Mode mode, std::string_view operation) : c_(c), operation_(operation) {
    c_.exec(mode == Mode::Write ? "BEGIN IMMEDIATE" : "BEGIN", operation_);
  }
  ~Transaction() {
    // SQLite rolls back by itself after some errors (disk full, I/O); a
    // second ROLLBACK would only fail.
    if (!committed_ && ::sqlite3_get_autocommit(c_.handle()) == 0) {
      ::sqlite3_exec(c_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
    }
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;

  void commit() {
    c_.exec("COMMIT", operation_);
    committed_ = true;
  }

 private:
  const Connection& c_;
  std::string operation_;
  bool committed_ = false;
};

int schema_version(const Connection& c) {
  Statement s(c, "PRAGMA user_version", "read schema version");
  if (!s.step()) c.refuse("read schema version", "no result");
  return static_cast<int>(s.i64(0));
}

// Refuses a file of a version this program cannot read or upgrade, or one at
// version 0 (no schema of ours) that already holds tables of some other
// program.
void check_schema_version(const Connection& c) {
  const int version = schema_version(c);
  if (version >= 1 && version <= kSchemaVersion) return;
  if (version == 0) {
    Statement s(c, "SELECT count(*) FROM sqlite_master", "read schema");
    if (!s.step()) c.refuse("read schema", "no result");
    if (s.i64(0) == 0) return;
  }
  throw DatabaseError(fmt::format("run database {} has schema version {}, this program reads and writes version {}",
                                  c.file().string(), version, kSchemaVersion));
}

// Reasons are stored one per line; a reason never holds a line break.
std::string join_lines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) {
    if (!out.empty()) out += '\n';
    for (const char ch : l) out += ch == '\n' || ch == '\r' ? ' ' : ch;
  }
  return out;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t eol = std::min(text.find('\n', pos), text.size());
    out.push_back(text.substr(pos, eol - pos));
    pos = eol + 1;
  }
  return out;
}

AlarmRecord read_alarm(const Statement& s) {
  AlarmRecord a;
  a.id = s.u64(0);
  a.run = s.u32(1);
  a.condition = s.text(2);
  a.level = s.text(3);
  a.text = s.text(4);
  a.first_spill = s.u32(5);
  a.last_spill = s.u32(6);
  a.raised_unix_ms = s.i64(7);
  a.last_unix_ms = s.i64(8);
  a.acknowledged_by = s.text(9);
  a.acknowledged_unix_ms = s.i64(10);
  return a;
}

bool run_exists(const Connection& c, std::uint32_t run, std::string_view operation) {
  Statement s(c, "SELECT 1 FROM runs WHERE number = ?", operation);
  s.bind(run);
  return s.step();
}

RunRecord read_run(const Statement& s) {
  RunRecord r;
  r.number = s.u32(0);
  r.start_unix_ms = s.i64(1);
  r.stop_unix_ms = s.i64(2);
  r.comment = s.text(3);
  r.config_hash = s.text(4);
  r.config_text = s.text(5);
  r.ended = s.text(6);
  return r;
}

void read_comments(const Connection& c, RunRecord& r) {
  const std::string operation = fmt::format("read comments of run {}", r.number);
  Statement s(c, "SELECT text FROM run_comments WHERE run = ? ORDER BY id", operation);
  s.bind(r.number);
  while (s.step()) r.comments.push_back(s.text(0));
}

ThresholdSetRecord read_threshold_set(const Statement& s) {
  ThresholdSetRecord r;
  r.id = s.u32(0);
  r.created_unix_ms = s.i64(1);
  r.author = s.text(2);
  r.comment = s.text(3);
  // Stored as REAL (double), which holds every float exactly.
  r.set.ecal_max_gev = static_cast<float>(s.real(4));
  r.set.preshower_min_gev = static_cast<float>(s.real(5));
  r.set.hcal_max_gev = static_cast<float>(s.real(6));
  r.set.srd_min_gev = static_cast<float>(s.real(7));
  r.set.srd_max_gev = static_cast<float>(s.real(8));
  r.set.veto_max_gev = static_cast<float>(s.real(9));
  r.set.beam_prescale = s.u32(10);
  r.set.random_period = s.u32(11);
  return r;
}

}  // namespace

struct RunDatabase::Impl {
  explicit Impl(const std::filesystem::path& file) : c(file) {}

  Connection c;
  // One connection for every thread: all calls hold this.
  std::mutex mutex;
};

RunDatabase::RunDatabase(const std::filesystem::path& file) : impl_(std::make_unique<Impl>(file)) {
  const Connection& c = impl_->c;

  // Look at the version before anything changes the file, so that a
  // database of another program or version is left exactly as it was. A
  // file that is not a database fails here ("file is not a database").
  check_schema_version(c);
  {
    Statement s(c, "PRAGMA journal_mode = WAL", "set WAL journal mode");
    if (!s.step()) c.refuse("set WAL journal mode", "no result");
    const std::string mode = s.text(0);
    if (mode != "wal") c.refuse("set WAL journal mode", fmt::format("journal mode stayed \"{}\"", mode));
  }
  c.exec("PRAGMA synchronous = FULL", "set synchronous=FULL");
  c.exec("PRAGMA foreign_keys = ON", "enable foreign keys");

  Transaction t(c, Transaction::Mode::Write, "open");
  // Again under the write lock: another process may have created the schema
  // (or changed it) since the first look.
  check_schema_version(c);
  if (schema_version(c) == 0) c.exec(kSchema, "create schema");
  for (int v = schema_version(c); v < kSchemaVersion; ++v) {
    c.exec(kUpgrades[v - 1], fmt::format("upgrade schema from version {} to {}", v, v + 1));
  }
  // A run still without an end was left by a process that died. This
  // assumes one daq process at a time writes runs to a database file.
  Statement(c, "UPDATE runs SET ended = 'interrupted' WHERE ended = ''", "mark interrupted runs").run();
  t.commit();
}

RunDatabase::~RunDatabase() = default;

const std::filesystem::path& RunDatabase::file() const noexcept { return impl_->c.file(); }

std::uint32_t RunDatabase::begin_run(std::uint32_t at_least, std::int64_t start_unix_ms, const std::string& comment,
                                     const std::string& config_hash, const std::string& config_text) {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  constexpr std::string_view kOp = "begin run";

  Transaction t(c, Transaction::Mode::Write, kOp);
  // run_counter remembers the last number handed out even if its run row
  // were ever gone; max(number) covers rows written without the counter.
  std::int64_t last = 0;
  {
    Statement s(c, "SELECT max((SELECT last_number FROM run_counter WHERE id = 0), "
                   "(SELECT coalesce(max(number), 0) FROM runs))", kOp);
    if (!s.step()) c.refuse(kOp, "no result");
    last = s.i64(0);
  }
  const std::int64_t number = std::max<std::int64_t>(at_least, last + 1);
  if (number > kMaxRunNumber) {
    c.refuse(kOp, fmt::format("run number {} is above {}, the largest that six-digit file names allow", number,
                              kMaxRunNumber));
  }
  Statement(c,
            "INSERT INTO runs (number, start_unix_ms, stop_unix_ms, comment, config_hash, config_text, ended) "
            "VALUES (?, ?, 0, ?, ?, ?, '')",
            kOp)
      .bind(number)
      .bind(start_unix_ms)
      .bind(comment)
      .bind(config_hash)
      .bind(config_text)
      .run();
  Statement(c, "UPDATE run_counter SET last_number = ? WHERE id = 0", kOp).bind(number).run();
  if (::sqlite3_changes(c.handle()) != 1) c.refuse(kOp, "the run_counter row is missing");
  t.commit();
  return static_cast<std::uint32_t>(number);
}

void RunDatabase::end_run(std::uint32_t run, std::int64_t stop_unix_ms, const std::string& how) {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("end run {}", run);
  // "" means running: a run ended that way would later read as interrupted.
  if (how.empty()) c.refuse(op, "how the run ended must not be empty");

  Transaction t(c, Transaction::Mode::Write, op);
  {
    Statement s(c, "SELECT ended FROM runs WHERE number = ?", op);
    s.bind(run);
    if (!s.step()) c.refuse(op, fmt::format("run {} is unknown", run));
    if (const std::string ended = s.text(0); !ended.empty()) {
      c.refuse(op, fmt::format("run {} has already ended ({})", run, ended));
    }
  }
  Statement(c, "UPDATE runs SET stop_unix_ms = ?, ended = ? WHERE number = ?", op)
      .bind(stop_unix_ms)
      .bind(how)
      .bind(run)
      .run();
  t.commit();
}

void RunDatabase::add_comment(std::uint32_t run, std::int64_t unix_ms, const std::string& text) {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("add comment to run {}", run);

  Transaction t(c, Transaction::Mode::Write, op);
  if (!run_exists(c, run, op)) c.refuse(op, fmt::format("run {} is unknown", run));
  Statement(c, "INSERT INTO run_comments (run, unix_ms, text) VALUES (?, ?, ?)", op)
      .bind(run)
      .bind(unix_ms)
      .bind(text)
      .run();
  t.commit();
}

void RunDatabase::add_spill(const SpillRecord& r) {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("add spill {} of run {}", r.spill, r.run);

  Transaction t(c, Transaction::Mode::Write, op);
  if (!run_exists(c, r.run, op)) c.refuse(op, fmt::format("run {} is unknown", r.run));
  {
    Statement s(c, "SELECT 1 FROM spills WHERE run = ? AND spill = ?", op);
    s.bind(r.run).bind(r.spill);
    if (s.step()) c.refuse(op, fmt::format("spill {} of run {} is already recorded", r.spill, r.run));
  }
  Statement s(c,
              fmt::format("INSERT INTO spills ({}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                          "?, ?, ?, ?, ?)",
                          kSpillColumns),
              op);
  s.bind(r.run).bind(r.spill).bind(r.threshold_set).bind(r.particles).bind(r.built).bind(r.incomplete);
  for (const auto n : r.accepted) s.bind(n);
  s.bind(r.accepted_events).bind(r.written).bind(r.bytes).bind(r.decode_errors);
  s.bind(r.seconds).bind(r.dead_time).bind(r.shadow_set);
  for (const auto n : r.shadow_accepted) s.bind(n);
  for (const auto n : r.shadow_overlap) s.bind(n);
  s.bind(r.verdict).bind(join_lines(r.verdict_reasons));
  s.run();
  t.commit();
}

std::uint32_t RunDatabase::add_threshold_set(const trigger::ThresholdSet& set, std::int64_t created_unix_ms,
                                             const std::string& author, const std::string& comment) {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  constexpr std::string_view kOp = "add threshold set";

  Transaction t(c, Transaction::Mode::Write, kOp);
  Statement(c,
            fmt::format("INSERT INTO threshold_sets ({}) VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        kThresholdSetColumns),
            kOp)
      .bind(created_unix_ms)
      .bind(author)
      .bind(comment)
      .bind(double{set.ecal_max_gev})
      .bind(double{set.preshower_min_gev})
      .bind(double{set.hcal_max_gev})
      .bind(double{set.srd_min_gev})
      .bind(double{set.srd_max_gev})
      .bind(double{set.veto_max_gev})
      .bind(set.beam_prescale)
      .bind(set.random_period)
      .run();
  const std::int64_t id = ::sqlite3_last_insert_rowid(c.handle());
  if (id <= 0 || id > std::numeric_limits<std::uint32_t>::max()) {
    c.refuse(kOp, fmt::format("id {} does not fit a threshold-set id", id));
  }
  t.commit();
  return static_cast<std::uint32_t>(id);
}

void RunDatabase::add_threshold_activation(const ThresholdActivation& a) {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("activate threshold set {}{} in run {} from spill {}", a.set_id,
                                     a.shadow ? " as shadow" : "", a.run, a.first_spill);

  Transaction t(c, Transaction::Mode::Write, op);
  if (!run_exists(c, a.run, op)) c.refuse(op, fmt::format("run {} is unknown", a.run));
  {
    Statement s(c, "SELECT 1 FROM threshold_sets WHERE id = ?", op);
    s.bind(a.set_id);
    if (!s.step()) c.refuse(op, fmt::format("threshold set {} is unknown", a.set_id));
  }
  Statement(c, "INSERT INTO threshold_activations (run, first_spill, set_id, shadow) VALUES (?, ?, ?, ?)", op)
      .bind(a.run)
      .bind(a.first_spill)
      .bind(a.set_id)
      .bind(a.shadow)
      .run();
  t.commit();
}

std::optional<RunRecord> RunDatabase::run(std::uint32_t number) const {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("read run {}", number);

  // One read transaction: the run and its comments from the same snapshot.
  Transaction t(c, Transaction::Mode::Read, op);
  std::optional<RunRecord> r;
  {
    Statement s(c, fmt::format("SELECT {} FROM runs WHERE number = ?", kRunColumns), op);
    s.bind(number);
    if (s.step()) r = read_run(s);
  }
  if (r) read_comments(c, *r);
  t.commit();
  return r;
}

std::vector<RunRecord> RunDatabase::runs(std::size_t limit) const {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  constexpr std::string_view kOp = "read runs";

  Transaction t(c, Transaction::Mode::Read, kOp);
  std::vector<RunRecord> out;
  {
    Statement s(c, fmt::format("SELECT {} FROM runs ORDER BY number DESC LIMIT ?", kRunColumns), kOp);
    s.bind(static_cast<std::int64_t>(
        std::min<std::size_t>(limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()))));
    while (s.step()) out.push_back(read_run(s));
  }
  for (auto& r : out) read_comments(c, r);
  t.commit();
  return out;
}

std::vector<SpillRecord> RunDatabase::spills(std::uint32_t run) const {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("read spills of run {}", run);

  Statement s(c, fmt::format("SELECT {} FROM spills WHERE run = ? ORDER BY spill", kSpillColumns), op);
  s.bind(run);
  std::vector<SpillRecord> out;
  while (s.step()) {
    SpillRecord r;
    int col = 0;
    r.run = s.u32(col++);
    r.spill = s.u32(col++);
    r.threshold_set = s.u32(col++);
    r.particles = s.u64(col++);
    r.built = s.u64(col++);
    r.incomplete = s.u64(col++);
    for (auto& n : r.accepted) n = s.u64(col++);
    r.accepted_events = s.u64(col++);
    r.written = s.u64(col++);
    r.bytes = s.u64(col++);
    r.decode_errors = s.u64(col++);
    r.seconds = s.real(col++);
    r.dead_time = s.real(col++);
    r.shadow_set = s.u32(col++);
    for (auto& n : r.shadow_accepted) n = s.u64(col++);
    for (auto& n : r.shadow_overlap) n = s.u64(col++);
    r.verdict = s.text(col++);
    r.verdict_reasons = split_lines(s.text(col++));
    out.push_back(r);
  }
  return out;
}

std::optional<ThresholdSetRecord> RunDatabase::threshold_set(std::uint32_t id) const {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("read threshold set {}", id);

  Statement s(c, fmt::format("SELECT {} FROM threshold_sets WHERE id = ?", kThresholdSetColumns), op);
  s.bind(id);
  if (!s.step()) return std::nullopt;
  return read_threshold_set(s);
}

std::vector<ThresholdSetRecord> RunDatabase::threshold_sets() const {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;

  Statement s(c, fmt::format("SELECT {} FROM threshold_sets ORDER BY id", kThresholdSetColumns),
              "read threshold sets");
  std::vector<ThresholdSetRecord> out;
  while (s.step()) out.push_back(read_threshold_set(s));
  return out;
}

std::vector<ThresholdActivation> RunDatabase::threshold_history(std::uint32_t run) const {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("read threshold history of run {}", run);

  Statement s(c,
              "SELECT run, first_spill, set_id, shadow FROM threshold_activations WHERE run = ? "
              "ORDER BY first_spill, id",
              op);
  s.bind(run);
  std::vector<ThresholdActivation> out;
  while (s.step()) out.push_back({s.u32(0), s.u32(1), s.u32(2), s.i64(3) != 0});
  return out;
}

std::uint64_t RunDatabase::add_alarm(const AlarmRecord& a) {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("add alarm \"{}\" of run {}", a.condition, a.run);

  Transaction t(c, Transaction::Mode::Write, op);
  Statement(c,
            "INSERT INTO alarms (run, condition, level, text, first_spill, last_spill, raised_unix_ms, last_unix_ms, "
            "acknowledged_by, acknowledged_unix_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?, '', 0)",
            op)
      .bind(a.run)
      .bind(a.condition)
      .bind(a.level)
      .bind(a.text)
      .bind(a.first_spill)
      .bind(a.last_spill)
      .bind(a.raised_unix_ms)
      .bind(a.last_unix_ms)
      .run();
  const std::int64_t id = ::sqlite3_last_insert_rowid(c.handle());
  t.commit();
  return static_cast<std::uint64_t>(id);
}

void RunDatabase::update_alarm(std::uint64_t id, std::uint32_t last_spill, std::int64_t last_unix_ms) {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("update alarm {}", id);

  Transaction t(c, Transaction::Mode::Write, op);
  Statement(c, "UPDATE alarms SET last_spill = ?, last_unix_ms = ? WHERE id = ?", op)
      .bind(last_spill)
      .bind(last_unix_ms)
      .bind(id)
      .run();
  if (::sqlite3_changes(c.handle()) != 1) c.refuse(op, fmt::format("alarm {} is unknown", id));
  t.commit();
}

void RunDatabase::acknowledge_alarm(std::uint64_t id, const std::string& by, std::int64_t unix_ms) {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  const std::string op = fmt::format("acknowledge alarm {}", id);
  if (by.empty() || unix_ms <= 0) c.refuse(op, "who and when must be given");

  Transaction t(c, Transaction::Mode::Write, op);
  {
    Statement s(c, "SELECT acknowledged_by FROM alarms WHERE id = ?", op);
    s.bind(id);
    if (!s.step()) c.refuse(op, fmt::format("alarm {} is unknown", id));
    if (const std::string who = s.text(0); !who.empty()) {
      c.refuse(op, fmt::format("alarm {} is already acknowledged (by {})", id, who));
    }
  }
  Statement(c, "UPDATE alarms SET acknowledged_by = ?, acknowledged_unix_ms = ? WHERE id = ?", op)
      .bind(by)
      .bind(unix_ms)
      .bind(id)
      .run();
  t.commit();
}

std::vector<AlarmRecord> RunDatabase::alarms(bool unacknowledged_only, std::size_t limit) const {
  const std::lock_guard lock(impl_->mutex);
  const Connection& c = impl_->c;
  constexpr std::string_view kOp = "read alarms";

  Statement s(c,
              unacknowledged_only
                  ? fmt::format("SELECT {} FROM alarms WHERE acknowledged_unix_ms = 0 ORDER BY id DESC LIMIT ?",
                                kAlarmColumns)
                  : fmt::format("SELECT {} FROM alarms ORDER BY id DESC LIMIT ?", kAlarmColumns),
              kOp);
  s.bind(static_cast<std::int64_t>(
      std::min<std::size_t>(limit, static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()))));
  std::vector<AlarmRecord> out;
  while (s.step()) out.push_back(read_alarm(s));
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace na64::daq
