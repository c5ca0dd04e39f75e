// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/prometheus.hpp"

#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string>

#include "na64/testing/command.hpp"
#include "na64/testing/temp_dir.hpp"

namespace na64::monitoring {
namespace {

template <class F>
std::string refusal(F&& f) {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

TEST(PrometheusWriter, WritesFamiliesWithHelpTypeAndSamples) {
  PrometheusWriter w;
  w.family("na64_trigger_accepted_events_total", MetricType::Counter, "Events accepted, per trigger line");
  w.sample({{"line", "invisible"}}, std::uint64_t{12});
  w.sample({{"line", "beam"}}, 18446744073709551615ull);
  w.family("na64_spill_dead_time_ratio", MetricType::Gauge, "Fraction of the spill the readout was busy");
  w.sample(0.125);
  w.family("na64_source_temperature_celsius", MetricType::Gauge, "Board temperature");
  w.sample({{"source", "620"}, {"port", "3"}}, -4.5);
  w.sample({{"source", "621"}, {"port", "3"}}, std::numeric_limits<double>::infinity());
  w.sample({{"source", "622"}, {"port", "3"}}, std::numeric_limits<double>::quiet_NaN());
  w.sample({{"source", "623"}, {"port", "3"}}, -7);
  EXPECT_EQ(w.text(),
            "# HELP na64_trigger_accepted_events_total Events accepted, per trigger line\n"
            "# TYPE na64_trigger_accepted_events_total counter\n"
            "na64_trigger_accepted_events_total{line=\"invisible\"} 12\n"
            "na64_trigger_accepted_events_total{line=\"beam\"} 18446744073709551615\n"
            "# HELP na64_spill_dead_time_ratio Fraction of the spill the readout was busy\n"
            "# TYPE na64_spill_dead_time_ratio gauge\n"
            "na64_spill_dead_time_ratio 0.125\n"
            "# HELP na64_source_temperature_celsius Board temperature\n"
            "# TYPE na64_source_temperature_celsius gauge\n"
            "na64_source_temperature_celsius{source=\"620\",port=\"3\"} -4.5\n"
            "na64_source_temperature_celsius{source=\"621\",port=\"3\"} +Inf\n"
            "na64_source_temperature_celsius{source=\"622\",port=\"3\"} NaN\n"
            "na64_source_temperature_celsius{source=\"623\",port=\"3\"} -7\n");
}

TEST(PrometheusWriter, EscapesLabelValuesAndHelp) {
  PrometheusWriter w;
  w.family("na64_run_info", MetricType::Gauge, "Run comment \\ with a\nnewline and \"quotes\"");
  w.sample({{"comment", "100 GeV \"e-\"\nC:\\data"}}, 1.0);
  EXPECT_EQ(w.text(),
            "# HELP na64_run_info Run comment \\\\ with a\\nnewline and \"quotes\"\n"
            "# TYPE na64_run_info gauge\n"
            "na64_run_info{comment=\"100 GeV \\\"e-\\\"\\nC:\\\\data\"} 1\n");
}

TEST(PrometheusWriter, RefusesBadNamesSayingWhatAndWhere) {
  PrometheusWriter w;
  EXPECT_EQ(refusal([&] { w.family("na64 events", MetricType::Gauge, "x"); }),
            "metric family 'na64 events': character 4 (' ') is not allowed; names match [a-zA-Z_][a-zA-Z0-9_]*");
  EXPECT_EQ(refusal([&] { w.family("9lives", MetricType::Gauge, "x"); }),
            "metric family '9lives': character 0 ('9') is not allowed; names match [a-zA-Z_][a-zA-Z0-9_]*");
  EXPECT_EQ(refusal([&] { w.family("job:rate", MetricType::Gauge, "x"); }),
            "metric family 'job:rate': character 3 (':') is not allowed; names match [a-zA-Z_][a-zA-Z0-9_]*");
  EXPECT_EQ(refusal([&] { w.family("", MetricType::Gauge, "x"); }), "metric family: empty name");
  EXPECT_EQ(refusal([&] { w.family("na64_events", MetricType::Counter, "x"); }),
            "counter 'na64_events': a counter's name must end in _total");
  EXPECT_EQ(refusal([&] { w.family("na64_events_total", MetricType::Gauge, "x"); }),
            "gauge 'na64_events_total': only counters' names end in _total");
  EXPECT_EQ(refusal([&] { w.family("na64_events", MetricType::Gauge, ""); }),
            "metric family 'na64_events': empty HELP text");
  EXPECT_EQ(refusal([&] { w.sample(1.0); }), "metric sample before any family(): no family to add it to");
  EXPECT_EQ(w.text(), "");

  w.family("na64_bytes", MetricType::Gauge, "Bytes");
  EXPECT_EQ(refusal([&] { w.sample({{"source-id", "620"}}, 1.0); }),
            "metric 'na64_bytes': label 'source-id': character 6 ('-') is not allowed; names match "
            "[a-zA-Z_][a-zA-Z0-9_]*");
  EXPECT_EQ(refusal([&] { w.sample({{"__name__", "x"}}, 1.0); }),
            "metric 'na64_bytes': label '__name__': names starting with __ are reserved");
  EXPECT_EQ(refusal([&] { w.sample({{"le", "1"}}, 1.0); }),
            "metric 'na64_bytes': label 'le' is reserved for histograms and summaries");
  EXPECT_EQ(refusal([&] { w.sample({{"source", "620"}, {"source", "621"}}, 1.0); }),
            "metric 'na64_bytes': label 'source' given twice in one sample");
  EXPECT_EQ(refusal([&] { w.sample({{"a\nb", "620"}}, 1.0); }),
            "metric 'na64_bytes': label 'a\\x0ab': character 1 ('\\x0a') is not allowed; names match "
            "[a-zA-Z_][a-zA-Z0-9_]*");
  w.sample({{"source", "620"}, {"port", "0"}}, 1.0);
  EXPECT_EQ(refusal([&] { w.sample({{"port", "0"}, {"source", "620"}}, 2.0); }),
            "metric 'na64_bytes': sample {port=\"0\",source=\"620\"} is written twice");
  EXPECT_EQ(refusal([&] { w.family("na64_bytes", MetricType::Gauge, "again"); }),
            "metric family 'na64_bytes' is already written; a family is written once, with all its samples");
  w.family("na64_events_total", MetricType::Counter, "Events");
  EXPECT_EQ(refusal([&] { w.sample(-1.0); }),
            "counter 'na64_events_total': value -1 is not a count; counters are never negative");
  EXPECT_EQ(refusal([&] { w.sample(-3); }),
            "counter 'na64_events_total': value -3 is not a count; counters are never negative");
  // What was written before the refusals is intact.
  EXPECT_EQ(w.text(),
            "# HELP na64_bytes Bytes\n# TYPE na64_bytes gauge\nna64_bytes{source=\"620\",port=\"0\"} 1\n"
            "# HELP na64_events_total Events\n# TYPE na64_events_total counter\n");
}

TEST(PrometheusWriter, DqmMetrics) {
  DqmCounters run;
  run.events = 1000;
  run.filled = 250;
  run.accepted = {3, 1, 0};
  run.incomplete = {0, 5, 1, 0, 2};
  run.bytes_written = 123456789;
  DqmCounters spill;
  spill.accepted = {1, 0, 0};
  spill.seconds = 4.0;
  spill.dead_seconds = 0.5;
  spill.filled = 8;
  spill.srd_tagged = 6;
  spill.bytes_written = 4096;
  PrometheusWriter w;
  write_dqm_metrics(w, run, spill, 17);
  EXPECT_EQ(w.text(),
            "# HELP na64_dqm_events_total Complete events offered to data-quality monitoring\n"
            "# TYPE na64_dqm_events_total counter\n"
            "na64_dqm_events_total 1000\n"
            "# HELP na64_dqm_filled_events_total Events filled into the data-quality histograms\n"
            "# TYPE na64_dqm_filled_events_total counter\n"
            "na64_dqm_filled_events_total 250\n"
            "# HELP na64_trigger_accepted_events_total Events accepted, per trigger line\n"
            "# TYPE na64_trigger_accepted_events_total counter\n"
            "na64_trigger_accepted_events_total{line=\"invisible\"} 3\n"
            "na64_trigger_accepted_events_total{line=\"beam\"} 1\n"
            "na64_trigger_accepted_events_total{line=\"random\"} 0\n"
            "# HELP na64_incomplete_events_total Events released without every source, per reason\n"
            "# TYPE na64_incomplete_events_total counter\n"
            "na64_incomplete_events_total{reason=\"timeout\"} 5\n"
            "na64_incomplete_events_total{reason=\"source_lost\"} 1\n"
            "na64_incomplete_events_total{reason=\"skipped\"} 0\n"
            "na64_incomplete_events_total{reason=\"end_of_spill\"} 2\n"
            "# HELP na64_written_bytes_total Bytes of DATE events written\n"
            "# TYPE na64_written_bytes_total counter\n"
            "na64_written_bytes_total 123456789\n"
            "# HELP na64_spill_number Number of the latest spill\n"
            "# TYPE na64_spill_number gauge\n"
            "na64_spill_number 17\n"
            "# HELP na64_spill_accepted_events Events accepted in the latest spill, per trigger line\n"
            "# TYPE na64_spill_accepted_events gauge\n"
            "na64_spill_accepted_events{line=\"invisible\"} 1\n"
            "na64_spill_accepted_events{line=\"beam\"} 0\n"
            "na64_spill_accepted_events{line=\"random\"} 0\n"
            "# HELP na64_spill_dead_time_ratio Fraction of the latest spill the readout was busy\n"
            "# TYPE na64_spill_dead_time_ratio gauge\n"
            "na64_spill_dead_time_ratio 0.125\n"
            "# HELP na64_spill_srd_tagged_ratio Fraction of the latest spill's filled events with every SRD module "
            "in the window\n"
            "# TYPE na64_spill_srd_tagged_ratio gauge\n"
            "na64_spill_srd_tagged_ratio 0.75\n"
            "# HELP na64_spill_written_bytes Bytes of DATE events written for the latest spill\n"
            "# TYPE na64_spill_written_bytes gauge\n"
            "na64_spill_written_bytes 4096\n");
}

TEST(PrometheusWriter, PromtoolAcceptsARepresentativeMetricSet) {
  const auto which = na64::testing::run_command("command -v promtool");
  ASSERT_EQ(which.exit_code, 0) << "promtool is not installed: install the Debian package 'prometheus' "
                                   "(apt-get install prometheus), which provides promtool, to run this test";
  DqmCounters run;
  run.events = 20000;
  run.filled = 5000;
  run.accepted = {12, 20, 4};
  run.incomplete = {0, 3, 0, 1, 0};
  DqmCounters spill = run;
  spill.seconds = 4.8;
  spill.dead_seconds = 0.1;
  PrometheusWriter w;
  write_dqm_metrics(w, run, spill, 3);
  // Per source and per trigger line, with label values that need escaping.
  w.family("na64_source_fragments_total", MetricType::Counter, "Fragments received, per source");
  for (const char* source : {"620", "621", "622"}) w.sample({{"source", source}}, std::uint64_t{20000});
  w.family("na64_source_buffer_fill_ratio", MetricType::Gauge, "Fill of the source's ring, 0 to 1");
  for (const char* source : {"620", "621", "622"}) w.sample({{"source", source}}, 0.25);
  w.family("na64_trigger_line_threshold_gev", MetricType::Gauge, "Thresholds in force, per line and cut");
  w.sample({{"line", "invisible"}, {"cut", "ecal_max"}}, 50.0);
  w.sample({{"line", "invisible"}, {"cut", "hcal_max"}}, 1.0);
  w.sample({{"line", "invisible"}, {"cut", "comment \"tight\"\nline 2 \\"}}, 0.3);
  const na64::testing::TempDir dir;
  const auto file = dir.path() / "metrics.txt";
  {
    std::ofstream out(file);
    out << w.text();
  }
  const auto check = na64::testing::run_command("promtool check metrics < '" + file.string() + "'");
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_EQ(check.output, "");
}

}  // namespace
}  // namespace na64::monitoring
