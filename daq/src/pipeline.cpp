// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/pipeline.hpp"

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <ctime>
#include <deque>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <thread>

#include "na64/daq/error.hpp"
#include "na64/daq/run_files.hpp"
#include "na64/drivers/emulated_msadc.hpp"
#include "na64/eventbuilder/backoff.hpp"
#include "na64/firmware/date_event.hpp"
#include "na64/firmware/msadc.hpp"
#include "na64/firmware/run_record.hpp"
#include "na64/firmware/sadc_map.hpp"
#include "na64/trigger/features.hpp"

namespace na64::daq {

namespace fw = na64::firmware;
namespace eb = na64::eventbuilder;
using Clock = std::chrono::steady_clock;

namespace {

/// Equipment type of an S-Link equipment in COMPASS DATE files.
constexpr std::uint32_t kSlinkEquipmentType = 64;
/// Physics events published per batch by a board.
constexpr std::size_t kBoardBatch = 32;
/// Records a trigger or writer stage looks for at once.
constexpr std::size_t kStageBatch = 64;
/// Decode errors reported in full per spill; the rest are only counted.
constexpr std::uint64_t kReportedDecodeErrors = 10;

/// Trigger output: accepted events and the markers. For an event,
/// `threshold_set` and `shadow` are its trigger record.
struct AcceptedDesc {
  eb::RecordKind kind = eb::RecordKind::Data;
  std::uint32_t spill = 0;
  std::uint32_t particle = 0;
  std::uint32_t trigger_mask = 0;
  std::uint32_t n_words = 0;
  fw::TriggerRecord record;
};
using AcceptedRing = eb::SlotRing<AcceptedDesc>;

/// What the trigger adds to a spill's counts; carried in the SpillEnd slot.
struct TriggerSpillCounters {
  eb::BuilderSpillCounters builder;
  std::array<std::uint64_t, trigger::kNumLines> accepted{};
  std::uint64_t accepted_events = 0;
  std::uint64_t decode_errors = 0;
  std::uint32_t threshold_set = 0;
  std::uint32_t shadow_set = 0;
  std::array<std::uint64_t, trigger::kNumLines> shadow_accepted{};
  std::array<std::uint64_t, trigger::kNumLines> shadow_overlap{};
};
static_assert(std::is_trivially_copyable_v<TriggerSpillCounters>);

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

// Waits for `n` free slots; false if the run is aborted meanwhile.
template <class Ring>
bool wait_writable(Ring& ring, std::size_t n, const std::stop_token& abort) {
  eb::Backoff backoff;
  while (ring.writable(n) < n) {
    if (abort.stop_requested()) return false;
    backoff.pause();
  }
  return true;
}

// Waits for published records and returns how many; 0 if the run is aborted meanwhile.
template <class Ring>
std::size_t wait_readable(Ring& ring, const std::stop_token& abort) {
  eb::Backoff backoff;
  for (;;) {
    if (const std::size_t n = ring.readable(kStageBatch); n != 0) return n;
    if (abort.stop_requested()) return 0;
    backoff.pause();
  }
}

// Reads out every spill the clock announces; a stop or a pause is decided by
// the clock between spills, so the spill in progress is read out whole.
void board_thread(const drivers::EmulatedMsadcBoard& board, eb::FragmentRing& ring, std::uint32_t particles,
                  eb::SpillClock& clock, std::stop_token abort) {
  auto marker = [&](eb::RecordKind kind, std::uint32_t spill, std::uint32_t count) {
    if (!wait_writable(ring, 1, abort)) return false;
    ring.write_desc(0) = eb::FragmentDesc{kind, spill, count, 0};
    ring.commit(1);
    return true;
  };
  for (std::uint32_t spill = 1; clock.wait_for_spill(spill, abort); ++spill) {
    if (!marker(eb::RecordKind::SpillBegin, spill, 0)) return;
    Clock::duration busy{};
    std::uint32_t p = 1;
    while (p <= particles) {
      if (ring.writable(1) == 0) {  // the readout is busy: the chain behind it is full
        const auto t = Clock::now();
        if (!wait_writable(ring, 1, abort)) return;
        busy += Clock::now() - t;
      }
      const std::size_t room = std::min<std::size_t>({ring.writable(kBoardBatch), kBoardBatch, particles - p + 1});
      std::size_t filled = 0;
      for (std::size_t k = 0; k < room; ++k, ++p) {
        if (const auto ms = board.stall_ms(spill, p); ms != 0) {
          ring.commit(filled);
          filled = 0;
          // Silent like a stalled board, but an aborted run does not wait for it.
          std::mutex m;
          std::unique_lock lock(m);
          std::condition_variable_any().wait_for(lock, abort, std::chrono::milliseconds(ms), [] { return false; });
        }
        if (board.loses(spill, p)) continue;
        const std::size_t n = board.read_event(spill, p, ring.write_words(filled));
        ring.write_desc(filled++) = eb::FragmentDesc{eb::RecordKind::Data, spill, p, static_cast<std::uint32_t>(n)};
      }
      ring.commit(filled);
    }
    // Reported before the end marker, so that the writer, which sees the
    // spill's end after this marker, finds the busy time recorded.
    clock.spill_done(spill, busy);
    if (!marker(eb::RecordKind::SpillEnd, spill, p - 1)) return;
  }
  (void)marker(eb::RecordKind::RunEnd, 0, 0);
}

// Announces spills, paced by the spill cycle, until a stop, the spill
// limit, or an abort.
void drive_spills(eb::SpillClock& clock, double cycle_s, const std::stop_token& stop) {
  const auto cycle = std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(cycle_s));
  Clock::time_point not_before{};
  while (clock.next_spill(stop, not_before) != 0) {
    if (cycle_s > 0) not_before = Clock::now() + cycle;
  }
}

class TriggerStage {
 public:
  TriggerStage(const DaqConfig& config, ThresholdBoard& thresholds, eb::BuiltRing& in, AcceptedRing& out)
      : config_(config),
        thresholds_(thresholds),
        in_(in),
        out_(out),
        extractor_(config.channel_map, config.extraction),
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
        out_.write_desc(k) = AcceptedDesc{d.kind, d.spill, 0, 0, 0, {}};
        return true;
      }
      case eb::RecordKind::SpillEnd:
        std::memcpy(static_cast<void*>(&counters_.builder), slot.data(), sizeof(counters_.builder));
        std::memcpy(out_.write_words(k).data(), &counters_, sizeof(counters_));
        out_.write_desc(k) = AcceptedDesc{d.kind, d.spill, d.event, 0, 0, {}};
        return true;
      case eb::RecordKind::RunEnd:
        out_.write_desc(k) = AcceptedDesc{d.kind, 0, 0, 0, 0, {}};
        return true;
      case eb::RecordKind::Data:
        break;
    }
    // An incomplete event is counted by the builder and not triggered on:
    // a missing calorimeter would look like missing energy.
    if (d.reason != eb::IncompleteReason::None) return false;
    std::uint32_t bad_source = 0;
    auto status = extractor_.extract(d, slot, features_, bad_source);
    if (status && features_.missing_channels != 0) {
      bad_source = features_.first_missing_source;
      status = fw::DecodeError{fw::DecodeErrc::MissingChannels, 0, features_.missing_channels, 0,
                               "mapped channels absent from the event", "0"};
    }
    if (!status) {
      if (counters_.decode_errors < kReportedDecodeErrors) {
        fmt::print(stderr, "na64daq: spill {} particle {} source {}: {}\n", d.spill, d.event,
                   config_.channel_map.sources()[bad_source], status.error().message());
      }
      ++counters_.decode_errors;
      return false;
    }
    const std::uint32_t mask = menu_.decide(features_, d.event);
    // The shadow set only flags: it never changes what is accepted.
    const std::uint32_t shadow_mask = shadow_ ? shadow_menu_.decide(features_, d.event) : 0;
    for (std::size_t line = 0; line < trigger::kNumLines; ++line) {
      const bool active = ((mask >> line) & 1u) != 0;
      const bool shadow = ((shadow_mask >> line) & 1u) != 0;
      counters_.accepted[line] += active;
      counters_.shadow_accepted[line] += shadow;
      counters_.shadow_overlap[line] += active && shadow;
    }
    if (mask == 0) return false;
    ++counters_.accepted_events;
    std::memcpy(out_.write_words(k).data(), slot.data(), std::size_t{d.n_words} * 4);
    out_.write_desc(k) = AcceptedDesc{eb::RecordKind::Data, d.spill, d.event, mask, d.n_words,
                                      {counters_.threshold_set, counters_.shadow_set, shadow_mask}};
    return true;
  }

  const DaqConfig& config_;
  ThresholdBoard& thresholds_;
  eb::BuiltRing& in_;
  AcceptedRing& out_;
  trigger::FeatureExtractor extractor_;
  trigger::TriggerMenu menu_;
  trigger::TriggerMenu shadow_menu_;
  bool shadow_ = false;
  trigger::EventFeatures features_;
  TriggerSpillCounters counters_;
};

class WriterStage {
 public:
  WriterStage(const DaqConfig& config, const RunOptions& options, const eb::SpillClock& clock, AcceptedRing& in,
              ChunkWriter& chunks, ReportQueue& reports)
      : config_(config), options_(options), clock_(clock), in_(in), chunks_(chunks), reports_(reports) {}

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
    h.time_s = static_cast<std::uint32_t>(std::time(nullptr));
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
  static bool begin_source_equipment(fw::DateEventWriter& w, std::uint32_t source) {
    fw::EquipmentHeader eq;
    eq.type = kSlinkEquipmentType;
    eq.id = source;
    fw::SlinkHeader sl;
    sl.source_id = source;
    return w.begin_equipment(eq, sl);
  }

  void commit(std::size_t words) {
    chunks_.commit(words);
    spill_summary_.bytes += std::uint64_t{words} * 4;
  }

  void handle(const AcceptedDesc& d, std::span<const std::uint32_t> slot) {
    switch (d.kind) {
      case eb::RecordKind::SpillBegin:
        spill_ = d.spill;
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
    const auto sources = config_.channel_map.sources();
    auto out = chunks_.reserve(fw::kDateHeaderWords + sources.size() * (fw::kEquipmentHeaderWords + fw::kSlinkHeaderWords) +
                               d.n_words);
    fw::DateEventWriter w(out);
    fw::DateHeader h = header(fw::EventType::Physics, written_in_spill_);
    h.trigger_mask = d.trigger_mask;
    h.detector_pattern = d.particle;  // the front-end's particle number in the spill
    fw::put_trigger_record(h, d.record);
    w.begin(h);
    eb::BuiltDesc built{eb::RecordKind::Data, eb::IncompleteReason::None, d.spill, d.particle, 0, 0, d.n_words};
    eb::for_each_fragment(built, slot, [&](const eb::BuiltFragment& f) {
      if (!begin_source_equipment(w, sources[f.source_slot])) return;
      auto payload = w.payload_space();
      if (payload.size() < f.words.size()) return;
      std::memcpy(payload.data(), f.words.data(), f.words.size() * 4);
      // Written events are numbered by trigger; the decoder wants ADC event = S-Link event & 0xFFF.
      (void)fw::restamp_msadc_event(payload.first(f.words.size()), written_in_spill_);
      (void)w.end_equipment(f.words.size());
    });
    const std::size_t words = w.finish();
    if (words == 0) throw RunError(fmt::format("spill {} particle {}: event does not fit the write buffer", d.spill, d.particle));
    commit(words);
    ++spill_summary_.written;
  }

  // End of burst: one empty S-Link block per source, so that the decoder,
  // which reads equipment in type 6, finds every mapped source.
  void end_of_burst(std::span<const std::uint32_t> slot) {
    TriggerSpillCounters c;
    std::memcpy(static_cast<void*>(&c), slot.data(), sizeof(c));
    const auto sources = config_.channel_map.sources();
    const std::uint32_t eob_number = written_in_spill_ + 1;
    auto out = chunks_.reserve(fw::kDateHeaderWords + sources.size() * (fw::kEquipmentHeaderWords + fw::kSlinkHeaderWords));
    fw::DateEventWriter w(out);
    w.begin(header(fw::EventType::EndOfBurst, eob_number));
    for (std::uint32_t source : sources) {
      (void)begin_source_equipment(w, source);
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
  AcceptedRing& in_;
  ChunkWriter& chunks_;
  ReportQueue& reports_;
  std::uint32_t spill_ = 0;
  std::uint32_t written_in_spill_ = 0;
  std::uint32_t event_in_run_ = 0;
  SpillSummary spill_summary_;
  Clock::time_point spill_start_{};
};

void add_to(SpillSummary& total, const SpillSummary& s) {
  total.builder.add(s.builder);
  for (std::size_t l = 0; l < total.accepted.size(); ++l) total.accepted[l] += s.accepted[l];
  total.accepted_events += s.accepted_events;
  total.decode_errors += s.decode_errors;
  total.written += s.written;
  total.not_written += s.not_written;
  total.bytes += s.bytes;
  for (std::size_t l = 0; l < total.accepted.size(); ++l) {
    total.shadow_accepted[l] += s.shadow_accepted[l];
    total.shadow_overlap[l] += s.shadow_overlap[l];
  }
}

std::string map_text(const DaqConfig& config, std::uint32_t run) {
  std::vector<fw::SadcMapLine> lines;
  for (const auto& e : config.channel_map.entries()) {
    const fw::Cell c = fw::cell_at(e.cell);
    lines.push_back({std::string(fw::geometry(c.detector).name), e.source_id, e.port, e.chip_channel, c.x, c.y});
  }
  return fw::write_sadc_map(lines, fmt::format("NA64 MSADC map written by na64daq for run {}", run));
}

}  // namespace

std::unique_ptr<eb::SpillClock> make_spill_clock(const DaqConfig& config, const RunOptions& options) {
  return std::make_unique<eb::SpillClock>(config.channel_map.sources().size(),
                                          options.spills == 0 ? fw::kMaxSpill : options.spills);
}

RunSummary run_simulated(const DaqConfig& config, const RunOptions& options,
                         const std::function<void(const SpillSummary&)>& on_spill, std::stop_token stop) {
  if (options.run == 0) throw ConfigError("run number must not be 0");
  if (options.spills > fw::kMaxSpill) {
    throw ConfigError(fmt::format("spills: {} is out of range [0, {}]", options.spills, fw::kMaxSpill));
  }
  const auto t0 = Clock::now();
  RunSummary summary;
  summary.run = options.run;

  for (const std::string& name : {map_file_name(options.run), summary_file_name(options.run)}) {
    if (std::filesystem::exists(options.output / name)) {
      throw RunError(fmt::format("run {} already has {} in {}; a run file is never overwritten", options.run, name,
                                 options.output.string()));
    }
  }

  // Everything the data path uses is allocated here, before the first spill.
  const drivers::NA64Beam beam(config.beam);
  std::vector<std::unique_ptr<drivers::EmulatedMsadcBoard>> boards;
  std::size_t fragment_words = 0;
  for (std::uint32_t source : config.channel_map.sources()) {
    boards.push_back(std::make_unique<drivers::EmulatedMsadcBoard>(source, config.channel_map, beam, config.emulator));
    fragment_words += boards.back()->max_fragment_words();
  }
  std::vector<std::unique_ptr<eb::FragmentRing>> fragment_rings;
  std::vector<eb::FragmentRing*> inputs;
  std::unique_ptr<eb::BuiltRing> built;
  std::unique_ptr<AcceptedRing> accepted;
  try {
    for (const auto& board : boards) {
      fragment_rings.push_back(std::make_unique<eb::FragmentRing>(config.ring_slots, board->max_fragment_words()));
      inputs.push_back(fragment_rings.back().get());
    }
    const std::size_t slot_words = std::max(eb::built_slot_words(inputs), (sizeof(TriggerSpillCounters) + 3) / 4);
    built = std::make_unique<eb::BuiltRing>(config.ring_slots, slot_words);
    accepted = std::make_unique<AcceptedRing>(std::max<std::size_t>(config.ring_slots / 4, 64), slot_words);
  } catch (const std::bad_alloc&) {
    const double mib = 2.0 * 4.0 * static_cast<double>(config.ring_slots) * static_cast<double>(fragment_words) / (1 << 20);
    throw RunError(fmt::format("cannot allocate the ring buffers: builder.ring_slots = {} needs about {:.0f} MiB",
                               config.ring_slots, mib));
  }
  eb::EventBuilder builder(inputs, *built, config.builder);
  ThresholdBoard own_thresholds(VersionedThresholds{0, config.thresholds});
  TriggerStage trigger_stage(config, options.thresholds ? *options.thresholds : own_thresholds, *built, *accepted);
  std::unique_ptr<eb::SpillClock> own_clock;
  if (!options.clock) own_clock = make_spill_clock(config, options);
  eb::SpillClock& clock = options.clock ? *options.clock : *own_clock;

  ChunkWriter chunks(options.output, config.run.gdc_id, options.run, config.run.max_chunk_bytes);
  summary.map_file = map_file_name(options.run);
  write_file_once(options.output, summary.map_file, map_text(config, options.run));

  ReportQueue reports;
  WriterStage writer_stage(config, options, clock, *accepted, chunks, reports);
  std::stop_source abort;
  // No new spill after a stop, or after an abort (a failed writer).
  std::stop_source end_spills;
  const std::stop_callback on_stop(stop, [&] { end_spills.request_stop(); });
  const std::stop_callback on_abort(abort.get_token(), [&] { end_spills.request_stop(); });
  {
    std::vector<std::jthread> threads;
    // Declared after `threads`, so destroyed before they are joined: whatever
    // ends this block, an exception included, releases every stage first.
    struct AbortOnExit {
      std::stop_source& abort;
      ~AbortOnExit() { abort.request_stop(); }
    } abort_on_exit{abort};
    for (std::size_t i = 0; i < boards.size(); ++i) {
      threads.emplace_back([&, i] {
        board_thread(*boards[i], *fragment_rings[i], config.beam.particles_per_spill, clock, abort.get_token());
      });
    }
    threads.emplace_back([&] { drive_spills(clock, config.run.spill_cycle_s, end_spills.get_token()); });
    threads.emplace_back([&] { builder.run(abort.get_token()); });
    threads.emplace_back([&] { trigger_stage.run(abort.get_token()); });
    threads.emplace_back([&] { writer_stage.run(abort.get_token()); });

    while (auto s = reports.pop()) {
      summary.spills.push_back(*s);
      add_to(summary.total, *s);
      if (on_spill) on_spill(*s);
    }
    // The writer has ended. Release any thread still waiting, such as a
    // board that was given up on and whose ring nobody reads any more.
    abort.request_stop();
    threads.clear();
    const std::string error = reports.error();
    if (!error.empty()) throw RunError(fmt::format("run {}: {}", options.run, error));
  }
  // Fragments dropped after the last spill closed count in the run total only.
  summary.total.builder.late_fragments = builder.totals().late_fragments;
  summary.files = chunks.files();
  // Run totals also count the start- and end-of-run records.
  summary.total.bytes = chunks.bytes_written();
  summary.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  summary.summary_file = summary_file_name(options.run);
  write_file_once(options.output, summary.summary_file, summary_json(summary));
  return summary;
}

}  // namespace na64::daq
