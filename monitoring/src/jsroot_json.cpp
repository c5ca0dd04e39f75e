// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/jsroot_json.hpp"

#include <fmt/format.h>

#include <cmath>
#include <iterator>
#include <span>

namespace na64::monitoring {

namespace {

// Member names and default values are those JSROOT gives a TH1D / TH2D that
// it creates itself, in ROOT's streamer order: TNamed, TAttLine, TAttFill,
// TAttMarker, then TH1's members, TH2's, and the array.
constexpr int kNoZoom = -1111;     // fMaximum / fMinimum: not set
constexpr int kHistLineColor = 602;
constexpr int kHistFillStyle = 1001;
constexpr int kTH1Bits = 8;

void append_number(std::string& out, double v) {
  if (std::isfinite(v)) {
    fmt::format_to(std::back_inserter(out), "{}", v);
  } else {
    out += "null";
  }
}

void append_array(std::string& out, std::span<const double> values) {
  out += '[';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out += ',';
    append_number(out, values[i]);
  }
  out += ']';
}

void append_key(std::string& out, std::string_view key) {
  out += '"';
  out += key;
  out += "\":";
}

void append_field(std::string& out, std::string_view key, double v) {
  append_key(out, key);
  append_number(out, v);
  out += ',';
}

void append_field(std::string& out, std::string_view key, std::string_view text, bool as_string) {
  append_key(out, key);
  if (as_string) {
    out += json_string(text);
  } else {
    out += text;
  }
  out += ',';
}

void append_axis(std::string& out, std::string_view key, std::string_view name, const Axis& a) {
  append_key(out, key);
  out += "{\"_typename\":\"TAxis\",\"fUniqueID\":0,\"fBits\":0,";
  append_field(out, "fName", name, true);
  append_field(out, "fTitle", a.title, true);
  // TAttAxis defaults.
  out += "\"fNdivisions\":510,\"fAxisColor\":1,\"fLabelColor\":1,\"fLabelFont\":42,\"fLabelOffset\":0.005,"
         "\"fLabelSize\":0.035,\"fTickLength\":0.03,\"fTitleOffset\":1,\"fTitleSize\":0.035,\"fTitleColor\":1,"
         "\"fTitleFont\":42,";
  append_field(out, "fNbins", a.bins);
  append_field(out, "fXmin", a.min);
  append_field(out, "fXmax", a.max);
  out += "\"fXbins\":[],\"fFirst\":0,\"fLast\":0,\"fBits2\":0,\"fTimeDisplay\":false,\"fTimeFormat\":\"\","
         "\"fLabels\":null,\"fModLabs\":null}";
  out += ',';
}

/// Members from `_typename` to fZaxis.
void append_head(std::string& out, const char* type, const std::string& name, const std::string& title,
                 std::size_t cells) {
  out += "{\"_typename\":\"";
  out += type;
  out += "\",\"fUniqueID\":0,";
  append_field(out, "fBits", kTH1Bits);
  append_field(out, "fName", name, true);
  append_field(out, "fTitle", title, true);
  append_field(out, "fLineColor", kHistLineColor);
  out += "\"fLineStyle\":1,\"fLineWidth\":1,\"fFillColor\":0,";
  append_field(out, "fFillStyle", kHistFillStyle);
  out += "\"fMarkerColor\":1,\"fMarkerStyle\":1,\"fMarkerSize\":1,";
  append_field(out, "fNcells", static_cast<double>(cells));
}

/// Members from fBarOffset to fStatOverflows, for the sums given.
void append_stats(std::string& out, double entries, double sw, double sw2, double swx, double swx2,
                  std::span<const double> sumw2) {
  out += "\"fBarOffset\":0,\"fBarWidth\":1000,";
  append_field(out, "fEntries", entries);
  append_field(out, "fTsumw", sw);
  append_field(out, "fTsumw2", sw2);
  append_field(out, "fTsumwx", swx);
  append_field(out, "fTsumwx2", swx2);
  append_field(out, "fMaximum", kNoZoom);
  append_field(out, "fMinimum", kNoZoom);
  out += "\"fNormFactor\":0,\"fContour\":[],";
  append_key(out, "fSumw2");
  append_array(out, sumw2);
  out += ",\"fOption\":\"\",\"fFunctions\":{\"_typename\":\"TList\",\"name\":\"TList\",\"arr\":[],\"opt\":[]},"
         "\"fBufferSize\":0,\"fBuffer\":[],\"fBinStatErrOpt\":0,\"fStatOverflows\":2,";
}

const Axis kUnusedAxis{1, 0.0, 1.0, {}};

}  // namespace

std::string json_string(std::string_view text) {
  std::string out;
  out.reserve(text.size() + 2);
  out += '"';
  for (const char ch : text) {
    switch (ch) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(ch)));
        } else {
          out += ch;
        }
    }
  }
  out += '"';
  return out;
}

std::string to_jsroot_json(const Histogram1D& h) {
  std::string out;
  out.reserve(1500 + 40 * h.cells());
  append_head(out, "TH1D", h.name(), h.title(), h.cells());
  append_axis(out, "fXaxis", "xaxis", h.x_axis());
  Axis y = kUnusedAxis;
  y.title = h.y_title();
  append_axis(out, "fYaxis", "yaxis", y);
  append_axis(out, "fZaxis", "zaxis", kUnusedAxis);
  append_stats(out, h.entries(), h.sum_w(), h.sum_w2(), h.sum_wx(), h.sum_wx2(), h.sumw2());
  append_key(out, "fArray");
  append_array(out, h.contents());
  out += '}';
  return out;
}

std::string to_jsroot_json(const Histogram2D& h) {
  std::string out;
  out.reserve(1600 + 40 * h.cells());
  append_head(out, "TH2D", h.name(), h.title(), h.cells());
  append_axis(out, "fXaxis", "xaxis", h.x_axis());
  append_axis(out, "fYaxis", "yaxis", h.y_axis());
  Axis z = kUnusedAxis;
  z.title = h.z_title();
  append_axis(out, "fZaxis", "zaxis", z);
  append_stats(out, h.entries(), h.sum_w(), h.sum_w2(), h.sum_wx(), h.sum_wx2(), h.sumw2());
  out += "\"fScalefactor\":1,";
  append_field(out, "fTsumwy", h.sum_wy());
  append_field(out, "fTsumwy2", h.sum_wy2());
  append_field(out, "fTsumwxy", h.sum_wxy());
  append_key(out, "fArray");
  append_array(out, h.contents());
  out += '}';
  return out;
}

}  // namespace na64::monitoring
