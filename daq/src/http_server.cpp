// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/http_server.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json/stream_parser.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <deque>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "na64/daq/control_service.hpp"
#include "na64/daq/error.hpp"

namespace na64::daq {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
using tcp = asio::ip::tcp;

namespace {

constexpr std::size_t kBodyLimit = 1 << 20;
constexpr std::size_t kMinTokenLength = 32;
/// A connection with no request in progress is closed after this.
constexpr auto kIdleTimeout = std::chrono::seconds(30);
/// After a reply that closes the connection the rest of the request is read
/// and dropped for at most this long: closing with unread data would reset
/// the connection, and the client might lose the reply (a 413 especially).
constexpr auto kLingerTimeout = std::chrono::seconds(2);
constexpr std::size_t kLingerBytes = 8 << 20;
/// ControlService calls run here, off the I/O thread.
constexpr std::size_t kWorkerThreads = 4;
/// Messages queued for one WebSocket client before its oldest unsent go.
constexpr std::size_t kLiveQueue = 64;
/// The live status goes to every WebSocket client this often.
constexpr auto kLivePeriod = std::chrono::seconds(1);
/// A WebSocket client that sends nothing (pongs included) this long is closed.
constexpr auto kLiveIdleTimeout = std::chrono::seconds(300);
/// The WebSocket endpoint.
constexpr std::string_view kLivePath = "/ws";

using HttpRequest = http::request<http::string_body>;
using HttpResponse = http::response<http::string_body>;

/// The tokens of the tokens file, kept only as digests.
class AccessTokens {
 public:
  AccessTokens() = default;

  /// ConfigError "file:line: what" for a file that cannot be used; the
  /// message never holds a token.
  static AccessTokens load(const std::filesystem::path& file) {
    AccessTokens tokens;
    if (file.empty()) return tokens;
    if (sodium_init() < 0) throw Error("HTTP: libsodium cannot be initialised");
    const std::string name = file.string();
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw ConfigError(fmt::format("{}: cannot open the tokens file: {}", name, std::strerror(errno)));
    struct stat st {};
    std::string text;
    int err = ::fstat(fd, &st) == 0 ? 0 : errno;
    if (err == 0 && S_ISREG(st.st_mode) && (st.st_mode & 077) == 0) {
      char buf[4096];
      for (;;) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) err = errno;
        if (n <= 0) break;
        text.append(buf, static_cast<std::size_t>(n));
      }
    }
    ::close(fd);
    if (err != 0) throw ConfigError(fmt::format("{}: cannot read the tokens file: {}", name, std::strerror(err)));
    if (!S_ISREG(st.st_mode)) throw ConfigError(fmt::format("{}: the tokens file is not a regular file", name));
    if ((st.st_mode & 077) != 0) {
      throw ConfigError(fmt::format("{}: the tokens file is open to group or others (mode {:04o}); chmod 600 it", name,
                                    st.st_mode & 07777));
    }

    std::size_t line_no = 0;
    std::size_t pos = 0;
    while (pos < text.size()) {
      const std::size_t eol = std::min(text.find('\n', pos), text.size());
      const std::string_view line(text.data() + pos, eol - pos);
      pos = eol + 1;
      ++line_no;
      const auto fields = split_fields(line);
      if (fields.empty() || fields.front().front() == '#') continue;
      const auto fail = [&](std::string_view what) { refuse_line(name, line_no, what, text); };
      // Never quote a field: a line written the wrong way round puts the token first.
      if (fields.size() != 2) fail("expected \"ROLE TOKEN\"");
      const auto role = role_from_string(fields[0]);
      if (!role) fail("unknown role (expected shift or expert)");
      const std::string_view token = fields[1];
      if (token.size() < kMinTokenLength) fail(fmt::format("token shorter than {} characters", kMinTokenLength));
      if (!std::all_of(token.begin(), token.end(), [](char c) { return c > ' ' && c < 127; })) {
        fail("token with a character that is not printable ASCII");
      }
      const Digest digest = digest_of(token);
      for (const auto& e : tokens.entries_) {
        if (sodium_memcmp(e.digest.data(), digest.data(), digest.size()) == 0) {
          fail(fmt::format("the same token as line {}", e.line));
        }
      }
      tokens.entries_.push_back({digest, *role, line_no});
    }
    sodium_memzero(text.data(), text.size());
    return tokens;
  }

  /// The role of a token; nullopt if unknown. The time taken depends on the
  /// number of tokens and the length of `token`, not on how much of it matches.
  [[nodiscard]] std::optional<Role> role_of(std::string_view token) const noexcept {
    if (entries_.empty()) return std::nullopt;
    const Digest digest = digest_of(token);
    std::optional<Role> role;
    for (const auto& e : entries_) {
      if (sodium_memcmp(e.digest.data(), digest.data(), digest.size()) == 0) role = e.role;
    }
    return role;
  }

 private:
  using Digest = std::array<unsigned char, crypto_generichash_BYTES>;
  struct Entry {
    Digest digest;
    Role role;
    std::size_t line;
  };

  [[noreturn]] static void refuse_line(const std::string& file, std::size_t line, std::string_view what,
                                       std::string& text) {
    sodium_memzero(text.data(), text.size());
    throw ConfigError(fmt::format("{}:{}: {}", file, line, what));
  }

  static Digest digest_of(std::string_view token) noexcept {
    Digest d{};
    crypto_generichash(d.data(), d.size(), reinterpret_cast<const unsigned char*>(token.data()), token.size(), nullptr,
                       0);
    return d;
  }

  static std::vector<std::string_view> split_fields(std::string_view line) {
    std::vector<std::string_view> fields;
    std::size_t i = 0;
    const auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
    while (i < line.size()) {
      while (i < line.size() && blank(line[i])) ++i;
      const std::size_t start = i;
      while (i < line.size() && !blank(line[i])) ++i;
      if (i > start) fields.push_back(line.substr(start, i - start));
    }
    return fields;
  }

  std::vector<Entry> entries_;
};

/// Client text as a message may quote it: printable ASCII (a reply must be
/// valid UTF-8, a log line one line), at most `max` characters.
std::string printable(std::string_view text, std::size_t max = 64) {
  std::string out;
  for (const char c : text.substr(0, max)) out.push_back(c > ' ' && c < 127 ? c : '?');
  if (text.size() > max) out += "...";
  return out;
}

/// The parameters of a request target's query, each to be taken once.
class Query {
 public:
  /// nullopt, with `error` saying what, for a malformed query.
  static std::optional<Query> parse(std::string_view text, std::string& error) {
    Query q;
    while (!text.empty()) {
      const std::size_t amp = text.find('&');
      const std::string_view item = text.substr(0, amp);
      text = amp == std::string_view::npos ? std::string_view{} : text.substr(amp + 1);
      if (item.empty()) continue;
      const std::size_t eq = item.find('=');
      const std::string_view name = item.substr(0, eq);
      const std::string_view value = eq == std::string_view::npos ? std::string_view{} : item.substr(eq + 1);
      if (name.empty()) {
        error = "query: a parameter without a name";
        return std::nullopt;
      }
      if (q.find(name) != nullptr) {
        error = fmt::format("query: parameter {} given twice", printable(name));
        return std::nullopt;
      }
      q.params_.push_back({name, value, false});
    }
    return q;
  }

  std::optional<std::string_view> take(std::string_view name) {
    Param* p = find(name);
    if (p == nullptr) return std::nullopt;
    p->used = true;
    return p->value;
  }

  [[nodiscard]] std::optional<std::string_view> first_unused() const {
    for (const auto& p : params_) {
      if (!p.used) return p.name;
    }
    return std::nullopt;
  }

 private:
  struct Param {
    std::string_view name;
    std::string_view value;
    bool used;
  };
  Param* find(std::string_view name) {
    for (auto& p : params_) {
      if (p.name == name) return &p;
    }
    return nullptr;
  }
  std::vector<Param> params_;
};

/// What a route builds its request from.
struct Call {
  std::string_view body;
  Query& query;
  std::string_view segment;  ///< the path segment matched by "{N}"
};

/// Why a request is malformed (a 400), or nullopt.
using Malformed = std::optional<std::string>;
using Builder = Malformed (*)(Call&, control::Request&);

struct Route {
  http::verb method;
  std::string_view path;  ///< "{N}" matches one path segment
  Builder build;
};

std::string line_and_column(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return fmt::format("line {}, column {}", line, column);
}

/// An empty body stands for the message with its defaults.
Malformed parse_body(std::string_view body, google::protobuf::Message& message) {
  if (body.find_first_not_of(" \t\r\n") == std::string_view::npos) return std::nullopt;
  // Syntax first, with Boost.JSON, because it tells where; then the fields.
  boost::json::stream_parser syntax;
  boost::system::error_code ec;
  const std::size_t consumed = syntax.write_some(body.data(), body.size(), ec);
  if (!ec && consumed < body.size() && body.find_first_not_of(" \t\r\n", consumed) != std::string_view::npos) {
    return fmt::format("malformed JSON in the body at {}: text after the end of the value",
                       line_and_column(body, consumed));
  }
  if (!ec) syntax.finish(ec);
  if (ec) return fmt::format("malformed JSON in the body at {}: {}", line_and_column(body, consumed), ec.message());

  google::protobuf::util::JsonParseOptions options;
  const auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(body.data(), body.size()), &message, options);
  if (!status.ok()) {
    return fmt::format("body is not a {} message: {}", message.GetDescriptor()->name(), std::string(status.message()));
  }
  return std::nullopt;
}

/// Routes that take a message in the body: `Mutable` is its Request accessor.
template <auto Mutable>
Malformed json_body(Call& call, control::Request& request) {
  return parse_body(call.body, *(request.*Mutable)());
}

Malformed whole_number(std::string_view what, std::string_view text, std::uint32_t lo, std::uint32_t hi,
                       std::uint32_t& out) {
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  if (ec != std::errc{} || end != text.data() + text.size() || text.empty() || out < lo || out > hi) {
    return fmt::format("{}: \"{}\" is not a whole number in [{}, {}]", what, printable(text), lo, hi);
  }
  return std::nullopt;
}

Malformed get_status(Call&, control::Request& request) {
  request.mutable_status();
  return std::nullopt;
}

Malformed get_thresholds(Call& call, control::Request& request) {
  auto& get = *request.mutable_get_thresholds();
  if (const auto all = call.query.take("all")) {
    if (*all == "true" || all->empty()) {
      get.set_all(true);
    } else if (*all != "false") {
      return fmt::format("query parameter all: \"{}\" is neither true nor false", printable(*all));
    }
  }
  return std::nullopt;
}

Malformed list_runs(Call& call, control::Request& request) {
  auto& list = *request.mutable_list_runs();
  if (const auto limit = call.query.take("limit")) {
    std::uint32_t n = 0;
    if (auto bad = whole_number("query parameter limit", *limit, 0, std::numeric_limits<std::uint32_t>::max(), n)) {
      return bad;
    }
    list.set_limit(n);
  }
  return std::nullopt;
}

Malformed show_run(Call& call, control::Request& request) {
  std::uint32_t n = 0;
  if (auto bad = whole_number("run number", call.segment, 1, std::numeric_limits<std::uint32_t>::max(), n)) {
    return bad;
  }
  request.mutable_show_run()->set_number(n);
  return std::nullopt;
}

Malformed ack_alarm(Call& call, control::Request& request) {
  std::uint32_t n = 0;
  if (auto bad = whole_number("alarm id", call.segment, 1, std::numeric_limits<std::uint32_t>::max(), n)) {
    return bad;
  }
  request.mutable_ack_alarm()->set_id(n);
  return std::nullopt;
}

const Route kRoutes[] = {
    {http::verb::get, "/api/status", get_status},
    {http::verb::post, "/api/configure", json_body<&control::Request::mutable_configure>},
    {http::verb::post, "/api/start", json_body<&control::Request::mutable_start>},
    {http::verb::post, "/api/stop", json_body<&control::Request::mutable_stop>},
    {http::verb::post, "/api/pause", json_body<&control::Request::mutable_pause>},
    {http::verb::post, "/api/resume", json_body<&control::Request::mutable_resume>},
    {http::verb::post, "/api/reset", json_body<&control::Request::mutable_reset>},
    {http::verb::post, "/api/comment", json_body<&control::Request::mutable_comment>},
    {http::verb::get, "/api/thresholds", get_thresholds},
    {http::verb::post, "/api/thresholds", json_body<&control::Request::mutable_set_thresholds>},
    {http::verb::post, "/api/thresholds/use", json_body<&control::Request::mutable_use_threshold_set>},
    {http::verb::post, "/api/thresholds/clear-shadow", json_body<&control::Request::mutable_clear_shadow>},
    {http::verb::get, "/api/runs", list_runs},
    {http::verb::get, "/api/runs/{N}", show_run},
    {http::verb::post, "/api/alarms/{N}/ack", ack_alarm},
};

/// Whether `path` matches `pattern`; the "{N}" segment goes to `segment`.
bool matches(std::string_view pattern, std::string_view path, std::string_view& segment) {
  while (!pattern.empty() && !path.empty()) {
    const std::size_t ps = pattern.find('/', 1);
    const std::size_t qs = path.find('/', 1);
    const std::string_view p = pattern.substr(0, ps);
    const std::string_view q = path.substr(0, qs);
    if (p == "/{N}") {
      if (q.size() < 2) return false;
      segment = q.substr(1);
    } else if (p != q) {
      return false;
    }
    pattern = ps == std::string_view::npos ? std::string_view{} : pattern.substr(ps);
    path = qs == std::string_view::npos ? std::string_view{} : path.substr(qs);
  }
  return pattern.empty() && path.empty();
}

http::status http_status(control::Code code) {
  switch (code) {
    case control::OK: return http::status::ok;
    case control::BAD_REQUEST: return http::status::bad_request;
    case control::UNAUTHORIZED: return http::status::unauthorized;
    case control::FORBIDDEN: return http::status::forbidden;
    case control::CONFLICT: return http::status::conflict;
    case control::NOT_FOUND: return http::status::not_found;
    default: return http::status::internal_server_error;
  }
}

/// The path of a target as it may go into the log: no query, printable, short.
std::string loggable_path(std::string_view target) { return printable(target.substr(0, target.find('?')), 200); }

/// Replies by HTTP status, counted as they are sent.
class ReplyCounts {
 public:
  void count(unsigned status) noexcept {
    if (status < counts_.size()) counts_[status].fetch_add(1, std::memory_order_relaxed);
  }
  [[nodiscard]] std::vector<std::pair<unsigned, std::uint64_t>> snapshot() const {
    std::vector<std::pair<unsigned, std::uint64_t>> out;
    for (unsigned st = 0; st < counts_.size(); ++st) {
      if (const auto n = counts_[st].load(std::memory_order_relaxed); n != 0) out.emplace_back(st, n);
    }
    return out;
  }

 private:
  std::array<std::atomic<std::uint64_t>, 600> counts_{};
};

/// Turns HTTP requests into ControlService calls and replies into HTTP.
/// Thread safety: respond() and refuse() from any thread.
class Api {
 public:
  Api(ControlService& service, AccessTokens tokens, HttpExtensions extensions)
      : service_(service), tokens_(std::move(tokens)), ext_(std::move(extensions)) {}

  [[nodiscard]] bool live() const noexcept { return static_cast<bool>(ext_.live_status); }
  [[nodiscard]] std::string live_status() const { return ext_.live_status(); }
  void count(unsigned status) const noexcept { counts_.count(status); }
  [[nodiscard]] const ReplyCounts& counts() const noexcept { return counts_; }

  [[nodiscard]] HttpResponse respond(const HttpRequest& req) const {
    const std::string_view target = req.target();
    const std::string_view path = target.substr(0, target.find('?'));
    const std::string_view query_text =
        path.size() < target.size() ? target.substr(path.size() + 1) : std::string_view{};
    // Known before routing so that every log line names the role; refused
    // only on the API's paths.
    const Auth auth = authenticate(req);
    const bool api_path = path.starts_with("/api/");
    if (req.method() == http::verb::get && live() && path == kLivePath) {
      return refuse(req, auth, http::status::upgrade_required, control::BAD_REQUEST,
                    fmt::format("{} is a WebSocket: it needs an Upgrade request", kLivePath));
    }
    if (req.method() == http::verb::get && ext_.read) {
      if (auto content = ext_.read(target)) {
        if (api_path && !auth.role) return unauthorized(req, auth);
        return plain(req, std::move(*content), auth.label());
      }
    }

    const Route* route = nullptr;
    std::string_view segment;
    std::string allow;
    for (const auto& r : kRoutes) {
      std::string_view s;
      if (!matches(r.path, path, s)) continue;
      if (r.method == req.method()) {
        route = &r;
        segment = s;
        break;
      }
      if (!allow.empty()) allow += ", ";
      allow += std::string(http::to_string(r.method));
    }
    if (route == nullptr && allow.empty()) {
      if (req.method() == http::verb::get && ext_.unrouted) {
        if (auto content = ext_.unrouted(target)) return plain(req, std::move(*content), auth.label());
      }
      return refuse(req, auth, http::status::not_found, control::NOT_FOUND,
                    fmt::format("no such path: {}", loggable_path(target)));
    }
    if (route == nullptr) {
      auto res =
          refuse(req, auth, http::status::method_not_allowed, control::BAD_REQUEST,
                 fmt::format("{} takes {}, not {}", loggable_path(path), allow, std::string_view(req.method_string())));
      res.set(http::field::allow, allow);
      return res;
    }
    if (!auth.role) return unauthorized(req, auth);

    std::string query_error;
    auto query = Query::parse(query_text, query_error);
    if (!query) return refuse(req, auth, http::status::bad_request, control::BAD_REQUEST, query_error);
    Call call{req.body(), *query, segment};
    control::Request request;
    if (auto bad = route->build(call, request)) {
      return refuse(req, auth, http::status::bad_request, control::BAD_REQUEST, *bad);
    }
    if (const auto unused = query->first_unused()) {
      return refuse(req, auth, http::status::bad_request, control::BAD_REQUEST,
                    fmt::format("query: unknown parameter {}", printable(*unused)));
    }

    const control::Reply reply = service_.handle(request, *auth.role);
    auto res = json(req, http_status(reply.code()), reply, auth.label());
    if (reply.code() == control::UNAUTHORIZED) res.set(http::field::www_authenticate, "Bearer");
    return res;
  }

  /// A reply of the server's own (not the service's): a Reply with code and
  /// message only. `req` may be a partly read request.
  [[nodiscard]] HttpResponse refuse(const HttpRequest& req, http::status status, control::Code code,
                                    std::string message) const {
    return refuse(req, authenticate(req), status, code, std::move(message));
  }

 private:
  /// Who sent a request: a role, or why the Authorization header is refused.
  struct Auth {
    std::optional<Role> role;
    std::string_view problem;
    [[nodiscard]] std::string_view label() const { return role ? to_string(*role) : "invalid-token"; }
  };

  [[nodiscard]] Auth authenticate(const HttpRequest& req) const {
    const auto header = req[http::field::authorization];
    if (header.empty()) return {Role::Anonymous, {}};
    const auto token = bearer_token(header);
    if (!token) return {std::nullopt, "Authorization: expected \"Bearer TOKEN\""};
    if (const auto role = tokens_.role_of(*token)) return {*role, {}};
    return {std::nullopt, "unknown token"};
  }

  static HttpResponse unauthorized(const HttpRequest& req, const Auth& auth) {
    auto res = refuse(req, auth, http::status::unauthorized, control::UNAUTHORIZED, std::string(auth.problem));
    res.set(http::field::www_authenticate, "Bearer error=\"invalid_token\"");
    return res;
  }

  static HttpResponse refuse(const HttpRequest& req, const Auth& auth, http::status status, control::Code code,
                             std::string message) {
    control::Reply reply;
    reply.set_code(code);
    reply.set_message(std::move(message));
    return json(req, status, reply, auth.label());
  }

  static std::optional<std::string_view> bearer_token(std::string_view auth) {
    constexpr std::string_view kScheme = "bearer ";
    if (auth.size() <= kScheme.size()) return std::nullopt;
    for (std::size_t i = 0; i < kScheme.size(); ++i) {
      if (std::tolower(static_cast<unsigned char>(auth[i])) != kScheme[i]) return std::nullopt;
    }
    auth.remove_prefix(kScheme.size());
    while (!auth.empty() && auth.front() == ' ') auth.remove_prefix(1);
    while (!auth.empty() && auth.back() == ' ') auth.remove_suffix(1);
    if (auth.empty()) return std::nullopt;
    return auth;
  }

  static HttpResponse json(const HttpRequest& req, http::status status, const control::Reply& reply,
                           std::string_view role) {
    google::protobuf::util::JsonPrintOptions options;
    options.always_print_primitive_fields = true;
    std::string body;
    if (!google::protobuf::util::MessageToJsonString(reply, &body, options).ok()) {
      status = http::status::internal_server_error;
      body = R"({"code":"INTERNAL","message":"the reply cannot be written as JSON"})";
    }
    body += '\n';
    return finish(req, status, "application/json", std::move(body), role);
  }

  static HttpResponse plain(const HttpRequest& req, HttpContent content, std::string_view role) {
    return finish(req, static_cast<http::status>(content.status), content.content_type, std::move(content.body), role);
  }

  static HttpResponse finish(const HttpRequest& req, http::status status, std::string_view content_type,
                             std::string body, std::string_view role) {
    HttpResponse res{status, req.version()};
    res.set(http::field::server, "na64daq");
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-store");
    res.keep_alive(req.keep_alive());
    res.body() = std::move(body);
    res.prepare_payload();
    const unsigned code = res.result_int();
    if (code < 200 || code > 299) {
      fmt::print(stderr, "na64daq http: {} {} role={} -> {}\n",
                 req.method() == http::verb::unknown ? std::string_view("-") : std::string_view(req.method_string()),
                 req.target().empty() ? std::string("-") : loggable_path(req.target()), role, code);
    }
    return res;
  }

  ControlService& service_;
  AccessTokens tokens_;
  HttpExtensions ext_;
  mutable ReplyCounts counts_;
};

class LiveHub;

/// One WebSocket client of GET /ws: messages go out one at a time, in order;
/// what the client sends is read and dropped (the socket is read-only), so
/// that pings and the close handshake are answered. I/O thread only.
class LiveSession : public std::enable_shared_from_this<LiveSession> {
 public:
  explicit LiveSession(tcp::socket socket) : ws_(std::move(socket)) {}

  void start(HttpRequest request, LiveHub& hub);
  void send(const std::shared_ptr<const std::string>& message);
  [[nodiscard]] bool open() const noexcept { return open_; }

 private:
  void do_read();
  void on_read(beast::error_code ec, std::size_t n);
  void do_write();
  void on_write(beast::error_code ec, std::size_t n);
  void close() noexcept {
    open_ = false;
    queue_.clear();
  }

  websocket::stream<beast::tcp_stream> ws_;
  beast::flat_buffer buffer_;
  HttpRequest request_;  ///< the upgrade request, until accepted
  std::deque<std::shared_ptr<const std::string>> queue_;  ///< the front one is being written
  LiveHub* hub_ = nullptr;
  bool open_ = false;
};

/// The WebSocket clients, and what is sent to all of them. Its sessions and
/// timer live on the I/O thread; broadcast() posts there from any thread.
class LiveHub {
 public:
  LiveHub(asio::io_context& io, asio::thread_pool& workers, const Api& api)
      : io_(io), workers_(workers), api_(api), tick_(io) {}

  /// I/O thread.
  void start() {
    if (api_.live()) do_tick();
  }
  /// I/O thread: a client has connected; it gets the status at once.
  void join(const std::shared_ptr<LiveSession>& s) {
    sessions_.push_back(s);
    (void)live();
    send_status(s);
  }
  void count_drop() noexcept { dropped_.fetch_add(1, std::memory_order_relaxed); }

  /// Any thread; the caller makes sure the I/O context still exists.
  void broadcast(std::string text) {
    asio::post(io_, [this, m = std::make_shared<const std::string>(std::move(text))] {
      for (const auto& s : live()) s->send(m);
    });
  }

  [[nodiscard]] std::uint64_t clients() const noexcept { return clients_.load(std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  /// The sessions still open; forgets the others.
  std::vector<std::shared_ptr<LiveSession>> live() {
    std::vector<std::shared_ptr<LiveSession>> out;
    std::erase_if(sessions_, [&](const std::weak_ptr<LiveSession>& w) {
      auto s = w.lock();
      if (!s || !s->open()) return true;
      out.push_back(std::move(s));
      return false;
    });
    clients_.store(out.size(), std::memory_order_relaxed);
    return out;
  }

  /// The status, made on a worker: it asks ControlService, which may wait
  /// for a command in progress. Empty if it failed.
  std::string make_status() const {
    try {
      return api_.live_status();
    } catch (const std::exception& e) {
      fmt::print(stderr, "na64daq http: the live status failed: {}\n", e.what());
      return {};
    }
  }

  void send_status(const std::weak_ptr<LiveSession>& only) {
    asio::post(workers_, [this, only] {
      std::string text = make_status();
      if (text.empty()) return;
      asio::post(io_, [only, m = std::make_shared<const std::string>(std::move(text))] {
        if (auto s = only.lock()) s->send(m);
      });
    });
  }

  void do_tick() {
    tick_.expires_after(kLivePeriod);
    tick_.async_wait([this](beast::error_code ec) { on_tick(ec); });
  }

  void on_tick(beast::error_code ec) {
    if (ec) return;
    if (!live().empty()) {
      asio::post(workers_, [this] {
        std::string text = make_status();
        if (!text.empty()) broadcast(std::move(text));
      });
    }
    do_tick();
  }

  asio::io_context& io_;
  asio::thread_pool& workers_;
  const Api& api_;
  asio::steady_timer tick_;
  std::vector<std::weak_ptr<LiveSession>> sessions_;
  std::atomic<std::uint64_t> clients_{0};
  std::atomic<std::uint64_t> dropped_{0};
};

void LiveSession::start(HttpRequest request, LiveHub& hub) {
  hub_ = &hub;
  beast::get_lowest_layer(ws_).expires_never();  // the WebSocket's own timeouts from here on
  websocket::stream_base::timeout timeouts = websocket::stream_base::timeout::suggested(beast::role_type::server);
  timeouts.idle_timeout = kLiveIdleTimeout;
  ws_.set_option(timeouts);
  ws_.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "na64daq"); }));
  ws_.read_message_max(64 * 1024);
  request_ = std::move(request);
  ws_.async_accept(request_, [self = shared_from_this()](beast::error_code ec) {
    self->request_ = {};
    if (ec) return;
    self->open_ = true;
    self->hub_->join(self);
    self->do_read();
  });
}

void LiveSession::send(const std::shared_ptr<const std::string>& message) {
  if (!open_) return;
  if (queue_.size() >= kLiveQueue) {
    // The front one is being written; the next oldest goes.
    queue_.erase(queue_.begin() + 1);
    hub_->count_drop();
  }
  queue_.push_back(message);
  if (queue_.size() == 1) do_write();
}

void LiveSession::do_read() {
  ws_.async_read(buffer_, beast::bind_front_handler(&LiveSession::on_read, shared_from_this()));
}

void LiveSession::on_read(beast::error_code ec, std::size_t n) {
  if (ec) return close();
  buffer_.consume(n);  // a read-only socket: what the client says is dropped
  do_read();
}

void LiveSession::do_write() {
  ws_.text(true);
  ws_.async_write(asio::buffer(*queue_.front()), beast::bind_front_handler(&LiveSession::on_write, shared_from_this()));
}

void LiveSession::on_write(beast::error_code ec, std::size_t) {
  if (ec) return close();
  queue_.pop_front();
  if (!queue_.empty()) do_write();
}

/// One connection: read a request, have a worker answer it, write, repeat.
/// Lives as long as an operation of its own holds it.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const Api& api, asio::thread_pool& workers, LiveHub& hub)
      : stream_(std::move(socket)), api_(api), workers_(workers), hub_(hub) {}

  void start() { do_read(); }

 private:
  void do_read() {
    parser_.emplace();
    parser_->body_limit(kBodyLimit);
    stream_.expires_after(kIdleTimeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  // curl sends "Expect: 100-continue" before a body over 1 KiB (a
  // configuration) and waits a second for the interim reply unless it comes.
  void on_header(beast::error_code ec, std::size_t n) {
    if (ec) return on_read(ec, n);
    if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
      continue_ = http::response<http::empty_body>{http::status::continue_, parser_->get().version()};
      return http::async_write(stream_, continue_, [self = shared_from_this()](beast::error_code e, std::size_t) {
        if (!e) self->do_read_body();
      });
    }
    do_read_body();
  }

  void do_read_body() {
    http::async_read(stream_, buffer_, *parser_, beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::end_of_stream) return do_linger();
    if (ec == http::error::body_limit) {
      return do_write(api_.refuse(parser_->get(), http::status::payload_too_large, control::BAD_REQUEST,
                                  fmt::format("the body is over {} bytes", kBodyLimit)),
                      true);
    }
    if (ec == http::error::header_limit) {
      return do_write(api_.refuse(parser_->get(), http::status::request_header_fields_too_large, control::BAD_REQUEST,
                                  "the header is too large"),
                      true);
    }
    if (ec && ec.category() == beast::http::make_error_code(http::error::bad_target).category() &&
        ec != http::error::partial_message) {
      return do_write(api_.refuse(HttpRequest{}, http::status::bad_request, control::BAD_REQUEST,
                                  fmt::format("malformed HTTP request: {}", ec.message())),
                      true);
    }
    if (ec) return;  // the peer went, or timed out: nothing to answer
    const HttpRequest& req = parser_->get();
    if (websocket::is_upgrade(req) && api_.live() &&
        std::string_view(req.target()).substr(0, req.target().find('?')) == kLivePath) {
      // The connection becomes a WebSocket client; this session ends here.
      api_.count(static_cast<unsigned>(http::status::switching_protocols));
      std::make_shared<LiveSession>(stream_.release_socket())->start(parser_->release(), hub_);
      return;
    }
    asio::post(workers_, [self = shared_from_this()] {
      HttpResponse res;
      try {
        res = self->api_.respond(self->parser_->get());
      } catch (const std::exception& e) {
        res = self->api_.refuse(self->parser_->get(), http::status::internal_server_error, control::INTERNAL,
                                fmt::format("the server failed: {}", e.what()));
      }
      asio::post(self->stream_.get_executor(),
                 [self, res = std::move(res)]() mutable { self->do_write(std::move(res), false); });
    });
  }

  void do_write(HttpResponse res, bool close) {
    response_ = std::move(res);
    api_.count(response_.result_int());
    if (close) response_.keep_alive(false);
    stream_.expires_after(kIdleTimeout);
    http::async_write(stream_, response_, beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return;
    if (response_.need_eof()) return do_linger();
    do_read();
  }

  void do_linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(kLingerTimeout);
    lingered_ = 0;
    buffer_.clear();
    stream_.async_read_some(buffer_.prepare(64 * 1024),
                            beast::bind_front_handler(&Session::on_linger, shared_from_this()));
  }

  void on_linger(beast::error_code ec, std::size_t n) {
    lingered_ += n;
    if (ec || lingered_ > kLingerBytes) return;  // EOF, timeout or enough: the socket closes with the session
    stream_.async_read_some(buffer_.prepare(64 * 1024),
                            beast::bind_front_handler(&Session::on_linger, shared_from_this()));
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  HttpResponse response_;
  http::response<http::empty_body> continue_;
  std::size_t lingered_ = 0;
  const Api& api_;
  asio::thread_pool& workers_;
  LiveHub& hub_;
};

class Listener : public std::enable_shared_from_this<Listener> {
 public:
  Listener(asio::io_context& io, const tcp::endpoint& endpoint, const Api& api, asio::thread_pool& workers,
           LiveHub& hub)
      : acceptor_(io), retry_(io), api_(api), workers_(workers), hub_(hub) {
    beast::error_code ec;
    const auto fail = [&](std::string_view what) {
      throw Error(fmt::format("HTTP: cannot {} {}:{}: {}", what, endpoint.address().to_string(), endpoint.port(),
                              ec.message()));
    };
    if (acceptor_.open(endpoint.protocol(), ec)) fail("open a socket for");
    if (acceptor_.set_option(asio::socket_base::reuse_address(true), ec)) fail("set SO_REUSEADDR on");
    if (acceptor_.bind(endpoint, ec)) fail("bind to");
    if (acceptor_.listen(asio::socket_base::max_listen_connections, ec)) fail("listen on");
  }

  [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }

  void start() { do_accept(); }

 private:
  void do_accept() { acceptor_.async_accept(beast::bind_front_handler(&Listener::on_accept, shared_from_this())); }

  void on_accept(beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      // Out of descriptors, most likely: try again later rather than spin.
      fmt::print(stderr, "na64daq http: cannot accept a connection: {}\n", ec.message());
      retry_.expires_after(std::chrono::milliseconds(200));
      retry_.async_wait([self = shared_from_this()](beast::error_code e) {
        if (!e) self->do_accept();
      });
      return;
    }
    std::make_shared<Session>(std::move(socket), api_, workers_, hub_)->start();
    do_accept();
  }

  tcp::acceptor acceptor_;
  asio::steady_timer retry_;
  const Api& api_;
  asio::thread_pool& workers_;
  LiveHub& hub_;
};

tcp::endpoint endpoint_of(const HttpOptions& options) {
  beast::error_code ec;
  const auto address = asio::ip::make_address(options.address, ec);
  if (ec) throw ConfigError(fmt::format("HTTP address \"{}\": {}", options.address, ec.message()));
  return {address, options.port};
}

}  // namespace

struct HttpServer::Impl {
  Impl(ControlService& service, const HttpOptions& options, HttpExtensions extensions)
      : api(service, AccessTokens::load(options.tokens_file), std::move(extensions)) {
    hub.emplace(*io, *workers, api);
    auto listener = std::make_shared<Listener>(*io, endpoint_of(options), api, *workers, *hub);
    port = listener->port();
    listener->start();  // from here on the listener lives in its pending accept
    hub->start();
    thread = std::jthread([this] { io->run(); });
  }

  // Destroyed in reverse: the io_context (and with it every session and the
  // listener) before the API they refer to; stop() resets the hub, whose
  // timer belongs to the io_context, before the io_context.
  Api api;
  std::optional<asio::thread_pool> workers{std::in_place, kWorkerThreads};
  std::optional<asio::io_context> io{std::in_place, 1};
  std::optional<LiveHub> hub;
  std::uint16_t port = 0;
  std::jthread thread;
  std::once_flag stopped;
  std::mutex broadcast_m;  ///< broadcast() against stop()
  bool running = true;     ///< guarded by broadcast_m
};

HttpServer::HttpServer(ControlService& service, HttpOptions options, UnroutedGet unrouted_get)
    : HttpServer(service, std::move(options), HttpExtensions{{}, std::move(unrouted_get), {}}) {}

HttpServer::HttpServer(ControlService& service, HttpOptions options, HttpExtensions extensions)
    : impl_(std::make_unique<Impl>(service, options, std::move(extensions))) {}

HttpServer::~HttpServer() { stop(); }

std::uint16_t HttpServer::port() const noexcept { return impl_->port; }

void HttpServer::broadcast(std::string text) {
  std::lock_guard lock(impl_->broadcast_m);
  if (impl_->running) impl_->hub->broadcast(std::move(text));
}

HttpCounts HttpServer::counts() const {
  HttpCounts c;
  c.replies_by_status = impl_->api.counts().snapshot();
  std::lock_guard lock(impl_->broadcast_m);
  if (impl_->running) {
    c.websocket_clients = impl_->hub->clients();
    c.websocket_dropped = impl_->hub->dropped();
  }
  return c;
}

void HttpServer::stop() {
  std::call_once(impl_->stopped, [this] {
    {
      std::lock_guard lock(impl_->broadcast_m);
      impl_->running = false;
    }
    impl_->io->stop();
    if (impl_->thread.joinable()) impl_->thread.join();
    // Requests in progress finish; their replies are posted to the stopped
    // io_context and dropped with it.
    impl_->workers->join();
    impl_->hub.reset();
    impl_->io.reset();
    impl_->workers.reset();
  });
}

}  // namespace na64::daq
