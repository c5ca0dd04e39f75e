// SPDX-License-Identifier: Apache-2.0
// na64-bench: throughput of the data path on this machine, printed as figures.
// Fragments are generated once with the emulator; every stage then runs on
// that data alone (single thread), and the threaded builder + trigger chain
// replays it as the boards would send it, with and without the data-quality
// histograms filled on its trigger thread.
#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <memory>
#include <span>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "na64/daq/config.hpp"
#include "na64/daq/dqm_tap.hpp"
#include "na64/daq/monitor.hpp"
#include "na64/drivers/beam.hpp"
#include "na64/drivers/emulated_msadc.hpp"
#include "na64/eventbuilder/backoff.hpp"
#include "na64/eventbuilder/event_builder.hpp"
#include "na64/eventbuilder/slot_ring.hpp"
#include "na64/firmware/date.hpp"
#include "na64/firmware/date_event.hpp"
#include "na64/firmware/msadc.hpp"
#include "na64/firmware/slink.hpp"
#include "na64/trigger/features.hpp"
#include "na64/trigger/menu.hpp"

namespace {

using namespace na64;
namespace eb = na64::eventbuilder;
namespace fw = na64::firmware;
using Clock = std::chrono::steady_clock;

constexpr std::string_view kUsage = R"(usage: na64-bench [--events N] [--repeat R]
  --events N   particles generated per source and replayed per spill (default 20000)
  --repeat R   spills per threaded-chain measurement (default: enough for ~1.5 s)
)";

/// 1e7 particles in a 4.8 s spill.
constexpr double kGoalEventsPerS = 1e7 / 4.8;
/// Records a board publishes per batch, as in the pipeline.
constexpr std::size_t kBoardBatch = 32;
/// Every figure is the median of this many runs.
constexpr int kRuns = 3;
/// Shortest timed loop of a single-thread stage, and of a threaded-chain run.
constexpr double kStageTargetS = 0.25;
constexpr double kChainTargetS = 1.5;
/// Built events cycled for the "hot in cache" extraction figure (power of 2).
constexpr std::size_t kHotEvents = 32;
/// Output buffer of the DATE-formatting loop; events wrap around in it.
constexpr std::size_t kDateBufferWords = std::size_t{64} << 20 >> 2;
/// Equipment type of an S-Link equipment in COMPASS DATE files.
constexpr std::uint32_t kSlinkEquipmentType = 64;

struct Options {
  std::uint32_t events = 20000;
  std::uint32_t repeat = 0;  ///< 0: chosen from a calibration run
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

template <class F>
double median_of_runs(F&& run) {
  std::array<double, kRuns> v{};
  for (double& x : v) x = run();
  std::sort(v.begin(), v.end());
  return v[kRuns / 2];
}

/// Calls pass() until at least `target_s` has passed; returns seconds per pass.
template <class F>
double seconds_per_pass(F&& pass, double target_s) {
  const auto t0 = Clock::now();
  std::uint64_t passes = 0;
  double elapsed = 0;
  do {
    pass();
    ++passes;
    elapsed = seconds_since(t0);
  } while (elapsed < target_s);
  return elapsed / static_cast<double>(passes);
}

/// One source's fragments for particles 1..N of spill 1, each in a slot of
/// `stride` words.
struct SourceFragments {
  std::uint32_t source_id = 0;
  std::size_t stride = 0;
  std::vector<std::uint32_t> words;
  std::vector<std::uint32_t> n_words;

  [[nodiscard]] std::size_t count() const noexcept { return n_words.size(); }
  [[nodiscard]] std::span<const std::uint32_t> fragment(std::size_t i) const noexcept {
    return {words.data() + i * stride, n_words[i]};
  }
};

double generate(const drivers::EmulatedMsadcBoard& board, SourceFragments& f) {
  const auto t0 = Clock::now();
  for (std::size_t i = 0; i < f.count(); ++i) {
    const auto particle = static_cast<std::uint32_t>(i + 1);
    f.n_words[i] = static_cast<std::uint32_t>(board.read_event(1, particle, {f.words.data() + i * f.stride, f.stride}));
  }
  return seconds_since(t0);
}

/// Replays one source's fragments as spills 1..spills (SpillBegin, particles
/// 1..N, SpillEnd), then RunEnd: the stream a board sends.
///
/// Thread safety: used by one thread, the producer of the ring it feeds.
class FragmentReplay {
 public:
  FragmentReplay(const SourceFragments& f, std::uint32_t spills) noexcept : f_(&f), spills_(spills) {}

  [[nodiscard]] bool done() const noexcept { return done_; }

  /// Copies up to `max` records into the ring and publishes them together;
  /// returns how many.
  std::size_t feed(eb::FragmentRing& ring, std::size_t max) noexcept {
    const std::size_t room = std::min(ring.writable(), max);
    const auto n = static_cast<std::uint32_t>(f_->count());
    std::size_t k = 0;
    for (; k < room && !done_; ++k) {
      eb::FragmentDesc& d = ring.write_desc(k);
      if (spill_ > spills_) {
        d = eb::FragmentDesc{eb::RecordKind::RunEnd, 0, 0, 0};
        done_ = true;
      } else if (pos_ == 0) {
        d = eb::FragmentDesc{eb::RecordKind::SpillBegin, spill_, 0, 0};
        ++pos_;
      } else if (pos_ <= n) {
        const auto src = f_->fragment(pos_ - 1);
        std::memcpy(ring.write_words(k).data(), src.data(), src.size_bytes());
        d = eb::FragmentDesc{eb::RecordKind::Data, spill_, pos_, static_cast<std::uint32_t>(src.size())};
        ++pos_;
      } else {
        d = eb::FragmentDesc{eb::RecordKind::SpillEnd, spill_, n, 0};
        pos_ = 0;
        ++spill_;
      }
    }
    if (k != 0) ring.commit(k);
    return k;
  }

 private:
  const SourceFragments* f_;
  std::uint32_t spills_;
  std::uint32_t spill_ = 1;
  std::uint32_t pos_ = 0;  ///< 0: SpillBegin next; 1..N: that particle; N + 1: SpillEnd
  bool done_ = false;
};

/// The rings of one builder set-up, sized as the pipeline sizes them.
struct Rings {
  std::vector<std::unique_ptr<eb::FragmentRing>> fragments;
  std::vector<eb::FragmentRing*> inputs;
  std::unique_ptr<eb::BuiltRing> built;
};

Rings make_rings(const daq::DaqConfig& config, std::span<const SourceFragments> sources) {
  Rings r;
  for (const SourceFragments& s : sources) {
    r.fragments.push_back(std::make_unique<eb::FragmentRing>(config.ring_slots, s.stride));
    r.inputs.push_back(r.fragments.back().get());
  }
  r.built = std::make_unique<eb::BuiltRing>(config.ring_slots, eb::built_slot_words(r.inputs));
  return r;
}

std::vector<FragmentReplay> make_replays(std::span<const SourceFragments> sources, std::uint32_t spills) {
  std::vector<FragmentReplay> v;
  for (const SourceFragments& s : sources) v.emplace_back(s, spills);
  return v;
}

/// Complete built events of one spill, copied out of the builder's ring.
struct BuiltSet {
  std::size_t stride = 0;
  std::vector<eb::BuiltDesc> desc;
  std::vector<std::uint32_t> words;
  std::uint64_t payload_bytes = 0;  ///< n_words x 4 summed over the events

  [[nodiscard]] std::size_t count() const noexcept { return desc.size(); }
  [[nodiscard]] std::span<const std::uint32_t> slot(std::size_t i) const noexcept {
    return {words.data() + i * stride, stride};
  }
};

struct BuilderTimes {
  double poll_s = 0;  ///< inside EventBuilder::poll() only
  double loop_s = 0;  ///< the whole fill + poll + drain loop
  std::uint64_t complete = 0;
  std::uint64_t incomplete = 0;
};

/// Builds `spills` replays of the set in this thread: fill each fragment ring
/// with one board batch, poll until the builder has nothing to do, consume
/// its output (calling on_data for each Data record), repeat.
template <class OnData>
BuilderTimes run_builder_here(const daq::DaqConfig& config, std::span<const SourceFragments> sources,
                              std::uint32_t spills, OnData&& on_data) {
  Rings rings = make_rings(config, sources);
  eb::EventBuilder builder(rings.inputs, *rings.built, config.builder);
  std::vector<FragmentReplay> replays = make_replays(sources, spills);
  eb::BuiltRing& out = *rings.built;
  BuilderTimes t;
  Clock::duration in_poll{};
  const auto t_loop = Clock::now();
  while (!builder.finished()) {
    for (std::size_t s = 0; s < replays.size(); ++s) (void)replays[s].feed(*rings.fragments[s], kBoardBatch);
    for (;;) {
      const auto t0 = Clock::now();
      const std::size_t n = builder.poll(t0);
      in_poll += Clock::now() - t0;
      if (n == 0) break;
      const std::size_t avail = out.readable();
      for (std::size_t k = 0; k < avail; ++k) {
        const eb::BuiltDesc& d = out.read_desc(k);
        if (d.kind != eb::RecordKind::Data) continue;
        if (d.reason == eb::IncompleteReason::None) {
          ++t.complete;
        } else {
          ++t.incomplete;
        }
        on_data(d, out.read_words(k));
      }
      out.consume(avail);
    }
  }
  t.loop_s = seconds_since(t_loop);
  t.poll_s = std::chrono::duration<double>(in_poll).count();
  return t;
}

BuiltSet collect_built(const daq::DaqConfig& config, std::span<const SourceFragments> sources,
                       BuilderTimes& one_spill) {
  BuiltSet set;
  // A built slot holds, per source, two words (slot, length) and the fragment.
  for (const SourceFragments& s : sources) set.stride += 2 + s.stride;
  set.desc.reserve(sources.front().count());
  set.words.resize(sources.front().count() * set.stride);
  one_spill = run_builder_here(config, sources, 1, [&](const eb::BuiltDesc& d, std::span<const std::uint32_t> slot) {
    if (d.reason != eb::IncompleteReason::None || set.desc.size() == sources.front().count()) return;
    std::memcpy(set.words.data() + set.desc.size() * set.stride, slot.data(), std::size_t{d.n_words} * 4);
    set.payload_bytes += std::uint64_t{d.n_words} * 4;
    set.desc.push_back(d);
  });
  return set;
}

/// Lays out built event `i` as the writer does for an accepted event.
std::size_t format_date(const BuiltSet& set, std::size_t i, std::span<const std::uint32_t> sources,
                        fw::DateHeader& h, std::span<std::uint32_t> out) noexcept {
  const eb::BuiltDesc& d = set.desc[i];
  fw::DateEventWriter w(out);
  h.event_in_run = static_cast<std::uint32_t>(i + 1);
  h.event_in_spill = static_cast<std::uint32_t>(i % fw::kMaxEventInSpill + 1);
  h.trigger_mask = 1;
  h.detector_pattern = d.event;
  w.begin(h);
  eb::for_each_fragment(d, set.slot(i), [&](const eb::BuiltFragment& f) {
    fw::EquipmentHeader eq;
    eq.type = kSlinkEquipmentType;
    eq.id = sources[f.source_slot];
    fw::SlinkHeader sl;
    sl.source_id = sources[f.source_slot];
    if (!w.begin_equipment(eq, sl)) return;
    const auto payload = w.payload_space();
    if (payload.size() < f.words.size()) return;
    std::memcpy(payload.data(), f.words.data(), f.words.size_bytes());
    (void)fw::restamp_msadc_event(payload.first(f.words.size()), h.event_in_spill);
    (void)w.end_equipment(f.words.size());
  });
  return w.finish();
}

// ---- threaded chain ----

struct TriggerCounts {
  std::uint64_t events = 0;  ///< complete events triggered on
  std::uint64_t incomplete = 0;
  std::uint64_t decode_errors = 0;
  std::uint64_t accepted = 0;
};

void replay_thread(FragmentReplay& replay, eb::FragmentRing& ring, const std::stop_token& stop) {
  eb::Backoff backoff;
  while (!replay.done() && !stop.stop_requested()) {
    if (replay.feed(ring, kBoardBatch) != 0) {
      backoff.reset();
    } else {
      backoff.pause();
    }
  }
}

// The DQM calls are those of the daemon's trigger stage (daq/src/chain.hpp):
// incomplete events counted, complete ones offered (one in the sample period
// filled), the set published at each spill end.
void trigger_thread(eb::BuiltRing& in, const trigger::FeatureExtractor& extractor, trigger::TriggerMenu& menu,
                    trigger::EventFeatures& features, TriggerCounts& counts, daq::DqmTap* dqm,
                    const std::stop_token& stop) {
  eb::Backoff backoff;
  while (!stop.stop_requested()) {
    const std::size_t avail = in.readable();
    if (avail == 0) {
      backoff.pause();
      continue;
    }
    backoff.reset();
    bool run_end = false;
    for (std::size_t k = 0; k < avail; ++k) {
      const eb::BuiltDesc& d = in.read_desc(k);
      if (d.kind == eb::RecordKind::SpillBegin) menu.begin_spill();
      if (d.kind == eb::RecordKind::SpillEnd && dqm != nullptr) dqm->publish(d.spill);
      if (d.kind == eb::RecordKind::RunEnd) run_end = true;
      if (d.kind != eb::RecordKind::Data) continue;
      if (d.reason != eb::IncompleteReason::None) {
        ++counts.incomplete;
        if (dqm != nullptr) dqm->filling().count_incomplete(d.reason);
        continue;
      }
      ++counts.events;
      std::uint32_t bad_source = 0;
      if (!extractor.extract(d, in.read_words(k), features, bad_source)) {
        ++counts.decode_errors;
        continue;
      }
      const std::uint32_t mask = menu.decide(features, d.event);
      if (dqm != nullptr) (void)dqm->filling().offer(features, mask);
      if (mask != 0) ++counts.accepted;
    }
    in.consume(avail);
    if (run_end) return;
  }
}

struct ChainRun {
  double seconds = 0;
  TriggerCounts counts;
};

/// 3 replay threads -> builder thread -> trigger thread (extract + decide,
/// and the DQM histograms when `dqm` is given).
ChainRun run_chain(const daq::DaqConfig& config, std::span<const SourceFragments> sources, std::uint32_t spills,
                   daq::DqmTap* dqm = nullptr) {
  Rings rings = make_rings(config, sources);
  eb::EventBuilder builder(rings.inputs, *rings.built, config.builder);
  std::vector<FragmentReplay> replays = make_replays(sources, spills);
  const trigger::FeatureExtractor extractor(config.channel_map, config.extraction);
  trigger::TriggerMenu menu(config.thresholds);
  auto features = std::make_unique<trigger::EventFeatures>();
  ChainRun run;
  std::vector<std::jthread> threads;
  threads.reserve(replays.size() + 2);
  const auto t0 = Clock::now();
  for (std::size_t s = 0; s < replays.size(); ++s) {
    threads.emplace_back([&, s](std::stop_token stop) { replay_thread(replays[s], *rings.fragments[s], stop); });
  }
  threads.emplace_back([&](std::stop_token stop) { builder.run(stop); });
  threads.emplace_back(
      [&](std::stop_token stop) { trigger_thread(*rings.built, extractor, menu, *features, run.counts, dqm, stop); });
  // Join explicitly: a jthread's destructor would request stop first.
  for (std::jthread& t : threads) t.join();
  run.seconds = seconds_since(t0);
  return run;
}

// ---- printing ----

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

void print_row(std::string_view what, double ns_per_event, double input_bytes_per_event) {
  const double rate = 1e9 / ns_per_event;
  const std::string mbs =
      input_bytes_per_event > 0 ? fmt::format("{:.0f}", rate * input_bytes_per_event / 1e6) : std::string("-");
  fmt::print("  {:<48} {:>10.1f} {:>10.3f} {:>10} {:>8.2f}\n", what, ns_per_event, rate / 1e6, mbs,
             rate / kGoalEventsPerS);
}

std::uint64_t parse_number(std::string_view flag, std::string_view text, std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < lo || v > hi) {
    throw std::invalid_argument(fmt::format("{}: \"{}\" is not a whole number in [{}, {}]", flag, text, lo, hi));
  }
  return v;
}

Options parse_options(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) throw std::invalid_argument(fmt::format("{} needs a value", flag));
    const std::string_view value = argv[++i];
    if (flag == "--events") {
      o.events = static_cast<std::uint32_t>(parse_number(flag, value, 100, daq::kMaxParticlesPerSpill));
    } else if (flag == "--repeat") {
      o.repeat = static_cast<std::uint32_t>(parse_number(flag, value, 1, 100000));
    } else {
      throw std::invalid_argument(fmt::format("unknown option {}", flag));
    }
  }
  return o;
}

int run_bench(const Options& opt) {
  const daq::DaqConfig config = daq::load_config(daq::default_config_text(), "embedded default");
  const drivers::NA64Beam beam(config.beam);
  const auto source_ids = config.channel_map.sources();

  // ---- machine and event ----
#ifdef NDEBUG
  constexpr std::string_view build = "release (NDEBUG defined)";
#else
  constexpr std::string_view build = "debug (NDEBUG not defined: asserts on)";
#endif
#ifdef __AVX2__
  constexpr std::string_view avx2 = "yes";
#else
  constexpr std::string_view avx2 = "no";
#endif
  fmt::print("na64-bench: throughput of the NA64 DAQ data path (median of {} runs, steady_clock)\n\n", kRuns);
  fmt::print("machine   {} CPUs, {}\n", std::thread::hardware_concurrency(), cpu_model());
#ifdef __clang__
  constexpr std::string_view compiler = "";
#else
  constexpr std::string_view compiler = "GCC ";
#endif
  fmt::print("compiler  {}{}; build {}; AVX2 in this file's flags: {}\n", compiler, __VERSION__, build, avx2);

  std::vector<std::unique_ptr<drivers::EmulatedMsadcBoard>> boards;
  std::vector<SourceFragments> sources;
  for (std::uint32_t id : source_ids) {
    boards.push_back(std::make_unique<drivers::EmulatedMsadcBoard>(id, config.channel_map, beam, config.emulator));
    SourceFragments f;
    f.source_id = id;
    f.stride = boards.back()->max_fragment_words();
    f.words.resize(std::size_t{opt.events} * f.stride);  // zero-filled: pre-faulted
    f.n_words.resize(opt.events);
    sources.push_back(std::move(f));
  }

  // ---- 1. pre-generation ----
  std::vector<double> gen_s(sources.size());
  for (std::size_t s = 0; s < sources.size(); ++s) {
    gen_s[s] = median_of_runs([&] { return generate(*boards[s], sources[s]); });
  }
  std::size_t fragment_bytes = 0;
  std::string per_source;
  for (const SourceFragments& f : sources) {
    fragment_bytes += f.n_words[0] * 4u;
    per_source += fmt::format("{}{} B ({})", per_source.empty() ? "" : " + ", f.n_words[0] * 4u, f.source_id);
  }
  const std::size_t date_bytes = (fw::kDateHeaderWords + sources.size() * (fw::kEquipmentHeaderWords + fw::kSlinkHeaderWords)) * 4 +
                                 fragment_bytes;
  fmt::print("event     {} channels x {} samples; fragments {} = {} B of MSADC data;\n", [&] {
    std::size_t n = 0;
    for (const auto& b : boards) n += b->channel_count();
    return n;
  }(), config.emulator.n_samples, per_source, fragment_bytes);
  fmt::print("          built record {} B (+2 words per fragment); DATE event {} B\n",
             fragment_bytes + sources.size() * 8, date_bytes);
  fmt::print("set       {} particles per source, {:.1f} MB in memory\n", opt.events,
             static_cast<double>(fragment_bytes) * opt.events / 1e6);

  fmt::print("\n1. Pre-generation with the emulator (NOT part of the DAQ path; one thread)\n");
  double gen_total = 0;
  for (std::size_t s = 0; s < sources.size(); ++s) {
    gen_total += gen_s[s];
    fmt::print("  source {:<6} {:>10.0f} events/s  {:>8.2f} us/event\n", sources[s].source_id, opt.events / gen_s[s],
               gen_s[s] / opt.events * 1e6);
  }
  fmt::print("  all {} sources {:>9.0f} events/s  {:>8.2f} us/event\n", sources.size(), opt.events / gen_total,
             gen_total / opt.events * 1e6);

  // ---- 2. single-thread stages ----
  const double event_bytes = static_cast<double>(fragment_bytes);
  BuilderTimes one_spill;
  const BuiltSet built = collect_built(config, sources, one_spill);
  if (built.count() != opt.events) {
    fmt::print(stderr, "na64-bench: builder released {} complete events of {}\n", built.count(), opt.events);
    return 1;
  }
  const auto builder_spills = static_cast<std::uint32_t>(std::max(1.0, std::ceil(kStageTargetS / one_spill.loop_s)));
  std::array<double, kRuns> poll_ns{};
  std::array<double, kRuns> loop_ns{};
  for (int r = 0; r < kRuns; ++r) {
    const BuilderTimes t =
        run_builder_here(config, sources, builder_spills, [](const eb::BuiltDesc&, std::span<const std::uint32_t>) {});
    poll_ns[r] = t.poll_s / static_cast<double>(t.complete) * 1e9;
    loop_ns[r] = t.loop_s / static_cast<double>(t.complete) * 1e9;
  }
  std::sort(poll_ns.begin(), poll_ns.end());
  std::sort(loop_ns.begin(), loop_ns.end());
  const double builder_ns = poll_ns[kRuns / 2];
  const double builder_loop_ns = loop_ns[kRuns / 2];

  const trigger::FeatureExtractor extractor(config.channel_map, config.extraction);
  auto features = std::make_unique<trigger::EventFeatures>();
  std::uint64_t decode_errors = 0;
  const double n_events = static_cast<double>(built.count());
  const double extract_ns = median_of_runs([&] {
    return seconds_per_pass([&] {
      for (std::size_t i = 0; i < built.count(); ++i) {
        std::uint32_t bad = 0;
        if (!extractor.extract(built.desc[i], built.slot(i), *features, bad)) ++decode_errors;
      }
    }, kStageTargetS) / n_events * 1e9;
  });
  const double extract_hot_ns = median_of_runs([&] {
    return seconds_per_pass([&] {
      for (std::size_t i = 0; i < built.count(); ++i) {
        const std::size_t j = i & (kHotEvents - 1);
        std::uint32_t bad = 0;
        if (!extractor.extract(built.desc[j], built.slot(j), *features, bad)) ++decode_errors;
      }
    }, kStageTargetS) / n_events * 1e9;
  });

  std::vector<trigger::EventFeatures> all_features(built.count());
  for (std::size_t i = 0; i < built.count(); ++i) {
    std::uint32_t bad = 0;
    if (!extractor.extract(built.desc[i], built.slot(i), all_features[i], bad)) ++decode_errors;
  }
  trigger::TriggerMenu menu(config.thresholds);
  std::uint64_t accepted = 0;
  std::uint64_t decisions = 0;
  const double decide_ns = median_of_runs([&] {
    return seconds_per_pass([&] {
      menu.begin_spill();
      for (std::size_t i = 0; i < built.count(); ++i) {
        if (menu.decide(all_features[i], built.desc[i].event) != 0) ++accepted;
      }
      ++decisions;
    }, kStageTargetS) / n_events * 1e9;
  });

  std::vector<std::uint32_t> date_out(kDateBufferWords);  // zero-filled: pre-faulted
  const std::size_t date_max_words = date_bytes / 4;
  std::uint64_t date_failed = 0;
  fw::DateHeader header;
  header.type = fw::EventType::Physics;
  header.run = 1;
  header.spill = 1;
  header.ldc_id = config.run.ldc_id;
  header.gdc_id = config.run.gdc_id;
  header.time_s = 1;
  const double date_ns = median_of_runs([&] {
    return seconds_per_pass([&] {
      std::size_t pos = 0;
      for (std::size_t i = 0; i < built.count(); ++i) {
        if (pos + date_max_words > date_out.size()) pos = 0;
        const std::size_t w = format_date(built, i, source_ids, header, std::span(date_out).subspan(pos));
        if (w == 0) ++date_failed;
        pos += w;
      }
    }, kStageTargetS) / n_events * 1e9;
  });

  fmt::print("\n2. Single-thread stages on the pre-generated set              ns/event   M ev/s  in MB/s   x goal\n");
  print_row("event builder, time inside poll() only", builder_ns, event_bytes);
  print_row("  (fill 3 rings + poll + drain, whole loop)", builder_loop_ns, event_bytes);
  print_row("feature extraction, set streamed from memory", extract_ns, event_bytes);
  print_row(fmt::format("feature extraction, {} events hot in cache", kHotEvents), extract_hot_ns, event_bytes);
  print_row("trigger decision (menu.decide)", decide_ns, 0);
  print_row("DATE formatting (writer + restamp)", date_ns, event_bytes);
  print_row("extraction + decision (sum; the trigger thread)", extract_ns + decide_ns, event_bytes);
  fmt::print("  builder: poll() is timed alone with steady_clock around each call ({} spills per run, batches\n"
             "  of {} per source); the ring fills (memcpy from the set) and the drain are outside it.\n",
             builder_spills, kBoardBatch);
  fmt::print("  checks: {} complete built events per spill, {} incomplete, {} decode errors, {} DATE overflows,\n"
             "  {} accepted per spill\n",
             one_spill.complete, one_spill.incomplete, decode_errors, date_failed, accepted / std::max<std::uint64_t>(decisions, 1));

  // ---- 3. threaded chain ----
  std::uint32_t repeat = opt.repeat;
  double calibration_s = 0;
  if (repeat == 0) {
    calibration_s = run_chain(config, sources, 1).seconds;
    repeat = static_cast<std::uint32_t>(std::clamp(std::ceil(kChainTargetS / calibration_s), 1.0, 100000.0));
  }
  ChainRun last;
  const double chain_s = median_of_runs([&] {
    last = run_chain(config, sources, repeat);
    return last.seconds;
  });
  const double chain_events = static_cast<double>(repeat) * opt.events;
  const double chain_rate = chain_events / chain_s;
  fmt::print("\n3. Threaded chain: {} replay threads (memcpy, batches of {}) -> builder -> trigger (extract + decide)\n",
             sources.size(), kBoardBatch);
  fmt::print("  {} spills x {} events per run{}; {:.2f} s per run\n", repeat, opt.events,
             calibration_s > 0 ? fmt::format(" (chosen from a 1-spill run of {:.3f} s)", calibration_s) : std::string(),
             chain_s);
  fmt::print("  end to end       {:>10.3f} M events/s  {:>8.1f} ns/event  {:>7.0f} MB/s of fragments\n",
             chain_rate / 1e6, 1e9 / chain_rate, chain_rate * event_bytes / 1e6);
  fmt::print("  goal             {:>10.3f} M events/s  (1e7 particles / 4.8 s)\n", kGoalEventsPerS / 1e6);
  fmt::print("  ratio            {:>10.3f}  (measured / goal)\n", chain_rate / kGoalEventsPerS);
  fmt::print("  at the goal rate the fragments alone are {:.1f} GB/s\n", kGoalEventsPerS * event_bytes / 1e9);
  fmt::print("  checks (last run): {} triggered, {} incomplete, {} decode errors, {} accepted\n", last.counts.events,
             last.counts.incomplete, last.counts.decode_errors, last.counts.accepted);

  // ---- 4. monitoring on and off ----
  // The histograms as na64daq serve fills them (MonitorOptions' defaults).
  // Runs alternate, off then on, so that the machine's drift hits both alike.
  const daq::MonitorOptions serve_defaults;
  monitoring::DqmConfig dqm_config;
  dqm_config.beam_energy_gev = config.beam.energy_gev;
  dqm_config.ecal_occupancy_gev = serve_defaults.ecal_occupancy_gev;
  dqm_config.hcal_occupancy_gev = serve_defaults.hcal_occupancy_gev;
  dqm_config.srd_min_gev = config.thresholds.srd_min_gev;
  dqm_config.srd_max_gev = config.thresholds.srd_max_gev;
  dqm_config.sample_period = serve_defaults.sample_period;
  daq::DqmTap tap(config.channel_map, dqm_config);
  std::array<double, kRuns> off_s{};
  std::array<double, kRuns> on_s{};
  std::uint64_t filled = 0;
  for (int r = 0; r < kRuns; ++r) {
    off_s[r] = run_chain(config, sources, repeat).seconds;
    on_s[r] = run_chain(config, sources, repeat, &tap).seconds;
    monitoring::DqmHistograms spill_set(config.channel_map, dqm_config);
    if (tap.take(repeat, spill_set)) filled = spill_set.counters().filled;
  }
  std::sort(off_s.begin(), off_s.end());
  std::sort(on_s.begin(), on_s.end());
  const double off_rate = chain_events / off_s[kRuns / 2];
  const double on_rate = chain_events / on_s[kRuns / 2];
  fmt::print("\n4. Monitoring: the chain of 3 without and with the DQM histograms filled on the trigger thread\n");
  fmt::print("  (sample period {}, as na64daq serve; {} spills x {} events per run, runs alternating)\n",
             dqm_config.sample_period, repeat, opt.events);
  fmt::print("  without          {:>10.3f} M events/s  {:>8.1f} ns/event\n", off_rate / 1e6, 1e9 / off_rate);
  fmt::print("  with             {:>10.3f} M events/s  {:>8.1f} ns/event\n", on_rate / 1e6, 1e9 / on_rate);
  fmt::print("  ratio            {:>10.3f}  (with / without); cost {:.1f} % of the throughput\n", on_rate / off_rate,
             100.0 * (1.0 - on_rate / off_rate));
  fmt::print("  checks: {} events filled in the last spill of the last run\n", filled);
  return 0;
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
      fmt::print(stderr, "na64-bench: {}\n{}", e.what(), kUsage);
      return 2;
    }
    return run_bench(opt);
  } catch (const std::exception& e) {
    fmt::print(stderr, "na64-bench: {}\n", e.what());
    return 1;
  }
}
