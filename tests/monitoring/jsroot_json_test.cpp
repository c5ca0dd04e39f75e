// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/jsroot_json.hpp"

#include <gtest/gtest.h>

#include <boost/json.hpp>
#include <cmath>
#include <limits>
#include <string>

#include "dqm_fixtures.hpp"
#include "na64/monitoring/dqm.hpp"

namespace na64::monitoring {
namespace {

/// A TAxis as the writer writes it.
std::string axis(const std::string& name, const std::string& title, const std::string& bins_min_max) {
  return R"({"_typename":"TAxis","fUniqueID":0,"fBits":0,"fName":")" + name + R"(","fTitle":")" + title +
         R"(","fNdivisions":510,"fAxisColor":1,"fLabelColor":1,"fLabelFont":42,"fLabelOffset":0.005,)"
         R"("fLabelSize":0.035,"fTickLength":0.03,"fTitleOffset":1,"fTitleSize":0.035,"fTitleColor":1,)"
         R"("fTitleFont":42,)" +
         bins_min_max +
         R"(,"fXbins":[],"fFirst":0,"fLast":0,"fBits2":0,"fTimeDisplay":false,"fTimeFormat":"","fLabels":null,)"
         R"("fModLabs":null})";
}

bool contains(const std::string& text, const std::string& piece) { return text.find(piece) != std::string::npos; }

TEST(JsrootJson, Th1dHasEveryMemberInRootOrder) {
  Histogram1D h("h1", "ECAL \"energy\"", Axis{3, 0.0, 3.0, "E (GeV)"}, "events");
  h.fill(0.5);
  h.fill(1.5, 2.0);
  h.fill(-1.0);
  h.fill(5.0);
  const std::string expected =
      R"({"_typename":"TH1D","fUniqueID":0,"fBits":8,"fName":"h1","fTitle":"ECAL \"energy\"",)"
      R"("fLineColor":602,"fLineStyle":1,"fLineWidth":1,"fFillColor":0,"fFillStyle":1001,)"
      R"("fMarkerColor":1,"fMarkerStyle":1,"fMarkerSize":1,"fNcells":5,"fXaxis":)" +
      axis("xaxis", "E (GeV)", R"("fNbins":3,"fXmin":0,"fXmax":3)") + R"(,"fYaxis":)" +
      axis("yaxis", "events", R"("fNbins":1,"fXmin":0,"fXmax":1)") + R"(,"fZaxis":)" +
      axis("zaxis", "", R"("fNbins":1,"fXmin":0,"fXmax":1)") +
      R"(,"fBarOffset":0,"fBarWidth":1000,"fEntries":4,"fTsumw":3,"fTsumw2":5,"fTsumwx":3.5,"fTsumwx2":4.75,)"
      R"("fMaximum":-1111,"fMinimum":-1111,"fNormFactor":0,"fContour":[],"fSumw2":[1,1,4,0,1],"fOption":"",)"
      R"("fFunctions":{"_typename":"TList","name":"TList","arr":[],"opt":[]},"fBufferSize":0,"fBuffer":[],)"
      R"("fBinStatErrOpt":0,"fStatOverflows":2,"fArray":[1,1,2,0,1]})";
  EXPECT_EQ(to_jsroot_json(h), expected);
}

TEST(JsrootJson, Th2dCellsInRootOrderWithItsOwnSums) {
  Histogram2D h("m", "map", Axis{2, 0.0, 2.0, "x"}, Axis{2, 0.0, 2.0, "y"}, "hits");
  h.fill(0.5, 1.5, 3.0);  // cell (1, 2) = 1 + 4 * 2
  h.fill(-1.0, 0.5);      // cell (0, 1) = 4
  const std::string j = to_jsroot_json(h);
  EXPECT_TRUE(j.starts_with(R"({"_typename":"TH2D","fUniqueID":0,"fBits":8,"fName":"m","fTitle":"map",)")) << j;
  EXPECT_TRUE(contains(j, R"("fNcells":16,"fXaxis":)" + axis("xaxis", "x", R"("fNbins":2,"fXmin":0,"fXmax":2)") +
                              R"(,"fYaxis":)" + axis("yaxis", "y", R"("fNbins":2,"fXmin":0,"fXmax":2)") +
                              R"(,"fZaxis":)" + axis("zaxis", "hits", R"("fNbins":1,"fXmin":0,"fXmax":1)")))
      << j;
  EXPECT_TRUE(contains(j, R"("fEntries":2,"fTsumw":3,"fTsumw2":9,"fTsumwx":1.5,"fTsumwx2":0.75,)")) << j;
  EXPECT_TRUE(contains(j, R"("fSumw2":[0,0,0,0,1,0,0,0,0,9,0,0,0,0,0,0],)")) << j;
  EXPECT_TRUE(j.ends_with(R"("fBinStatErrOpt":0,"fStatOverflows":2,"fScalefactor":1,"fTsumwy":4.5,"fTsumwy2":6.75,)"
                          R"("fTsumwxy":2.25,"fArray":[0,0,0,0,1,0,0,0,0,3,0,0,0,0,0,0]})"))
      << j;
}

TEST(JsrootJson, NumbersReadBackExactlyAndNonFiniteAsNull) {
  Histogram1D h("h", "", Axis{2, 0.0, 1.0, ""});
  h.fill(0.25, 0.1);
  h.fill(0.75, std::numeric_limits<double>::quiet_NaN());
  const std::string j = to_jsroot_json(h);
  EXPECT_TRUE(contains(j, R"("fXmin":0,"fXmax":1,)")) << j;
  EXPECT_TRUE(contains(j, R"("fArray":[0,0.1,null,0]})")) << j;
  EXPECT_TRUE(contains(j, R"("fTsumw":null,)")) << j;
  EXPECT_TRUE(contains(j, R"("fSumw2":[0,0.010000000000000002,null,0])")) << j;
}

TEST(JsrootJson, StringsAreEscaped) {
  EXPECT_EQ(json_string("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(json_string("line\nnext\ttab\r\b\f"), R"("line\nnext\ttab\r\b\f")");
  EXPECT_EQ(json_string(std::string("\x01\x1f", 2)), R"("\u0001\u001f")");
  EXPECT_EQ(json_string("E (\xc2\xb5s)"), "\"E (\xc2\xb5s)\"");
}

TEST(JsrootJson, EveryDqmHistogramIsValidJson) {
  const firmware::ChannelMap map = testing::reference_map();
  DqmConfig c;
  c.sample_period = 1;
  DqmHistograms d(map, c);
  for (std::uint32_t i = 0; i < 20; ++i) d.fill(testing::pattern_event(i), testing::pattern_mask(i));
  for (const auto& h : d.all_1d()) {
    const boost::json::object o = boost::json::parse(to_jsroot_json(h)).as_object();
    EXPECT_EQ(o.at("_typename").as_string(), "TH1D");
    EXPECT_EQ(o.at("fName").as_string(), h.name());
    EXPECT_EQ(o.at("fArray").as_array().size(), h.cells());
    EXPECT_EQ(o.at("fNcells").to_number<std::size_t>(), h.cells());
    EXPECT_EQ(o.at("fXaxis").at("fNbins").to_number<std::uint32_t>(), h.bins());
  }
  for (const auto& h : d.all_2d()) {
    const boost::json::object o = boost::json::parse(to_jsroot_json(h)).as_object();
    EXPECT_EQ(o.at("_typename").as_string(), "TH2D");
    EXPECT_EQ(o.at("fArray").as_array().size(), h.cells());
    EXPECT_EQ(o.at("fYaxis").at("fNbins").to_number<std::uint32_t>(), h.y_axis().bins);
  }
  // A cell of the ECAL1 energy map: cell (x, y) at (x + 1) + 8 (y + 1).
  const auto map1 = boost::json::parse(to_jsroot_json(d.ecal_energy_map(1))).as_object();
  EXPECT_EQ(map1.at("fArray").as_array().at(1 + 8 * 1).to_number<double>(), 40.0);  // (0,0): every event, 2 GeV
  EXPECT_EQ(map1.at("fArray").as_array().at(4 + 8 * 5).to_number<double>(), 10.0);  // (3,4): every 4th
}

}  // namespace
}  // namespace na64::monitoring
