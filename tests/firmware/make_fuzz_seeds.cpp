// SPDX-License-Identifier: Apache-2.0
// Writes valid encoded inputs as seed corpora for the fuzz targets:
// `firmware_fuzz_seeds <dir>` fills <dir>/date_event, msadc, apv, straw_tdc,
// msadc_readout and frontend_link.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "event_fixtures.hpp"
#include "na64/firmware/apv.hpp"
#include "na64/firmware/frontend_link.hpp"
#include "na64/firmware/msadc_readout.hpp"
#include "na64/firmware/straw_tdc.hpp"

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

/// The fuzz_apv input: the event number word, then a block with two chips.
std::vector<std::uint32_t> apv_input(std::uint32_t event, bool sparse) {
  std::vector<std::uint32_t> out(2 + 2 * (2 + 2 + 128 + 1), 0);
  out[0] = event;
  fw::ApvFormat format;
  format.sparse = sparse;
  format.common_mode_corrected = true;
  fw::ApvBlockWriter w(std::span<std::uint32_t>(out).subspan(1), event, 1234, format);
  bool ok = w.begin_adc(3);
  fw::ApvChipHeader chip;
  chip.common_mode = {100, 101, 102};
  if (sparse) {
    const fw::ApvSparseHit hits[] = {{5, {200, 220, 240}}, {77, {300, 310, 320}}};
    ok = ok && w.add_sparse_chip(chip, hits);
  } else {
    std::array<fw::ApvSamples, fw::kApvChannels> frames{};
    for (std::size_t c = 0; c < frames.size(); ++c) frames[c] = {static_cast<std::uint16_t>(c), 500, 1023};
    ok = ok && w.add_latch_all_chip(chip, frames);
  }
  const std::size_t n = w.finish();
  if (!ok || n == 0) return {};
  out.resize(1 + n);
  return out;
}

/// The fuzz_straw_tdc input: event and spill words, then a block with two TDCs.
std::vector<std::uint32_t> straw_input(std::uint32_t event, std::uint32_t spill) {
  std::vector<std::uint32_t> out(2 + 16, 0);
  out[0] = event;
  out[1] = spill;
  fw::StrawTdcBlockWriter w(std::span<std::uint32_t>(out).subspan(2), event, spill);
  bool ok = w.begin_tdc(1) && w.add_hit(0, fw::StrawEdge::Leading, 1000) &&
            w.add_hit(63, fw::StrawEdge::Trailing, 0xFFFFFF) && w.begin_tdc(200);
  const std::size_t n = w.finish();
  if (!ok || n == 0) return {};
  out.resize(2 + n);
  return out;
}

/// A stream of board messages of the MSADC readout protocol.
std::vector<std::uint32_t> readout_stream() {
  namespace rd = fw::msadc_readout;
  std::vector<std::uint32_t> out;
  std::vector<std::uint32_t> buf(64);
  const auto append = [&](std::size_t n) { out.insert(out.end(), buf.begin(), buf.begin() + static_cast<long>(n)); };
  append(rd::encode(rd::SpillBegin{620, 17}, buf));
  append(rd::encode(rd::TooLate{620, {17, 5, 1}, 17, 9}, buf));
  append(rd::encode(rd::NotFound{620, {17, 99, 2}}, buf));
  append(rd::encode(rd::BadRequest{620, {17, 3, 3}, rd::BadRequestReason::QueueFull}, buf));
  append(rd::encode(rd::SpillEnd{620, 17, {}}, buf));
  rd::BoardStatus status;
  status.source_id = 620;
  append(rd::encode(status, buf));
  return out;
}

/// A host message asking for two events.
std::vector<std::uint32_t> readout_requests() {
  namespace rd = fw::msadc_readout;
  const rd::EventRef refs[] = {{17, 5, 1}, {17, 6, 2}};
  std::vector<std::uint32_t> out(rd::event_requests_words(2));
  out.resize(rd::encode_event_requests(620, refs, out));
  return out;
}

/// A stream of front-end messages of the front-end link protocol: spill
/// begin, an APV and a straw TDC event, too late, not found, spill end.
std::vector<std::uint32_t> frontend_stream() {
  namespace fl = fw::frontend_link;
  std::vector<std::uint32_t> out;
  std::vector<std::uint32_t> buf(64);
  const auto append = [&](std::size_t n) { out.insert(out.end(), buf.begin(), buf.begin() + static_cast<long>(n)); };
  append(fl::encode(fl::SpillBegin{700, 17}, buf));
  const auto apv = apv_input(5, true);
  const auto straw = straw_input(6, 17);
  if (apv.empty() || straw.empty()) return {};
  const std::vector<std::uint32_t> apv_block(apv.begin() + 1, apv.end());
  const std::vector<std::uint32_t> straw_block(straw.begin() + 2, straw.end());
  buf.resize(std::max(buf.size(), fl::kEventDataHeadWords + std::max(apv_block.size(), straw_block.size())));
  append(fl::encode(fl::EventData{700, {17, 5, 1}, fl::BlockKind::Apv, apv_block}, buf));
  append(fl::encode(fl::EventData{700, {17, 6, 2}, fl::BlockKind::StrawTdc, straw_block}, buf));
  append(fl::encode(fl::TooLate{700, {15, 9, 3}, 16, 0}, buf));
  append(fl::encode(fl::NotFound{700, {17, 300, 4}}, buf));
  append(fl::encode(fl::SpillEnd{700, 17, 200}, buf));
  return out;
}

/// A stream of host messages: a gate opening, closing, and two requests.
std::vector<std::uint32_t> frontend_host_stream() {
  namespace fl = fw::frontend_link;
  std::vector<std::uint32_t> out;
  std::vector<std::uint32_t> buf(16);
  const auto append = [&](std::size_t n) { out.insert(out.end(), buf.begin(), buf.begin() + static_cast<long>(n)); };
  append(fl::encode(fl::SpillGate{700, 17, true, 0}, buf));
  append(fl::encode(fl::SpillGate{700, 17, false, 200}, buf));
  const fl::EventRef refs[] = {{17, 5, 1}, {17, 6, 2}};
  append(fl::encode_event_requests(700, refs, buf));
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
  std::filesystem::create_directories(root / "apv");
  std::filesystem::create_directories(root / "straw_tdc");
  std::filesystem::create_directories(root / "msadc_readout");
  std::filesystem::create_directories(root / "frontend_link");
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

  for (const auto& [name, words] : {std::pair{"latch_all", apv_input(33, false)}, std::pair{"sparse", apv_input(7, true)}}) {
    ok &= !words.empty() && write_words(root / "apv" / name, words);
  }
  const auto straw = straw_input(0x123, 17);
  ok &= !straw.empty() && write_words(root / "straw_tdc" / "two_tdcs", straw);
  const auto readout = readout_stream();
  const auto requests = readout_requests();
  ok &= readout.size() > 20 && write_words(root / "msadc_readout" / "board_messages", readout);
  ok &= !requests.empty() && write_words(root / "msadc_readout" / "requests", requests);
  const auto frontend = frontend_stream();
  const auto host = frontend_host_stream();
  ok &= frontend.size() > 30 && write_words(root / "frontend_link" / "frontend_messages", frontend);
  ok &= host.size() == 14 && write_words(root / "frontend_link" / "host_messages", host);

  if (!ok) {
    std::fprintf(stderr, "could not write the seeds under %s\n", root.c_str());
    return 1;
  }
  return 0;
}
