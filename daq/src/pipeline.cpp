// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/pipeline.hpp"

#include <fmt/format.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <thread>

#include "chain.hpp"
#include "na64/daq/error.hpp"
#include "na64/daq/run_files.hpp"
#include "na64/drivers/emulated_msadc.hpp"
#include "na64/firmware/sadc_map.hpp"

namespace na64::daq {

namespace fw = na64::firmware;
namespace eb = na64::eventbuilder;
using Clock = std::chrono::steady_clock;

namespace {

using namespace chain;  // NOLINT(google-build-using-namespace): the stages of this file's chain

/// Physics events published per batch by a board.
constexpr std::size_t kBoardBatch = 32;

// Reads out every spill the clock announces; a stop or a pause is decided by
// the clock between spills, so the spill in progress is read out whole.
void board_thread(const drivers::EmulatedMsadcBoard& board, eb::FragmentRing& ring, std::uint32_t particles,
                  eb::SpillClock& clock, SpillTimes& times, std::stop_token abort) {
  auto marker = [&](eb::RecordKind kind, std::uint32_t spill, std::uint32_t count) {
    if (!wait_writable(ring, 1, abort)) return false;
    ring.write_desc(0) = eb::FragmentDesc{kind, spill, count, 0};
    ring.commit(1);
    return true;
  };
  for (std::uint32_t spill = 1; clock.wait_for_spill(spill, abort); ++spill) {
    times.set_if_unset(spill, unix_now());
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

}  // namespace

namespace chain {

void add_to(SpillSummary& total, const SpillSummary& s) {
  total.builder.add(s.builder);
  for (std::size_t l = 0; l < total.accepted.size(); ++l) total.accepted[l] += s.accepted[l];
  total.accepted_events += s.accepted_events;
  total.decode_errors += s.decode_errors;
  total.written += s.written;
  total.not_written += s.not_written;
  total.bytes += s.bytes;
  total.completion.add(s.completion);
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
  // Trackers: APV planes by COMPASS's ChipAPV; straws in the NA64 straw TDC
  // format (firmware-interfaces/README.md), which only this project decodes.
  std::vector<fw::ChipLine> trackers;
  for (const TrackerSettings& t : config.readout.trackers) {
    trackers.push_back({t.source, t.kind == TrackerKind::Straw ? "ChipNA64StrawTDC" : "ChipAPV"});
  }
  return fw::write_sadc_map(lines, fmt::format("NA64 MSADC map written by na64daq for run {}", run), trackers);
}

std::string collect_reports(ReportQueue& reports, RunSummary& summary,
                            const std::function<void(const SpillSummary&)>& on_spill) {
  while (auto s = reports.pop()) {
    summary.spills.push_back(*s);
    add_to(summary.total, *s);
    if (on_spill) on_spill(*s);
  }
  return reports.error();
}

void finish_run(RunSummary& summary, const RunOptions& options, const eb::BuilderSpillCounters& builder_totals,
                const ChunkWriter& chunks, Clock::time_point t0) {
  // Fragments dropped after the last spill closed count in the run total only.
  summary.total.builder.late_fragments = builder_totals.late_fragments;
  summary.files = chunks.files();
  // Run totals also count the start- and end-of-run records.
  summary.total.bytes = chunks.bytes_written();
  summary.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  summary.summary_file = summary_file_name(options.run);
  write_file_once(options.output, summary.summary_file, summary_json(summary));
}

void refuse_existing_run(const RunOptions& options) {
  for (const std::string& name : {map_file_name(options.run), summary_file_name(options.run)}) {
    if (std::filesystem::exists(options.output / name)) {
      throw RunError(fmt::format("run {} already has {} in {}; a run file is never overwritten", options.run, name,
                                 options.output.string()));
    }
  }
}

}  // namespace chain

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
  if (config.readout.mode == ReadoutMode::TwoLevel) return run_two_level(config, options, on_spill, stop);
  const auto t0 = Clock::now();
  RunSummary summary;
  summary.run = options.run;
  refuse_existing_run(options);

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
    const std::size_t slot_words = std::max(eb::built_slot_words(inputs), kCounterWords);
    built = std::make_unique<eb::BuiltRing>(config.ring_slots, slot_words);
    accepted = std::make_unique<AcceptedRing>(std::max<std::size_t>(config.ring_slots / 4, 64), slot_words);
  } catch (const std::bad_alloc&) {
    const double mib = 2.0 * 4.0 * static_cast<double>(config.ring_slots) * static_cast<double>(fragment_words) / (1 << 20);
    throw RunError(fmt::format("cannot allocate the ring buffers: builder.ring_slots = {} needs about {:.0f} MiB",
                               config.ring_slots, mib));
  }
  eb::EventBuilder builder(inputs, *built, config.builder);
  ThresholdBoard own_thresholds(VersionedThresholds{0, config.thresholds});
  TriggerStage trigger_stage(config, options.thresholds ? *options.thresholds : own_thresholds, *built, *accepted,
                             false, options.dqm);
  std::unique_ptr<eb::SpillClock> own_clock;
  if (!options.clock) own_clock = make_spill_clock(config, options);
  eb::SpillClock& clock = options.clock ? *options.clock : *own_clock;

  ChunkWriter chunks(options.output, config.run.gdc_id, options.run, config.run.max_chunk_bytes);
  summary.map_file = map_file_name(options.run);
  write_file_once(options.output, summary.map_file, map_text(config, options.run));

  ReportQueue reports;
  SpillTimes times;
  std::vector<Equipment> equipment;
  for (std::uint32_t source : config.channel_map.sources()) equipment.push_back({source, true});
  WriterStage writer_stage(config, options, clock, std::move(equipment), times, *accepted, chunks, reports);
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
        board_thread(*boards[i], *fragment_rings[i], config.beam.particles_per_spill, clock, times,
                     abort.get_token());
      });
    }
    threads.emplace_back([&] { drive_spills(clock, config.run.spill_cycle_s, end_spills.get_token()); });
    threads.emplace_back([&] { builder.run(abort.get_token()); });
    threads.emplace_back([&] { trigger_stage.run(abort.get_token()); });
    threads.emplace_back([&] { writer_stage.run(abort.get_token()); });

    const std::string error = collect_reports(reports, summary, on_spill);
    // The writer has ended. Release any thread still waiting, such as a
    // board that was given up on and whose ring nobody reads any more.
    abort.request_stop();
    threads.clear();
    if (!error.empty()) throw RunError(fmt::format("run {}: {}", options.run, error));
  }
  finish_run(summary, options, builder.totals(), chunks, t0);
  return summary;
}

}  // namespace na64::daq
