// SPDX-License-Identifier: Apache-2.0
#include "na64/firmware/sadc_map.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace na64::firmware {
namespace {

/// The text between "<!--" and the first "-->".
std::string comment_text(const std::string& xml) {
  const auto open = xml.find("<!--");
  const auto close = xml.find("-->", open + 4);
  if (open == std::string::npos || close == std::string::npos) return "<no comment>";
  return xml.substr(open + 4, close - open - 4);
}

TEST(SadcMap, WritesExactText) {
  const std::vector<SadcMapLine> lines{
      {"ECAL1", 621, 0, 0x00, 0, 0},
      {"ECAL1", 620, 3, 0x1F, 1, 0},
      {"HCAL0", 621, 7, 0x3F, 2, 2},
  };
  EXPECT_EQ(write_sadc_map(lines, "run 42, written by na64daq"),
            "<?xml version=\"1.0\"?>\n"
            "<!-- run 42, written by na64daq -->\n"
            "<Maps>\n"
            "  <DaqOptions>\n"
            "    <ChipsCreation>\n"
            "      -1 -1 -1 620 -1 ChipSADC s\n"
            "      -1 -1 -1 621 -1 ChipSADC s\n"
            "    </ChipsCreation>\n"
            "  </DaqOptions>\n"
            "  <ChipSADC version=\"2\" options=\"xy data_format3\">\n"
            "    ECAL1 621 0 0x00 0 0\n"
            "    ECAL1 620 3 0x1f 1 0\n"
            "    HCAL0 621 7 0x3f 2 2\n"
            "  </ChipSADC>\n"
            "</Maps>\n");
}

TEST(SadcMap, WritesEmptyMap) {
  EXPECT_EQ(write_sadc_map({}, ""),
            "<?xml version=\"1.0\"?>\n"
            "<!--  -->\n"
            "<Maps>\n"
            "  <DaqOptions>\n"
            "    <ChipsCreation>\n"
            "    </ChipsCreation>\n"
            "  </DaqOptions>\n"
            "  <ChipSADC version=\"2\" options=\"xy data_format3\">\n"
            "  </ChipSADC>\n"
            "</Maps>\n");
}

TEST(SadcMap, BreaksDoubleDashInComment) {
  const std::vector<SadcMapLine> lines{{"S0", 620, 0, 0, 0, 0}};
  EXPECT_EQ(comment_text(write_sadc_map(lines, "run 42 -- test")), " run 42 -  test ");
}

TEST(SadcMap, NeverLeavesDoubleDashInComment) {
  const std::vector<SadcMapLine> lines{{"S0", 620, 0, 0, 0, 0}};
  for (const std::string c : {"--", "---", "----", "-----", "a--b--c", "-", "x-", "-x", "--->", "<!-- -->",
                              "-- end --"}) {
    const std::string xml = write_sadc_map(lines, c);
    const std::string text = comment_text(xml);
    EXPECT_EQ(text.find("--"), std::string::npos) << '"' << c << "\" gave \"" << text << '"';
    EXPECT_NE(text.back(), '-') << c;
    // The comment closes where the writer closes it, before the root element.
    EXPECT_EQ(xml.find("-->"), xml.find("\n<Maps>") - 3) << c;
  }
}

TEST(SadcMap, WritesNoHashLines) {
  const std::vector<SadcMapLine> lines{{"S0", 620, 0, 0, 0, 0}};
  const std::string xml = write_sadc_map(lines, "# not a map line");
  std::size_t start = 0;
  while (start < xml.size()) {
    const auto end = xml.find('\n', start);
    const auto first = xml.find_first_not_of(' ', start);
    EXPECT_NE(xml[first], '#') << xml.substr(start, end - start);
    start = end + 1;
  }
}

}  // namespace
}  // namespace na64::firmware
