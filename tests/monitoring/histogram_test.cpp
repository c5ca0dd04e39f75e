// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/histogram.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <stdexcept>
#include <vector>

namespace na64::monitoring {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

std::vector<double> values(std::span<const double> s) { return {s.begin(), s.end()}; }

/// Runs `f`, which must throw E, and returns the message.
template <class E, class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

TEST(Histogram1D, FillsRootCellOrderWithUnderAndOverflow) {
  Histogram1D h("h", "title", Axis{4, 0.0, 4.0, "x"});
  h.fill(-1.0);
  h.fill(-kInf);
  h.fill(0.0);
  h.fill(0.5, 2.0);
  h.fill(3.999);
  h.fill(4.0);
  h.fill(kInf);
  h.fill(kNaN);
  EXPECT_EQ(values(h.contents()), (std::vector<double>{2, 3, 0, 0, 1, 3}));
  EXPECT_EQ(values(h.sumw2()), (std::vector<double>{2, 5, 0, 0, 1, 3}));
  EXPECT_EQ(h.entries(), 8);
  // Only fills inside the axis count in the sums behind mean and RMS.
  EXPECT_EQ(h.sum_w(), 4);
  EXPECT_EQ(h.sum_w2(), 6);
  EXPECT_DOUBLE_EQ(h.sum_wx(), 0.0 + 1.0 + 3.999);
  EXPECT_EQ(h.error(1), std::sqrt(5.0));
  EXPECT_EQ(h.content(99), 0);
  EXPECT_EQ(h.error(99), 0);
}

TEST(Histogram1D, ValueJustBelowTheUpperEdgeStaysInTheLastBin) {
  Histogram1D h("h", "", Axis{3, 0.0, 0.3, ""});
  EXPECT_EQ(h.find_bin(std::nextafter(0.3, 0.0)), 3u);
  EXPECT_EQ(h.find_bin(0.3), 4u);
  EXPECT_EQ(h.find_bin(std::nextafter(0.0, -1.0)), 0u);
  EXPECT_EQ(h.find_bin(0.0), 1u);
  EXPECT_EQ(h.find_bin(0.1), 2u);
}

TEST(Histogram1D, MeanAndRmsAreWeightedOverTheAxis) {
  Histogram1D h("h", "", Axis{10, 0.0, 10.0, ""});
  h.fill(1.0);
  h.fill(2.0, 2.0);
  h.fill(3.0);
  h.fill(50.0, 100.0);  // overflow: not in the mean
  EXPECT_DOUBLE_EQ(h.mean(), 2.0);
  EXPECT_DOUBLE_EQ(h.rms(), std::sqrt(0.5));
  Histogram1D empty("e", "", Axis{10, 0.0, 10.0, ""});
  EXPECT_EQ(empty.mean(), 0);
  EXPECT_EQ(empty.rms(), 0);
}

TEST(Histogram1D, AddSumsBinsEntriesAndSums) {
  Histogram1D a("a", "", Axis{2, 0.0, 2.0, ""});
  Histogram1D b("b", "", Axis{2, 0.0, 2.0, ""});
  a.fill(0.5);
  a.fill(5.0);
  b.fill(1.5, 3.0);
  b.fill(-1.0);
  a.add(b);
  EXPECT_EQ(values(a.contents()), (std::vector<double>{1, 1, 3, 1}));
  EXPECT_EQ(values(a.sumw2()), (std::vector<double>{1, 1, 9, 1}));
  EXPECT_EQ(a.entries(), 4);
  EXPECT_EQ(a.sum_w(), 4);
  EXPECT_EQ(a.sum_wx(), 0.5 + 4.5);
}

TEST(Histogram1D, AddRejectsOtherBinningAndChangesNothing) {
  Histogram1D a("ecal_energy", "", Axis{120, 0.0, 120.0, ""});
  Histogram1D b("other", "", Axis{100, 0.0, 150.0, ""});
  a.fill(10.0);
  b.fill(10.0);
  EXPECT_EQ(message_of<std::invalid_argument>([&] { a.add(b); }),
            "cannot add histogram 'other' (x: 100 bins in [0, 150)) to 'ecal_energy' (x: 120 bins in [0, 120)): "
            "binnings differ");
  EXPECT_EQ(a.entries(), 1);
  EXPECT_EQ(a.content(11), 1);
}

TEST(Histogram1D, ResetEmptiesEverything) {
  Histogram1D h("h", "", Axis{2, 0.0, 2.0, ""});
  h.fill(0.5, 2.0);
  h.fill(9.0);
  h.reset();
  EXPECT_EQ(values(h.contents()), (std::vector<double>{0, 0, 0, 0}));
  EXPECT_EQ(values(h.sumw2()), (std::vector<double>{0, 0, 0, 0}));
  EXPECT_EQ(h.entries(), 0);
  EXPECT_EQ(h.sum_w(), 0);
  EXPECT_EQ(h.sum_wx2(), 0);
}

TEST(Histogram1D, BadBinningIsRefusedByName) {
  EXPECT_EQ(message_of<std::invalid_argument>([] { Histogram1D("srd0", "", Axis{0, 0.0, 1.0, ""}); }),
            "histogram 'srd0': x axis has 0 bins; it needs 1 to 1048576");
  EXPECT_EQ(message_of<std::invalid_argument>([] { Histogram1D("srd0", "", Axis{10, 1.0, 1.0, ""}); }),
            "histogram 'srd0': x axis limits [1, 1) must be finite with min < max");
  EXPECT_EQ(message_of<std::invalid_argument>([] { Histogram1D("srd0", "", Axis{10, 0.0, kNaN, ""}); }),
            "histogram 'srd0': x axis limits [0, nan) must be finite with min < max");
  EXPECT_EQ(message_of<std::invalid_argument>([] { Histogram1D("", "", Axis{10, 0.0, 1.0, ""}); }),
            "histogram with an empty name");
}

TEST(Histogram1D, SetBinKeepsTheSumsAsIfFilledAtTheCentre) {
  Histogram1D h("h", "", Axis{4, 0.0, 4.0, ""});
  h.set_bin(2, 10.0, 3.0);
  h.set_bin(2, 4.0, 2.0);  // replaces
  h.set_bin(0, 7.0, 1.0);  // underflow: not in the sums
  EXPECT_EQ(values(h.contents()), (std::vector<double>{7, 0, 4, 0, 0, 0}));
  EXPECT_EQ(values(h.sumw2()), (std::vector<double>{1, 0, 4, 0, 0, 0}));
  EXPECT_EQ(h.sum_w(), 4);
  EXPECT_EQ(h.sum_wx(), 4 * 1.5);
  EXPECT_EQ(h.mean(), 1.5);
  EXPECT_EQ(message_of<std::out_of_range>([&] { h.set_bin(6, 1.0, 1.0); }),
            "histogram 'h': bin 6 is out of range [0, 5]");
}

TEST(Histogram2D, FillsRootCellOrder) {
  Histogram2D h("h2", "", Axis{2, 0.0, 2.0, "x"}, Axis{3, 0.0, 3.0, "y"});
  ASSERT_EQ(h.cells(), 20u);
  h.fill(0.5, 1.5);        // (1, 2) -> 1 + 4 * 2
  h.fill(1.5, 2.5, 2.0);   // (2, 3) -> 2 + 4 * 3
  h.fill(-1.0, 0.5);       // (0, 1) -> 4
  h.fill(0.5, 3.0);        // (1, 4) -> 17
  h.fill(kNaN, kNaN);      // (3, 4) -> 19
  std::vector<double> expected(20, 0.0);
  expected[9] = 1;
  expected[14] = 2;
  expected[4] = 1;
  expected[17] = 1;
  expected[19] = 1;
  EXPECT_EQ(values(h.contents()), expected);
  EXPECT_EQ(h.content(2, 3), 2);
  EXPECT_EQ(h.error(2, 3), 2);
  EXPECT_EQ(h.content(5, 0), 0);
  EXPECT_EQ(h.entries(), 5);
  EXPECT_EQ(h.sum_w(), 3);
  EXPECT_EQ(h.sum_wx(), 0.5 + 3.0);
  EXPECT_EQ(h.sum_wy(), 1.5 + 5.0);
  EXPECT_EQ(h.sum_wxy(), 0.75 + 2 * 1.5 * 2.5);
  EXPECT_DOUBLE_EQ(h.mean_x(), 3.5 / 3);
  EXPECT_DOUBLE_EQ(h.mean_y(), 6.5 / 3);
  EXPECT_EQ(h.find_cell(1.5, 2.5), 14u);
}

TEST(Histogram2D, AddAndResetAndBadBinning) {
  Histogram2D a("a", "", Axis{2, 0.0, 2.0, ""}, Axis{2, 0.0, 2.0, ""});
  Histogram2D b("b", "", Axis{2, 0.0, 2.0, ""}, Axis{2, 0.0, 2.0, ""});
  Histogram2D c("c", "", Axis{2, 0.0, 2.0, ""}, Axis{3, 0.0, 2.0, ""});
  a.fill(0.5, 0.5);
  b.fill(0.5, 0.5, 2.0);
  a.add(b);
  EXPECT_EQ(a.content(1, 1), 3);
  EXPECT_EQ(a.sumw2()[a.cell(1, 1)], 5);
  EXPECT_EQ(a.entries(), 2);
  EXPECT_EQ(message_of<std::invalid_argument>([&] { a.add(c); }),
            "cannot add histogram 'c' (x: 2 bins in [0, 2); y: 3 bins in [0, 2)) to 'a' (x: 2 bins in [0, 2); y: 2 "
            "bins in [0, 2)): binnings differ");
  EXPECT_EQ(a.content(1, 1), 3);
  a.reset();
  EXPECT_EQ(a.content(1, 1), 0);
  EXPECT_EQ(a.entries(), 0);
  EXPECT_EQ(a.sum_wxy(), 0);
  EXPECT_EQ(message_of<std::invalid_argument>(
                [] { Histogram2D("big", "", Axis{4096, 0.0, 1.0, ""}, Axis{4096, 0.0, 1.0, ""}); }),
            "histogram 'big': 4096 x 4096 bins make 16793604 cells, more than 4194304");
  EXPECT_EQ(message_of<std::invalid_argument>([] { Histogram2D("map", "", Axis{6, 0.0, 6.0, ""}, Axis{6, 6.0, 0.0, ""}); }),
            "histogram 'map': y axis limits [6, 0) must be finite with min < max");
}

TEST(Histogram2D, SetBinAndItsRange) {
  Histogram2D h("m", "", Axis{6, 0.0, 6.0, ""}, Axis{6, 0.0, 6.0, ""});
  h.set_bin(4, 5, 5.0, 1.0);
  EXPECT_EQ(h.content(4, 5), 5);
  EXPECT_EQ(h.sum_w(), 5);
  EXPECT_EQ(h.mean_x(), 3.5);
  EXPECT_EQ(h.mean_y(), 4.5);
  EXPECT_EQ(message_of<std::out_of_range>([&] { h.set_bin(8, 0, 1.0, 1.0); }),
            "histogram 'm': bin (8, 0) is out of range [0, 7] x [0, 7]");
}

}  // namespace
}  // namespace na64::monitoring
