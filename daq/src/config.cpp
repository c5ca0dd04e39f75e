// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/config.hpp"

#include <fmt/format.h>
#include <google/protobuf/io/tokenizer.h>
#include <google/protobuf/text_format.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include <sodium.h>

#include "proto/config.pb.h"
#include "na64/daq/error.hpp"
#include "na64/firmware/date.hpp"
#include "na64/firmware/msadc_readout.hpp"
#include "na64/firmware/slink.hpp"

namespace na64::daq {

extern const char* const kDefaultConfigText;  // generated from config/default.textproto

namespace {

class Collector : public google::protobuf::io::ErrorCollector {
 public:
  explicit Collector(std::string_view origin) : origin_(origin) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column, const std::string& message) override {
    if (first_.empty()) first_ = fmt::format("{}:{}:{}: {}", origin_, line + 1, column + 1, message);
  }
  [[nodiscard]] const std::string& first() const { return first_; }

 private:
  std::string origin_;
  std::string first_;
};

class Checker {
 public:
  explicit Checker(std::string_view origin) : origin_(origin) {}

  template <class T>
  T range(const std::string& path, T value, T lo, T hi) const {
    if (!(value >= lo && value <= hi)) {
      fail(path, fmt::format("{} is out of range [{}, {}]", value, lo, hi));
    }
    return value;
  }
  [[noreturn]] void fail(const std::string& path, const std::string& what) const {
    throw ConfigError(fmt::format("{}: {}: {}", origin_, path, what));
  }

 private:
  std::string origin_;
};

void load_readout(const config::Readout& r, DaqConfig& c, const Checker& check) {
  ReadoutSettings& out = c.readout;
  out.mode = r.mode() == config::Readout::TWO_LEVEL ? ReadoutMode::TwoLevel : ReadoutMode::Direct;
  out.latency_depth = check.range<std::uint32_t>("readout.latency_depth", r.latency_depth(), 1, 0xFF'FFFF);
  out.completion_timeout =
      std::chrono::milliseconds(check.range<std::uint32_t>("readout.completion_timeout_ms", r.completion_timeout_ms(), 1, 60000));
  const bool two_level = out.mode == ReadoutMode::TwoLevel;
  auto needs_two_level = [&](const std::string& path) {
    if (!two_level) check.fail(path, "needs readout.mode: TWO_LEVEL");
  };
  for (int i = 0; i < r.usb_size(); ++i) {
    const auto& u = r.usb(i);
    const std::string up = fmt::format("readout.usb[{}]", i);
    needs_two_level(up);
    if (!u.has_source()) check.fail(up + ".source", "missing");
    if (!c.channel_map.slot_of(u.source())) check.fail(up + ".source", fmt::format("{} is not a source of the map", u.source()));
    for (int j = 0; j < i; ++j) {
      if (r.usb(j).source() == u.source()) check.fail(up + ".source", fmt::format("source {} is listed twice", u.source()));
    }
    UsbBoardSettings b;
    b.source = u.source();
    if (u.has_bus()) b.bus = static_cast<std::uint8_t>(check.range<std::uint32_t>(up + ".bus", u.bus(), 1, 255));
    if (u.has_address()) b.address = static_cast<std::uint8_t>(check.range<std::uint32_t>(up + ".address", u.address(), 1, 127));
    b.vendor_id = static_cast<std::uint16_t>(check.range<std::uint32_t>(up + ".vendor_id", u.vendor_id(), 0, 0xFFFF));
    b.product_id = static_cast<std::uint16_t>(check.range<std::uint32_t>(up + ".product_id", u.product_id(), 0, 0xFFFF));
    out.usb.push_back(b);
  }
  for (int i = 0; i < r.tracker_size(); ++i) {
    const auto& t = r.tracker(i);
    const std::string tp = fmt::format("readout.tracker[{}]", i);
    needs_two_level(tp);
    TrackerSettings s;
    if (t.kind() == "MM") {
      s.kind = TrackerKind::Micromegas;
    } else if (t.kind() == "GEM") {
      s.kind = TrackerKind::Gem;
    } else if (t.kind() == "STRAW") {
      s.kind = TrackerKind::Straw;
    } else {
      check.fail(tp + ".kind", fmt::format("\"{}\" is not MM, GEM or STRAW", t.kind()));
    }
    if (!t.has_source()) check.fail(tp + ".source", "missing");
    s.source = check.range<std::uint32_t>(tp + ".source", t.source(), 0, firmware::kMaxSourceId);
    if (c.channel_map.slot_of(s.source)) check.fail(tp + ".source", fmt::format("{} is an MSADC source", s.source));
    for (int j = 0; j < i; ++j) {
      if (r.tracker(j).source() == t.source()) check.fail(tp + ".source", fmt::format("source {} is listed twice", t.source()));
      if (r.tracker(j).kind() == t.kind()) check.fail(tp + ".kind", fmt::format("a second {} front-end", t.kind()));
    }
    if (t.host().empty()) check.fail(tp + ".host", "must not be empty");
    s.host = t.host();
    s.port = static_cast<std::uint16_t>(check.range<std::uint32_t>(tp + ".port", t.port(), 0, 65535));
    out.trackers.push_back(s);
  }
  if (c.channel_map.sources().size() + out.trackers.size() > eventbuilder::kMaxSources) {
    check.fail("readout.tracker", fmt::format("{} MSADC and tracker sources, at most {}",
                                              c.channel_map.sources().size() + out.trackers.size(), eventbuilder::kMaxSources));
  }
  if (r.has_record_dir()) {
    if (r.record_dir().empty()) check.fail("readout.record_dir", "must not be empty");
    needs_two_level("readout.record_dir");
    out.record_dir = r.record_dir();
  }
  if (r.has_replay_dir()) {
    if (r.replay_dir().empty()) check.fail("readout.replay_dir", "must not be empty");
    needs_two_level("readout.replay_dir");
    if (!out.usb.empty()) check.fail("readout.replay_dir", "replays every source: no readout.usb with it");
    out.replay_dir = r.replay_dir();
  }
  out.replay_paced = r.replay_paced();
}

void load_dead_cell(const config::DeadCell& d, DaqConfig& c, const Checker& check) {
  const auto det = firmware::detector_by_name(d.detector());
  if (!det) {
    check.fail("emulator.dead_cell.detector",
               fmt::format("unknown detector \"{}\" (known: ECAL0 ECAL1 HCAL0 HCAL1 HCAL2 HCAL3 SRD VETO S0 S1 S2)",
                           d.detector()));
  }
  const auto& g = firmware::geometry(*det);
  if (!d.has_x()) check.fail("emulator.dead_cell.x", "missing");
  if (!d.has_y()) check.fail("emulator.dead_cell.y", "missing");
  const std::uint32_t x = check.range<std::uint32_t>("emulator.dead_cell.x", d.x(), 0, g.nx - 1u);
  const std::uint32_t y = check.range<std::uint32_t>("emulator.dead_cell.y", d.y(), 0, g.ny - 1u);
  const std::uint16_t cell = firmware::cell_index(*det, x, y);
  if (!c.channel_map.cell_mapped(cell)) {
    check.fail("emulator.dead_cell", fmt::format("{} cell ({},{}) is not mapped by any source", g.name, x, y));
  }
  c.emulator.dead_cell = cell;
  c.emulator.dead_from_spill =
      check.range<std::uint32_t>("emulator.dead_cell.from_spill", d.from_spill(), 1, firmware::kMaxSpill);
}

}  // namespace

std::array<RegisterValue, 5> board_registers(const DaqConfig& config, std::uint32_t source) {
  namespace ro = firmware::msadc_readout;
  return {{
      {ro::reg::kSourceId.address, source},
      {ro::reg::kReadoutMode.address, ro::readout_mode_register(ro::ReadoutMode::Summary, ro::SummaryValue::Amplitude)},
      {ro::reg::kZsThreshold.address, std::min<std::uint32_t>(config.extraction.zero_suppression_adc, 0xFFF)},
      {ro::reg::kLatencyDepth.address, config.readout.latency_depth},
      {ro::reg::kSampleCount.address, config.emulator.n_samples},
  }};
}

const char* to_string(TrackerKind k) noexcept {
  switch (k) {
    case TrackerKind::Micromegas: return "MM";
    case TrackerKind::Gem: return "GEM";
    case TrackerKind::Straw: return "STRAW";
  }
  return "?";
}

std::string_view default_config_text() noexcept { return kDefaultConfigText; }

std::string to_hex(std::span<const std::uint8_t> bytes) {
  std::string out;
  out.reserve(bytes.size() * 2);
  for (const std::uint8_t b : bytes) fmt::format_to(std::back_inserter(out), "{:02x}", b);
  return out;
}

void check_thresholds(const trigger::ThresholdSet& t, std::string_view origin, std::string_view prefix) {
  const Checker check(origin);
  const auto path = [&](std::string_view field) { return fmt::format("{}.{}", prefix, field); };
  check.range(path("ecal_max_gev"), t.ecal_max_gev, 0.0f, 400.0f);
  check.range(path("preshower_min_gev"), t.preshower_min_gev, 0.0f, 100.0f);
  check.range(path("hcal_max_gev"), t.hcal_max_gev, 0.0f, 400.0f);
  check.range(path("srd_min_gev"), t.srd_min_gev, 0.0f, 1.0f);
  check.range(path("srd_max_gev"), t.srd_max_gev, t.srd_min_gev, 1.0f);
  check.range(path("veto_max_gev"), t.veto_max_gev, 0.0f, 1.0f);
  check.range<std::uint32_t>(path("beam_prescale"), t.beam_prescale, 0, 100'000'000);
  check.range<std::uint32_t>(path("random_period"), t.random_period, 0, 100'000'000);
}

void check_output_dir(const DaqConfig& config, std::string_view origin) {
  const Checker check(origin);
  const std::filesystem::path dir = config.run.output_dir;
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) check.fail("run.output_dir", fmt::format("{}: cannot create: {}", dir.string(), ec.message()));
  if (!std::filesystem::is_directory(dir, ec)) check.fail("run.output_dir", fmt::format("{}: not a directory", dir.string()));
  // Access rights alone do not tell (read-only mounts, root): try it.
  const auto probe = dir / fmt::format(".na64daq-write-test-{}", ::getpid());
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) check.fail("run.output_dir", fmt::format("{}: not writable: {}", dir.string(), std::strerror(errno)));
  ::close(fd);
  ::unlink(probe.c_str());
}

DaqConfig load_config(std::string_view text, std::string_view origin) {
  config::Config pb;
  google::protobuf::TextFormat::Parser parser;
  Collector collector(origin);
  parser.RecordErrorsTo(&collector);
  if (!parser.ParseFromString(std::string(text), &pb)) {
    throw ConfigError(collector.first().empty() ? fmt::format("{}: cannot parse", origin) : collector.first());
  }
  const Checker check(origin);
  DaqConfig c;
  c.text = std::string(text);
  static const int sodium_ready = sodium_init();  // >= 0: ready (1: already was)
  if (sodium_ready < 0) throw ConfigError("cannot initialise libsodium for the configuration hash");
  crypto_hash_sha256(c.hash.data(), reinterpret_cast<const unsigned char*>(text.data()), text.size());

  const auto& run = pb.run();
  c.run.gdc_id = check.range<std::uint32_t>("run.gdc_id", run.gdc_id(), 1, 99);
  c.run.ldc_id = run.ldc_id();
  if (run.output_dir().empty()) check.fail("run.output_dir", "must not be empty");
  c.run.output_dir = run.output_dir();
  c.run.max_chunk_bytes =
      check.range<std::uint64_t>("run.max_chunk_bytes", run.max_chunk_bytes(), 1u << 20, 1ull << 40);

  const auto& b = pb.beam();
  c.beam.energy_gev = check.range("beam.energy_gev", b.energy_gev(), 1.0, 400.0);
  c.beam.particles_per_spill =
      check.range<std::uint32_t>("beam.particles_per_spill", b.particles_per_spill(), 1, kMaxParticlesPerSpill);
  c.beam.spill_duration_s = check.range("beam.spill_duration_s", b.spill_duration_s(), 0.1, 60.0);
  c.beam.hadron_fraction = check.range("beam.hadron_fraction", b.hadron_fraction(), 0.0, 0.5);
  c.beam.muon_fraction = check.range("beam.muon_fraction", b.muon_fraction(), 0.0, 0.5);
  c.beam.signal_fraction = check.range("beam.signal_fraction", b.signal_fraction(), 0.0, 1.0);
  c.beam.signal_min_missing = check.range("beam.signal_min_missing", b.signal_min_missing(), 0.0, 1.0);
  c.beam.signal_max_missing =
      check.range("beam.signal_max_missing", b.signal_max_missing(), c.beam.signal_min_missing, 1.0);
  c.beam.ecal_stochastic = check.range("beam.ecal_stochastic", b.ecal_stochastic(), 0.0, 1.0);
  c.beam.ecal_constant = check.range("beam.ecal_constant", b.ecal_constant(), 0.0, 0.5);
  c.beam.srd_efficiency = check.range("beam.srd_efficiency", b.srd_efficiency(), 0.0, 1.0);
  c.beam.beam_spot_mm = check.range("beam.beam_spot_mm", b.beam_spot_mm(), 0.1, 100.0);
  c.beam.seed = b.seed();
  c.run.spill_cycle_s = check.range("beam.spill_cycle_s", b.spill_cycle_s(), 0.0, 120.0);

  const auto& e = pb.emulator();
  c.emulator.n_samples = check.range<std::uint32_t>("emulator.n_samples", e.n_samples(), 8, 64);
  c.emulator.noise_adc = check.range("emulator.noise_adc", e.noise_adc(), 0.0, 100.0);
  c.emulator.pedestal_base = check.range<std::uint32_t>("emulator.pedestal_base", e.pedestal_base(), 0, 3000);
  c.emulator.fragment_loss = check.range("emulator.fragment_loss", e.fragment_loss(), 0.0, 1.0);
  if (e.has_stall()) {
    c.emulator.stall_source = e.stall().source();
    c.emulator.stall_spill = e.stall().spill();
    c.emulator.stall_particle = e.stall().particle();
    c.emulator.stall_ms = check.range<std::uint32_t>("emulator.stall.ms", e.stall().ms(), 0, 600000);
  }

  if (pb.source_size() == 0) check.fail("source", "at least one source is required");
  if (pb.source_size() > static_cast<int>(eventbuilder::kMaxSources)) {
    check.fail("source", fmt::format("{} sources, at most {}", pb.source_size(), eventbuilder::kMaxSources));
  }
  std::vector<firmware::ChannelMapEntry> entries;
  for (int i = 0; i < pb.source_size(); ++i) {
    const auto& s = pb.source(i);
    const std::string sp = fmt::format("source[{}]", i);
    if (!s.has_id()) check.fail(sp + ".id", "missing");
    check.range<std::uint32_t>(sp + ".id", s.id(), 0, firmware::kMaxSourceId);
    for (int j = 0; j < i; ++j) {
      if (pb.source(j).id() == s.id()) check.fail(sp + ".id", fmt::format("source {} is listed twice", s.id()));
    }
    if (s.block_size() == 0) check.fail(sp + ".block", "a source needs at least one block");
    for (int k = 0; k < s.block_size(); ++k) {
      const auto& bl = s.block(k);
      const std::string bp = fmt::format("{}.block[{}]", sp, k);
      const auto det = firmware::detector_by_name(bl.detector());
      if (!det) {
        check.fail(bp + ".detector", fmt::format("unknown detector \"{}\" (known: ECAL0 ECAL1 HCAL0 HCAL1 HCAL2 "
                                                 "HCAL3 SRD VETO S0 S1 S2)",
                                                 bl.detector()));
      }
      if (!bl.has_port()) check.fail(bp + ".port", "missing");
      check.range<std::uint32_t>(bp + ".port", bl.port(), 0, firmware::kPortsPerSource - 1);
      const auto& g = firmware::geometry(*det);
      const std::uint32_t cells = std::uint32_t{g.nx} * g.ny;
      check.range<std::uint32_t>(bp + ".first_chip_channel", bl.first_chip_channel(), 0,
                                 firmware::kChipChannelsPerPort - cells);
      if (!(bl.gev_per_count() > 0.0 && bl.gev_per_count() < 10.0)) {
        check.fail(bp + ".gev_per_count", fmt::format("{} is out of range (0, 10)", bl.gev_per_count()));
      }
      for (std::uint32_t cell = 0; cell < cells; ++cell) {
        entries.push_back({s.id(), bl.port(), bl.first_chip_channel() + cell,
                           static_cast<std::uint16_t>(g.first_cell + cell), static_cast<float>(bl.gev_per_count())});
      }
    }
  }
  try {
    c.channel_map = firmware::ChannelMap(std::move(entries));
  } catch (const std::invalid_argument& ex) {
    check.fail("source", ex.what());
  }
  if (e.has_dead_cell()) load_dead_cell(e.dead_cell(), c, check);

  const auto& t = pb.trigger();
  c.thresholds.ecal_max_gev = static_cast<float>(t.ecal_max_gev());
  c.thresholds.preshower_min_gev = static_cast<float>(t.preshower_min_gev());
  c.thresholds.hcal_max_gev = static_cast<float>(t.hcal_max_gev());
  c.thresholds.srd_min_gev = static_cast<float>(t.srd_min_gev());
  c.thresholds.srd_max_gev = static_cast<float>(t.srd_max_gev());
  c.thresholds.veto_max_gev = static_cast<float>(t.veto_max_gev());
  c.thresholds.beam_prescale = t.beam_prescale();
  c.thresholds.random_period = t.random_period();
  check_thresholds(c.thresholds, origin, "trigger");
  c.extraction.zero_suppression_adc =
      check.range<std::uint32_t>("trigger.zero_suppression_adc", t.zero_suppression_adc(), 0, 4095);

  const auto& bu = pb.builder();
  c.builder.timeout = std::chrono::milliseconds(check.range<std::uint32_t>("builder.timeout_ms", bu.timeout_ms(), 1, 600000));
  c.builder.batch = check.range<std::uint32_t>("builder.batch", bu.batch(), 1, 4096);
  c.ring_slots = check.range<std::uint32_t>("builder.ring_slots", bu.ring_slots(), 16, 65536);
  load_readout(pb.readout(), c, check);
  return c;
}

DaqConfig load_config_file(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    throw ConfigError(fmt::format("{}: not a readable configuration file", path));
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(fmt::format("{}: cannot open configuration file", path));
  const std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) throw ConfigError(fmt::format("{}: cannot read configuration file", path));
  return load_config(text, path);
}

}  // namespace na64::daq
