// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/dqm_file.hpp"

#include <fmt/format.h>

#include <array>
#include <bit>
#include <cstdint>
#include <cstring>
#include <span>
#include <stdexcept>
#include <vector>

namespace na64::monitoring {

namespace {

static_assert(std::endian::native == std::endian::little, "the DQM file is written in the host's byte order");

constexpr std::string_view kMagic = "NA64DQMR";
constexpr std::uint32_t kVersion = 1;
/// Longest name or provenance text a file may hold.
constexpr std::uint32_t kMaxText = 1u << 16;

std::uint64_t fnv1a(std::string_view bytes) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (const char c : bytes) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

class Writer {
 public:
  template <class T>
  void put(T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out_.append(b, sizeof(T));
  }
  void text(std::string_view t) {
    put(static_cast<std::uint32_t>(t.size()));
    out_.append(t);
  }
  void doubles(std::span<const double> v) {
    out_.append(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(double));
  }
  std::string& bytes() noexcept { return out_; }

 private:
  std::string out_;
};

class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  template <class T>
  T get(std::string_view what) {
    need(sizeof(T), what);
    T v;
    std::memcpy(&v, in_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return v;
  }
  std::string text(std::string_view what) {
    const auto n = get<std::uint32_t>(what);
    if (n > kMaxText) fail(fmt::format("{}: length {} is above {}", what, n, kMaxText));
    need(n, what);
    std::string t(in_.substr(pos_, n));
    pos_ += n;
    return t;
  }
  std::vector<double> doubles(std::size_t n, std::string_view what) {
    need(n * sizeof(double), what);
    std::vector<double> v(n);
    std::memcpy(v.data(), in_.data() + pos_, n * sizeof(double));
    pos_ += n * sizeof(double);
    return v;
  }
  void skip(std::size_t n, std::string_view what) {
    need(n, what);
    pos_ += n;
  }
  [[noreturn]] void fail(std::string_view what) const {
    throw std::invalid_argument(fmt::format("DQM file, byte {}: {}", pos_, what));
  }
  [[nodiscard]] std::size_t pos() const noexcept { return pos_; }

 private:
  void need(std::size_t n, std::string_view what) const {
    if (in_.size() - pos_ < n) fail(fmt::format("{}: the file ends", what));
  }
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace

/// Walks a set's members in the file's order; private access through the
/// friend declaration in DqmHistograms.
struct DqmSetCodec {
  template <class F1, class F2>
  static void each_histogram(DqmHistograms& s, F1&& on_1d, F2&& on_2d) {
    on_2d(s.ecal_vs_hcal_);
    on_1d(s.ecal_energy_);
    on_1d(s.hcal_energy_);
    on_1d(s.preshower_energy_);
    for (auto& h : s.hcal_module_) on_1d(h);
    for (auto& h : s.srd_) on_1d(h);
    for (auto& h : s.veto_) on_1d(h);
    on_1d(s.trigger_lines_);
  }
  static std::array<CellSums::PerCell*, 9> cell_sums(DqmHistograms& s) {
    CellSums& c = s.cells_;
    return {&c.signal, &c.energy, &c.energy2, &c.hits, &c.read, &c.pedestal, &c.pedestal2, &c.peak_time, &c.peak_time2};
  }
  static std::array<double, 7> config_values(const DqmHistograms& s) {
    const DqmConfig& c = s.config_;
    return {c.beam_energy_gev, c.ecal_occupancy_gev, c.hcal_occupancy_gev, c.srd_min_gev,
            c.srd_max_gev,     c.srd_axis_max_mev,   c.veto_axis_max_adc};
  }
  static const auto& mapped(const DqmHistograms& s) { return s.mapped_; }
  static DqmCounters& counters(DqmHistograms& s) { return s.counters_; }
};

std::string encode_dqm_set(const DqmHistograms& set, std::string_view provenance) {
  // The codec walks members through non-const references; nothing is changed.
  auto& s = const_cast<DqmHistograms&>(set);
  Writer w;
  w.bytes().append(kMagic);
  w.put(kVersion);
  for (const double v : DqmSetCodec::config_values(s)) w.put(v);
  for (const std::uint8_t m : DqmSetCodec::mapped(s)) w.put(m);
  w.text(provenance);
  std::uint32_t count = 0;
  DqmSetCodec::each_histogram(s, [&](Histogram1D&) { ++count; }, [&](Histogram2D&) { ++count; });
  w.put(count);
  const auto put_histogram = [&](const auto& h) {
    w.text(h.name());
    w.put(static_cast<std::uint32_t>(h.cells()));
    w.doubles(h.contents());
    w.doubles(h.sumw2());
    const HistogramSums m = h.sums();
    for (const double v : {m.entries, m.sum_w, m.sum_w2, m.sum_wx, m.sum_wx2, m.sum_wy, m.sum_wy2, m.sum_wxy}) w.put(v);
  };
  DqmSetCodec::each_histogram(s, put_histogram, put_histogram);
  for (const auto* sums : DqmSetCodec::cell_sums(s)) w.doubles(*sums);
  const DqmCounters& c = DqmSetCodec::counters(s);
  w.put<std::uint64_t>(c.events);
  w.put<std::uint64_t>(c.filled);
  for (const auto n : c.accepted) w.put<std::uint64_t>(n);
  for (const auto n : c.incomplete) w.put<std::uint64_t>(n);
  w.put<std::uint64_t>(c.srd_tagged);
  w.put<std::uint64_t>(c.bytes_written);
  w.put(c.seconds);
  w.put(c.dead_seconds);
  w.put(c.spills);
  w.put(fnv1a(w.bytes()));
  return std::move(w.bytes());
}

std::string decode_dqm_set(std::string_view bytes, DqmHistograms& out) {
  Reader r(bytes);
  if (bytes.size() < kMagic.size() || bytes.substr(0, kMagic.size()) != kMagic) {
    r.fail("not a DQM file (no NA64DQMR at its start)");
  }
  if (bytes.size() < kMagic.size() + sizeof(std::uint64_t)) r.fail("the file ends");
  {
    const std::string_view body = bytes.substr(0, bytes.size() - sizeof(std::uint64_t));
    std::uint64_t stored = 0;
    std::memcpy(&stored, bytes.data() + body.size(), sizeof stored);
    if (stored != fnv1a(body)) {
      throw std::invalid_argument(fmt::format(
          "DQM file, byte {}: the checksum does not match the content (a truncated or damaged file)", body.size()));
    }
    bytes = body;
  }
  r = Reader(bytes);
  r.skip(kMagic.size(), "magic");
  if (const auto v = r.get<std::uint32_t>("version"); v != kVersion) {
    r.fail(fmt::format("version {}; this program reads version {}", v, kVersion));
  }
  static constexpr std::array<const char*, 7> kConfigNames{
      "beam_energy_gev", "ecal_occupancy_gev", "hcal_occupancy_gev", "srd_min_gev",
      "srd_max_gev",     "srd_axis_max_mev",   "veto_axis_max_adc"};
  const auto want = DqmSetCodec::config_values(out);
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double got = r.get<double>(kConfigNames[i]);
    if (got != want[i]) {
      r.fail(fmt::format("made with {} = {}, this set has {}", kConfigNames[i], got, want[i]));
    }
  }
  std::size_t differing = 0;
  for (const std::uint8_t m : DqmSetCodec::mapped(out)) differing += r.get<std::uint8_t>("mapped cells") != m;
  if (differing != 0) r.fail(fmt::format("made for another channel map ({} cells mapped differently)", differing));
  std::string provenance = r.text("provenance");

  DqmHistograms set = out;
  set.reset();
  std::uint32_t count = 0;
  DqmSetCodec::each_histogram(set, [&](Histogram1D&) { ++count; }, [&](Histogram2D&) { ++count; });
  if (const auto n = r.get<std::uint32_t>("histogram count"); n != count) {
    r.fail(fmt::format("{} histograms, a set has {}", n, count));
  }
  const auto get_histogram = [&](auto& h) {
    const std::string name = r.text("histogram name");
    if (name != h.name()) r.fail(fmt::format("histogram \"{}\" where \"{}\" belongs", name, h.name()));
    if (const auto cells = r.get<std::uint32_t>("cells"); cells != h.cells()) {
      r.fail(fmt::format("histogram {}: {} cells, this set has {}", name, cells, h.cells()));
    }
    const auto contents = r.doubles(h.cells(), name);
    const auto sumw2 = r.doubles(h.cells(), name);
    HistogramSums m;
    for (double* v : {&m.entries, &m.sum_w, &m.sum_w2, &m.sum_wx, &m.sum_wx2, &m.sum_wy, &m.sum_wy2, &m.sum_wxy}) {
      *v = r.get<double>(name);
    }
    h.restore(contents, sumw2, m);
  };
  DqmSetCodec::each_histogram(set, get_histogram, get_histogram);
  for (auto* sums : DqmSetCodec::cell_sums(set)) {
    const auto v = r.doubles(sums->size(), "per-cell sums");
    std::copy(v.begin(), v.end(), sums->begin());
  }
  DqmCounters& c = DqmSetCodec::counters(set);
  c.events = r.get<std::uint64_t>("counters");
  c.filled = r.get<std::uint64_t>("counters");
  for (auto& n : c.accepted) n = r.get<std::uint64_t>("counters");
  for (auto& n : c.incomplete) n = r.get<std::uint64_t>("counters");
  c.srd_tagged = r.get<std::uint64_t>("counters");
  c.bytes_written = r.get<std::uint64_t>("counters");
  c.seconds = r.get<double>("counters");
  c.dead_seconds = r.get<double>("counters");
  c.spills = r.get<std::uint32_t>("counters");
  if (r.pos() != bytes.size()) r.fail(fmt::format("{} bytes after the end of the set", bytes.size() - r.pos()));
  out = std::move(set);
  return provenance;
}

}  // namespace na64::monitoring
