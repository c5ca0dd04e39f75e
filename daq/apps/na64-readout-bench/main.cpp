// SPDX-License-Identifier: Apache-2.0
// na64-readout-bench: throughput of the two-level readout on this machine,
// printed as figures. Every figure is the median of 3 runs (steady_clock);
// nothing is pre-generated: the emulation of the boards and front-ends is
// part of each source, as the hardware's own work would be.
//
// a. Per source type, one thread: an MSADC board streaming a spill of
//    per-particle summaries (EmulatedReadoutBoard::stream into a buffer,
//    ReadoutHost::consume on it), the same board answering requests for full
//    events in batches of 64 (ReadoutHost::request + take_requests,
//    EmulatedReadoutBoard::handle_requests, ReadoutHost::consume), and the
//    tracker front-ends writing their blocks (EmulatedTrackers::write_apv for
//    Micromegas and GEM, write_straw). Buffers are allocated before the
//    timed loops.
// b. The whole two-level chain (run_simulated, readout TWO_LEVEL, 2 spills
//    back to back, files into a temporary directory under /tmp that is
//    removed), with no tracker and with the MM, GEM and STRAW front-ends:
//    particles / run seconds (set-up and file closing included), accepted
//    events / s and bytes written / s.
// c. The same 11 detector blocks of the default configuration dealt round
//    robin over N = 1..8 MSADC sources (one block per port), through the
//    two-level chain and through the direct readout for comparison.
// usb: runs na64-usb-readout-bench (tests/drivers), the libusb driver
//    against a board emulated with umockdev, if it was built.
#include <fmt/format.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <tuple>
#include <vector>

#include "na64/daq/config.hpp"
#include "na64/daq/dqm_tap.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/drivers/beam.hpp"
#include "na64/drivers/emulated_msadc.hpp"
#include "na64/drivers/emulated_readout_board.hpp"
#include "na64/drivers/emulated_trackers.hpp"
#include "na64/drivers/readout_host.hpp"
#include "na64/firmware/channel_map.hpp"
#include "na64/firmware/msadc_readout.hpp"

#ifndef NA64_USB_READOUT_BENCH
#define NA64_USB_READOUT_BENCH ""
#endif

extern char** environ;

namespace {

using namespace na64;
namespace fw = na64::firmware;
namespace ro = na64::firmware::msadc_readout;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kUsage = R"(usage: na64-readout-bench [--quick] [--section a|b|c|usb]
  --quick          every section tiny (a smoke test; the figures mean little)
  --section S      run one section: a (per source type), b (two-level chain),
                   c (scaling over 1-8 MSADC sources), usb (the libusb path,
                   na64-usb-readout-bench); default: all of them
)";

/// Every figure is the median of this many runs.
constexpr int kRuns = 3;
/// Requests in one event-requests message, as the chain sends them.
constexpr std::uint32_t kRequestsPerMessage = 64;
/// Words of the stream buffer a board writes into (as the chain's in-process link).
constexpr std::size_t kStreamWords = 16384;
/// MSADC source ids of section c: 620, 621, ...
constexpr std::uint32_t kFirstSource = 620;
constexpr std::uint32_t kMaxScalingSources = 8;
enum class Section : std::uint8_t { All, A, B, C, Usb };

struct Options {
  bool quick = false;
  Section section = Section::All;
};

/// How much each section does.
struct Sizes {
  std::uint32_t stream_particles = 200'000;  ///< a: particles of the spill each board streams
  std::uint32_t answer_events = 65'536;      ///< a: events requested per board (within its latency buffer)
  std::uint32_t tracker_events = 200'000;    ///< a: blocks written per tracker source
  std::uint32_t chain_particles = 200'000;   ///< b: particles per spill
  std::uint32_t scaling_particles = 50'000;  ///< c: particles per spill
  std::uint32_t bytes_sample = 2'000;        ///< c: particles sampled for the bytes per particle
  std::uint32_t spills = 2;                  ///< b and c: spills per run
};

Sizes sizes_for(const Options& o) {
  if (!o.quick) return {};
  return Sizes{.stream_particles = 2'000,
               .answer_events = 512,
               .tracker_events = 2'000,
               .chain_particles = 5'000,
               .scaling_particles = 2'000,
               .bytes_sample = 200,
               .spills = 2};
}

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::uint64_t steady_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

/// The median run by `seconds` of kRuns runs of `run()`.
template <class F>
auto median_run(F&& run) {
  std::array<decltype(run()), kRuns> v{};
  for (auto& x : v) x = run();
  std::sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.seconds < b.seconds; });
  return v[kRuns / 2];
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  if (!(in >> a >> b >> c)) return "unknown";
  return fmt::format("{} {} {}", a, b, c);
}

// ---- a. per source type ----

/// The registers a run writes into every MSADC board (as the chain does).
void set_up_board(drivers::EmulatedReadoutBoard& board, const daq::DaqConfig& config, std::uint32_t source) {
  for (const auto& [address, value] : daq::board_registers(config, source)) {
    if (board.write_register(address, value) != drivers::RegisterWrite::Done) {
      throw std::runtime_error(fmt::format("source {}: the emulated board refused register 0x{:02x}", source, address));
    }
  }
}

/// Counts the events the host hands on; requests nothing by itself.
class CountingSink final : public drivers::ReadoutSink {
 public:
  bool on_particle(const ro::ParticleSummary&) override { return false; }
  void on_event(const ro::EventAnswer&) override { ++events; }

  std::uint64_t events = 0;
};

/// One timed pass: how long, how many items (particles or events), how many words.
struct Pass {
  double seconds = 0;
  std::uint64_t items = 0;
  std::uint64_t words = 0;
  std::uint64_t bad = 0;  ///< what should not happen (decode errors, lost requests, empty blocks)
};

/// One MSADC board of the configuration with its host, and the buffers they use.
struct BoardBench {
  BoardBench(const daq::DaqConfig& config, std::uint32_t source_id, const drivers::NA64Beam& beam)
      : board(source_id, config.channel_map, beam, config.emulator,
              drivers::ReadoutBoardParameters{.latency_capacity = config.readout.latency_depth}),
        host(drivers::ReadoutHostParameters{.source_id = source_id}) {
    set_up_board(board, config, source_id);
    stream.assign(std::max(board.min_stream_words(), kStreamWords), 0u);  // zero-filled: pre-faulted
    requests.assign(ro::event_requests_words(kRequestsPerMessage), 0u);
    answers.assign(board.answer_words_bound(kRequestsPerMessage), 0u);
  }

  /// Streams a whole spill through the host.
  Pass stream_spill(std::uint32_t spill) {
    const std::uint64_t errors0 = host.counts().decode_errors + host.counts().framing_errors;
    const auto t0 = Clock::now();
    std::uint64_t words = 0;
    auto hand_on = [&](std::size_t n) {
      (void)host.consume(std::span<const std::uint32_t>(stream.data(), n), sink);
      words += n;
    };
    hand_on(board.begin_spill(spill, stream).value_or(0));
    while (board.particles_left() != 0) {
      const drivers::StreamResult r = board.stream(stream);
      if (r.particles == 0) break;
      hand_on(r.words);
    }
    hand_on(board.end_spill(stream).value_or(0));
    Pass p;
    p.seconds = seconds_since(t0);
    p.items = host.spill(spill).particles;
    p.words = words;
    p.bad = host.counts().decode_errors + host.counts().framing_errors - errors0 + host.spill(spill).missing_particles;
    return p;
  }

  /// Requests particles [first, first + count) of `spill` in messages of 64
  /// and hands the answers to the host.
  Pass answer_events(std::uint32_t spill, std::uint32_t first, std::uint32_t count) {
    const std::uint64_t events0 = sink.events;
    const auto t0 = Clock::now();
    std::uint64_t words = 0;
    for (std::uint32_t p = first; p < first + count;) {
      const std::uint32_t n = std::min(kRequestsPerMessage, first + count - p);
      for (std::uint32_t k = 0; k < n; ++k) (void)host.request(spill, p++);
      const std::size_t m = host.take_requests(requests, steady_ns());
      const drivers::RequestsResult r =
          board.handle_requests(std::span<const std::uint32_t>(requests.data(), m), answers);
      (void)host.consume(std::span<const std::uint32_t>(answers.data(), r.words), sink);
      words += r.words;
    }
    Pass p;
    p.seconds = seconds_since(t0);
    p.items = sink.events - events0;
    p.words = words;
    p.bad = count - p.items;  // requests that did not bring their event
    return p;
  }

  drivers::EmulatedReadoutBoard board;
  drivers::ReadoutHost host;
  CountingSink sink;
  std::vector<std::uint32_t> stream;
  std::vector<std::uint32_t> requests;
  std::vector<std::uint32_t> answers;
};

/// Writes `events` blocks of one tracker source (spill 1, particles 1..events).
Pass tracker_blocks(const drivers::EmulatedTrackers& trackers, daq::TrackerKind kind, std::uint32_t events,
                    std::span<std::uint32_t> out) {
  const auto t0 = Clock::now();
  std::uint64_t words = 0;
  std::uint64_t empty = 0;
  for (std::uint32_t p = 1; p <= events; ++p) {
    std::size_t n = 0;
    switch (kind) {
      case daq::TrackerKind::Micromegas: n = trackers.write_apv(1, p, drivers::ApvSource::Micromegas, out); break;
      case daq::TrackerKind::Gem: n = trackers.write_apv(1, p, drivers::ApvSource::Gem, out); break;
      case daq::TrackerKind::Straw: n = trackers.write_straw(1, p, out); break;
    }
    words += n;
    empty += n == 0;
  }
  return Pass{seconds_since(t0), events, words, empty};
}

void print_pass(std::string_view what, std::string_view unit, const Pass& p) {
  const double rate = static_cast<double>(p.items) / p.seconds;
  const double bytes = static_cast<double>(p.words) * 4;
  fmt::print("  {:<46} {:>10.0f} {:<12} {:>8.1f} {:>9.0f} {:>9} {:>6}\n", what, rate, unit, bytes / p.seconds / 1e6,
             bytes / static_cast<double>(p.items), p.items, p.bad);
}

void section_a(const daq::DaqConfig& base, const Sizes& sizes) {
  daq::DaqConfig config = base;
  config.beam.particles_per_spill = sizes.stream_particles;
  const drivers::NA64Beam beam(config.beam);
  const std::uint32_t capacity = config.readout.latency_depth;
  const std::uint32_t answers = std::min({sizes.answer_events, sizes.stream_particles, capacity});

  fmt::print("\na. Per source type, one thread, emulation included (median of {} runs)\n", kRuns);
  fmt::print("  MSADC: a spill of {} particles streamed as summaries (amplitude, zero suppression {} ADC);\n"
             "  then {} of its last particles requested, {} per message (latency buffer {} events).\n"
             "  Trackers: {} events each, spill 1.\n",
             sizes.stream_particles, config.extraction.zero_suppression_adc, answers, kRequestsPerMessage, capacity,
             sizes.tracker_events);
  fmt::print("  {:<46} {:>10} {:<12} {:>8} {:>9} {:>9} {:>6}\n", "what", "rate", "", "MB/s", "B/item", "items",
             "bad");

  std::uint32_t spill = 0;
  for (std::uint32_t source : config.channel_map.sources()) {
    BoardBench b(config, source, beam);
    const Pass streamed = median_run([&] { return b.stream_spill(++spill); });
    // Requests go to the last spill streamed, whose last `answers` particles the buffer holds.
    const std::uint32_t first = sizes.stream_particles - answers + 1;
    const Pass answered = median_run([&] { return b.answer_events(spill, first, answers); });
    const auto slot = *config.channel_map.slot_of(source);
    print_pass(fmt::format("MSADC {} ({} ch): summary stream + consume", source, config.channel_map.channel_count(slot)),
               "particles/s", streamed);
    print_pass(fmt::format("MSADC {}: event answers + consume", source), "events/s", answered);
  }

  const drivers::EmulatedTrackers trackers(beam, drivers::TrackerParameters{});
  std::vector<std::uint32_t> block(std::max({trackers.max_apv_words(drivers::ApvSource::Micromegas),
                                             trackers.max_apv_words(drivers::ApvSource::Gem), trackers.max_straw_words()}),
                                   0u);
  const std::array<std::pair<daq::TrackerKind, std::string_view>, 3> kinds{{
      {daq::TrackerKind::Micromegas, "tracker MM (12 planes): APV blocks"},
      {daq::TrackerKind::Gem, "tracker GEM (8 planes): APV blocks"},
      {daq::TrackerKind::Straw, "tracker STRAW (8 planes): TDC blocks"},
  }};
  for (const auto& [kind, what] : kinds) {
    print_pass(what, "events/s", median_run([&] { return tracker_blocks(trackers, kind, sizes.tracker_events, block); }));
  }
  fmt::print("  rate: particles (summaries) or events (answers, blocks) per second; MB/s and B/item: bytes of\n"
             "  the messages (summary stream: spill begin/end + packets; answers: answer messages with their\n"
             "  blocks; trackers: the blocks). bad: decode errors, particles missing, requests not completed,\n"
             "  empty blocks (0 expected).\n");
}

// ---- b and c: whole runs ----

/// A directory under /tmp for the runs' files, removed with everything in it.
class ScratchDir {
 public:
  ScratchDir() {
    std::string name = (std::filesystem::temp_directory_path() / "na64-readout-bench-XXXXXX").string();
    if (::mkdtemp(name.data()) == nullptr) throw std::runtime_error(fmt::format("mkdtemp {}: cannot create", name));
    path_ = name;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }

 private:
  std::filesystem::path path_;
};

struct ChainRun {
  double seconds = 0;        ///< RunSummary::seconds: set-up, spills, files closed
  double spill_seconds = 0;  ///< sum of the spills' seconds (the writer's start of burst to end of burst)
  std::uint64_t particles = 0;
  std::uint64_t accepted = 0;  ///< accepted events (any line)
  std::uint64_t written = 0;
  std::uint64_t bytes = 0;  ///< bytes of DATE events written, run records included
  std::uint64_t incomplete_built = 0;
  std::uint64_t completed = 0;   ///< two-level: written with every source's data
  std::uint64_t incomplete = 0;  ///< two-level: written with a source flagged missing
};

/// One run of `spills` spills into a fresh directory, removed afterwards.
ChainRun run_chain(const daq::DaqConfig& config, const ScratchDir& scratch, std::uint32_t spills,
                   std::uint32_t dqm_sample_period = 0) {
  static std::uint32_t counter = 0;
  const std::filesystem::path dir = scratch.path() / fmt::format("run-{}", ++counter);
  std::filesystem::create_directories(dir);
  daq::RunOptions options;
  options.output = dir;
  options.run = 1;
  options.spills = spills;
  // The data-quality histograms, filled on the trigger thread as na64daq serve does.
  std::optional<daq::DqmTap> dqm;
  if (dqm_sample_period != 0) {
    monitoring::DqmConfig c;
    c.sample_period = dqm_sample_period;
    dqm.emplace(config.channel_map, c);
    options.dqm = &*dqm;
  }
  const daq::RunSummary s = daq::run_simulated(config, options, {});
  std::filesystem::remove_all(dir);
  ChainRun r;
  r.seconds = s.seconds;
  for (const daq::SpillSummary& spill : s.spills) r.spill_seconds += spill.seconds;
  r.particles = s.total.builder.particles;
  r.accepted = s.total.accepted_events;
  r.written = s.total.written;
  r.bytes = s.total.bytes;
  r.incomplete_built = s.total.builder.incomplete;
  r.completed = s.total.completion.completed;
  r.incomplete = s.total.completion.incomplete;
  return r;
}

daq::DaqConfig with_particles(daq::DaqConfig c, std::uint32_t particles) {
  c.beam.particles_per_spill = particles;
  c.run.spill_cycle_s = 0;
  return c;
}

void section_b(const daq::DaqConfig& base, const Sizes& sizes, const ScratchDir& scratch) {
  fmt::print("\nb. The two-level chain: run_simulated, {} spills x {} particles back to back (median of {} runs)\n",
             sizes.spills, sizes.chain_particles, kRuns);
  fmt::print("  {:<44} {:>12} {:>10} {:>10} {:>9} {:>7} {:>9} {:>10}\n", "sources", "particles/s", "in spills",
             "accepted/s", "MB/s wr.", "s/run", "written", "incomplete");
  auto print = [](std::string_view what, const ChainRun& r) {
    fmt::print("  {:<44} {:>12.0f} {:>10.0f} {:>10.0f} {:>9.2f} {:>7.2f} {:>9} {:>10}\n", what,
               static_cast<double>(r.particles) / r.seconds, static_cast<double>(r.particles) / r.spill_seconds,
               static_cast<double>(r.accepted) / r.seconds, static_cast<double>(r.bytes) / r.seconds / 1e6, r.seconds,
               r.written, r.incomplete);
  };
  daq::DaqConfig with_trackers = with_particles(base, sizes.chain_particles);
  with_trackers.readout.mode = daq::ReadoutMode::TwoLevel;
  daq::DaqConfig boards_only = with_trackers;
  boards_only.readout.trackers.clear();
  print("3 MSADC boards (emulated in-process)", median_run([&] { return run_chain(boards_only, scratch, sizes.spills); }));
  print("3 MSADC boards + MM, GEM, STRAW trackers", median_run([&] { return run_chain(with_trackers, scratch, sizes.spills); }));
  // The host's chain alone: the same run recorded once, then replayed as
  // fast as possible, so that no board emulation runs.
  daq::DaqConfig record = with_trackers;
  record.readout.record_dir = (scratch.path() / "recording").string();
  (void)run_chain(record, scratch, sizes.spills);
  daq::DaqConfig replay = with_trackers;
  replay.readout.replay_dir = record.readout.record_dir;
  print("the same, replayed (host chain, no emulation)", median_run([&] { return run_chain(replay, scratch, 0); }));
  // The monitoring's cost on the fastest chain: the replay, with the DQM
  // histograms filled one event in 4 (na64daq serve's default) and in 32.
  print("  replayed, DQM filled 1 event in 4", median_run([&] { return run_chain(replay, scratch, 0, 4); }));
  print("  replayed, DQM filled 1 event in 32", median_run([&] { return run_chain(replay, scratch, 0, 32); }));
  fmt::print("  particles/s = particles of the run / run seconds (set-up and closing the files included);\n"
             "  in spills: particles / the spills' own seconds (start to end of burst as the writer saw them);\n"
             "  accepted/s: events that fired any line, per run second; MB/s wr.: DATE bytes written per run\n"
             "  second; incomplete: accepted events written with a source flagged missing (0 expected).\n"
             "  The emulated boards compute every particle's waveforms to make its summary: the replay shows\n"
             "  what the host itself sustains.\n");
}

// ---- c. scaling over MSADC sources ----

/// The default's detector blocks (with their calibrations) dealt round robin
/// over `n` sources 620, 621, ...: block i goes to source i % n, on port
/// (i / n) % 8, after whatever that port already holds.
std::string scaling_sources_text(const daq::DaqConfig& base, std::uint32_t n) {
  std::string out;
  std::vector<std::string> blocks(n);
  std::vector<std::array<std::uint32_t, fw::kPortsPerSource>> next_channel(n, std::array<std::uint32_t, fw::kPortsPerSource>{});
  std::uint32_t i = 0;
  for (std::size_t d = 0; d < fw::kNumDetectors; ++d) {
    const fw::DetectorGeometry& g = fw::kDetectors[d];
    if (!base.channel_map.cell_mapped(g.first_cell)) continue;
    const std::uint32_t source = i % n;
    const std::uint32_t port = (i / n) % fw::kPortsPerSource;
    std::uint32_t& channel = next_channel[source][port];
    blocks[source] += fmt::format("  block {{ detector: \"{}\" port: {} first_chip_channel: {} gev_per_count: {} }}\n",
                                  g.name, port, channel, base.channel_map.gev_per_count(g.first_cell));
    channel += std::uint32_t{g.nx} * g.ny;
    ++i;
  }
  for (std::uint32_t s = 0; s < n; ++s) out += fmt::format("source {{\n  id: {}\n{}}}\n", kFirstSource + s, blocks[s]);
  return out;
}

daq::DaqConfig scaling_config(const daq::DaqConfig& base, std::uint32_t n, daq::ReadoutMode mode, std::uint32_t particles) {
  std::string text = scaling_sources_text(base, n);
  if (mode == daq::ReadoutMode::TwoLevel) text += "readout { mode: TWO_LEVEL }\n";
  daq::DaqConfig c = daq::load_config(text, fmt::format("na64-readout-bench, {} sources", n));
  // Everything but the sources as in the default.
  c.run = base.run;
  c.beam = base.beam;
  c.emulator = base.emulator;
  c.thresholds = base.thresholds;
  c.extraction = base.extraction;
  c.builder = base.builder;
  c.ring_slots = base.ring_slots;
  return with_particles(std::move(c), particles);
}

/// Mean bytes per particle crossing the links, over particles 1..`sample` of
/// spill 1: summary-stream messages (two-level) and data_format3 fragments
/// (direct), summed over the sources. Untimed.
std::pair<double, double> link_bytes_per_particle(const daq::DaqConfig& config, std::uint32_t sample) {
  daq::DaqConfig c = config;
  c.beam.particles_per_spill = sample;
  const drivers::NA64Beam beam(c.beam);
  std::uint64_t summary_words = 0;
  std::uint64_t fragment_words = 0;
  for (std::uint32_t source : c.channel_map.sources()) {
    BoardBench b(c, source, beam);
    summary_words += b.stream_spill(1).words;
    const drivers::EmulatedMsadcBoard direct(source, c.channel_map, beam, c.emulator);
    std::vector<std::uint32_t> fragment(direct.max_fragment_words());
    for (std::uint32_t p = 1; p <= sample; ++p) fragment_words += direct.read_event(1, p, fragment);
  }
  return {4.0 * static_cast<double>(summary_words) / sample, 4.0 * static_cast<double>(fragment_words) / sample};
}

void section_c(const daq::DaqConfig& base, const Sizes& sizes, const ScratchDir& scratch) {
  fmt::print("\nc. Scaling: the default's 11 detector blocks (120 channels) dealt round robin over N MSADC sources,\n"
             "  {} spills x {} particles per run (median of {} runs); the same channels whatever N\n",
             sizes.spills, sizes.scaling_particles, kRuns);
  fmt::print("  {:>2}  {:>12} {:>9} {:>9} {:>8}   {:>12} {:>9} {:>9} {:>8}\n", "", "two-level", "", "", "", "direct", "",
             "", "");
  fmt::print("  {:>2}  {:>12} {:>9} {:>9} {:>8}   {:>12} {:>9} {:>9} {:>8}\n", "N", "particles/s", "link MB/s",
             "MB/s wr.", "written", "particles/s", "link MB/s", "MB/s wr.", "written");
  double summary_bpp = 0;
  double fragment_bpp = 0;
  for (std::uint32_t n = 1; n <= kMaxScalingSources; ++n) {
    const daq::DaqConfig two_level = scaling_config(base, n, daq::ReadoutMode::TwoLevel, sizes.scaling_particles);
    const daq::DaqConfig direct = scaling_config(base, n, daq::ReadoutMode::Direct, sizes.scaling_particles);
    std::tie(summary_bpp, fragment_bpp) = link_bytes_per_particle(two_level, sizes.bytes_sample);
    const ChainRun t = median_run([&] { return run_chain(two_level, scratch, sizes.spills); });
    const ChainRun d = median_run([&] { return run_chain(direct, scratch, sizes.spills); });
    const double t_rate = static_cast<double>(t.particles) / t.seconds;
    const double d_rate = static_cast<double>(d.particles) / d.seconds;
    fmt::print("  {:>2}  {:>12.0f} {:>9.1f} {:>9.2f} {:>8}   {:>12.0f} {:>9.1f} {:>9.2f} {:>8}\n", n, t_rate,
               t_rate * summary_bpp / 1e6, static_cast<double>(t.bytes) / t.seconds / 1e6, t.written, d_rate,
               d_rate * fragment_bpp / 1e6, static_cast<double>(d.bytes) / d.seconds / 1e6, d.written);
  }
  fmt::print("  particles/s = particles / run seconds. link MB/s: particles/s x the mean bytes per particle the\n"
             "  boards send (two-level: summary stream {:.0f} B; direct: fragments {:.0f} B; N = 8 layout, counted\n"
             "  untimed over the first {} particles of spill 1): an estimate, not measured in the chain.\n"
             "  MB/s wr.: DATE bytes written / run seconds. Each source is one thread; this machine has {} CPUs.\n",
             summary_bpp, fragment_bpp, sizes.bytes_sample, std::thread::hardware_concurrency());
}

// ---- usb ----

/// Runs na64-usb-readout-bench, if built; returns its exit status.
int section_usb(const Options& opt) {
  const char* env = std::getenv("NA64_USB_READOUT_BENCH");
  const std::string path = env != nullptr && *env != '\0' ? env : NA64_USB_READOUT_BENCH;
  fmt::print("\nusb. The libusb path: {}\n", path.empty() ? "(not built)" : path);
  if (path.empty() || ::access(path.c_str(), X_OK) != 0) {
    fmt::print("  na64-usb-readout-bench is not there: build the target na64-usb-readout-bench (tests on),\n"
               "  or point NA64_USB_READOUT_BENCH at it.\n");
    return 1;
  }
  std::fflush(stdout);
  std::vector<char*> argv{const_cast<char*>(path.c_str())};
  std::string quick = "--quick";
  if (opt.quick) argv.push_back(quick.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  if (const int e = ::posix_spawn(&pid, path.c_str(), nullptr, nullptr, argv.data(), environ); e != 0) {
    fmt::print("  cannot start {}: {}\n", path, std::strerror(e));
    return 1;
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return 1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}

// ---- main ----

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--quick") {
      o.quick = true;
    } else if (flag == "--section") {
      if (i + 1 >= argc) throw std::invalid_argument("--section needs a value");
      const std::string_view v = argv[++i];
      if (v == "a") {
        o.section = Section::A;
      } else if (v == "b") {
        o.section = Section::B;
      } else if (v == "c") {
        o.section = Section::C;
      } else if (v == "usb") {
        o.section = Section::Usb;
      } else {
        throw std::invalid_argument(fmt::format("--section: \"{}\" is not a, b, c or usb", v));
      }
    } else {
      throw std::invalid_argument(fmt::format("unknown option {}", flag));
    }
  }
  return o;
}

int run_bench(const Options& opt) {
  const Sizes sizes = sizes_for(opt);
  const daq::DaqConfig base = daq::load_config(daq::default_config_text(), "embedded default");
#ifdef NDEBUG
  constexpr std::string_view build = "release (NDEBUG defined)";
#else
  constexpr std::string_view build = "debug (NDEBUG not defined: asserts on)";
#endif
  fmt::print("na64-readout-bench: throughput of the two-level readout (median of {} runs, steady_clock){}\n", kRuns,
             opt.quick ? "; --quick: tiny sizes, figures not meaningful" : "");
  fmt::print("machine   {} CPUs, {}; load average {}\n", std::thread::hardware_concurrency(), cpu_model(),
             load_average());
  fmt::print("          shared and noisy: compare figures of one run with each other, not across runs or machines\n");
  fmt::print("build     {}\n", build);

  const bool all = opt.section == Section::All;
  int status = 0;
  if (all || opt.section == Section::A) section_a(base, sizes);
  if (all || opt.section == Section::B || opt.section == Section::C) {
    const ScratchDir scratch;
    if (all || opt.section == Section::B) section_b(base, sizes, scratch);
    if (all || opt.section == Section::C) section_c(base, sizes, scratch);
  }
  if (all || opt.section == Section::Usb) status = section_usb(opt);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    for (int i = 1; i < argc; ++i) {
      if (std::string_view(argv[i]) == "--help" || std::string_view(argv[i]) == "-h") {
        fmt::print("{}", kUsage);
        return 0;
      }
    }
    Options opt;
    try {
      opt = parse_options(argc, argv);
    } catch (const std::invalid_argument& e) {
      fmt::print(stderr, "na64-readout-bench: {}\n{}", e.what(), kUsage);
      return 2;
    }
    return run_bench(opt);
  } catch (const std::exception& e) {
    fmt::print(stderr, "na64-readout-bench: {}\n", e.what());
    return 1;
  }
}
