// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/dashboard.hpp"

#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <fstream>
#include <mutex>
#include <sstream>
#include <utility>
#include <variant>
#include <vector>

#include "control.pb.h"
#include "na64/daq/control_service.hpp"
#include "na64/daq/event_display.hpp"
#include "na64/daq/monitor.hpp"
#include "na64/daq/run_control.hpp"
#include "na64/firmware/channel_map.hpp"
#include "na64/firmware/date.hpp"
#include "na64/firmware/run_record.hpp"
#include "na64/monitoring/dqm.hpp"
#include "na64/monitoring/jsroot_json.hpp"
#include "na64/monitoring/prometheus.hpp"

namespace na64::daq {

namespace {

namespace json = boost::json;
namespace fw = na64::firmware;
namespace mon = na64::monitoring;

/// The beam counts as on while a spill is read out and this long after one
/// reached disk: the SPS spill lasts 4.8 s, and spills come every 10-25 s.
constexpr auto kBeamWindow = std::chrono::seconds(10);

/// Client text as a message may quote it: printable ASCII, at most `max`.
std::string printable(std::string_view text, std::size_t max = 64) {
  std::string out;
  for (const char c : text.substr(0, max)) out.push_back(c > ' ' && c < 127 ? c : '?');
  if (text.size() > max) out += "...";
  return out;
}

HttpContent json_content(const json::value& v, unsigned status = 200) {
  return {status, "application/json", json::serialize(v) + "\n"};
}

/// An error as the control API writes one: {"code": ..., "message": ...}.
HttpContent refusal(unsigned status, std::string message) {
  const char* code = status == 404 ? "NOT_FOUND" : status == 400 ? "BAD_REQUEST" : "INTERNAL";
  return json_content(json::object{{"code", code}, {"message", std::move(message)}}, status);
}

/// The shortest decimal that reads back as the same float (0.3, not 0.30000001).
double shown(float v) {
  double d = 0;
  const std::string text = fmt::format("{}", v);
  std::from_chars(text.data(), text.data() + text.size(), d);
  return d;
}

const char* line_name(std::size_t line) noexcept {
  switch (static_cast<trigger::TriggerLine>(line)) {
    case trigger::TriggerLine::Invisible: return "invisible";
    case trigger::TriggerLine::Beam: return "beam";
    case trigger::TriggerLine::Random: return "random";
  }
  return "?";
}

template <class Repeated>
json::object per_line(const Repeated& counts) {
  json::object o;
  for (std::size_t l = 0; l < trigger::kNumLines; ++l) {
    o[line_name(l)] = l < static_cast<std::size_t>(counts.size()) ? counts[static_cast<int>(l)] : 0;
  }
  return o;
}

json::object spill_object(const control::SpillRecord& s) {
  json::array reasons;
  for (const auto& r : s.verdict_reasons()) reasons.emplace_back(r);
  return json::object{{"run", s.run()},
                      {"spill", s.spill()},
                      {"particles", s.particles()},
                      {"built", s.built()},
                      {"incomplete", s.incomplete()},
                      {"accepted", per_line(s.accepted())},
                      {"accepted_events", s.accepted_events()},
                      {"written", s.written()},
                      {"bytes", s.bytes()},
                      {"decode_errors", s.decode_errors()},
                      {"seconds", s.seconds()},
                      {"dead_time", s.dead_time()},
                      {"threshold_set", s.threshold_set()},
                      {"shadow_set", s.shadow_set()},
                      {"shadow_accepted", per_line(s.shadow_accepted())},
                      {"shadow_overlap", per_line(s.shadow_overlap())},
                      {"verdict", s.verdict()},
                      {"reasons", std::move(reasons)}};
}

json::object alarm_object(const control::Alarm& a) {
  return json::object{{"id", a.id()},
                      {"level", a.level()},
                      {"text", a.text()},
                      {"run", a.run()},
                      {"first_spill", a.first_spill()},
                      {"last_spill", a.last_spill()},
                      {"raised_at", a.raised_unix_ms()},
                      {"last_at", a.last_unix_ms()},
                      {"acknowledged", a.acknowledged()},
                      {"acknowledged_by", a.acknowledged_by()},
                      {"acknowledged_at", a.acknowledged() ? json::value(a.acknowledged_unix_ms()) : json::value()}};
}

/// A control Reply as the API writes it (Protobuf's JSON mapping), as an object.
json::object reply_object(const control::Reply& reply) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  std::string text;
  if (!google::protobuf::util::MessageToJsonString(reply, &text, options).ok()) {
    return json::object{{"code", "INTERNAL"}, {"message", "the reply cannot be written as JSON"}};
  }
  return json::parse(text).as_object();
}

/// GET /api/status: the Reply, with the dashboard's fields beside it.
json::object status_object(const control::Reply& reply, const MonitorStatus& m) {
  json::object o = reply_object(reply);
  const control::Status& st = reply.status();
  const bool in_run = st.state() == control::RUNNING || st.state() == control::STOPPING;
  const bool spill_open = in_run && st.spills_begun() > st.spill();
  o["state"] = to_string(st.state());
  o["run"] = st.run();
  o["spill"] = st.spill();
  o["spills_begun"] = st.spills_begun();
  o["run_start_unix_ms"] = st.run_start_unix_ms();
  o["events_written"] = st.events_written();
  o["bytes_written"] = st.bytes_written();
  o["beam_on"] = spill_open || (m.running && m.since_spill && *m.since_spill < kBeamWindow);
  o["disk_free_bytes"] = m.disk_free_bytes ? json::value(*m.disk_free_bytes) : json::value();
  o["disk_limit_bytes"] = m.disk_limit_bytes;
  o["output_dir"] = m.output_dir.string();
  json::array valid;
  for (const auto& c : st.allowed()) valid.emplace_back(c);
  o["valid_commands"] = std::move(valid);
  json::array sources;
  if (!m.sources.empty()) {
    for (const auto& s : m.sources) {
      sources.emplace_back(
          json::object{{"id", s.id}, {"kind", s.tracker ? "tracker" : "msadc"}, {"state", s.state}});
    }
  } else {
    for (const auto& s : st.sources()) {
      sources.emplace_back(json::object{{"id", s.id()}, {"kind", "msadc"}, {"state", s.state()}});
    }
  }
  o["sources"] = std::move(sources);
  o["alarms_unacknowledged"] = m.alarms_unacknowledged;
  o["threshold_set"] = st.thresholds().active_id();
  o["shadow_set"] = st.thresholds().shadow_id();
  o["reference"] = m.reference.empty()
                       ? json::value()
                       : json::value(json::object{{"origin", m.reference}, {"complete", m.reference_complete}});
  return o;
}

std::string typed(std::string_view type, json::object fields) {
  json::object o;
  o["type"] = type;
  for (auto& [k, v] : fields) o[k] = std::move(v);
  return json::serialize(o);
}

/// The parameters of a query, each taken once; the first left over is an error.
class Params {
 public:
  static std::optional<Params> parse(std::string_view text, std::string& error) {
    Params p;
    while (!text.empty()) {
      const std::size_t amp = text.find('&');
      const std::string_view item = text.substr(0, amp);
      text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
      if (item.empty()) continue;
      const std::size_t eq = item.find('=');
      const std::string_view name = item.substr(0, eq);
      if (name.empty()) {
        error = "query: a parameter without a name";
        return std::nullopt;
      }
      for (const auto& have : p.items_) {
        if (have.name == name) {
          error = fmt::format("query: parameter {} given twice", printable(name));
          return std::nullopt;
        }
      }
      p.items_.push_back({name, eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1), false});
    }
    return p;
  }
  std::optional<std::string_view> take(std::string_view name) {
    for (auto& i : items_) {
      if (i.name != name) continue;
      i.used = true;
      return i.value;
    }
    return std::nullopt;
  }
  [[nodiscard]] std::optional<std::string> unused() const {
    for (const auto& i : items_) {
      if (!i.used) return fmt::format("query: unknown parameter {}", printable(i.name));
    }
    return std::nullopt;
  }

 private:
  struct Item {
    std::string_view name;
    std::string_view value;
    bool used;
  };
  std::vector<Item> items_;
};

std::optional<std::uint32_t> whole(std::string_view text, std::uint32_t lo, std::uint32_t hi) {
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty() || v < lo || v > hi) return std::nullopt;
  return v;
}

/// %XX decoded; nullopt for a malformed escape or a NUL.
std::optional<std::string> percent_decoded(std::string_view path) {
  std::string out;
  for (std::size_t i = 0; i < path.size(); ++i) {
    char c = path[i];
    if (c == '%') {
      unsigned v = 0;
      if (path.size() - i < 3) return std::nullopt;
      const auto [end, ec] = std::from_chars(path.data() + i + 1, path.data() + i + 3, v, 16);
      if (ec != std::errc{} || end != path.data() + i + 3) return std::nullopt;
      c = static_cast<char>(v);
      i += 2;
    }
    if (c == '\0') return std::nullopt;
    out.push_back(c);
  }
  return out;
}

std::string_view content_type(const std::filesystem::path& file) {
  const std::string ext = file.extension().string();
  if (ext == ".html" || ext == ".htm") return "text/html; charset=utf-8";
  if (ext == ".js" || ext == ".mjs") return "text/javascript; charset=utf-8";
  if (ext == ".css") return "text/css; charset=utf-8";
  if (ext == ".json" || ext == ".map") return "application/json";
  if (ext == ".svg") return "image/svg+xml";
  if (ext == ".png") return "image/png";
  if (ext == ".jpg" || ext == ".jpeg") return "image/jpeg";
  if (ext == ".gif") return "image/gif";
  if (ext == ".ico") return "image/x-icon";
  if (ext == ".woff2") return "font/woff2";
  if (ext == ".woff") return "font/woff";
  if (ext == ".ttf") return "font/ttf";
  if (ext == ".txt") return "text/plain; charset=utf-8";
  if (ext == ".wasm") return "application/wasm";
  return "application/octet-stream";
}

}  // namespace

struct Dashboard::Impl {
  Impl(ControlService& s, Monitor& m, DashboardOptions o) : service(s), monitor(m), options(std::move(o)) {
    std::error_code ec;
    if (!options.web_dir.empty() && std::filesystem::is_directory(options.web_dir, ec)) {
      web_root = std::filesystem::canonical(options.web_dir, ec);
      if (ec) web_root.clear();
    }
  }

  ControlService& service;
  Monitor& monitor;
  const DashboardOptions options;
  std::filesystem::path web_root;  ///< canonical; empty: no files served

  mutable std::mutex server_m;
  HttpServer* server = nullptr;  ///< guarded by server_m

  mutable std::mutex event_m;  ///< the last event decoded, by its serial
  mutable std::uint64_t event_serial = 0;
  mutable std::string event_text;

  [[nodiscard]] control::Reply status_reply() const {
    control::Request r;
    r.mutable_status();
    return service.handle(r, Role::Anonymous);
  }

  [[nodiscard]] std::string status_text() const {
    return json::serialize(status_object(status_reply(), monitor.status())) + "\n";
  }

  void broadcast(std::string text) const {
    std::lock_guard lock(server_m);
    if (server != nullptr) server->broadcast(std::move(text));
  }

  // A listener of ControlService: must not call RunControl (see there).
  void on_event(const control::Event& e) const {
    switch (e.what_case()) {
      case control::Event::kState: {
        control::Reply r;
        r.set_code(control::OK);
        *r.mutable_status() = e.state();
        broadcast(typed("status", status_object(r, monitor.status())));
        break;
      }
      case control::Event::kSpill: broadcast(typed("spill", spill_object(e.spill()))); break;
      case control::Event::kAlarm: broadcast(typed("alarm", alarm_object(e.alarm()))); break;
      case control::Event::WHAT_NOT_SET: break;
    }
  }

  [[nodiscard]] std::optional<HttpContent> read(std::string_view target) const {
    const std::string_view path = target.substr(0, target.find('?'));
    const std::string_view query = path.size() < target.size() ? target.substr(path.size() + 1) : std::string_view{};
    if (path != "/metrics" && !path.starts_with("/api/")) return std::nullopt;
    std::string error;
    auto params = Params::parse(query, error);
    if (!params) return refusal(400, error);
    std::optional<HttpContent> out;
    if (path == "/metrics") {
      out = HttpContent{200, std::string(mon::kPrometheusContentType), metrics()};
    } else if (path == "/api/status") {
      out = HttpContent{200, "application/json", status_text()};
    } else if (path == "/api/spills") {
      out = spills(*params);
    } else if (path == "/api/dqm/list") {
      json::array names;
      for (const auto n : mon::DqmHistograms::histogram_names()) names.emplace_back(n);
      out = json_content(names);
    } else if (path.starts_with("/api/dqm/hist/")) {
      out = histogram(path.substr(std::string_view("/api/dqm/hist/").size()), *params, false);
    } else if (path.starts_with("/api/dqm/reference/")) {
      out = histogram(path.substr(std::string_view("/api/dqm/reference/").size()), *params, true);
    } else if (path == "/api/alarms") {
      json::array list;
      for (const auto& a : monitor.alarms()) list.emplace_back(alarm_object(to_proto(a)));
      out = json_content(list);
    } else if (path == "/api/event") {
      out = event();
    } else {
      return std::nullopt;  // the control API's routes, or 404
    }
    if (out->status == 200) {
      if (auto unknown = params->unused()) return refusal(400, *unknown);
    }
    return out;
  }

  [[nodiscard]] HttpContent spills(Params& params) const {
    std::size_t last = 0;
    if (const auto v = params.take("last")) {
      const auto n = whole(*v, 1, fw::kMaxSpill);
      if (!n) return refusal(400, fmt::format("query parameter last: \"{}\" is not a whole number in [1, {}]",
                                              printable(*v), fw::kMaxSpill));
      last = *n;
    }
    json::array list;
    for (const auto& s : monitor.spills(last)) list.emplace_back(spill_object(to_proto(s)));
    return json_content(list);
  }

  [[nodiscard]] HttpContent histogram(std::string_view name, Params& params, bool reference) const {
    HistogramChoice choice;
    if (reference) {
      choice.from = HistogramChoice::From::Reference;
    } else if (params.take("run")) {
      choice.from = HistogramChoice::From::Run;
    } else if (const auto v = params.take("spill")) {
      if (*v == "run") {
        choice.from = HistogramChoice::From::Run;
      } else if (const auto n = whole(*v, 1, fw::kMaxSpill)) {
        choice.from = HistogramChoice::From::Spill;
        choice.spill = *n;
      } else {
        return refusal(400, fmt::format("query parameter spill: \"{}\" is neither a spill number in [1, {}] nor run",
                                        printable(*v), fw::kMaxSpill));
      }
    }
    const HistogramLookup found = monitor.histogram(printable(name, 200), choice);
    // Nothing to show yet (no spill monitored, no reference) is an answer, not an error.
    if (!found.histogram && found.nothing_yet) return json_content(json::value());
    if (!found.histogram) return refusal(404, found.error);
    return HttpContent{200, "application/json",
                       std::visit([](const auto& h) { return mon::to_jsroot_json(h); }, *found.histogram) + "\n"};
  }

  [[nodiscard]] HttpContent event() const {
    const auto sampled = monitor.sampled_event();
    if (!sampled) return json_content(json::value());  // no event sampled yet
    std::lock_guard lock(event_m);
    if (sampled->serial != event_serial || event_text.empty()) {
      std::string error;
      const auto e = decode_display_event(sampled->words, *sampled->config, error);
      if (!e) return refusal(500, fmt::format("the sampled event of run {} does not decode: {}", sampled->run, error));
      json::array cells;
      json::array waveforms;
      for (const auto& c : e->cells) {
        const fw::Cell where = fw::cell_at(c.cell);
        const std::string_view det = fw::geometry(where.detector).name;
        cells.emplace_back(json::object{{"detector", det}, {"x", where.x}, {"y", where.y}, {"energy_gev", shown(c.energy_gev)}});
        json::array samples;
        for (const auto v : c.samples) samples.emplace_back(v);
        waveforms.emplace_back(json::object{{"detector", det}, {"x", where.x}, {"y", where.y}, {"samples", std::move(samples)}});
      }
      event_text = json::serialize(json::object{{"run", e->run},
                                                {"spill", e->spill},
                                                {"event", e->event},
                                                {"particle", e->particle},
                                                {"trigger_mask", e->trigger_mask},
                                                {"serial", sampled->serial},
                                                {"cells", std::move(cells)},
                                                {"waveforms", std::move(waveforms)}}) +
                   "\n";
      event_serial = sampled->serial;
    }
    return HttpContent{200, "application/json", event_text};
  }

  [[nodiscard]] std::optional<HttpContent> file(std::string_view target) const {
    if (web_root.empty()) return std::nullopt;
    const auto decoded = percent_decoded(target.substr(0, target.find('?')));
    if (!decoded || decoded->empty() || decoded->front() != '/') return std::nullopt;
    std::filesystem::path relative;
    std::string_view rest(*decoded);
    while (!rest.empty()) {
      const std::size_t slash = rest.find('/');
      const std::string_view segment = rest.substr(0, slash);
      rest = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash + 1);
      if (segment.empty()) continue;
      // No way out of the web directory: no parent or self segments, no backslashes.
      if (segment == ".." || segment == "." || segment.find('\\') != std::string_view::npos) return std::nullopt;
      relative /= std::string(segment);
    }
    if (decoded->back() == '/') relative /= "index.html";
    std::error_code ec;
    const std::filesystem::path full = std::filesystem::canonical(web_root / relative, ec);
    if (ec) return std::nullopt;
    // A symbolic link inside may still point outside.
    const auto [root_end, full_it] = std::mismatch(web_root.begin(), web_root.end(), full.begin(), full.end());
    if (root_end != web_root.end() || !std::filesystem::is_regular_file(full, ec)) return std::nullopt;
    std::ifstream in(full, std::ios::binary);
    std::ostringstream body;
    body << in.rdbuf();
    if (!in) return refusal(500, fmt::format("{}: cannot be read", printable(target, 200)));
    return HttpContent{200, std::string(content_type(full)), std::move(body).str()};
  }

  [[nodiscard]] std::string metrics() const {
    const control::Status st = status_reply().status();
    const MonitorStatus m = monitor.status();
    const MonitorTotals t = monitor.totals();
    const SpillSummary& sum = t.sum;
    HttpCounts http;
    {
      std::lock_guard lock(server_m);
      if (server != nullptr) http = server->counts();
    }
    mon::PrometheusWriter w;
    using mon::MetricType;
    w.family("na64_spills_total", MetricType::Counter, "Spills that reached disk since the daemon started.");
    w.sample(t.spills);
    w.family("na64_particles_total", MetricType::Counter, "Beam particles read out.");
    w.sample(sum.builder.particles);
    w.family("na64_built_events_total", MetricType::Counter, "Complete events built.");
    w.sample(sum.builder.complete);
    w.family("na64_incomplete_events_total", MetricType::Counter, "Incomplete events by the builder's reason.");
    for (std::size_t r = 1; r < eventbuilder::kNumIncompleteReasons; ++r) {
      w.sample({{"reason", eventbuilder::to_string(static_cast<eventbuilder::IncompleteReason>(r))}},
               sum.builder.by_reason[r]);
    }
    w.family("na64_trigger_accepted_events_total", MetricType::Counter,
             "Events accepted per trigger line; an event may fire several.");
    for (std::size_t l = 0; l < trigger::kNumLines; ++l) w.sample({{"line", line_name(l)}}, sum.accepted[l]);
    w.family("na64_written_events_total", MetricType::Counter, "Physics events written.");
    w.sample(sum.written);
    w.family("na64_written_bytes_total", MetricType::Counter, "Bytes of DATE events written.");
    w.sample(sum.bytes);
    w.family("na64_decode_errors_total", MetricType::Counter, "Complete events whose data did not decode.");
    w.sample(sum.decode_errors);
    w.family("na64_completion_requested_events_total", MetricType::Counter,
             "Accepted events sent for completion (two-level readout).");
    w.sample(sum.completion.requested);
    w.family("na64_completion_events_total", MetricType::Counter,
             "Completed events by outcome: complete, or the reason of the first missing source.");
    w.sample({{"reason", "complete"}}, sum.completion.completed);
    for (std::size_t r = 1; r < fw::kNumMissingReasons; ++r) {
      w.sample({{"reason", fw::to_string(static_cast<fw::MissingReason>(r))}}, sum.completion.by_reason[r]);
    }
    w.family("na64_source_lost_spills_total", MetricType::Counter, "Spills in which a source was lost or silent.");
    for (const auto& src : m.sources) {
      std::uint64_t n = 0;
      for (const auto& [id, count] : t.lost_spills) n += id == src.id ? count : 0;
      w.sample({{"source", std::to_string(src.id)}}, n);
    }
    w.family("na64_http_replies_total", MetricType::Counter, "HTTP replies by status, bad requests included.");
    for (const auto& [status, n] : http.replies_by_status) w.sample({{"status", std::to_string(status)}}, n);
    w.family("na64_websocket_dropped_messages_total", MetricType::Counter,
             "WebSocket messages not sent to a client that fell behind.");
    w.sample(http.websocket_dropped);

    w.family("na64_run_state", MetricType::Gauge, "1 for the run-control state the daemon is in, else 0.");
    for (const auto s : {control::IDLE, control::CONFIGURED, control::RUNNING, control::PAUSED, control::STOPPING,
                         control::ERROR}) {
      w.sample({{"state", to_string(s)}}, s == st.state() ? 1 : 0);
    }
    w.family("na64_run_number", MetricType::Gauge, "The current or last run; 0 none.");
    w.sample(st.run());
    w.family("na64_spill_number", MetricType::Gauge, "The last spill that reached disk.");
    w.sample(st.spill());
    w.family("na64_dead_time_ratio", MetricType::Gauge, "Dead-time fraction of the last spill.");
    w.sample(t.last_dead_time);
    const bool spill_open =
        (st.state() == control::RUNNING || st.state() == control::STOPPING) && st.spills_begun() > st.spill();
    w.family("na64_beam_on", MetricType::Gauge, "1 while a spill is read out or one reached disk in the last 10 s.");
    w.sample(spill_open || (m.running && m.since_spill && *m.since_spill < kBeamWindow) ? 1 : 0);
    if (m.disk_free_bytes) {
      w.family("na64_disk_free_bytes", MetricType::Gauge, "Free bytes on the output directory's file system.");
      w.sample(*m.disk_free_bytes);
    }
    w.family("na64_disk_limit_bytes", MetricType::Gauge, "Free space below which the disk alarm is raised.");
    w.sample(m.disk_limit_bytes);
    w.family("na64_alarms_unacknowledged", MetricType::Gauge, "Alarms raised and not yet acknowledged.");
    w.sample(m.alarms_unacknowledged);
    w.family("na64_websocket_clients", MetricType::Gauge, "Dashboard pages connected to /ws.");
    w.sample(http.websocket_clients);
    return w.text();
  }
};

Dashboard::Dashboard(ControlService& service, Monitor& monitor, DashboardOptions options)
    : impl_(std::make_shared<Impl>(service, monitor, std::move(options))) {
  // The service has no unsubscribe: the listener holds the state weakly and
  // does nothing once the dashboard is gone.
  service.subscribe([weak = std::weak_ptr<const Impl>(impl_)](const control::Event& e) {
    if (const auto impl = weak.lock()) impl->on_event(e);
  });
}

Dashboard::~Dashboard() { publish_to(nullptr); }

HttpExtensions Dashboard::http_extensions() {
  HttpExtensions x;
  x.read = [impl = impl_](std::string_view target) { return impl->read(target); };
  x.unrouted = [impl = impl_](std::string_view target) { return impl->file(target); };
  x.live_status = [impl = impl_] { return typed("status", status_object(impl->status_reply(), impl->monitor.status())); };
  return x;
}

void Dashboard::publish_to(HttpServer* server) {
  std::lock_guard lock(impl_->server_m);
  impl_->server = server;
}

std::string Dashboard::status_json() const { return impl_->status_text(); }

std::string Dashboard::metrics_text() const { return impl_->metrics(); }

}  // namespace na64::daq
