// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/monitor.hpp"

#include <fmt/format.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <cmath>
#include <deque>
#include <fstream>
#include <iterator>
#include <limits>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>

#include "event_outbox.hpp"
#include "na64/daq/dqm_tap.hpp"
#include "na64/daq/error.hpp"
#include "na64/daq/event_sampler.hpp"
#include "na64/daq/run_files.hpp"
#include "na64/monitoring/dqm.hpp"
#include "na64/monitoring/dqm_file.hpp"

namespace na64::daq {

namespace {

namespace mon = na64::monitoring;
using SteadyClock = std::chrono::steady_clock;

/// Acknowledged alarms kept for the dashboard besides the open ones.
constexpr std::size_t kRecentAcknowledged = 50;
/// Alarms not stored because the database refused get ids from here on, so
/// that they never meet a stored one.
constexpr std::uint64_t kUnstoredAlarmIds = std::uint64_t{1} << 40;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

const char* line_name(std::size_t line) noexcept {
  switch (static_cast<trigger::TriggerLine>(line)) {
    case trigger::TriggerLine::Invisible: return "invisible";
    case trigger::TriggerLine::Beam: return "beam";
    case trigger::TriggerLine::Random: return "random";
  }
  return "?";
}

std::string spill_list(const std::vector<std::uint32_t>& spills) {
  std::string out;
  for (const auto s : spills) out += fmt::format("{}{}", out.empty() ? "" : ", ", s);
  return out;
}

std::string gib(std::uint64_t bytes) { return fmt::format("{:.2f} GiB", static_cast<double>(bytes) / (1u << 30)); }

std::optional<std::uint64_t> disk_free(const std::filesystem::path& dir) {
  struct statvfs st {};
  if (dir.empty() || ::statvfs(dir.c_str(), &st) != 0) return std::nullopt;
  return std::uint64_t{st.f_bavail} * st.f_frsize;
}

std::string read_whole(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw std::invalid_argument("cannot open it");
  std::ostringstream s;
  s << in.rdbuf();
  if (in.bad()) throw std::invalid_argument("cannot read it");
  return std::move(s).str();
}

/// What the monitor holds of one run.
struct RunWatch {
  std::uint32_t run = 0;
  std::shared_ptr<const DaqConfig> config;
  std::filesystem::path output;
  bool running = false;
  std::unique_ptr<DqmTap> tap;
  std::unique_ptr<EventSampler> sampler;
  std::unique_ptr<mon::SpillHistory> history;
  std::unique_ptr<mon::DqmHistograms> taken;      ///< the spill's set, taken from the tap
  std::unique_ptr<mon::DqmHistograms> reference;  ///< nullptr: none yet
  bool reference_from_file = false;
  bool reference_saved = false;
  std::vector<std::uint32_t> reference_spills;  ///< this run's spills in it
  std::string reference_origin;
  std::vector<SpillRecord> spills;
  std::uint64_t previous_decode_errors = 0;
  std::vector<SourceState> sources;  ///< MSADC boards in map order, then trackers
};

std::vector<SourceState> sources_of(const DaqConfig& c) {
  std::vector<SourceState> out;
  for (const auto id : c.channel_map.sources()) out.push_back({id, false, "ok", 0});
  for (const auto& t : c.readout.trackers) out.push_back({t.source, true, "ok", 0});
  return out;
}

std::string source_label(const SourceState& s) {
  return fmt::format("source {} ({})", s.id, s.tracker ? "tracker" : "MSADC");
}

}  // namespace

control::Alarm to_proto(const AlarmRecord& a) {
  control::Alarm p;
  p.set_id(a.id);
  p.set_level(a.level);
  p.set_text(a.text);
  p.set_run(a.run);
  p.set_first_spill(a.first_spill);
  p.set_last_spill(a.last_spill);
  p.set_raised_unix_ms(a.raised_unix_ms);
  p.set_last_unix_ms(a.last_unix_ms);
  p.set_acknowledged(a.acknowledged_unix_ms != 0);
  p.set_acknowledged_by(a.acknowledged_by);
  p.set_acknowledged_unix_ms(a.acknowledged_unix_ms);
  return p;
}

std::string reference_file_name(std::uint32_t run) { return fmt::format("run-{:06}.dqm-reference", run); }

struct Monitor::Impl {
  Impl(RunDatabase& db, MonitorOptions o) : database(db), options(std::move(o)) {}

  RunDatabase& database;
  const MonitorOptions options;

  // Guarded by m.
  mutable std::mutex m;
  std::shared_ptr<const DaqConfig> config;  ///< the last configuration loaded
  std::filesystem::path output_dir;
  RunWatch watch;
  std::optional<SteadyClock::time_point> last_spill_at;
  std::vector<AlarmRecord> open;             ///< unacknowledged, oldest first
  std::deque<AlarmRecord> recent;            ///< acknowledged, oldest first
  std::uint64_t next_unstored_id = kUnstoredAlarmIds;
  MonitorTotals totals;
  std::map<std::uint32_t, std::uint64_t> lost_spills;
  EventOutbox outbox{"a monitor"};

  // --- with m held ---

  mon::DqmConfig dqm_config(const DaqConfig& c) const {
    mon::DqmConfig d;
    d.beam_energy_gev = c.beam.energy_gev;
    d.ecal_occupancy_gev = options.ecal_occupancy_gev;
    d.hcal_occupancy_gev = options.hcal_occupancy_gev;
    d.srd_min_gev = c.thresholds.srd_min_gev;
    d.srd_max_gev = c.thresholds.srd_max_gev;
    d.sample_period = options.sample_period;
    return d;
  }

  void queue(const AlarmRecord& a) { *outbox.queue().mutable_alarm() = to_proto(a); }

  /// Raises the alarm of `condition` (logged), or updates its open one
  /// (stored and published, not logged again).
  void raise(const std::string& condition, const char* level, const std::string& text, std::uint32_t spill) {
    const std::int64_t t = now_ms();
    for (auto& a : open) {
      if (a.condition != condition) continue;
      a.last_spill = spill;
      a.last_unix_ms = t;
      if (a.id < kUnstoredAlarmIds) {
        try {
          database.update_alarm(a.id, spill, t);
        } catch (const DatabaseError& e) {
          fmt::print(stderr, "na64daq: alarm {}: {}\n", a.id, e.what());
        }
      }
      queue(a);
      return;
    }
    AlarmRecord a;
    a.run = watch.run;
    a.condition = condition;
    a.level = level;
    a.text = text;
    a.first_spill = spill;
    a.last_spill = spill;
    a.raised_unix_ms = t;
    a.last_unix_ms = t;
    try {
      a.id = database.add_alarm(a);
    } catch (const DatabaseError& e) {
      // Shown and acknowledged all the same; only its record is missing.
      a.id = next_unstored_id++;
      fmt::print(stderr, "na64daq: alarm {} is not in the run database: {}\n", a.id, e.what());
    }
    fmt::print(stderr, "na64daq: alarm {} ({}) raised: {}\n", a.id, a.level, a.text);
    open.push_back(a);
    queue(a);
  }

  void check_disk(std::uint32_t spill) {
    const auto free = disk_free(output_dir);
    if (free && *free < options.disk_limit_bytes) {
      raise("disk", "error",
            fmt::format("output directory {}: {} free, below the limit of {}", output_dir.string(), gib(*free),
                        gib(options.disk_limit_bytes)),
            spill);
    }
  }

  void load_reference(RunWatch& w) {
    if (options.reference_file.empty()) return;
    const std::string file = options.reference_file.string();
    try {
      auto ref = std::make_unique<mon::DqmHistograms>(w.config->channel_map, dqm_config(*w.config));
      const std::string provenance = mon::decode_dqm_set(read_whole(options.reference_file), *ref);
      w.reference = std::move(ref);
      w.reference_from_file = true;
      w.reference_origin = fmt::format("file {} ({})", file, provenance);
    } catch (const std::exception& e) {
      raise("reference", "warning",
            fmt::format("run {}: the reference file {} cannot be used: {}; the run's first good spills are taken instead",
                        w.run, file, e.what()),
            0);
    }
  }

  /// The spill's DQM set in w.taken; false when the tap has none for it.
  bool take_spill_set(RunWatch& w, std::uint32_t spill) {
    if (w.tap->take(spill, *w.taken)) return true;
    w.taken->reset();
    fmt::print(stderr, "na64daq: run {} spill {}: no DQM histograms: the monitor fell more than {} spills behind\n",
               w.run, spill, DqmTap::kDepth);
    return false;
  }

  /// Sources lost or silent in the spill, as states; counts the spills in a row.
  void update_sources(RunWatch& w, const SpillSummary& s) {
    const std::size_t boards = w.config->channel_map.sources().size();
    for (std::size_t i = 0; i < w.sources.size(); ++i) {
      const std::uint32_t bit = 1u << i;
      const bool lost = ((s.completion.lost_sources & bit) != 0) || (i < boards && (s.builder.lost_sources & bit) != 0);
      const bool silent = !lost && (s.completion.silent_sources & bit) != 0;
      SourceState& src = w.sources[i];
      src.state = lost ? "lost" : silent ? "silent" : "ok";
      src.spills_in_row = lost || silent ? src.spills_in_row + 1 : 0;
      if (lost || silent) ++lost_spills[src.id];
    }
  }

  mon::Verdict judge(RunWatch& w, const SpillSummary& s, bool have_set) {
    mon::Verdict v;
    const auto worse = [&](mon::VerdictLevel l) { v.level = std::max(v.level, l); };
    bool sources_ok = true;
    for (const auto& src : w.sources) {
      if (src.state == "ok") continue;
      sources_ok = false;
      v.reasons.push_back(fmt::format("{} {}", source_label(src), src.state));
      worse(mon::VerdictLevel::Bad);
    }
    if (s.decode_errors != 0) {
      v.reasons.push_back(fmt::format("{} events did not decode", s.decode_errors));
      worse(mon::VerdictLevel::Warning);
    }
    if (!have_set) {
      v.reasons.emplace_back("no DQM histograms for this spill: nothing to judge");
      worse(mon::VerdictLevel::Warning);
      return v;
    }
    const mon::DqmHistograms& set = *w.taken;
    if (w.reference) {
      try {
        mon::Verdict dq = mon::judge_spill(set, *w.reference, options.verdict);
        worse(dq.level);
        v.reasons.insert(v.reasons.end(), dq.reasons.begin(), dq.reasons.end());
      } catch (const std::invalid_argument& e) {
        v.reasons.push_back(fmt::format("cannot judge against the reference: {}", e.what()));
        worse(mon::VerdictLevel::Warning);
      }
    }
    // A run's own reference grows by the spills that are good against it.
    const bool building = !w.reference_from_file && w.reference_spills.size() < options.reference_spills;
    const bool qualifies = sources_ok && set.counters().filled > 0 && v.level == mon::VerdictLevel::Good;
    if (building && qualifies) {
      if (!w.reference) {
        w.reference = std::make_unique<mon::DqmHistograms>(w.config->channel_map, dqm_config(*w.config));
        v.reasons.push_back(fmt::format("no reference yet: the spill starts the run's reference (1 of {})",
                                        options.reference_spills));
      }
      set.merge_into(*w.reference);
      w.reference_spills.push_back(s.spill);
      w.reference_origin = fmt::format("run {} spill{} {}", w.run, w.reference_spills.size() == 1 ? "" : "s",
                                       spill_list(w.reference_spills));
      if (w.reference_spills.size() == options.reference_spills) save_reference(w);
    } else if (!w.reference) {
      v.reasons.emplace_back("no reference yet: not judged");
      worse(mon::VerdictLevel::Warning);
    }
    return v;
  }

  void save_reference(RunWatch& w) {
    try {
      write_file_once(w.output, reference_file_name(w.run), mon::encode_dqm_set(*w.reference, w.reference_origin));
      w.reference_saved = true;
      fmt::print(stderr, "na64daq: run {}: reference ({}) saved as {}\n", w.run, w.reference_origin,
                 (w.output / reference_file_name(w.run)).string());
    } catch (const std::exception& e) {
      fmt::print(stderr, "na64daq: run {}: the reference is not saved: {}\n", w.run, e.what());
    }
  }

  void check_rates(RunWatch& w, std::uint32_t spill) {
    if (!w.reference) return;
    const auto& now = w.taken->counters();
    const auto& ref = w.reference->counters();
    if (now.events == 0 || ref.events == 0) return;
    for (std::size_t l = 0; l < trigger::kNumLines; ++l) {
      const double n_ref = static_cast<double>(ref.accepted[l]);
      if (n_ref < options.rate_min_reference) continue;
      const double r0 = n_ref / static_cast<double>(ref.events);
      const double n = static_cast<double>(now.accepted[l]);
      const double r = n / static_cast<double>(now.events);
      const double rel = r / r0 - 1.0;
      // Relative spread of the ratio if the rate had not changed: the spill's
      // expected count and the reference's count, both Poisson.
      const double expected = r0 * static_cast<double>(now.events);
      const double sigma = std::sqrt(1.0 / std::max(expected, 1.0) + 1.0 / n_ref);
      if (std::abs(rel) <= options.rate_band || std::abs(rel) <= options.rate_min_sigmas * sigma) continue;
      raise(fmt::format("rate {}", line_name(l)), "warning",
            fmt::format("run {} spill {}: trigger line {} rate {:.0f} % {}: {:.3g} per event, reference {:.3g}", w.run,
                        spill, line_name(l), 100.0 * std::abs(rel), rel < 0 ? "low" : "high", r, r0),
            spill);
    }
  }

  void add_totals(const SpillSummary& s) {
    ++totals.spills;
    totals.sum.builder.add(s.builder);
    for (std::size_t l = 0; l < trigger::kNumLines; ++l) totals.sum.accepted[l] += s.accepted[l];
    totals.sum.accepted_events += s.accepted_events;
    totals.sum.decode_errors += s.decode_errors;
    totals.sum.written += s.written;
    totals.sum.bytes += s.bytes;
    totals.sum.completion.add(s.completion);
    totals.last_dead_time = s.dead_time;
  }

  // --- without m ---

  // Delivers the queued events in order.
  void emit() { outbox.emit(m); }

};

Monitor::Monitor(RunDatabase& database, MonitorOptions options)
    : impl_(std::make_unique<Impl>(database, std::move(options))) {
  if (impl_->options.reference_spills == 0) throw ConfigError("monitor: reference_spills must be at least 1");
  if (impl_->options.sample_period == 0) throw ConfigError("monitor: sample_period must be at least 1");
  mon::validate(impl_->options.verdict);
  impl_->open = database.alarms(true, std::numeric_limits<std::size_t>::max());
  for (auto& a : database.alarms(false, kRecentAcknowledged + impl_->open.size())) {
    if (a.acknowledged_unix_ms != 0) impl_->recent.push_back(std::move(a));
  }
  while (impl_->recent.size() > kRecentAcknowledged) impl_->recent.pop_front();
  // The last run's spills, until a run starts.
  if (const auto runs = database.runs(1); !runs.empty()) {
    impl_->watch.run = runs.front().number;
    impl_->watch.spills = database.spills(runs.front().number);
  }
}

Monitor::~Monitor() = default;

void Monitor::configured(const DaqConfig& config) {
  std::lock_guard lock(impl_->m);
  impl_->config = std::make_shared<const DaqConfig>(config);
  impl_->output_dir = config.run.output_dir;
  if (!impl_->watch.running) impl_->watch.sources = sources_of(config);
}

void Monitor::begin_run(const DaqConfig& config, RunOptions& options) {
  {
    std::lock_guard lock(impl_->m);
    Impl& im = *impl_;
    RunWatch w;
    w.run = options.run;
    w.config = std::make_shared<const DaqConfig>(config);
    w.output = options.output;
    w.running = true;
    const mon::DqmConfig dqm = im.dqm_config(config);
    w.tap = std::make_unique<DqmTap>(config.channel_map, dqm);
    w.sampler = std::make_unique<EventSampler>(im.options.event_period);
    w.history = std::make_unique<mon::SpillHistory>(config.channel_map, dqm, im.options.history_spills);
    w.taken = std::make_unique<mon::DqmHistograms>(config.channel_map, dqm);
    w.sources = sources_of(config);
    im.watch = std::move(w);
    im.output_dir = options.output;
    im.last_spill_at.reset();
    im.load_reference(im.watch);
    im.check_disk(0);
    options.dqm = im.watch.tap.get();
    options.sampler = im.watch.sampler.get();
  }
  impl_->emit();
}

void Monitor::on_spill(const SpillSummary& s, SpillRecord& record) {
  {
    std::lock_guard lock(impl_->m);
    Impl& im = *impl_;
    RunWatch& w = im.watch;
    if (!w.tap) return;  // no run of this monitor's
    const bool have_set = im.take_spill_set(w, s.spill);
    if (have_set) {
      auto& c = w.taken->counters();
      c.bytes_written = s.bytes;
      c.seconds = s.seconds;
      c.dead_seconds = s.dead_time * s.seconds;
      c.spills = 1;
      w.history->record(s.spill, *w.taken);
    }
    im.update_sources(w, s);
    const mon::Verdict v = im.judge(w, s, have_set);
    record.verdict = mon::to_string(v.level);
    record.verdict_reasons = v.reasons;

    for (const auto& src : w.sources) {
      if (src.spills_in_row < im.options.source_spills) continue;
      im.raise(fmt::format("source {}", src.id), "error",
               fmt::format("run {}: {} {} for {} spills in a row (spills {}-{})", w.run, source_label(src), src.state,
                           src.spills_in_row, s.spill + 1 - src.spills_in_row, s.spill),
               s.spill);
    }
    if (have_set) im.check_rates(w, s.spill);
    if (v.level == mon::VerdictLevel::Bad) {
      std::string why;
      for (const auto& r : v.reasons) why += fmt::format("{}{}", why.empty() ? "" : "; ", r);
      im.raise("verdict", "error", fmt::format("run {} spill {}: verdict bad: {}", w.run, s.spill, why), s.spill);
    }
    if (s.decode_errors > 0 && s.decode_errors > w.previous_decode_errors) {
      im.raise("decode errors", "warning",
               fmt::format("run {} spill {}: {} events did not decode, {} in the spill before", w.run, s.spill,
                           s.decode_errors, w.previous_decode_errors),
               s.spill);
    }
    w.previous_decode_errors = s.decode_errors;
    im.check_disk(s.spill);

    w.spills.push_back(record);
    im.add_totals(s);
    im.last_spill_at = SteadyClock::now();
  }
  impl_->emit();
}

void Monitor::end_run(std::uint32_t run) {
  std::lock_guard lock(impl_->m);
  if (impl_->watch.run == run) impl_->watch.running = false;
}

MonitorStatus Monitor::status() const {
  std::lock_guard lock(impl_->m);
  const Impl& im = *impl_;
  const RunWatch& w = im.watch;
  MonitorStatus s;
  s.run = w.run;
  s.running = w.running;
  if (im.last_spill_at) s.since_spill = SteadyClock::now() - *im.last_spill_at;
  s.output_dir = im.output_dir;
  s.disk_free_bytes = disk_free(im.output_dir);
  s.disk_limit_bytes = im.options.disk_limit_bytes;
  s.sources = w.sources;
  s.alarms_unacknowledged = im.open.size();
  if (w.reference) s.reference = w.reference_origin;
  s.reference_complete = w.reference_from_file || w.reference_spills.size() >= im.options.reference_spills;
  if (w.history) {
    for (std::size_t age = w.history->size(); age-- > 0;) s.spills_held.push_back(w.history->spill_number(age));
  }
  return s;
}

std::vector<SpillRecord> Monitor::spills(std::size_t last) const {
  std::lock_guard lock(impl_->m);
  const auto& all = impl_->watch.spills;
  const std::size_t n = last == 0 ? all.size() : std::min(last, all.size());
  return {all.end() - static_cast<std::ptrdiff_t>(n), all.end()};
}

HistogramLookup Monitor::histogram(std::string_view name, HistogramChoice choice) const {
  const auto names = mon::DqmHistograms::histogram_names();
  if (std::find(names.begin(), names.end(), name) == names.end()) {
    return {std::nullopt, fmt::format("no histogram named \"{}\" (see /api/dqm/list)", name)};
  }
  std::lock_guard lock(impl_->m);
  const RunWatch& w = impl_->watch;
  const mon::DqmHistograms* set = nullptr;
  using From = HistogramChoice::From;
  if (choice.from == From::Reference) {
    if (!w.reference) return {std::nullopt, fmt::format("run {} has no reference yet", w.run), true};
    set = w.reference.get();
  } else if (!w.history || w.history->size() == 0) {
    return {std::nullopt, "no spill has been monitored since the daemon started", true};
  } else if (choice.from == From::Run) {
    set = &w.history->total();
  } else if (choice.from == From::LastSpill) {
    set = &w.history->spill(0);
  } else {
    for (std::size_t age = 0; age < w.history->size() && set == nullptr; ++age) {
      if (w.history->spill_number(age) == choice.spill) set = &w.history->spill(age);
    }
    if (set == nullptr) {
      return {std::nullopt,
              fmt::format("spill {} of run {} is not held; the last {} spills are ({} to {})", choice.spill, w.run,
                          w.history->size(), w.history->spill_number(w.history->size() - 1),
                          w.history->spill_number(0))};
    }
  }
  if (auto h = set->histogram_1d(name)) return {AnyHistogram(std::move(*h)), {}};
  if (auto h = set->histogram_2d(name)) return {AnyHistogram(std::move(*h)), {}};
  return {std::nullopt, fmt::format("no histogram named \"{}\"", name)};
}

std::vector<AlarmRecord> Monitor::alarms() const {
  std::lock_guard lock(impl_->m);
  std::vector<AlarmRecord> out(impl_->recent.begin(), impl_->recent.end());
  out.insert(out.end(), impl_->open.begin(), impl_->open.end());
  std::sort(out.begin(), out.end(), [](const AlarmRecord& a, const AlarmRecord& b) { return a.id < b.id; });
  return out;
}

AckOutcome Monitor::acknowledge(std::uint64_t id, const std::string& by) {
  AckOutcome out;
  {
    std::lock_guard lock(impl_->m);
    Impl& im = *impl_;
    const auto it = std::find_if(im.open.begin(), im.open.end(), [&](const AlarmRecord& a) { return a.id == id; });
    if (it == im.open.end()) {
      const auto done =
          std::find_if(im.recent.begin(), im.recent.end(), [&](const AlarmRecord& a) { return a.id == id; });
      if (done != im.recent.end()) {
        out.result = AckOutcome::Result::AlreadyAcknowledged;
        out.alarm = *done;
        out.message = fmt::format("alarm {} was already acknowledged by {}", id, done->acknowledged_by);
      } else {
        out.result = AckOutcome::Result::NotFound;
        out.message = fmt::format("there is no unacknowledged alarm {}", id);
      }
      return out;
    }
    const std::int64_t t = now_ms();
    if (it->id < kUnstoredAlarmIds) {
      try {
        im.database.acknowledge_alarm(id, by, t);
      } catch (const DatabaseError& e) {
        out.result = AckOutcome::Result::Failed;
        out.message = e.what();
        return out;
      }
    }
    AlarmRecord a = *it;
    a.acknowledged_by = by;
    a.acknowledged_unix_ms = t;
    im.open.erase(it);
    im.recent.push_back(a);
    while (im.recent.size() > kRecentAcknowledged) im.recent.pop_front();
    fmt::print(stderr, "na64daq: alarm {} acknowledged by {}: {}\n", a.id, by, a.text);
    im.queue(a);
    out.result = AckOutcome::Result::Acknowledged;
    out.alarm = a;
    out.message = fmt::format("alarm {} acknowledged", id);
  }
  impl_->emit();
  return out;
}

std::optional<SampledEvent> Monitor::sampled_event() const {
  std::lock_guard lock(impl_->m);
  const RunWatch& w = impl_->watch;
  if (!w.sampler) return std::nullopt;
  SampledEvent e;
  e.serial = w.sampler->latest(e.words);
  if (e.serial == 0) return std::nullopt;
  e.run = w.run;
  e.config = w.config;
  return e;
}

MonitorTotals Monitor::totals() const {
  std::lock_guard lock(impl_->m);
  MonitorTotals t = impl_->totals;
  t.lost_spills.assign(impl_->lost_spills.begin(), impl_->lost_spills.end());
  return t;
}

void Monitor::set_listener(std::function<void(const control::Event&)> listener) {
  impl_->outbox.set_listener(std::move(listener));
}

}  // namespace na64::daq
