// SPDX-License-Identifier: Apache-2.0
// The stages both readout chains share (pipeline.cpp: every particle's
// waveforms through the builder; two_level.cpp: summaries through the
// builder, waveforms and tracker data fetched for accepted events): the
// trigger, the writer and the hand-offs between them. Internal to na64_daq.
#pragma once

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <ctime>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <span>
#include <stop_token>
#include <string>
#include <vector>

#include "na64/daq/error.hpp"
#include "na64/daq/dqm_tap.hpp"
#include "na64/daq/event_sampler.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/daq/run_files.hpp"
#include "na64/eventbuilder/backoff.hpp"
#include "na64/firmware/date_event.hpp"
#include "na64/firmware/msadc.hpp"
#include "na64/firmware/run_record.hpp"
#include "na64/trigger/features.hpp"

namespace na64::daq::chain {

namespace fw = na64::firmware;
namespace eb = na64::eventbuilder;
using Clock = std::chrono::steady_clock;

/// Equipment type of an S-Link equipment in COMPASS DATE files.
inline constexpr std::uint32_t kSlinkEquipmentType = 64;
/// Records a trigger or writer stage looks for at once.
inline constexpr std::size_t kStageBatch = 64;
/// Decode errors reported in full per spill; the rest are only counted.
inline constexpr std::uint64_t kReportedDecodeErrors = 10;

/// An event on its way to disk, or a marker. For an event, `threshold_set`
/// and `shadow` are its trigger record. The slot holds the event's data as
/// the builder lays it out (per present source: slot, words, payload).
struct AcceptedDesc {
  eb::RecordKind kind = eb::RecordKind::Data;
  std::uint32_t spill = 0;
  std::uint32_t particle = 0;
  std::uint32_t trigger_mask = 0;
  std::uint32_t n_words = 0;
  fw::TriggerRecord record;
  /// Two-level readout: source slots whose summaries were built, and those
  /// whose board said the particle was not buffered.
  std::uint32_t present_mask = 0;
  std::uint32_t not_buffered = 0;
  eb::IncompleteReason builder_reason = eb::IncompleteReason::None;
  /// Equipment slots written without data, and why (two-level readout).
  std::uint32_t missing_mask = 0;
  std::array<fw::MissingReason, eb::kMaxSources> missing_reason{};
};
using AcceptedRing = eb::SlotRing<AcceptedDesc>;

/// What the trigger (and the completion) add to a spill's counts; carried
/// in the SpillEnd slot.
struct TriggerSpillCounters {
  eb::BuilderSpillCounters builder;
  std::array<std::uint64_t, trigger::kNumLines> accepted{};
  std::uint64_t accepted_events = 0;
  std::uint64_t decode_errors = 0;
  std::uint32_t threshold_set = 0;
  std::uint32_t shadow_set = 0;
  std::array<std::uint64_t, trigger::kNumLines> shadow_accepted{};
  std::array<std::uint64_t, trigger::kNumLines> shadow_overlap{};
  CompletionCounters completion;
};
static_assert(std::is_trivially_copyable_v<TriggerSpillCounters>);
inline constexpr std::size_t kCounterWords = (sizeof(TriggerSpillCounters) + 3) / 4;

/// The time each spill began, Unix seconds, as the readout saw it (or as a
/// recording says): written by the source threads before their SpillBegin
/// marker, read by the writer after it.
class SpillTimes {
 public:
  SpillTimes() : t_(fw::kMaxSpill + 1) {}
  void set_if_unset(std::uint32_t spill, std::uint32_t time_s) noexcept {
    std::uint32_t expected = 0;
    (void)t_[spill & fw::kMaxSpill].compare_exchange_strong(expected, time_s, std::memory_order_relaxed);
  }
  [[nodiscard]] std::uint32_t get(std::uint32_t spill) const noexcept {
    return t_[spill & fw::kMaxSpill].load(std::memory_order_relaxed);
  }

 private:
  std::vector<std::atomic<std::uint32_t>> t_;
};

[[nodiscard]] inline std::uint32_t unix_now() noexcept { return static_cast<std::uint32_t>(std::time(nullptr)); }

/// Spill reports from the writer thread to the caller's thread; once per spill.
class ReportQueue {
 public:
  void push(SpillSummary s) {
    {
      std::lock_guard lock(m_);
      q_.push_back(s);
    }
    cv_.notify_one();
  }
  void finish(std::string error) {
    {
      std::lock_guard lock(m_);
      done_ = true;
      error_ = std::move(error);
    }
    cv_.notify_one();
  }
  /// Next report, or nullopt when the writer has finished (then error() says how).
  std::optional<SpillSummary> pop() {
    std::unique_lock lock(m_);
    cv_.wait(lock, [&] { return !q_.empty() || done_; });
    if (q_.empty()) return std::nullopt;
    SpillSummary s = q_.front();
    q_.pop_front();
    return s;
  }
  std::string error() {
    std::lock_guard lock(m_);
    return error_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<SpillSummary> q_;
  bool done_ = false;
  std::string error_;
};

/// Waits for `n` free slots; false if the run is aborted meanwhile.
template <class Ring>
bool wait_writable(Ring& ring, std::size_t n, const std::stop_token& abort) {
  eb::Backoff backoff;
  while (ring.writable(n) < n) {
    if (abort.stop_requested()) return false;
    backoff.pause();
  }
  return true;
}

/// Waits for published records and returns how many; 0 if the run is aborted meanwhile.
template <class Ring>
std::size_t wait_readable(Ring& ring, const std::stop_token& abort) {
  eb::Backoff backoff;
  for (;;) {
    if (const std::size_t n = ring.readable(kStageBatch); n != 0) return n;
    if (abort.stop_requested()) return 0;
    backoff.pause();
  }
}

/// Announces spills, paced by the spill cycle, until a stop, the spill
/// limit, or an abort.
inline void drive_spills(eb::SpillClock& clock, double cycle_s, const std::stop_token& stop) {
  const auto cycle = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cycle_s));
  Clock::time_point not_before{};
  while (clock.next_spill(stop, not_before) != 0) {
    if (cycle_s > 0) not_before = Clock::now() + cycle;
  }
}

/// Decides on built events. Direct readout: the slots hold waveforms, an
/// incomplete event is not triggered on, and an accepted event goes on with
/// its data. Two-level readout: the slots hold summaries; an incomplete
/// event (a source lost or silent) is decided on the sources present, but
/// never by the missing-energy line (a missing calorimeter looks like
/// missing energy); an accepted event goes on as a reference for completion.
class TriggerStage {
 public:
  TriggerStage(const DaqConfig& config, ThresholdBoard& thresholds, eb::BuiltRing& in, AcceptedRing& out,
               bool two_level, DqmTap* dqm = nullptr)
      : dqm_(dqm),
        config_(config),
        thresholds_(thresholds),
        in_(in),
        out_(out),
        two_level_(two_level),
        extractor_(config.channel_map, config.extraction),
        summaries_(config.channel_map, config.extraction),
        menu_(config.thresholds),
        shadow_menu_(config.thresholds) {}

  void run(const std::stop_token& abort) {
    while (const std::size_t avail = wait_readable(in_, abort)) {
      if (!wait_writable(out_, 1, abort)) return;
      std::size_t done = 0;
      std::size_t produced = 0;
      bool run_end = false;
      for (; done < avail && !run_end; ++done) {
        if (out_.writable(produced + 1) <= produced) break;  // keep the rest for the next round
        const eb::BuiltDesc& d = in_.read_desc(done);
        run_end = d.kind == eb::RecordKind::RunEnd;
        if (handle(d, in_.read_words(done), produced)) ++produced;
      }
      if (produced != 0) out_.commit(produced);
      in_.consume(done);
      if (run_end) return;
    }
  }

 private:
  static constexpr std::uint32_t kInvisible = trigger::bit(trigger::TriggerLine::Invisible);

  static AcceptedDesc marker(eb::RecordKind kind, std::uint32_t spill, std::uint32_t particle) noexcept {
    AcceptedDesc a;
    a.kind = kind;
    a.spill = spill;
    a.particle = particle;
    return a;
  }

  // Returns true when it filled output slot `k`.
  bool handle(const eb::BuiltDesc& d, std::span<const std::uint32_t> slot, std::size_t k) {
    switch (d.kind) {
      case eb::RecordKind::SpillBegin: {
        // The only place thresholds change: no spill mixes two sets.
        const SpillThresholds sets = thresholds_.take_for_spill();
        menu_.set_thresholds(sets.active.set);
        menu_.begin_spill();
        counters_ = TriggerSpillCounters{};
        counters_.threshold_set = sets.active.id;
        shadow_ = sets.shadow.has_value();
        if (shadow_) {
          shadow_menu_.set_thresholds(sets.shadow->set);
          shadow_menu_.begin_spill();
          counters_.shadow_set = sets.shadow->id;
        }
        out_.write_desc(k) = marker(d.kind, d.spill, 0);
        return true;
      }
      case eb::RecordKind::SpillEnd:
        if (dqm_) dqm_->publish(d.spill);
        std::memcpy(static_cast<void*>(&counters_.builder), slot.data(), sizeof(counters_.builder));
        std::memcpy(out_.write_words(k).data(), &counters_, sizeof(counters_));
        out_.write_desc(k) = marker(d.kind, d.spill, d.event);
        return true;
      case eb::RecordKind::RunEnd:
        out_.write_desc(k) = marker(d.kind, 0, 0);
        return true;
      case eb::RecordKind::Data:
        break;
    }
    std::uint32_t not_buffered = 0;
    std::uint32_t allowed = ~0u;
    if (dqm_ && d.reason != eb::IncompleteReason::None) dqm_->filling().count_incomplete(d.reason);
    if (two_level_) {
      not_buffered = summaries_.extract(d, slot, features_);
      if (d.reason != eb::IncompleteReason::None) allowed = ~kInvisible;
    } else {
      // An incomplete event is counted by the builder and not triggered on:
      // a missing calorimeter would look like missing energy.
      if (d.reason != eb::IncompleteReason::None) return false;
      if (!extract_waveforms(d, slot)) return false;
    }
    const std::uint32_t mask = menu_.decide(features_, d.event) & allowed;
    // Histograms of complete events only: a missing board's cells would look dead.
    if (dqm_ && d.reason == eb::IncompleteReason::None) (void)dqm_->filling().offer(features_, mask);
    // The shadow set only flags: it never changes what is accepted.
    const std::uint32_t shadow_mask = shadow_ ? shadow_menu_.decide(features_, d.event) & allowed : 0;
    for (std::size_t line = 0; line < trigger::kNumLines; ++line) {
      const bool active = ((mask >> line) & 1u) != 0;
      const bool shadow = ((shadow_mask >> line) & 1u) != 0;
      counters_.accepted[line] += active;
      counters_.shadow_accepted[line] += shadow;
      counters_.shadow_overlap[line] += active && shadow;
    }
    if (mask == 0) return false;
    ++counters_.accepted_events;
    AcceptedDesc a = marker(eb::RecordKind::Data, d.spill, d.event);
    a.trigger_mask = mask;
    a.record = {counters_.threshold_set, counters_.shadow_set, shadow_mask};
    if (two_level_) {
      a.present_mask = d.present_mask;
      a.not_buffered = not_buffered;
      a.builder_reason = d.reason;
    } else {
      std::memcpy(out_.write_words(k).data(), slot.data(), std::size_t{d.n_words} * 4);
      a.n_words = d.n_words;
    }
    out_.write_desc(k) = a;
    return true;
  }

  bool extract_waveforms(const eb::BuiltDesc& d, std::span<const std::uint32_t> slot) {
    std::uint32_t bad_source = 0;
    auto status = extractor_.extract(d, slot, features_, bad_source);
    if (status && features_.missing_channels != 0) {
      bad_source = features_.first_missing_source;
      status = fw::DecodeError{fw::DecodeErrc::MissingChannels, 0, features_.missing_channels, 0,
                               "mapped channels absent from the event", "0"};
    }
    if (status) return true;
    if (counters_.decode_errors < kReportedDecodeErrors) {
      fmt::print(stderr, "na64daq: spill {} particle {} source {}: {}\n", d.spill, d.event,
                 config_.channel_map.sources()[bad_source], status.error().message());
    }
    ++counters_.decode_errors;
    return false;
  }

  DqmTap* dqm_;
  const DaqConfig& config_;
  ThresholdBoard& thresholds_;
  eb::BuiltRing& in_;
  AcceptedRing& out_;
  bool two_level_;
  trigger::FeatureExtractor extractor_;
  trigger::SummaryExtractor summaries_;
  trigger::TriggerMenu menu_;
  trigger::TriggerMenu shadow_menu_;
  bool shadow_ = false;
  trigger::EventFeatures features_;
  TriggerSpillCounters counters_;
};

/// One equipment of the written events: an S-Link source and what it carries.
struct Equipment {
  std::uint32_t source = 0;
  bool msadc = true;  ///< MSADC blocks are renumbered by trigger; tracker blocks keep the particle's number
};

/// Writes start of run, spills and end of run in the DATE format.
class WriterStage {
 public:
  WriterStage(const DaqConfig& config, const RunOptions& options, const eb::SpillClock& clock,
              std::vector<Equipment> equipment, const SpillTimes& times, AcceptedRing& in, ChunkWriter& chunks,
              ReportQueue& reports)
      : config_(config),
        options_(options),
        clock_(clock),
        equipment_(std::move(equipment)),
        times_(times),
        in_(in),
        chunks_(chunks),
        reports_(reports),
        time_s_(options.start_time_s != 0 ? options.start_time_s : unix_now()) {}

  void run(const std::stop_token& abort) {
    try {
      start_of_run();
      while (const std::size_t avail = wait_readable(in_, abort)) {
        for (std::size_t k = 0; k < avail; ++k) {
          const AcceptedDesc& d = in_.read_desc(k);
          if (d.kind == eb::RecordKind::RunEnd) {
            write_control(fw::EventType::EndOfRun, 0);
            chunks_.close();
            in_.consume(k + 1);
            reports_.finish({});
            return;
          }
          handle(d, in_.read_words(k));
        }
        in_.consume(avail);
      }
      reports_.finish("run aborted");
    } catch (const std::exception& e) {
      reports_.finish(e.what());
    }
  }

 private:
  fw::DateHeader header(fw::EventType type, std::uint32_t event_in_spill) const {
    fw::DateHeader h;
    h.type = type;
    h.run = options_.run;
    h.spill = spill_;
    h.event_in_run = event_in_run_;
    h.event_in_spill = event_in_spill;
    h.ldc_id = config_.run.ldc_id;
    h.gdc_id = config_.run.gdc_id;
    h.time_s = time_s_;
    return h;
  }

  // The start of run carries the configuration record, so that a file
  // alone tells how it was taken.
  void start_of_run() {
    auto out = chunks_.reserve(fw::kDateHeaderWords + fw::config_record_words(config_.text.size()));
    fw::DateEventWriter w(out);
    w.begin(header(fw::EventType::StartOfRun, 0));
    const std::size_t head = w.finish();
    const std::size_t body = fw::write_config_record(out.subspan(head), config_.hash, config_.text);
    if (head == 0 || body == 0) throw RunError("the start-of-run record does not fit the write buffer");
    out[0] = static_cast<std::uint32_t>((head + body) * 4);  // DATE word 0: the event's size in bytes
    commit(head + body);
  }

  void write_control(fw::EventType type, std::uint32_t event_in_spill) {
    auto out = chunks_.reserve(fw::kDateHeaderWords);
    fw::DateEventWriter w(out);
    w.begin(header(type, event_in_spill));
    commit(w.finish());
  }

  // One S-Link equipment per source: equipment id = S-Link source id.
  static bool begin_equipment(fw::DateEventWriter& w, std::uint32_t source, fw::MissingReason missing) {
    fw::EquipmentHeader eq;
    eq.type = kSlinkEquipmentType;
    eq.id = source;
    eq.attributes[0] = static_cast<std::uint32_t>(missing);
    fw::SlinkHeader sl;
    sl.source_id = source;
    return w.begin_equipment(eq, sl);
  }

  void commit(std::size_t words) {
    chunks_.commit(words);
    spill_summary_.bytes += std::uint64_t{words} * 4;
  }

  [[nodiscard]] std::size_t envelope_words() const noexcept {
    return fw::kDateHeaderWords + equipment_.size() * (fw::kEquipmentHeaderWords + fw::kSlinkHeaderWords);
  }

  void handle(const AcceptedDesc& d, std::span<const std::uint32_t> slot) {
    switch (d.kind) {
      case eb::RecordKind::SpillBegin:
        spill_ = d.spill;
        if (const std::uint32_t t = times_.get(d.spill); t != 0) time_s_ = t;
        spill_summary_ = SpillSummary{};
        spill_summary_.spill = d.spill;
        written_in_spill_ = 0;
        spill_start_ = Clock::now();
        write_control(fw::EventType::StartOfBurst, 0);
        return;
      case eb::RecordKind::SpillEnd:
        end_of_burst(slot);
        return;
      case eb::RecordKind::RunEnd:
        return;
      case eb::RecordKind::Data:
        break;
    }
    // The end of burst takes the number after the last physics event, so
    // physics events stop one short of the 20-bit limit.
    if (written_in_spill_ == fw::kMaxEventInSpill - 1) {
      ++spill_summary_.not_written;
      return;
    }
    ++written_in_spill_;
    ++event_in_run_;
    auto out = chunks_.reserve(envelope_words() + d.n_words);
    fw::DateEventWriter w(out);
    fw::DateHeader h = header(fw::EventType::Physics, written_in_spill_);
    h.trigger_mask = d.trigger_mask;
    h.detector_pattern = d.particle;  // the front-end's particle number in the spill
    fw::put_trigger_record(h, d.record);
    w.begin(h);
    // Equipment in slot order; the slot holds the present ones in that order.
    std::array<std::span<const std::uint32_t>, eb::kMaxSources> blocks{};
    std::uint32_t present = 0;
    eb::BuiltDesc built{eb::RecordKind::Data, eb::IncompleteReason::None, d.spill, d.particle, 0, 0, d.n_words};
    eb::for_each_fragment(built, slot, [&](const eb::BuiltFragment& f) {
      if (f.source_slot >= equipment_.size()) return;
      blocks[f.source_slot] = f.words;
      present |= 1u << f.source_slot;
    });
    for (std::size_t e = 0; e < equipment_.size(); ++e) {
      const bool has = ((present >> e) & 1u) != 0;
      const bool missing = ((d.missing_mask >> e) & 1u) != 0;
      if (!has && !missing) continue;  // direct readout: only the sources built
      if (!begin_equipment(w, equipment_[e].source, has ? fw::MissingReason::None : d.missing_reason[e])) break;
      if (!has) {
        (void)w.end_equipment(0);
        continue;
      }
      auto payload = w.payload_space();
      if (payload.size() < blocks[e].size()) break;
      std::memcpy(payload.data(), blocks[e].data(), blocks[e].size() * 4);
      // Written events are numbered by trigger; the decoder wants ADC event = S-Link event & 0xFFF.
      if (equipment_[e].msadc) (void)fw::restamp_msadc_event(payload.first(blocks[e].size()), written_in_spill_);
      (void)w.end_equipment(blocks[e].size());
    }
    const std::size_t words = w.finish();
    if (words == 0) throw RunError(fmt::format("spill {} particle {}: event does not fit the write buffer", d.spill, d.particle));
    if (options_.sampler) options_.sampler->offer(std::span<const std::uint32_t>(out.data(), words));
    commit(words);
    ++spill_summary_.written;
  }

  // End of burst: one empty S-Link block per source, so that the decoder,
  // which reads equipment in type 6, finds every mapped source.
  void end_of_burst(std::span<const std::uint32_t> slot) {
    TriggerSpillCounters c;
    std::memcpy(static_cast<void*>(&c), slot.data(), sizeof(c));
    const std::uint32_t eob_number = written_in_spill_ + 1;
    auto out = chunks_.reserve(envelope_words());
    fw::DateEventWriter w(out);
    w.begin(header(fw::EventType::EndOfBurst, eob_number));
    for (const Equipment& e : equipment_) {
      (void)begin_equipment(w, e.source, fw::MissingReason::None);
      (void)w.end_equipment(0);
    }
    commit(w.finish());
    chunks_.sync();
    spill_summary_.builder = c.builder;
    spill_summary_.accepted = c.accepted;
    spill_summary_.accepted_events = c.accepted_events;
    spill_summary_.decode_errors = c.decode_errors;
    spill_summary_.threshold_set = c.threshold_set;
    spill_summary_.shadow_set = c.shadow_set;
    spill_summary_.shadow_accepted = c.shadow_accepted;
    spill_summary_.shadow_overlap = c.shadow_overlap;
    spill_summary_.completion = c.completion;
    spill_summary_.seconds = std::chrono::duration<double>(Clock::now() - spill_start_).count();
    // Dead time: the busiest source's time blocked on a full buffer, over
    // the spill's readout time (announcement to the last source done).
    const double readout_s = std::chrono::duration<double>(clock_.readout_time(spill_)).count();
    if (readout_s > 0) {
      spill_summary_.dead_time =
          std::min(1.0, std::chrono::duration<double>(clock_.busy(spill_)).count() / readout_s);
    }
    reports_.push(spill_summary_);
  }

  const DaqConfig& config_;
  const RunOptions& options_;
  const eb::SpillClock& clock_;
  std::vector<Equipment> equipment_;
  const SpillTimes& times_;
  AcceptedRing& in_;
  ChunkWriter& chunks_;
  ReportQueue& reports_;
  std::uint32_t time_s_;
  std::uint32_t spill_ = 0;
  std::uint32_t written_in_spill_ = 0;
  std::uint32_t event_in_run_ = 0;
  SpillSummary spill_summary_;
  Clock::time_point spill_start_{};
};

/// Adds a spill's counts to the run totals.
void add_to(SpillSummary& total, const SpillSummary& s);
/// The caller's thread while a run goes on: each spill's report into the
/// run's counts and on to `on_spill`, until the writer finishes. Returns the
/// writer's error ("" when the run ended well).
[[nodiscard]] std::string collect_reports(ReportQueue& reports, RunSummary& summary,
                                          const std::function<void(const SpillSummary&)>& on_spill);
/// After the run: its totals (fragments late after the last spill, every
/// byte written including the run records), files and time; writes the
/// summary file.
void finish_run(RunSummary& summary, const RunOptions& options, const eb::BuilderSpillCounters& builder_totals,
                const ChunkWriter& chunks, Clock::time_point t0);
/// The decoder's map file for the configuration.
[[nodiscard]] std::string map_text(const DaqConfig& config, std::uint32_t run);
/// Refuses a run whose map or summary file exists already.
void refuse_existing_run(const RunOptions& options);

/// run_simulated() for readout.mode TWO_LEVEL (two_level.cpp).
RunSummary run_two_level(const DaqConfig& config, const RunOptions& options,
                         const std::function<void(const SpillSummary&)>& on_spill, std::stop_token stop);

}  // namespace na64::daq::chain
