// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/sadc_map.hpp"

#include <fmt/format.h>

#include <set>

namespace na64::firmware {

std::string write_sadc_map(std::span<const SadcMapLine> lines, const std::string& comment,
                           std::span<const ChipLine> other_chips) {
  std::string safe_comment = comment;
  // "--" may not appear inside an XML comment.
  for (std::size_t p = safe_comment.find("--"); p != std::string::npos; p = safe_comment.find("--", p)) {
    safe_comment.replace(p, 2, "- ");
  }
  std::set<std::uint32_t> sources;
  for (const auto& l : lines) sources.insert(l.source_id);

  std::string out = "<?xml version=\"1.0\"?>\n";
  out += fmt::format("<!-- {} -->\n<Maps>\n  <DaqOptions>\n    <ChipsCreation>\n", safe_comment);
  for (std::uint32_t s : sources) out += fmt::format("      -1 -1 -1 {} -1 ChipSADC s\n", s);
  for (const ChipLine& c : other_chips) out += fmt::format("      -1 -1 -1 {} -1 {} s\n", c.source_id, c.chip);
  out += "    </ChipsCreation>\n  </DaqOptions>\n";
  out += "  <ChipSADC version=\"2\" options=\"xy data_format3\">\n";
  for (const auto& l : lines) {
    out += fmt::format("    {} {} {} 0x{:02x} {} {}\n", l.detector, l.source_id, l.port, l.chip_channel, l.x, l.y);
  }
  out += "  </ChipSADC>\n</Maps>\n";
  return out;
}

}  // namespace na64::firmware
