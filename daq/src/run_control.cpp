// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/run_control.hpp"

#include <fmt/format.h>

#include <condition_variable>
#include <cstdio>
#include <deque>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "event_outbox.hpp"
#include "na64/daq/config.hpp"
#include "na64/daq/error.hpp"
#include "na64/daq/monitor.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/daq/run_db.hpp"
#include "na64/daq/run_files.hpp"
#include "na64/daq/steering.hpp"

namespace na64::daq {

namespace {

using control::RunState;

std::int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <class Array, class Field>
void copy_lines(const Array& from, Field* to) {
  for (const auto v : from) to->Add(v);
}

/// Commands valid in each state, as Status.allowed lists them.
std::vector<const char*> allowed_in(RunState s) {
  switch (s) {
    case control::IDLE: return {"configure"};
    case control::CONFIGURED: return {"configure", "start", "reset"};
    case control::RUNNING: return {"stop", "pause", "comment"};
    case control::PAUSED: return {"stop", "resume", "comment"};
    case control::STOPPING: return {"comment"};
    case control::ERROR: return {"reset"};
    default: return {};
  }
}

bool allowed(RunState s, std::string_view command) {
  for (const char* c : allowed_in(s)) {
    if (command == c) return true;
  }
  return false;
}

SpillRecord to_record(std::uint32_t run, const SpillSummary& s) {
  SpillRecord r;
  r.run = run;
  r.spill = s.spill;
  r.threshold_set = s.threshold_set;
  r.particles = s.builder.particles;
  r.built = s.builder.complete;
  r.incomplete = s.builder.incomplete;
  r.accepted = s.accepted;
  r.accepted_events = s.accepted_events;
  r.written = s.written;
  r.bytes = s.bytes;
  r.decode_errors = s.decode_errors;
  r.seconds = s.seconds;
  r.dead_time = s.dead_time;
  r.shadow_set = s.shadow_set;
  r.shadow_accepted = s.shadow_accepted;
  r.shadow_overlap = s.shadow_overlap;
  return r;
}

}  // namespace

const char* to_string(control::RunState state) noexcept {
  switch (state) {
    case control::IDLE: return "IDLE";
    case control::CONFIGURED: return "CONFIGURED";
    case control::RUNNING: return "RUNNING";
    case control::PAUSED: return "PAUSED";
    case control::STOPPING: return "STOPPING";
    case control::ERROR: return "ERROR";
    default: return "UNSPECIFIED";
  }
}

control::RunRecord to_proto(const RunRecord& r, bool with_config) {
  control::RunRecord p;
  p.set_number(r.number);
  p.set_start_unix_ms(r.start_unix_ms);
  p.set_stop_unix_ms(r.stop_unix_ms);
  p.set_comment(r.comment);
  p.set_config_hash(r.config_hash);
  if (with_config) p.set_config_text(r.config_text);
  p.set_ended(r.ended);
  for (const auto& c : r.comments) p.add_comments(c);
  return p;
}

control::SpillRecord to_proto(const SpillRecord& s) {
  control::SpillRecord p;
  p.set_run(s.run);
  p.set_spill(s.spill);
  p.set_threshold_set(s.threshold_set);
  p.set_particles(s.particles);
  p.set_built(s.built);
  p.set_incomplete(s.incomplete);
  copy_lines(s.accepted, p.mutable_accepted());
  p.set_accepted_events(s.accepted_events);
  p.set_written(s.written);
  p.set_bytes(s.bytes);
  p.set_decode_errors(s.decode_errors);
  p.set_seconds(s.seconds);
  p.set_dead_time(s.dead_time);
  p.set_shadow_set(s.shadow_set);
  copy_lines(s.shadow_accepted, p.mutable_shadow_accepted());
  copy_lines(s.shadow_overlap, p.mutable_shadow_overlap());
  p.set_verdict(s.verdict);
  for (const auto& r : s.verdict_reasons) p.add_verdict_reasons(r);
  return p;
}

control::Thresholds to_proto(const trigger::ThresholdSet& t) {
  // The shortest decimal that reads back as the same float: 0.3f is shown
  // as 0.3, not as 0.30000001192092896.
  const auto shown = [](float v) { return std::stod(fmt::format("{}", v)); };
  control::Thresholds p;
  p.set_ecal_max_gev(shown(t.ecal_max_gev));
  p.set_preshower_min_gev(shown(t.preshower_min_gev));
  p.set_hcal_max_gev(shown(t.hcal_max_gev));
  p.set_srd_min_gev(shown(t.srd_min_gev));
  p.set_srd_max_gev(shown(t.srd_max_gev));
  p.set_veto_max_gev(shown(t.veto_max_gev));
  p.set_beam_prescale(t.beam_prescale);
  p.set_random_period(t.random_period);
  return p;
}

trigger::ThresholdSet from_proto(const control::Thresholds& p) {
  trigger::ThresholdSet t;
  t.ecal_max_gev = static_cast<float>(p.ecal_max_gev());
  t.preshower_min_gev = static_cast<float>(p.preshower_min_gev());
  t.hcal_max_gev = static_cast<float>(p.hcal_max_gev());
  t.srd_min_gev = static_cast<float>(p.srd_min_gev());
  t.srd_max_gev = static_cast<float>(p.srd_max_gev());
  t.veto_max_gev = static_cast<float>(p.veto_max_gev());
  t.beam_prescale = p.beam_prescale();
  t.random_period = p.random_period();
  return t;
}

control::ThresholdSet to_proto(const ThresholdSetRecord& t) {
  control::ThresholdSet p;
  p.set_id(t.id);
  p.set_created_unix_ms(t.created_unix_ms);
  p.set_author(t.author);
  p.set_comment(t.comment);
  *p.mutable_thresholds() = to_proto(t.set);
  return p;
}

struct RunControl::Impl {
  Impl(RunDatabase& db, RunControlOptions o) : database(db), options(std::move(o)) {}

  RunDatabase& database;
  const RunControlOptions options;

  // Everything below is guarded by m; commands hold it from check to change.
  mutable std::mutex m;
  mutable std::condition_variable state_changed;
  RunState state = control::IDLE;
  std::string message;
  std::optional<DaqConfig> config;
  std::filesystem::path output;
  ThresholdBoard thresholds{VersionedThresholds{}};
  std::uint32_t run = 0;
  std::uint32_t spill = 0;
  std::int64_t run_start_ms = 0;
  std::string comment;
  std::uint64_t events_written = 0;
  std::uint64_t bytes_written = 0;
  std::uint32_t lost_sources = 0;  ///< mask over config->channel_map.sources(), last spill
  std::unique_ptr<eventbuilder::SpillClock> clock;
  std::stop_source stop;
  std::jthread worker;
  EventOutbox outbox{"an event"};  ///< state and spill events not yet delivered

  // --- called with m held ---

  control::Status status_locked() const {
    control::Status s;
    s.set_state(state);
    s.set_run(run);
    s.set_spill(spill);
    s.set_comment(comment);
    if (config) s.set_config_hash(to_hex(config->hash));
    s.set_message(message);
    s.set_events_written(events_written);
    s.set_bytes_written(bytes_written);
    *s.mutable_thresholds() = threshold_state(false);
    if (config) {
      const auto sources = config->channel_map.sources();
      for (std::size_t i = 0; i < sources.size(); ++i) {
        auto* src = s.add_sources();
        src->set_id(sources[i]);
        src->set_state(((lost_sources >> i) & 1u) != 0 ? "lost" : "ok");
      }
    }
    s.set_run_start_unix_ms(run_start_ms);
    s.set_spills_begun(clock ? clock->announced() : spill);
    for (const char* c : allowed_in(state)) s.add_allowed(c);
    return s;
  }

  control::ThresholdState threshold_state(bool all) const {
    const ThresholdIds ids = thresholds.ids();
    control::ThresholdState t;
    t.set_active_id(ids.active);
    t.set_pending_id(ids.pending);
    t.set_shadow_id(ids.shadow);
    t.set_pending_shadow_id(ids.pending_shadow);
    try {
      if (all) {
        for (const auto& rec : database.threshold_sets()) *t.add_sets() = to_proto(rec);
      } else {
        for (const std::uint32_t id : {ids.active, ids.pending, ids.shadow, ids.pending_shadow}) {
          if (id == 0) continue;
          bool seen = false;
          for (const auto& have : t.sets()) seen = seen || have.id() == id;
          if (seen) continue;
          if (auto rec = database.threshold_set(id)) *t.add_sets() = to_proto(*rec);
        }
      }
    } catch (const DatabaseError& e) {
      t.clear_sets();  // the ids alone; the reason is in the daemon's log
      fmt::print(stderr, "na64daq: threshold sets: {}\n", e.what());
    }
    return t;
  }

  /// A run is open (its spills take threshold changes at their start).
  bool in_run() const {
    return state == control::RUNNING || state == control::PAUSED || state == control::STOPPING;
  }

  control::Reply reply(control::Code code, std::string text) const {
    control::Reply r;
    r.set_code(code);
    r.set_message(std::move(text));
    *r.mutable_status() = status_locked();
    return r;
  }

  control::Reply refuse(std::string_view command) const {
    std::string valid;
    for (const char* c : allowed_in(state)) valid += fmt::format("{}{}", valid.empty() ? "" : ", ", c);
    return reply(control::CONFLICT, fmt::format("{}: not valid in state {}; valid now: {}", command,
                                                to_string(state), valid.empty() ? "none" : valid));
  }

  control::Event state_event() const {
    control::Event e;
    *e.mutable_state() = status_locked();
    return e;
  }

  void set_state(RunState s) {
    state = s;
    state_changed.notify_all();
    outbox.queue() = state_event();
  }

  // --- called without m ---

  // Delivers the events queued so far, in the order they happened.
  void emit() { outbox.emit(m); }


  std::uint32_t register_set(const trigger::ThresholdSet& set, const std::string& author, const std::string& text) {
    return database.add_threshold_set(set, now_ms(), author, text);
  }

  void run_thread(DaqConfig cfg, RunOptions opts, std::stop_token stop_token);
};

void RunControl::Impl::run_thread(DaqConfig cfg, RunOptions opts, std::stop_token stop_token) {
  std::string how;
  RunState end_state = control::CONFIGURED;
  std::uint32_t last_active = 0;
  std::uint32_t last_shadow = 0;
  try {
    (void)run_simulated(
        cfg, opts,
        [&](const SpillSummary& s) {
          SpillRecord rec = to_record(opts.run, s);
          if (options.monitor) {
            try {
              options.monitor->on_spill(s, rec);
            } catch (const std::exception& e) {
              // The data is on disk; only its judgement is missing. Said, not fatal.
              std::fprintf(stderr, "na64daq: run %u spill %u: the monitor failed: %s\n", opts.run, s.spill, e.what());
            }
          }
          try {
            if (s.threshold_set != last_active) {
              database.add_threshold_activation({opts.run, s.spill, s.threshold_set, false});
            }
            if (s.shadow_set != last_shadow && s.shadow_set != 0) {
              database.add_threshold_activation({opts.run, s.spill, s.shadow_set, true});
            }
            database.add_spill(rec);
          } catch (const std::exception& e) {
            // The data is on disk; only its record is missing. Said, not fatal.
            std::fprintf(stderr, "na64daq: run %u spill %u: %s\n", opts.run, s.spill, e.what());
          }
          last_active = s.threshold_set;
          last_shadow = s.shadow_set;
          {
            std::lock_guard lock(m);
            spill = s.spill;
            lost_sources = s.builder.lost_sources;
            events_written += s.written;
            bytes_written += s.bytes;
            *outbox.queue().mutable_spill() = to_proto(rec);
          }
          emit();
        },
        stop_token);
    how = stop_token.stop_requested() ? "stopped" : "spill limit";
  } catch (const std::exception& e) {
    how = fmt::format("error: {}", e.what());
    end_state = control::ERROR;
  }
  try {
    database.end_run(opts.run, now_ms(), how);
  } catch (const DatabaseError& e) {
    fmt::print(stderr, "na64daq: run {}: {}\n", opts.run, e.what());
  }
  if (options.monitor) options.monitor->end_run(opts.run);
  {
    std::lock_guard lock(m);
    message = fmt::format("run {} ended: {}", opts.run, how);
    clock.reset();
    set_state(end_state);
  }
  emit();
}

RunControl::RunControl(RunDatabase& database, RunControlOptions options)
    : impl_(std::make_unique<Impl>(database, std::move(options))) {}

RunControl::~RunControl() {
  std::jthread worker;
  {
    std::lock_guard lock(impl_->m);
    impl_->stop.request_stop();
    worker = std::move(impl_->worker);
  }
  // Joined here, without the lock, which the run's last step takes.
}

control::Reply RunControl::configure(const std::string& config_text) {
  const bool from_file = config_text.empty();
  const std::string origin = from_file ? (impl_->options.config_file.empty() ? "embedded default" : impl_->options.config_file)
                                       : "configure request";
  control::Reply r;
  {
    std::lock_guard lock(impl_->m);
    if (!allowed(impl_->state, "configure")) return impl_->refuse("configure");
    try {
      DaqConfig cfg = !from_file ? load_config(config_text, origin)
                      : impl_->options.config_file.empty() ? load_config(default_config_text(), origin)
                                                           : load_config_file(impl_->options.config_file);
      if (!impl_->options.output_override.empty()) cfg.run.output_dir = impl_->options.output_override.string();
      check_output_dir(cfg, origin);
      const std::uint32_t id = impl_->register_set(cfg.thresholds, "config", fmt::format("from {}", origin));
      impl_->thresholds.request_active({id, cfg.thresholds});
      impl_->thresholds.request_shadow(std::nullopt);
      (void)impl_->thresholds.take_for_spill();  // no run: in force at once
      impl_->output = cfg.run.output_dir;
      if (impl_->options.monitor) impl_->options.monitor->configured(cfg);
      impl_->config = std::move(cfg);
    } catch (const ConfigError& e) {
      return impl_->reply(control::BAD_REQUEST, e.what());
    } catch (const DatabaseError& e) {
      return impl_->reply(control::INTERNAL, e.what());
    }
    impl_->message.clear();
    impl_->set_state(control::CONFIGURED);
    r = impl_->reply(control::OK, fmt::format("configured from {}, hash {}", origin, to_hex(impl_->config->hash)));
  }
  impl_->emit();
  return r;
}

control::Reply RunControl::start(const std::string& comment) {
  std::jthread finished;
  control::Reply r;
  {
    std::lock_guard lock(impl_->m);
    if (!allowed(impl_->state, "start")) return impl_->refuse("start");
    const DaqConfig& cfg = *impl_->config;
    try {
      check_output_dir(cfg, "start");
    } catch (const ConfigError& e) {
      return impl_->reply(control::INTERNAL, e.what());
    }
    RunOptions opts;
    opts.output = impl_->output;
    opts.spills = 0;
    opts.thresholds = &impl_->thresholds;
    try {
      // Committed before the run starts: a crash cannot give the number again.
      opts.run = impl_->database.begin_run(next_run_number(opts.output), now_ms(), comment, to_hex(cfg.hash), cfg.text);
    } catch (const Error& e) {
      return impl_->reply(control::INTERNAL, e.what());
    }
    // Everything that can fail comes before any state changes; the worker
    // cannot get far without `m`, which is held here.
    std::unique_ptr<eventbuilder::SpillClock> clock;
    std::stop_source stop;
    std::jthread worker;
    try {
      clock = make_spill_clock(cfg, opts);
      opts.clock = clock.get();
      if (impl_->options.monitor) impl_->options.monitor->begin_run(cfg, opts);
      worker = std::jthread([impl = impl_.get(), cfg, opts, token = stop.get_token()] {
        impl->run_thread(cfg, opts, token);
      });
    } catch (const std::exception& e) {
      const std::string why = fmt::format("run {} could not start: {}", opts.run, e.what());
      try {
        impl_->database.end_run(opts.run, now_ms(), "error: " + why);
      } catch (const std::exception&) {
        // Left without an end; the next daemon marks it interrupted.
      }
      return impl_->reply(control::INTERNAL, why);
    }
    impl_->clock = std::move(clock);
    impl_->run = opts.run;
    impl_->spill = 0;
    impl_->run_start_ms = now_ms();
    impl_->comment = comment;
    impl_->events_written = 0;
    impl_->bytes_written = 0;
    impl_->lost_sources = 0;
    impl_->message.clear();
    impl_->stop = std::move(stop);
    finished = std::move(impl_->worker);  // the last run's thread, done or about to be
    impl_->worker = std::move(worker);
    impl_->set_state(control::RUNNING);
    r = impl_->reply(control::OK, fmt::format("run {} started", opts.run));
  }
  impl_->emit();
  return r;
}

control::Reply RunControl::transition(std::string_view command, control::RunState to,
                                      const std::function<std::string()>& act) {
  control::Reply r;
  {
    std::lock_guard lock(impl_->m);
    if (!allowed(impl_->state, command)) return impl_->refuse(command);
    std::string done = act();
    impl_->set_state(to);
    r = impl_->reply(control::OK, std::move(done));
  }
  impl_->emit();
  return r;
}

control::Reply RunControl::stop() {
  return transition("stop", control::STOPPING, [&] {
    impl_->stop.request_stop();
    return fmt::format("run {}: stopping after the spill in progress", impl_->run);
  });
}

control::Reply RunControl::pause() {
  return transition("pause", control::PAUSED, [&] {
    impl_->clock->pause();
    return fmt::format("run {}: paused after the spill in progress", impl_->run);
  });
}

control::Reply RunControl::resume() {
  return transition("resume", control::RUNNING, [&] {
    impl_->clock->resume();
    return fmt::format("run {}: resumed", impl_->run);
  });
}

control::Reply RunControl::reset() {
  return transition("reset", control::IDLE, [&] {
    impl_->config.reset();
    impl_->message.clear();
    return std::string("reset: configuration unloaded");
  });
}

control::Reply RunControl::comment(const std::string& text) {
  std::lock_guard lock(impl_->m);
  if (!allowed(impl_->state, "comment")) return impl_->refuse("comment");
  if (text.empty()) return impl_->reply(control::BAD_REQUEST, "comment: the text is empty");
  try {
    impl_->database.add_comment(impl_->run, now_ms(), text);
  } catch (const DatabaseError& e) {
    return impl_->reply(control::INTERNAL, e.what());
  }
  return impl_->reply(control::OK, fmt::format("comment added to run {}", impl_->run));
}

control::Reply RunControl::set_thresholds(const control::Thresholds& thresholds, const std::string& comment,
                                          bool shadow, const std::string& author) {
  const trigger::ThresholdSet set = from_proto(thresholds);
  std::lock_guard lock(impl_->m);
  if (impl_->state == control::IDLE) return impl_->refuse("set thresholds");
  try {
    check_thresholds(set, "thresholds", "thresholds");
  } catch (const ConfigError& e) {
    return impl_->reply(control::BAD_REQUEST, e.what());
  }
  std::uint32_t id = 0;
  try {
    id = impl_->register_set(set, author, comment);
  } catch (const DatabaseError& e) {
    return impl_->reply(control::INTERNAL, e.what());
  }
  return use_locked(id, set, shadow);
}

control::Reply RunControl::use_threshold_set(std::uint32_t id, bool shadow) {
  std::lock_guard lock(impl_->m);
  if (impl_->state == control::IDLE) return impl_->refuse("use threshold set");
  std::optional<ThresholdSetRecord> rec;
  try {
    rec = impl_->database.threshold_set(id);
  } catch (const DatabaseError& e) {
    return impl_->reply(control::INTERNAL, e.what());
  }
  if (!rec) return impl_->reply(control::NOT_FOUND, fmt::format("threshold set {} does not exist", id));
  return use_locked(id, rec->set, shadow);
}

control::Reply RunControl::use_locked(std::uint32_t id, const trigger::ThresholdSet& set, bool shadow) {
  const bool in_run = impl_->in_run();
  if (shadow) {
    impl_->thresholds.request_shadow(VersionedThresholds{id, set});
  } else {
    impl_->thresholds.request_active(VersionedThresholds{id, set});
  }
  if (!in_run) (void)impl_->thresholds.take_for_spill();
  auto r = impl_->reply(control::OK, fmt::format("threshold set {} {} {}", id, shadow ? "shadow" : "active",
                                                 in_run ? "from the next spill" : "now"));
  r.set_threshold_set(id);
  *r.mutable_thresholds() = impl_->threshold_state(false);
  return r;
}

control::Reply RunControl::clear_shadow() {
  std::lock_guard lock(impl_->m);
  if (impl_->state == control::IDLE) return impl_->refuse("clear shadow");
  const bool in_run = impl_->in_run();
  impl_->thresholds.request_shadow(std::nullopt);
  if (!in_run) (void)impl_->thresholds.take_for_spill();
  return impl_->reply(control::OK, in_run ? "shadow set cleared from the next spill" : "shadow set cleared");
}

control::Status RunControl::status() const {
  std::lock_guard lock(impl_->m);
  return impl_->status_locked();
}

control::ThresholdState RunControl::thresholds(bool all) const {
  std::lock_guard lock(impl_->m);
  return impl_->threshold_state(all);
}

void RunControl::set_listener(std::function<void(const control::Event&)> listener) {
  impl_->outbox.set_listener(std::move(listener));
}

bool RunControl::wait_for(control::RunState state, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(impl_->m);
  return impl_->state_changed.wait_for(lock, timeout, [&] { return impl_->state == state; });
}

}  // namespace na64::daq
