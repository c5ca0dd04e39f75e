// SPDX-License-Identifier: Apache-2.0
// Writes valid encoded inputs as seed corpora for fuzz_date_event and
// fuzz_msadc: `firmware_fuzz_seeds <dir>` fills <dir>/date_event and <dir>/msadc.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "event_fixtures.hpp"

namespace fw = na64::firmware;
namespace fwt = na64::firmware::test;

namespace {

bool write_words(const std::filesystem::path& path, const std::vector<std::uint32_t>& words) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(words.data()), static_cast<std::streamsize>(words.size() * 4));
  return static_cast<bool>(f);
}

std::vector<std::uint32_t> event_of(fw::EventType type, std::uint32_t event_in_spill, std::uint32_t spill) {
  fw::DateHeader h = fwt::physics_header();
  h.type = type;
  h.event_in_spill = event_in_spill;
  h.event_in_run = 1000 + event_in_spill;
  h.spill = spill;
  if (!fw::carries_equipment(type)) return fwt::make_event(h, {});
  return fwt::make_event(h, fwt::three_msadc_equipments(h));
}

/// The fuzz_msadc input: the event number word, then the block.
std::vector<std::uint32_t> msadc_input(std::uint32_t event, const std::vector<fwt::AdcSpec>& adcs) {
  std::vector<std::uint32_t> out{event};
  const auto block = fwt::make_msadc_block(event, adcs);
  out.insert(out.end(), block.begin(), block.end());
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <output dir>\n", argv[0]);
    return 2;
  }
  const std::filesystem::path root = argv[1];
  std::filesystem::create_directories(root / "date_event");
  std::filesystem::create_directories(root / "msadc");
  bool ok = true;

  const fw::DateHeader h = fwt::physics_header();
  const auto eqs = fwt::three_msadc_equipments(h);
  ok &= write_words(root / "date_event" / "physics_three_equipments", event_of(fw::EventType::Physics, 33, 17));
  ok &= write_words(root / "date_event" / "calibration", event_of(fw::EventType::Calibration, 1, 2));
  ok &= write_words(root / "date_event" / "start_of_run", event_of(fw::EventType::StartOfRun, 0, 0));
  ok &= write_words(root / "date_event" / "super_event",
                    fwt::make_super_event(h, {fwt::make_event(h, {eqs[0], eqs[1]}), fwt::make_event(h, {eqs[2]})}));
  std::vector<std::uint32_t> stream;
  for (const auto& ev : {event_of(fw::EventType::StartOfRun, 0, 0), event_of(fw::EventType::StartOfBurst, 0, 1),
                         event_of(fw::EventType::Physics, 1, 1), event_of(fw::EventType::Physics, 2, 1),
                         event_of(fw::EventType::EndOfBurst, 3, 1), event_of(fw::EventType::EndOfRun, 0, 1)}) {
    stream.insert(stream.end(), ev.begin(), ev.end());
  }
  ok &= write_words(root / "date_event" / "run_stream", stream);

  ok &= write_words(root / "msadc" / "three_adcs", msadc_input(33, fwt::three_adcs()));
  ok &= write_words(root / "msadc" / "one_channel", msadc_input(0xABC, {{0, 0, {{0, fwt::ramp(1, 1)}}}}));
  ok &= write_words(root / "msadc" / "long_channel", msadc_input(7, {{7, 3, {{15, fwt::ramp(511, 2)}}}}));
  ok &= write_words(root / "msadc" / "header_only_adcs", msadc_input(9, {{1, 1, {}}, {2, 2, {}}}));
  ok &= write_words(root / "msadc" / "empty_block", {5});

  if (!ok) {
    std::fprintf(stderr, "could not write the seeds under %s\n", root.c_str());
    return 1;
  }
  return 0;
}
