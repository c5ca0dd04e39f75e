// SPDX-License-Identifier: Apache-2.0
// na64ctl: the command-line client of na64daq serve's HTTP/JSON API.
#include <fmt/chrono.h>
#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "control.pb.h"
#include "na64/daq/error.hpp"

namespace {

using namespace na64;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace pb = google::protobuf;

constexpr int kExitRefused = 1;
constexpr int kExitUsage = 2;
constexpr int kExitNoConnection = 3;

constexpr auto kTimeout = std::chrono::seconds(30);
constexpr std::size_t kReplyLimit = 64 << 20;

constexpr std::string_view kUsage = R"(usage: na64ctl [--url URL] [--token-file FILE] [--json] COMMAND
  status
  configure [FILE]                  FILE's text, or the daemon's own configuration
  start [--comment TEXT]
  stop | pause | resume | reset
  comment TEXT
  thresholds show [--all]
  thresholds set [--shadow] [--comment TEXT] KEY=VALUE...
                                    the active set with KEYs changed, as a new set
  thresholds use ID [--shadow]
  thresholds clear-shadow
  thresholds diff A B               A, B: set ids, or active, pending, shadow
  runs list [--limit N]
  runs show N
  alarms                            the open alarms and the last acknowledged ones
  ack N                             acknowledge alarm N (shift token)
options:
  --url URL          the daemon (default $NA64DAQ_URL, else http://127.0.0.1:8080)
  --token-file FILE  the token (a line "ROLE TOKEN" or the token alone; default $NA64DAQ_TOKEN)
  --json             print the daemon's reply as it is
exit: 0 done, 1 refused by the daemon, 2 usage error, 3 cannot connect
)";

struct UsageError : daq::Error {
  using Error::Error;
};
/// The daemon cannot be reached, or the connection broke.
struct ConnectionError : daq::Error {
  using Error::Error;
};

struct Url {
  std::string text;
  std::string host;
  std::string port = "80";
  std::string base;  ///< path prefix, without the trailing '/'
};

Url parse_url(std::string_view text) {
  constexpr std::string_view kScheme = "http://";
  if (text.substr(0, kScheme.size()) != kScheme) {
    throw UsageError(fmt::format("--url {}: only http:// URLs are supported", text));
  }
  Url url;
  url.text = std::string(text);
  std::string_view rest = text.substr(kScheme.size());
  const std::size_t slash = rest.find('/');
  std::string_view authority = rest.substr(0, slash);
  if (slash != std::string_view::npos) url.base = std::string(rest.substr(slash));
  while (!url.base.empty() && url.base.back() == '/') url.base.pop_back();
  std::size_t colon = authority.rfind(':');
  if (!authority.empty() && authority.front() == '[') {  // [IPv6]:port
    const std::size_t close = authority.find(']');
    if (close == std::string_view::npos) throw UsageError(fmt::format("--url {}: unclosed '['", text));
    url.host = std::string(authority.substr(1, close - 1));
    colon = close + 1 < authority.size() && authority[close + 1] == ':' ? close + 1 : std::string_view::npos;
  } else {
    url.host = std::string(authority.substr(0, colon));
  }
  if (colon != std::string_view::npos) url.port = std::string(authority.substr(colon + 1));
  if (url.host.empty()) throw UsageError(fmt::format("--url {}: no host", text));
  unsigned port = 0;
  const auto [end, ec] = std::from_chars(url.port.data(), url.port.data() + url.port.size(), port);
  if (ec != std::errc{} || end != url.port.data() + url.port.size() || port == 0 || port > 65535) {
    throw UsageError(fmt::format("--url {}: bad port \"{}\"", text, url.port));
  }
  return url;
}

struct HttpReply {
  unsigned status = 0;
  std::string reason;
  std::string body;
};

/// One keep-alive connection to the daemon; every operation has kTimeout.
class Client {
 public:
  Client(Url url, std::string token) : url_(std::move(url)), token_(std::move(token)), stream_(io_) {}

  HttpReply get(std::string_view target) { return exchange(http::verb::get, target, {}); }
  HttpReply post(std::string_view target, std::string body) {
    return exchange(http::verb::post, target, std::move(body));
  }

 private:
  HttpReply exchange(http::verb method, std::string_view target, std::string body) {
    http::request<http::string_body> req{method, url_.base + std::string(target), 11};
    req.set(http::field::host, url_.host + ":" + url_.port);
    req.set(http::field::user_agent, "na64ctl");
    req.set(http::field::accept, "application/json");
    if (!token_.empty()) req.set(http::field::authorization, "Bearer " + token_);
    if (method == http::verb::post) req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
    req.keep_alive(true);
    req.prepare_payload();

    // A kept connection the daemon has closed meanwhile fails at once: one
    // new try, for a read only (a command might have been done already).
    const bool retry = connected_ && method == http::verb::get;
    if (!connected_) connect();
    beast::error_code ec = run_op([&](auto handler) { http::async_write(stream_, req, handler); });
    http::response_parser<http::string_body> parser;
    parser.body_limit(kReplyLimit);
    if (!ec) ec = run_op([&](auto handler) { http::async_read(stream_, buffer_, parser, handler); });
    if (ec && retry) {
      close();
      return exchange(method, target, req.body());
    }
    if (ec) throw ConnectionError(fmt::format("no reply: {}", ec.message()));
    auto& res = parser.get();
    if (!res.keep_alive()) close();
    return {res.result_int(), std::string(res.reason()), std::move(res.body())};
  }

  void connect() {
    asio::ip::tcp::resolver resolver(io_);
    beast::error_code ec;
    const auto endpoints = resolver.resolve(url_.host, url_.port, ec);
    if (ec) throw ConnectionError(ec.message());
    ec = run_op([&](auto handler) { stream_.async_connect(endpoints, handler); });
    if (ec) throw ConnectionError(ec.message());
    connected_ = true;
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().close(ignored);
    buffer_.clear();
    connected_ = false;
  }

  /// Starts one asynchronous operation with `start(handler)` and runs it to
  /// the end or the timeout.
  template <class Start>
  beast::error_code run_op(Start start) {
    beast::error_code result;
    stream_.expires_after(kTimeout);
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    io_.restart();
    io_.run();
    return result;
  }

  Url url_;
  std::string token_;
  asio::io_context io_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  bool connected_ = false;
};

struct Options {
  Url url;
  std::string token;
  bool json = false;
};

/// A refusal: exit 1 after printing why.
struct Refused {
  std::string text;
};

std::string to_json(const pb::Message& message) {
  pb::util::JsonPrintOptions options;
  std::string out;
  if (!pb::util::MessageToJsonString(message, &out, options).ok()) throw daq::Error("cannot write the request");
  return out;
}

std::string state_name(control::RunState state) {
  return control::RunState_IsValid(state) ? control::RunState_Name(state)
                                          : fmt::format("state {}", static_cast<int>(state));
}

/// The Reply in an HTTP reply; Refused unless it is a 2xx. With --json the
/// body is printed first, as it came.
control::Reply read_reply(const HttpReply& http_reply, const Options& options) {
  if (options.json) fmt::print("{}", http_reply.body);
  control::Reply reply;
  pb::util::JsonParseOptions parse;
  parse.ignore_unknown_fields = true;
  const bool parsed = pb::util::JsonStringToMessage(http_reply.body, &reply, parse).ok();
  if (http_reply.status >= 200 && http_reply.status < 300) {
    if (!parsed) throw Refused{fmt::format("the daemon's reply is not a Reply (HTTP {})", http_reply.status)};
    return reply;
  }
  std::string text = parsed && !reply.message().empty() ? reply.message() : "no reason given";
  text += fmt::format(" (HTTP {} {}", http_reply.status, http_reply.reason);
  if (parsed && reply.has_status()) text += fmt::format(", state {}", state_name(reply.status().state()));
  text += ")";
  throw Refused{std::move(text)};
}

void print_done(const control::Reply& reply, const Options& options) {
  if (options.json) return;
  fmt::print("{}{}(state {})\n", reply.message(), reply.message().empty() ? "" : " ",
             state_name(reply.status().state()));
}

std::string local_time(std::int64_t unix_ms) {
  if (unix_ms <= 0) return "-";
  return fmt::format("{:%Y-%m-%d %H:%M:%S}", fmt::localtime(static_cast<std::time_t>(unix_ms / 1000)));
}

std::string megabytes(std::uint64_t bytes) { return fmt::format("{:.2f}", static_cast<double>(bytes) / 1e6); }

std::string set_id(std::uint32_t id) { return id == 0 ? "none" : std::to_string(id); }

void print_status(const control::Status& s) {
  const auto line = [](std::string_view key, const std::string& value) { fmt::print("{:<11} {}\n", key, value); };
  line("state", state_name(s.state()));
  if (s.run() == 0) {
    line("run", "none");
  } else {
    std::string run = fmt::format("{}, started {}", s.run(), local_time(s.run_start_unix_ms()));
    if (!s.comment().empty()) run += fmt::format(", \"{}\"", s.comment());
    line("run", run);
    line("spill", std::to_string(s.spill()));
    line("written", fmt::format("{} events, {} MB", s.events_written(), megabytes(s.bytes_written())));
  }
  const auto& t = s.thresholds();
  std::string thresholds = fmt::format("active {}, pending {}, shadow {}", set_id(t.active_id()),
                                       set_id(t.pending_id()), set_id(t.shadow_id()));
  if (t.pending_shadow_id() != 0) thresholds += fmt::format(", pending shadow {}", t.pending_shadow_id());
  line("thresholds", thresholds);
  if (!s.config_hash().empty()) line("config", s.config_hash().substr(0, 16));
  if (s.sources_size() > 0) {
    std::string sources;
    for (const auto& src : s.sources()) {
      sources += fmt::format("{}{} {}", sources.empty() ? "" : ", ", src.id(), src.state());
    }
    line("sources", sources);
  }
  if (!s.message().empty()) line("message", s.message());
  std::string allowed;
  for (const auto& a : s.allowed()) allowed += (allowed.empty() ? "" : " ") + a;
  line("allowed", allowed.empty() ? "-" : allowed);
}

/// The fields of control::Thresholds, which are the keys of `thresholds set`.
std::vector<const pb::FieldDescriptor*> threshold_fields() {
  const auto* d = control::Thresholds::descriptor();
  std::vector<const pb::FieldDescriptor*> fields;
  for (int i = 0; i < d->field_count(); ++i) fields.push_back(d->field(i));
  return fields;
}

std::string field_value(const control::Thresholds& t, const pb::FieldDescriptor* f) {
  const auto* r = t.GetReflection();
  switch (f->cpp_type()) {
    // The trigger keeps thresholds as float: 7 digits show them as they were set.
    case pb::FieldDescriptor::CPPTYPE_DOUBLE: return fmt::format("{:.7g}", r->GetDouble(t, f));
    case pb::FieldDescriptor::CPPTYPE_UINT32: return fmt::format("{}", r->GetUInt32(t, f));
    default: return "?";
  }
}

/// KEY=VALUE into `t`; UsageError naming the key for an unknown key or a bad number.
void set_field(control::Thresholds& t, std::string_view assignment) {
  const std::size_t eq = assignment.find('=');
  if (eq == std::string_view::npos) throw UsageError(fmt::format("\"{}\" is not KEY=VALUE", assignment));
  const std::string key(assignment.substr(0, eq));
  const std::string_view value = assignment.substr(eq + 1);
  const auto* f = control::Thresholds::descriptor()->FindFieldByName(key);
  if (f == nullptr) {
    std::string keys;
    for (const auto* k : threshold_fields()) keys += (keys.empty() ? "" : ", ") + k->name();
    throw UsageError(fmt::format("unknown threshold key \"{}\" (keys: {})", key, keys));
  }
  const auto* r = t.GetReflection();
  const char* begin = value.data();
  const char* end = value.data() + value.size();
  if (f->cpp_type() == pb::FieldDescriptor::CPPTYPE_DOUBLE) {
    double v = 0;
    const auto [p, ec] = std::from_chars(begin, end, v);
    if (value.empty() || ec != std::errc{} || p != end || !std::isfinite(v)) {
      throw UsageError(fmt::format("{}: \"{}\" is not a number", key, value));
    }
    r->SetDouble(&t, f, v);
  } else {
    std::uint32_t v = 0;
    const auto [p, ec] = std::from_chars(begin, end, v);
    if (value.empty() || ec != std::errc{} || p != end) {
      throw UsageError(fmt::format("{}: \"{}\" is not a whole number in [0, 4294967295]", key, value));
    }
    r->SetUInt32(&t, f, v);
  }
}

const control::ThresholdSet* find_set(const control::ThresholdState& state, std::uint32_t id) {
  for (const auto& s : state.sets()) {
    if (s.id() == id) return &s;
  }
  return nullptr;
}

void print_threshold_sets(const control::ThresholdState& state) {
  const auto fields = threshold_fields();
  std::string header = fmt::format("{:>4}  {:<14}", "set", "use");
  for (const auto* f : fields) header += fmt::format("  {}", f->name());
  fmt::print("{}  {:<8}  {:<19}  comment\n", header, "author", "created");
  for (const auto& s : state.sets()) {
    std::string use;
    const auto mark = [&](std::uint32_t id, std::string_view what) {
      if (id == s.id()) use += fmt::format("{}{}", use.empty() ? "" : "+", what);
    };
    mark(state.active_id(), "active");
    mark(state.pending_id(), "pending");
    mark(state.shadow_id(), "shadow");
    mark(state.pending_shadow_id(), "pending-shadow");
    std::string line = fmt::format("{:>4}  {:<14}", s.id(), use);
    for (const auto* f : fields) {
      line += fmt::format("  {:>{}}", field_value(s.thresholds(), f), f->name().size());
    }
    fmt::print("{}  {:<8}  {:<19}  {}\n", line, s.author(), local_time(s.created_unix_ms()), s.comment());
  }
}

std::uint32_t parse_id(std::string_view what, std::string_view text) {
  std::uint32_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (text.empty() || ec != std::errc{} || end != text.data() + text.size() || v == 0) {
    throw UsageError(fmt::format("{}: \"{}\" is not a whole number from 1", what, text));
  }
  return v;
}

/// A set named by id or by active, pending, shadow.
const control::ThresholdSet& named_set(const control::ThresholdState& state, std::string_view name) {
  std::uint32_t id = 0;
  if (name == "active") {
    id = state.active_id();
  } else if (name == "pending") {
    id = state.pending_id();
  } else if (name == "shadow") {
    id = state.shadow_id();
  } else {
    id = parse_id("set", name);
  }
  if (id == 0) throw Refused{fmt::format("there is no {} threshold set", name)};
  const auto* set = find_set(state, id);
  if (set == nullptr) throw Refused{fmt::format("the daemon has no threshold set {}", id)};
  return *set;
}

using Args = std::vector<std::string_view>;

/// Takes "--name VALUE" out of `args`.
std::optional<std::string> take_option(Args& args, std::string_view name) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] != name) continue;
    if (i + 1 >= args.size()) throw UsageError(fmt::format("{} needs a value", name));
    std::string value(args[i + 1]);
    args.erase(args.begin() + static_cast<std::ptrdiff_t>(i), args.begin() + static_cast<std::ptrdiff_t>(i) + 2);
    return value;
  }
  return std::nullopt;
}

/// Takes "--name" out of `args`.
bool take_flag(Args& args, std::string_view name) {
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == name) {
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i));
      return true;
    }
  }
  return false;
}

void expect_args(const Args& args, std::size_t n, std::string_view command) {
  for (const auto a : args) {
    if (a.size() > 1 && a.substr(0, 2) == "--") throw UsageError(fmt::format("{}: unknown option {}", command, a));
  }
  if (args.size() != n) {
    throw UsageError(fmt::format("{} takes {} argument{}, not {}", command, n, n == 1 ? "" : "s", args.size()));
  }
}

int command_simple(Client& client, const Options& options, std::string_view command, Args args) {
  std::string body = "{}";
  if (command == "start") {
    control::Start start;
    if (auto comment = take_option(args, "--comment")) start.set_comment(*comment);
    body = to_json(start);
    expect_args(args, 0, command);
  } else if (command == "configure") {
    expect_args(args, args.empty() ? 0 : 1, command);
    control::Configure configure;
    if (!args.empty()) {
      const std::string path(args[0]);
      std::error_code ec;
      std::ifstream in(path);
      if (!std::filesystem::is_regular_file(path, ec) || !in) {
        throw UsageError(fmt::format("configure: cannot read {}", path));
      }
      std::stringstream text;
      text << in.rdbuf();
      configure.set_config_text(text.str());
    }
    body = to_json(configure);
  } else if (command == "comment") {
    if (args.empty()) throw UsageError("comment needs a text");
    control::Comment comment;
    std::string text;
    for (const auto a : args) text += (text.empty() ? "" : " ") + std::string(a);
    comment.set_text(text);
    body = to_json(comment);
  } else {
    expect_args(args, 0, command);
  }
  print_done(read_reply(client.post(fmt::format("/api/{}", command), std::move(body)), options), options);
  return 0;
}

int command_thresholds(Client& client, const Options& options, Args args) {
  if (args.empty()) throw UsageError("thresholds needs show, set, use, clear-shadow or diff");
  const std::string_view sub = args.front();
  args.erase(args.begin());
  if (sub == "show") {
    const bool all = take_flag(args, "--all");
    expect_args(args, 0, "thresholds show");
    const auto reply = read_reply(client.get(all ? "/api/thresholds?all=true" : "/api/thresholds"), options);
    if (!options.json) print_threshold_sets(reply.thresholds());
    return 0;
  }
  if (sub == "set") {
    control::SetThresholds request;
    request.set_shadow(take_flag(args, "--shadow"));
    if (auto comment = take_option(args, "--comment")) request.set_comment(*comment);
    if (args.empty()) throw UsageError("thresholds set needs at least one KEY=VALUE");
    control::Thresholds changes;
    for (const auto a : args) {
      if (a.substr(0, 2) == "--") throw UsageError(fmt::format("thresholds set: unknown option {}", a));
      set_field(changes, a);  // all checked before the daemon is asked
    }
    const Options quiet{options.url, options.token, false};
    const auto current = read_reply(client.get("/api/thresholds"), quiet).thresholds();
    const auto* active = find_set(current, current.active_id());
    if (active == nullptr) throw Refused{"the daemon has no active threshold set to start from"};
    *request.mutable_thresholds() = active->thresholds();
    for (const auto a : args) set_field(*request.mutable_thresholds(), a);
    print_done(read_reply(client.post("/api/thresholds", to_json(request)), options), options);
    return 0;
  }
  if (sub == "use") {
    control::UseThresholdSet request;
    request.set_shadow(take_flag(args, "--shadow"));
    expect_args(args, 1, "thresholds use");
    request.set_id(parse_id("thresholds use", args[0]));
    print_done(read_reply(client.post("/api/thresholds/use", to_json(request)), options), options);
    return 0;
  }
  if (sub == "clear-shadow") {
    expect_args(args, 0, "thresholds clear-shadow");
    print_done(read_reply(client.post("/api/thresholds/clear-shadow", "{}"), options), options);
    return 0;
  }
  if (sub == "diff") {
    expect_args(args, 2, "thresholds diff");
    const auto state = read_reply(client.get("/api/thresholds?all=true"), options).thresholds();
    const auto& a = named_set(state, args[0]);
    const auto& b = named_set(state, args[1]);
    if (options.json) return 0;
    const auto fields = threshold_fields();
    std::size_t width = 0;
    for (const auto* f : fields) width = std::max(width, f->name().size());
    fmt::print("set {} -> set {}\n", a.id(), b.id());
    int differences = 0;
    for (const auto* f : fields) {
      const std::string old_value = field_value(a.thresholds(), f);
      const std::string new_value = field_value(b.thresholds(), f);
      if (old_value == new_value) continue;
      fmt::print("{:<{}}  {} -> {}\n", f->name(), width, old_value, new_value);
      ++differences;
    }
    if (differences == 0) fmt::print("no difference\n");
    return 0;
  }
  throw UsageError(fmt::format("unknown thresholds command \"{}\"", sub));
}

int command_runs(Client& client, const Options& options, Args args) {
  if (args.empty()) throw UsageError("runs needs list or show");
  const std::string_view sub = args.front();
  args.erase(args.begin());
  if (sub == "list") {
    std::string target = "/api/runs";
    if (auto limit = take_option(args, "--limit")) target += fmt::format("?limit={}", parse_id("--limit", *limit));
    expect_args(args, 0, "runs list");
    const auto reply = read_reply(client.get(target), options);
    if (options.json) return 0;
    fmt::print("{:>6}  {:<19}  {:<19}  {:<12}  comment\n", "run", "started", "stopped", "ended");
    for (const auto& r : reply.runs()) {
      fmt::print("{:>6}  {:<19}  {:<19}  {:<12}  {}\n", r.number(), local_time(r.start_unix_ms()),
                 local_time(r.stop_unix_ms()), r.ended().empty() ? "running" : r.ended(), r.comment());
    }
    return 0;
  }
  if (sub == "show") {
    expect_args(args, 1, "runs show");
    const std::uint32_t number = parse_id("runs show", args[0]);
    const auto reply = read_reply(client.get(fmt::format("/api/runs/{}", number)), options);
    if (options.json) return 0;
    if (reply.runs_size() == 0) throw Refused{fmt::format("no record of run {} in the reply", number)};
    const auto& r = reply.runs(0);
    const auto line = [](std::string_view key, const std::string& value) { fmt::print("{:<8} {}\n", key, value); };
    line("run", std::to_string(r.number()));
    line("started", local_time(r.start_unix_ms()));
    line("stopped", local_time(r.stop_unix_ms()));
    line("ended", r.ended().empty() ? "running" : r.ended());
    line("comment", r.comment());
    line("config", r.config_hash());
    for (const auto& c : r.comments()) line("note", c);
    // The shadow set's columns only when one was evaluated: its invisible-line
    // count and its overlap with the active set's.
    bool shadow = false;
    for (const auto& s : reply.spills()) shadow = shadow || s.shadow_set() != 0;
    fmt::print("{:>5}  {:>3}  {:>9}  {:>9}  {:>10}  {:>9}  {:>7}  {:>7}  {:>9}  {:>9}  {:>6}", "spill", "set",
               "particles", "built", "incomplete", "invisible", "beam", "random", "written", "MB", "dead%");
    fmt::print("{}\n", shadow ? fmt::format("  {:>6}  {:>9}  {:>7}", "shadow", "invisible", "overlap") : "");
    for (const auto& s : reply.spills()) {
      const auto count = [](const auto& list, int index) {
        return index < list.size() ? std::to_string(list.Get(index)) : std::string("-");
      };
      fmt::print("{:>5}  {:>3}  {:>9}  {:>9}  {:>10}  {:>9}  {:>7}  {:>7}  {:>9}  {:>9}  {:>6.2f}", s.spill(),
                 s.threshold_set(), s.particles(), s.built(), s.incomplete(), count(s.accepted(), 0),
                 count(s.accepted(), 1), count(s.accepted(), 2), s.written(), megabytes(s.bytes()),
                 100.0 * s.dead_time());
      if (shadow && s.shadow_set() != 0) {
        fmt::print("  {:>6}  {:>9}  {:>7}", s.shadow_set(), count(s.shadow_accepted(), 0),
                   count(s.shadow_overlap(), 0));
      }
      fmt::print("\n");
    }
    return 0;
  }
  throw UsageError(fmt::format("unknown runs command \"{}\"", sub));
}

// The alarms as GET /api/alarms lists them (the dashboard's JSON).
int command_alarms(Client& client, const Options& options, const Args& args) {
  expect_args(args, 0, "alarms");
  const HttpReply reply = client.get("/api/alarms");
  if (options.json) fmt::print("{}", reply.body);
  if (reply.status != 200) throw Refused{fmt::format("HTTP {} {}", reply.status, reply.reason)};
  boost::system::error_code ec;
  const boost::json::value list = boost::json::parse(reply.body, ec);
  if (ec || !list.is_array()) throw Refused{"the daemon's alarm list is not a JSON array"};
  if (options.json) return 0;
  if (list.as_array().empty()) {
    fmt::print("no alarms\n");
    return 0;
  }
  fmt::print("{:>4}  {:<7}  {:>9}  {:<19}  {:<21}  {}\n", "id", "level", "spills", "raised", "acknowledged", "alarm");
  for (const auto& v : list.as_array()) {
    const auto& a = v.as_object();
    const auto number = [&](std::string_view key) { return a.at(key).is_null() ? 0 : a.at(key).to_number<std::int64_t>(); };
    const std::string spills = number("first_spill") == number("last_spill")
                                   ? fmt::format("{}", number("first_spill"))
                                   : fmt::format("{}-{}", number("first_spill"), number("last_spill"));
    const std::string acked = a.at("acknowledged").as_bool()
                                  ? fmt::format("{} {}", boost::json::value_to<std::string>(a.at("acknowledged_by")),
                                                local_time(number("acknowledged_at")).substr(11))
                                  : "no";
    fmt::print("{:>4}  {:<7}  {:>9}  {:<19}  {:<21}  {}\n", number("id"), boost::json::value_to<std::string>(a.at("level")),
               spills, local_time(number("raised_at")), acked, boost::json::value_to<std::string>(a.at("text")));
  }
  return 0;
}

int command_ack(Client& client, const Options& options, const Args& args) {
  expect_args(args, 1, "ack");
  const std::uint32_t id = parse_id("ack", args[0]);
  print_done(read_reply(client.post(fmt::format("/api/alarms/{}/ack", id), "{}"), options), options);
  return 0;
}

/// The token of a file: the first line that is not blank or a comment,
/// either "ROLE TOKEN" or the token alone.
std::string read_token_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw UsageError(fmt::format("--token-file {}: cannot read it", path));
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream words(line);
    std::vector<std::string> fields;
    for (std::string w; words >> w;) fields.push_back(w);
    if (fields.empty() || fields[0].front() == '#') continue;
    if (fields.size() > 2) throw UsageError(fmt::format("--token-file {}: expected \"ROLE TOKEN\" or a token", path));
    return fields.back();
  }
  throw UsageError(fmt::format("--token-file {}: no token in it", path));
}

/// Takes the global options out of `args`, wherever they are.
Options global_options(Args& args) {
  Options options;
  const char* env_url = std::getenv("NA64DAQ_URL");
  std::string url = env_url != nullptr && *env_url != '\0' ? env_url : "http://127.0.0.1:8080";
  if (auto u = take_option(args, "--url")) url = *u;
  options.url = parse_url(url);
  if (auto file = take_option(args, "--token-file")) {
    options.token = read_token_file(*file);
  } else if (const char* env_token = std::getenv("NA64DAQ_TOKEN"); env_token != nullptr) {
    options.token = env_token;
  }
  options.json = take_flag(args, "--json");
  return options;
}

int run(Args args) {
  if (take_flag(args, "--help") || take_flag(args, "-h")) {
    fmt::print("{}", kUsage);
    return 0;
  }
  const Options options = global_options(args);
  if (args.empty()) throw UsageError("no command");
  const std::string_view command = args.front();
  args.erase(args.begin());
  const bool known = command == "status" || command == "configure" || command == "start" || command == "stop" ||
                     command == "pause" || command == "resume" || command == "reset" || command == "comment" ||
                     command == "thresholds" || command == "runs" || command == "alarms" || command == "ack";
  if (!known) throw UsageError(fmt::format("unknown command \"{}\"", command));

  Client client(options.url, options.token);
  try {
    if (command == "status") {
      expect_args(args, 0, command);
      const auto reply = read_reply(client.get("/api/status"), options);
      if (!options.json) print_status(reply.status());
      return 0;
    }
    if (command == "thresholds") return command_thresholds(client, options, std::move(args));
    if (command == "runs") return command_runs(client, options, std::move(args));
    if (command == "alarms") return command_alarms(client, options, args);
    if (command == "ack") return command_ack(client, options, args);
    return command_simple(client, options, command, std::move(args));
  } catch (const ConnectionError& e) {
    fmt::print(stderr, "na64ctl: cannot connect to {}: {}\n", options.url.text, e.what());
    return kExitNoConnection;
  } catch (const Refused& r) {
    fmt::print(stderr, "na64ctl: refused: {}\n", r.text);
    return kExitRefused;
  }
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(Args(argv + 1, argv + argc));
  } catch (const UsageError& e) {
    fmt::print(stderr, "na64ctl: {}\n{}", e.what(), kUsage);
    return kExitUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "na64ctl: {}\n", e.what());
    return kExitRefused;
  }
}
