// SPDX-License-Identifier: Apache-2.0
// Histograms as the JSON that JSROOT reads for ROOT's TH1D and TH2D, so that
// a browser draws them with JSROOT.parse() and JSROOT.draw().
#pragma once

#include <string>
#include <string_view>

#include "na64/monitoring/histogram.hpp"

namespace na64::monitoring {

/// The histogram as a TH1D object: every data member JSROOT gives a TH1D
/// (`_typename`, `fName`, `fTitle`, the line/fill/marker attributes,
/// `fNcells`, `fXaxis`/`fYaxis`/`fZaxis` as TAxis, `fEntries`, `fTsumw`,
/// `fTsumw2`, `fTsumwx`, `fTsumwx2`, `fSumw2`, `fArray`, ...), in ROOT's
/// member order, on one line. `fArray` and `fSumw2` hold bins() + 2 cells,
/// underflow first. Numbers are written in the shortest form that reads back
/// exactly; a value that is not finite, which JSON cannot hold, as null.
[[nodiscard]] std::string to_jsroot_json(const Histogram1D& h);
/// The histogram as a TH2D object: as for TH1D, plus `fScalefactor`,
/// `fTsumwy`, `fTsumwy2`, `fTsumwxy`; `fArray` and `fSumw2` in ROOT's cell
/// order (x fastest, under- and overflow on both axes).
[[nodiscard]] std::string to_jsroot_json(const Histogram2D& h);

/// `text` as a JSON string literal, quotes included: `"` and `\` escaped,
/// control characters as \n, \t, ... or \u00XX; other bytes as they are.
[[nodiscard]] std::string json_string(std::string_view text);

}  // namespace na64::monitoring
