// SPDX-License-Identifier: Apache-2.0
// A writer of the Prometheus text exposition format, version 0.0.4, and the
// DQM counters as metrics.
#pragma once

#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <set>
#include <string>
#include <string_view>

#include "na64/monitoring/dqm.hpp"

namespace na64::monitoring {

/// The content type a server sends with the text.
inline constexpr std::string_view kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

enum class MetricType : std::uint8_t { Counter, Gauge };

/// One label of a sample. The value is any text; it is escaped when written.
struct Label {
  std::string_view name;
  std::string_view value;
};

/// Writes metric families one after the other: family() writes `# HELP` and
/// `# TYPE`, then sample() writes that family's samples.
///
/// Names are checked before anything is written, and a bad one throws
/// std::invalid_argument saying what and where; the text written so far
/// stays valid. Rules:
/// - metric names match [a-zA-Z_][a-zA-Z0-9_]* (colons, allowed by the
///   format, are left to recording rules); a counter's name ends in `_total`,
///   a gauge's does not;
/// - label names match [a-zA-Z_][a-zA-Z0-9_]*, do not start with `__`, are
///   not `le` or `quantile` (histograms' and summaries'), and appear once
///   per sample;
/// - a family is written once, with all its samples: a second family() of
///   the same name, a sample() before any family(), or the same label set
///   twice in one family are errors;
/// - a counter's value is not negative.
/// Label values are escaped (`\` as `\\`, `"` as `\"`, newline as `\n`), HELP
/// text likewise (`\` and newline). Values are written in the shortest form
/// that reads back exactly, or as NaN, +Inf, -Inf.
///
/// Thread safety: none; one instance per response.
class PrometheusWriter {
 public:
  /// Starts a family. `help` is its one-line description, not empty.
  void family(std::string_view name, MetricType type, std::string_view help);
  /// A sample of the current family.
  void sample(std::initializer_list<Label> labels, double value);
  /// A sample of the current family; integers of any size are written exactly.
  template <std::integral T>
  void sample(std::initializer_list<Label> labels, T value) {
    sample_integer(labels, value < T{0}, std::to_string(value));
  }
  void sample(double value) { sample({}, value); }
  template <std::integral T>
  void sample(T value) {
    sample({}, value);
  }

  /// The exposition text written so far.
  [[nodiscard]] const std::string& text() const noexcept { return text_; }

 private:
  void sample_integer(std::initializer_list<Label> labels, bool negative, const std::string& digits);
  void write_sample(std::initializer_list<Label> labels, std::string_view value);

  std::string text_;
  std::string current_;        ///< the family being written; empty before the first
  MetricType current_type_ = MetricType::Gauge;
  std::set<std::string, std::less<>> families_;  ///< written so far
  std::set<std::string, std::less<>> label_sets_;  ///< of the current family
};

/// Writes the DQM metrics of a run:
/// - counters over the run (`run`): `na64_dqm_events_total`,
///   `na64_dqm_filled_events_total`, `na64_trigger_accepted_events_total{line}`,
///   `na64_incomplete_events_total{reason}`, `na64_written_bytes_total`;
/// - gauges of the latest spill (`spill`, number `spill_number`):
///   `na64_spill_number`, `na64_spill_accepted_events{line}`,
///   `na64_spill_dead_time_ratio`, `na64_spill_srd_tagged_ratio`,
///   `na64_spill_written_bytes`.
/// Every family is written by this call; the writer must not hold them yet.
void write_dqm_metrics(PrometheusWriter& w, const DqmCounters& run, const DqmCounters& spill,
                       std::uint32_t spill_number);

}  // namespace na64::monitoring
