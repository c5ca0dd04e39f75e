// SPDX-License-Identifier: Apache-2.0
#include "na64/monitoring/prometheus.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <vector>

namespace na64::monitoring {

namespace {

bool name_start(char c) noexcept { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool name_char(char c) noexcept { return name_start(c) || (c >= '0' && c <= '9'); }

/// Printable form of a name for an error message.
std::string shown(std::string_view s) {
  std::string out;
  for (const char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) {
      out += fmt::format("\\x{:02x}", static_cast<unsigned>(u));
    } else {
      out += c;
    }
  }
  return out;
}

/// Throws naming `what` when `name` is not [a-zA-Z_][a-zA-Z0-9_]*.
void check_name(std::string_view what, std::string_view name) {
  if (name.empty()) throw std::invalid_argument(fmt::format("{}: empty name", what));
  for (std::size_t i = 0; i < name.size(); ++i) {
    const bool ok = i == 0 ? name_start(name[i]) : name_char(name[i]);
    if (!ok) {
      throw std::invalid_argument(fmt::format(
          "{} '{}': character {} ('{}') is not allowed; names match [a-zA-Z_][a-zA-Z0-9_]*", what, shown(name), i,
          shown(name.substr(i, 1))));
    }
  }
}

bool ends_with(std::string_view s, std::string_view suffix) noexcept {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void append_escaped(std::string& out, std::string_view s, bool quotes) {
  for (const char c : s) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else if (quotes && c == '"') {
      out += "\\\"";
    } else {
      out += c;
    }
  }
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

}  // namespace

void PrometheusWriter::family(std::string_view name, MetricType type, std::string_view help) {
  check_name("metric family", name);
  if (type == MetricType::Counter && !ends_with(name, "_total")) {
    throw std::invalid_argument(fmt::format("counter '{}': a counter's name must end in _total", name));
  }
  if (type == MetricType::Gauge && ends_with(name, "_total")) {
    throw std::invalid_argument(fmt::format("gauge '{}': only counters' names end in _total", name));
  }
  if (help.empty()) throw std::invalid_argument(fmt::format("metric family '{}': empty HELP text", name));
  if (families_.contains(name)) {
    throw std::invalid_argument(
        fmt::format("metric family '{}' is already written; a family is written once, with all its samples", name));
  }
  families_.emplace(name);
  current_.assign(name);
  current_type_ = type;
  label_sets_.clear();
  text_ += "# HELP ";
  text_ += name;
  text_ += ' ';
  append_escaped(text_, help, false);
  text_ += "\n# TYPE ";
  text_ += name;
  text_ += type == MetricType::Counter ? " counter\n" : " gauge\n";
}

void PrometheusWriter::sample(std::initializer_list<Label> labels, double value) {
  if (current_type_ == MetricType::Counter && !current_.empty() && !(value >= 0)) {
    throw std::invalid_argument(
        fmt::format("counter '{}': value {} is not a count; counters are never negative", current_, value));
  }
  write_sample(labels, format_value(value));
}

void PrometheusWriter::sample_integer(std::initializer_list<Label> labels, bool negative, const std::string& digits) {
  if (current_type_ == MetricType::Counter && !current_.empty() && negative) {
    throw std::invalid_argument(
        fmt::format("counter '{}': value {} is not a count; counters are never negative", current_, digits));
  }
  write_sample(labels, digits);
}

void PrometheusWriter::write_sample(std::initializer_list<Label> labels, std::string_view value) {
  if (current_.empty()) throw std::invalid_argument("metric sample before any family(): no family to add it to");
  std::vector<std::string_view> names;
  for (const Label& l : labels) {
    const std::string what = fmt::format("metric '{}': label", current_);
    check_name(what, l.name);
    if (l.name.starts_with("__")) {
      throw std::invalid_argument(
          fmt::format("metric '{}': label '{}': names starting with __ are reserved", current_, l.name));
    }
    if (l.name == "le" || l.name == "quantile") {
      throw std::invalid_argument(fmt::format(
          "metric '{}': label '{}' is reserved for histograms and summaries", current_, l.name));
    }
    if (std::find(names.begin(), names.end(), l.name) != names.end()) {
      throw std::invalid_argument(fmt::format("metric '{}': label '{}' given twice in one sample", current_, l.name));
    }
    names.push_back(l.name);
  }
  std::string line = current_;
  if (labels.size() != 0) {
    line += '{';
    bool first = true;
    for (const Label& l : labels) {
      if (!first) line += ',';
      first = false;
      line += l.name;
      line += "=\"";
      append_escaped(line, l.value, true);
      line += '"';
    }
    line += '}';
  }
  // The label set as written identifies the sample, whatever the label order.
  std::vector<std::string> key;
  for (const Label& l : labels) {
    std::string k(l.name);
    k += '=';
    append_escaped(k, l.value, true);
    key.push_back(std::move(k));
  }
  std::sort(key.begin(), key.end());
  std::string joined;
  for (const auto& k : key) {
    joined += k;
    joined += '\n';
  }
  if (!label_sets_.insert(joined).second) {
    throw std::invalid_argument(
        fmt::format("metric '{}': sample {} is written twice", current_, line.substr(current_.size())));
  }
  text_ += line;
  text_ += ' ';
  text_ += value;
  text_ += '\n';
}

void write_dqm_metrics(PrometheusWriter& w, const DqmCounters& run, const DqmCounters& spill,
                       std::uint32_t spill_number) {
  w.family("na64_dqm_events_total", MetricType::Counter, "Complete events offered to data-quality monitoring");
  w.sample(run.events);
  w.family("na64_dqm_filled_events_total", MetricType::Counter, "Events filled into the data-quality histograms");
  w.sample(run.filled);
  w.family("na64_trigger_accepted_events_total", MetricType::Counter, "Events accepted, per trigger line");
  for (std::size_t l = 0; l < trigger::kNumLines; ++l) {
    w.sample({{"line", trigger::to_string(static_cast<trigger::TriggerLine>(l))}}, run.accepted[l]);
  }
  w.family("na64_incomplete_events_total", MetricType::Counter, "Events released without every source, per reason");
  for (std::size_t r = 1; r < eventbuilder::kNumIncompleteReasons; ++r) {
    w.sample({{"reason", eventbuilder::to_string(static_cast<eventbuilder::IncompleteReason>(r))}}, run.incomplete[r]);
  }
  w.family("na64_written_bytes_total", MetricType::Counter, "Bytes of DATE events written");
  w.sample(run.bytes_written);

  w.family("na64_spill_number", MetricType::Gauge, "Number of the latest spill");
  w.sample(std::uint64_t{spill_number});
  w.family("na64_spill_accepted_events", MetricType::Gauge, "Events accepted in the latest spill, per trigger line");
  for (std::size_t l = 0; l < trigger::kNumLines; ++l) {
    w.sample({{"line", trigger::to_string(static_cast<trigger::TriggerLine>(l))}}, spill.accepted[l]);
  }
  w.family("na64_spill_dead_time_ratio", MetricType::Gauge, "Fraction of the latest spill the readout was busy");
  w.sample(spill.dead_time_fraction());
  w.family("na64_spill_srd_tagged_ratio", MetricType::Gauge,
           "Fraction of the latest spill's filled events with every SRD module in the window");
  w.sample(spill.srd_tagged_fraction());
  w.family("na64_spill_written_bytes", MetricType::Gauge, "Bytes of DATE events written for the latest spill");
  w.sample(spill.bytes_written);
}

}  // namespace na64::monitoring
