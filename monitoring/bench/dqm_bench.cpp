// SPDX-License-Identifier: Apache-2.0
// na64-dqm-bench: what filling the DQM histograms costs per event, against
// the trigger thread's own work per event (feature extraction + decision),
// measured in the same run on events from the emulated boards.
#include <fmt/format.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "na64/drivers/beam.hpp"
#include "na64/drivers/emulated_msadc.hpp"
#include "na64/eventbuilder/event_builder.hpp"
#include "na64/firmware/channel_map.hpp"
#include "na64/monitoring/dqm.hpp"
#include "na64/monitoring/jsroot_json.hpp"
#include "na64/trigger/features.hpp"
#include "na64/trigger/menu.hpp"

namespace {

using namespace na64;
namespace eb = na64::eventbuilder;
namespace fw = na64::firmware;

constexpr std::string_view kUsage = R"(usage: na64-dqm-bench [--events N]
  --events N   particles generated and extracted (default 8192)
)";

constexpr int kRuns = 7;                // every figure is the median of this many rounds
constexpr double kTargetS = 0.2;        // shortest timed loop per pass and round
constexpr std::size_t kHotEvents = 64;  // features cycled for the "hot in cache" figures
constexpr double kBudget = 0.05;        // of the chain's work per event

/// The reference layout as the embedded default configuration maps it
/// (daq/config/default.textproto): a block maps a detector's cells in order
/// to consecutive chip channels of one port.
fw::ChannelMap default_map() {
  std::vector<fw::ChannelMapEntry> e;
  const auto block = [&e](std::uint32_t source, fw::Detector d, std::uint32_t port, std::uint32_t first,
                          float gev_per_count) {
    const auto& g = fw::geometry(d);
    for (std::uint32_t k = 0; k < std::uint32_t{g.nx} * g.ny; ++k) {
      e.push_back({source, port, first + k, static_cast<std::uint16_t>(g.first_cell + k), gev_per_count});
    }
  };
  block(620, fw::Detector::Ecal0, 0, 0, 0.005f);
  block(620, fw::Detector::Ecal1, 1, 0, 0.025f);
  block(621, fw::Detector::Hcal0, 0, 0, 0.030f);
  block(621, fw::Detector::Hcal1, 0, 16, 0.030f);
  block(621, fw::Detector::Hcal2, 1, 0, 0.030f);
  block(621, fw::Detector::Hcal3, 1, 16, 0.030f);
  block(622, fw::Detector::Srd, 0, 0, 0.0001f);
  block(622, fw::Detector::Veto, 0, 16, 0.0001f);
  block(622, fw::Detector::S0, 0, 32, 0.0001f);
  block(622, fw::Detector::S1, 0, 33, 0.0001f);
  block(622, fw::Detector::S2, 0, 34, 0.0001f);
  return fw::ChannelMap(std::move(e));
}

/// Built events of particles 1..N of spill 1, every source present, each in
/// a slot of `stride` words laid out as the event builder lays it out.
struct BuiltEvents {
  std::size_t stride = 0;
  std::vector<eb::BuiltDesc> desc;
  std::vector<std::uint32_t> words;

  [[nodiscard]] std::span<const std::uint32_t> slot(std::size_t i) const noexcept {
    return {words.data() + i * stride, stride};
  }
};

BuiltEvents build(const fw::ChannelMap& map, const drivers::NA64Beam& beam, std::uint32_t n) {
  std::vector<std::unique_ptr<drivers::EmulatedMsadcBoard>> boards;
  std::size_t stride = 0;
  for (const std::uint32_t source : map.sources()) {
    boards.push_back(std::make_unique<drivers::EmulatedMsadcBoard>(source, map, beam, drivers::EmulatorParameters{}));
    stride += 2 + boards.back()->max_fragment_words();
  }
  BuiltEvents b;
  b.stride = stride;
  b.desc.resize(n);
  b.words.assign(std::size_t{n} * stride, 0);
  for (std::uint32_t i = 0; i < n; ++i) {
    const std::uint32_t particle = i + 1;
    std::uint32_t* slot = b.words.data() + std::size_t{i} * stride;
    std::size_t pos = 0;
    for (std::size_t s = 0; s < boards.size(); ++s) {
      const std::size_t room = stride - pos - 2;
      const std::size_t len = boards[s]->read_event(1, particle, {slot + pos + 2, room});
      slot[pos] = static_cast<std::uint32_t>(s);
      slot[pos + 1] = static_cast<std::uint32_t>(len);
      pos += 2 + len;
    }
    b.desc[i] = eb::BuiltDesc{eb::RecordKind::Data, eb::IncompleteReason::None, 1, particle,
                              (1u << boards.size()) - 1, 0, static_cast<std::uint32_t>(pos)};
  }
  return b;
}

/// CPU time of the calling thread: time while descheduled on a shared
/// machine does not count.
double thread_seconds() noexcept {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + 1e-9 * static_cast<double>(ts.tv_nsec);
}

/// CPU seconds per call of each pass: kRuns rounds, in each of which every
/// pass runs in turn for at least kTargetS; the median over the rounds.
/// Taking turns makes what contention remains (caches, memory bandwidth)
/// slow every pass alike, so their ratios hold.
template <std::size_t N>
std::array<double, N> interleaved(const std::array<std::function<void()>, N>& passes) {
  std::array<std::array<double, kRuns>, N> v{};
  for (int r = 0; r < kRuns; ++r) {
    for (std::size_t p = 0; p < N; ++p) {
      const double t0 = thread_seconds();
      std::uint64_t calls = 0;
      double elapsed = 0;
      do {
        passes[p]();
        ++calls;
        elapsed = thread_seconds() - t0;
      } while (elapsed < kTargetS);
      v[p][static_cast<std::size_t>(r)] = elapsed / static_cast<double>(calls);
    }
  }
  std::array<double, N> median{};
  for (std::size_t p = 0; p < N; ++p) {
    std::sort(v[p].begin(), v[p].end());
    median[p] = v[p][kRuns / 2];
  }
  return median;
}

void row(std::string_view what, double ns) { fmt::print("  {:<58} {:>9.1f} ns\n", what, ns); }

int run(std::uint32_t n_events) {
  const fw::ChannelMap map = default_map();
  const drivers::NA64Beam beam(drivers::BeamParameters{});
  const BuiltEvents built = build(map, beam, n_events);
  const trigger::FeatureExtractor extractor(map, trigger::ExtractionConfig{});
  trigger::TriggerMenu menu(trigger::ThresholdSet{});

  std::vector<trigger::EventFeatures> features(n_events);
  std::vector<std::uint32_t> masks(n_events);
  std::uint32_t bad = 0;
  std::uint64_t accepted = 0;
  for (std::uint32_t i = 0; i < n_events; ++i) {
    if (!extractor.extract(built.desc[i], built.slot(i), features[i], bad)) {
      fmt::print(stderr, "na64-dqm-bench: event {} does not decode\n", i + 1);
      return 1;
    }
    masks[i] = menu.decide(features[i], built.desc[i].event);
    accepted += masks[i] != 0 ? 1u : 0u;
  }
  const double n = n_events;

  // The trigger thread's loop over events streamed from memory: extraction
  // and decision (the chain's work), then the same with the DQM's offer(),
  // filling every event or one in the default period; and fill() alone on
  // features hot in cache, as they are right after extraction.
  monitoring::DqmConfig every;
  every.sample_period = 1;
  const monitoring::DqmConfig defaults;
  monitoring::DqmHistograms dqm_every(map, every);
  monitoring::DqmHistograms dqm_sampled(map, defaults);
  monitoring::DqmHistograms dqm_alone(map, every);
  trigger::EventFeatures scratch;
  std::uint64_t sink = 0;
  const auto chain = [&](monitoring::DqmHistograms* dqm) {
    for (std::uint32_t i = 0; i < n_events; ++i) {
      if (!extractor.extract(built.desc[i], built.slot(i), scratch, bad)) std::abort();
      const std::uint32_t mask = menu.decide(scratch, built.desc[i].event);
      sink += mask;
      if (dqm != nullptr) (void)dqm->offer(scratch, mask);
    }
  };
  const auto per_event_ns = interleaved<4>({
      [&] { chain(nullptr); },
      [&] { chain(&dqm_every); },
      [&] { chain(&dqm_sampled); },
      [&] {
        for (std::uint32_t i = 0; i < n_events; ++i) {
          const std::size_t k = i % kHotEvents;
          dqm_alone.fill(features[k], masks[k]);
        }
      },
  });
  const double chain_ns = per_event_ns[0] / n * 1e9;
  const double with_every_ns = per_event_ns[1] / n * 1e9;
  const double with_sampled_ns = per_event_ns[2] / n * 1e9;
  const double fill_ns = per_event_ns[3] / n * 1e9;

  // Spill-end work: merging a set into the history's, and serialising every histogram.
  monitoring::DqmHistograms target(map, every);
  const auto spill_end = interleaved<2>({
      [&] { dqm_every.merge_into(target); },
      [&] {
        for (const auto& h : dqm_every.all_1d()) sink += monitoring::to_jsroot_json(h).size();
        for (const auto& h : dqm_every.all_2d()) sink += monitoring::to_jsroot_json(h).size();
      },
  });
  std::size_t json_bytes = 0;
  for (const auto& h : dqm_every.all_1d()) json_bytes += monitoring::to_jsroot_json(h).size();
  for (const auto& h : dqm_every.all_2d()) json_bytes += monitoring::to_jsroot_json(h).size();

  const auto share = [chain_ns](double ns) { return fmt::format("{:+.1f} %", 100.0 * ns / chain_ns); };
  const double budget_ns = kBudget * chain_ns;
  const auto period_needed = std::max<std::uint32_t>(1, static_cast<std::uint32_t>(std::ceil(fill_ns / budget_ns)));
  fmt::print("na64-dqm-bench: {} events of the emulated beam, reference layout; {} accepted by the menu ({})\n",
             n_events, accepted, sink != 0 ? "lines fire" : "no line fired");
  fmt::print("thread CPU time, medians of {} interleaved rounds\n", kRuns);
  fmt::print("\nTrigger thread, per event:\n");
  row("chain work: extraction + decision", chain_ns);
  row("chain + offer(), filling every event", with_every_ns);
  fmt::print("  {:<58} {:>9}\n", "  added", share(with_every_ns - chain_ns));
  row(fmt::format("chain + offer(), filling one event in {} (default)", defaults.sample_period), with_sampled_ns);
  fmt::print("  {:<58} {:>9}\n", "  added", share(with_sampled_ns - chain_ns));
  row(fmt::format("fill() alone, features hot in cache ({} events cycled)", kHotEvents), fill_ns);
  fmt::print("  {:<58} {:>9}\n", "  of the chain's work", share(fill_ns));
  fmt::print("\n  budget {:.0f} % of the chain's work = {:.1f} ns per event: ", 100.0 * kBudget, budget_ns);
  if (period_needed == 1) {
    fmt::print("filling every event fits\n");
  } else {
    fmt::print("fill one event in {} or more\n", period_needed);
  }
  fmt::print("\nSpill end:\n");
  fmt::print("  {:<58} {:>9.1f} us\n", "merge_into() of a whole set", spill_end[0] * 1e6);
  fmt::print("  {:<58} {:>9.1f} us\n",
             fmt::format("all_1d(), all_2d() and JSROOT JSON of each ({} kB)", json_bytes / 1024), spill_end[1] * 1e6);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint32_t events = 8192;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--events" && i + 1 < argc) {
      const std::string_view v = argv[++i];
      const auto r = std::from_chars(v.data(), v.data() + v.size(), events);
      if (r.ec != std::errc{} || r.ptr != v.data() + v.size() || events == 0 || events > (1u << 20)) {
        fmt::print(stderr, "na64-dqm-bench: --events {}: not a number from 1 to {}\n", v, 1u << 20);
        return 2;
      }
    } else {
      fmt::print(stderr, "{}", kUsage);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  try {
    return run(events);
  } catch (const std::exception& e) {
    fmt::print(stderr, "na64-dqm-bench: {}\n", e.what());
    return 1;
  }
}
