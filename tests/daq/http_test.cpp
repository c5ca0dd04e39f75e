// SPDX-License-Identifier: Apache-2.0
// The HTTP/JSON control interface and na64ctl, over real sockets on
// 127.0.0.1. The client side is plain POSIX sockets, so that a test can send
// exactly the bytes it means, malformed ones included.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "control.pb.h"
#include "na64/daq/config.hpp"
#include "na64/daq/control_service.hpp"
#include "na64/daq/error.hpp"
#include "na64/daq/http_server.hpp"
#include "na64/daq/run_control.hpp"
#include "na64/daq/run_db.hpp"
#include "na64/testing/command.hpp"
#include "na64/testing/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using na64::daq::ConfigError;
using na64::daq::HttpOptions;
using na64::daq::HttpServer;
using na64::testing::TempDir;

const std::string kShiftToken = "shift-0123456789abcdef0123456789abcdef";
const std::string kExpertToken = "expert-0123456789abcdef0123456789abcdef";

::testing::AssertionResult Contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << part << "\" is not in:\n" << text;
}

::testing::AssertionResult Lacks(const std::string& text, const std::string& part) {
  if (text.find(part) == std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "\"" << part << "\" is in:\n" << text;
}

void write_file(const fs::path& path, const std::string& text, fs::perms perms = fs::perms(0600)) {
  std::ofstream(path) << text;
  fs::permissions(path, perms);
}

/// The default configuration with small spills, so that runs go quickly.
std::string fast_config() {
  std::string text(na64::daq::default_config_text());
  const std::string from = "particles_per_spill: 20000";
  const auto at = text.find(from);
  if (at != std::string::npos) text.replace(at, from.size(), "particles_per_spill: 2000");
  return text;
}

/// JSON for a Configure, Start, ... message.
std::string json_of(const google::protobuf::Message& m) {
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out);
  return out;
}

struct HttpReply {
  int status = 0;                              ///< 0: no reply
  std::map<std::string, std::string> headers;  ///< names in lower case
  std::string body;
  na64::control::Reply reply;  ///< the body as a Reply
  bool is_reply = false;

  [[nodiscard]] std::string header(const std::string& name) const {
    const auto it = headers.find(name);
    return it == headers.end() ? std::string("(none)") : it->second;
  }
};

/// One client connection, sending raw bytes and reading HTTP/1.1 replies.
class Connection {
 public:
  explicit Connection(std::uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = ::connect(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == 0;
    const timeval timeout{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~Connection() { ::close(fd_); }
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  [[nodiscard]] bool connected() const { return connected_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      const ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
    return true;
  }

  static std::string request_text(std::string_view method, std::string_view target, std::string_view body,
                                  const std::string& token, bool close = false) {
    std::string text = fmt::format("{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\n", method, target);
    if (!token.empty()) text += fmt::format("Authorization: Bearer {}\r\n", token);
    if (close) text += "Connection: close\r\n";
    if (method == "POST") text += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", body.size());
    return text + "\r\n" + std::string(body);
  }

  HttpReply call(std::string_view method, std::string_view target, std::string_view body = {},
                 const std::string& token = {}) {
    if (!send(request_text(method, target, body, token))) return {};
    return receive();
  }

  /// The next reply; status 0 if the connection ends first.
  HttpReply receive() {
    HttpReply r;
    std::size_t end = 0;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) return r;
    }
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    std::size_t pos = head.find("\r\n");
    const std::string status_line = head.substr(0, pos);
    if (status_line.size() < 12) return r;
    r.status = std::stoi(status_line.substr(9, 3));
    while (pos != std::string::npos && pos < head.size()) {
      const std::size_t next = head.find("\r\n", pos + 2);
      const std::string line = head.substr(pos + 2, next == std::string::npos ? std::string::npos : next - pos - 2);
      const std::size_t colon = line.find(':');
      if (colon != std::string::npos) {
        std::string name = line.substr(0, colon);
        std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
        r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
      }
      pos = next;
    }
    const std::size_t length = std::stoul(r.header("content-length") == "(none)" ? "0" : r.header("content-length"));
    while (buffer_.size() < length) {
      if (!fill()) return HttpReply{};
    }
    r.body = buffer_.substr(0, length);
    buffer_.erase(0, length);
    r.is_reply = google::protobuf::util::JsonStringToMessage(r.body, &r.reply).ok();
    return r;
  }

  /// True when the server has closed the connection (reads end of stream).
  bool closed_by_peer() {
    char c = 0;
    return ::recv(fd_, &c, 1, 0) == 0;
  }

 private:
  bool fill() {
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<std::size_t>(n));
    return true;
  }

  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

std::string config_error(const std::function<void()>& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no ConfigError";
}

/// A daemon in the test process: run database, run control, service, and
/// the HTTP server on a free port with a shift and an expert token.
class HttpServerTest : public ::testing::Test {
 protected:
  HttpServerTest()
      : db_(dir_.path() / "runs.sqlite"),
        control_(db_, na64::daq::RunControlOptions{.config_file = "", .output_override = dir_.path() / "data"}),
        service_(control_, db_) {
    write_file(tokens_file(), fmt::format("# test tokens\n\nshift {}\nexpert {}\n", kShiftToken, kExpertToken));
    server_.emplace(service_, HttpOptions{.address = "127.0.0.1", .port = 0, .tokens_file = tokens_file()});
  }

  [[nodiscard]] fs::path tokens_file() const { return dir_.path() / "tokens"; }
  [[nodiscard]] std::uint16_t port() const { return server_->port(); }

  HttpReply call(std::string_view method, std::string_view target, std::string_view body = {},
                 const std::string& token = {}) {
    Connection c(port());
    return c.call(method, target, body, token);
  }

  HttpReply configure(const std::string& text) {
    na64::control::Configure m;
    m.set_config_text(text);
    return call("POST", "/api/configure", json_of(m), kExpertToken);
  }

  /// Polls the status until `done` or 30 s.
  na64::control::Status wait_for(const std::function<bool(const na64::control::Status&)>& done) {
    na64::control::Status s;
    for (int i = 0; i < 300; ++i) {
      s = call("GET", "/api/status").reply.status();
      if (done(s)) break;
      std::this_thread::sleep_for(100ms);
    }
    return s;
  }

  TempDir dir_;
  na64::daq::RunDatabase db_;
  na64::daq::RunControl control_;
  na64::daq::ControlService service_;
  std::optional<HttpServer> server_;
};

TEST_F(HttpServerTest, StatusWithoutTokenIsIdle) {
  const auto r = call("GET", "/api/status");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  ASSERT_TRUE(r.is_reply) << r.body;
  EXPECT_EQ(r.reply.code(), na64::control::OK);
  EXPECT_EQ(r.reply.status().state(), na64::control::IDLE);
  // Every primitive field is written, defaults included.
  EXPECT_TRUE(Contains(r.body, R"("code":"OK")"));
  EXPECT_TRUE(Contains(r.body, R"("run":0)"));
}

TEST_F(HttpServerTest, StartWithoutTokenIsUnauthorized) {
  const auto r = call("POST", "/api/start", "");
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(r.header("www-authenticate"), "Bearer");
  EXPECT_EQ(r.reply.code(), na64::control::UNAUTHORIZED);
  EXPECT_EQ(r.reply.message(), "this command needs credentials");
}

TEST_F(HttpServerTest, StartWithExpertTokenIsForbidden) {
  const auto r = call("POST", "/api/start", "", kExpertToken);
  EXPECT_EQ(r.status, 403) << r.body;
  EXPECT_EQ(r.reply.code(), na64::control::FORBIDDEN);
  EXPECT_EQ(r.reply.message(), "this command needs the shift role, not expert");
}

TEST_F(HttpServerTest, StartWithShiftTokenInIdleIsConflictNamingTheState) {
  const auto r = call("POST", "/api/start", R"({"comment":"too early"})", kShiftToken);
  EXPECT_EQ(r.status, 409) << r.body;
  EXPECT_EQ(r.reply.code(), na64::control::CONFLICT);
  EXPECT_EQ(r.reply.message(), "start: not valid in state IDLE; valid now: configure");
  EXPECT_EQ(r.reply.status().state(), na64::control::IDLE);
}

TEST_F(HttpServerTest, ConfigureNeedsTheExpertRole) {
  na64::control::Configure m;
  const auto shift = call("POST", "/api/configure", json_of(m), kShiftToken);
  EXPECT_EQ(shift.status, 403) << shift.body;
  EXPECT_EQ(shift.reply.message(), "this command needs the expert role, not shift");

  // An empty body is a Configure with no text: the daemon's own configuration.
  const auto expert = call("POST", "/api/configure", "", kExpertToken);
  EXPECT_EQ(expert.status, 200) << expert.body;
  EXPECT_EQ(expert.reply.status().state(), na64::control::CONFIGURED);
  EXPECT_TRUE(Contains(expert.reply.message(), "configured from embedded default, hash "));
}

TEST_F(HttpServerTest, BadConfigurationIsBadRequestWithTheFieldPath) {
  std::string text = fast_config();
  const auto at = text.find("ecal_max_gev: 50");
  ASSERT_NE(at, std::string::npos);
  text.replace(at, 16, "ecal_max_gev: -1");
  const auto r = configure(text);
  EXPECT_EQ(r.status, 400) << r.body;
  EXPECT_EQ(r.reply.code(), na64::control::BAD_REQUEST);
  EXPECT_TRUE(Contains(r.reply.message(), "trigger.ecal_max_gev"));
  EXPECT_EQ(r.reply.status().state(), na64::control::IDLE);
}

TEST_F(HttpServerTest, RunStartsStopsAndIsRecorded) {
  ASSERT_EQ(configure(fast_config()).status, 200);
  na64::control::Start start;
  start.set_comment("http test run");
  const auto started = call("POST", "/api/start", json_of(start), kShiftToken);
  ASSERT_EQ(started.status, 200) << started.body;
  EXPECT_EQ(started.reply.status().state(), na64::control::RUNNING);
  const std::uint32_t run = started.reply.status().run();
  EXPECT_EQ(started.reply.message(), fmt::format("run {} started", run));

  const auto running = wait_for([](const auto& s) { return s.spill() >= 2; });
  EXPECT_GE(running.spill(), 2u);
  EXPECT_EQ(call("POST", "/api/comment", R"({"text":"beam looks fine"})", kShiftToken).status, 200);

  const auto stopping = call("POST", "/api/stop", "", kShiftToken);
  EXPECT_EQ(stopping.status, 200) << stopping.body;
  const auto stopped = wait_for([](const auto& s) { return s.state() == na64::control::CONFIGURED; });
  EXPECT_EQ(stopped.state(), na64::control::CONFIGURED);

  const auto list = call("GET", "/api/runs?limit=5");
  ASSERT_EQ(list.status, 200) << list.body;
  ASSERT_EQ(list.reply.runs_size(), 1);
  EXPECT_EQ(list.reply.runs(0).number(), run);
  EXPECT_EQ(list.reply.runs(0).comment(), "http test run");
  EXPECT_EQ(list.reply.runs(0).ended(), "stopped");

  const auto show = call("GET", fmt::format("/api/runs/{}", run));
  ASSERT_EQ(show.status, 200) << show.body;
  ASSERT_EQ(show.reply.runs_size(), 1);
  EXPECT_EQ(show.reply.runs(0).comments_size(), 1);
  ASSERT_GE(show.reply.spills_size(), 2);
  EXPECT_EQ(show.reply.spills(0).spill(), 1u);
  EXPECT_EQ(show.reply.spills(0).particles(), 2000u);

  const auto missing = call("GET", fmt::format("/api/runs/{}", run + 1));
  EXPECT_EQ(missing.status, 404) << missing.body;
  EXPECT_EQ(missing.reply.message(), fmt::format("run {} is not in the run database", run + 1));
}

TEST_F(HttpServerTest, ThresholdSetByExpertGetsAnId) {
  ASSERT_EQ(configure(fast_config()).status, 200);
  const auto before = call("GET", "/api/thresholds");
  ASSERT_EQ(before.status, 200) << before.body;
  const std::uint32_t first = before.reply.thresholds().active_id();
  ASSERT_EQ(before.reply.thresholds().sets_size(), 1);

  na64::control::SetThresholds set;
  *set.mutable_thresholds() = before.reply.thresholds().sets(0).thresholds();
  set.mutable_thresholds()->set_ecal_max_gev(40);
  set.set_comment("tighter");
  const auto shift = call("POST", "/api/thresholds", json_of(set), kShiftToken);
  EXPECT_EQ(shift.status, 403) << shift.body;

  const auto r = call("POST", "/api/thresholds", json_of(set), kExpertToken);
  ASSERT_EQ(r.status, 200) << r.body;
  const std::uint32_t id = r.reply.thresholds().active_id();
  EXPECT_GT(id, first);
  EXPECT_EQ(r.reply.message(), fmt::format("threshold set {} active now", id));

  const auto all = call("GET", "/api/thresholds?all=true");
  ASSERT_EQ(all.status, 200) << all.body;
  ASSERT_EQ(all.reply.thresholds().sets_size(), 2);
  EXPECT_EQ(all.reply.thresholds().sets(1).id(), id);
  EXPECT_EQ(all.reply.thresholds().sets(1).thresholds().ecal_max_gev(), 40);
  EXPECT_EQ(all.reply.thresholds().sets(1).author(), "expert");

  na64::control::UseThresholdSet use;
  use.set_id(first);
  const auto back = call("POST", "/api/thresholds/use", json_of(use), kExpertToken);
  EXPECT_EQ(back.status, 200) << back.body;
  EXPECT_EQ(back.reply.thresholds().active_id(), first);
  use.set_id(999);
  EXPECT_EQ(call("POST", "/api/thresholds/use", json_of(use), kExpertToken).status, 404);
  EXPECT_EQ(call("POST", "/api/thresholds/clear-shadow", "", kExpertToken).status, 200);
}

TEST_F(HttpServerTest, MalformedJsonIsBadRequestSayingWhere) {
  const auto syntax = call("POST", "/api/comment", "{\n  \"text\" \"x\"\n}", kShiftToken);
  EXPECT_EQ(syntax.status, 400) << syntax.body;
  EXPECT_EQ(syntax.reply.code(), na64::control::BAD_REQUEST);
  EXPECT_EQ(syntax.reply.message(), "malformed JSON in the body at line 2, column 10: syntax error");

  const auto truncated = call("POST", "/api/comment", R"({"text":"x")", kShiftToken);
  EXPECT_EQ(truncated.status, 400);
  EXPECT_EQ(truncated.reply.message(), "malformed JSON in the body at line 1, column 12: incomplete JSON");

  const auto trailing = call("POST", "/api/comment", R"({"text":"x"} {})", kShiftToken);
  EXPECT_EQ(trailing.status, 400);
  EXPECT_EQ(trailing.reply.message(),
            "malformed JSON in the body at line 1, column 14: text after the end of the value");

  const auto field = call("POST", "/api/comment", R"({"txet":"x"})", kShiftToken);
  EXPECT_EQ(field.status, 400);
  EXPECT_EQ(field.reply.message(), "body is not a Comment message: txet: Cannot find field.");

  const auto type = call("POST", "/api/thresholds/use", R"({"id":-3})", kExpertToken);
  EXPECT_EQ(type.status, 400);
  EXPECT_EQ(type.reply.message(), "body is not a UseThresholdSet message: (id): invalid value -3 for type TYPE_UINT32");
}

TEST_F(HttpServerTest, MalformedQueryIsBadRequest) {
  const auto limit = call("GET", "/api/runs?limit=ten");
  EXPECT_EQ(limit.status, 400) << limit.body;
  EXPECT_EQ(limit.reply.message(), "query parameter limit: \"ten\" is not a whole number in [0, 4294967295]");
  const auto unknown = call("GET", "/api/status?verbose=1");
  EXPECT_EQ(unknown.status, 400);
  EXPECT_EQ(unknown.reply.message(), "query: unknown parameter verbose");
  const auto all = call("GET", "/api/thresholds?all=maybe");
  EXPECT_EQ(all.status, 400);
  EXPECT_EQ(all.reply.message(), "query parameter all: \"maybe\" is neither true nor false");
  const auto twice = call("GET", "/api/runs?limit=1&limit=2");
  EXPECT_EQ(twice.status, 400);
  EXPECT_EQ(twice.reply.message(), "query: parameter limit given twice");
  const auto bytes = call("GET", "/api/runs?limit=\xff\xfe%0a");
  EXPECT_EQ(bytes.status, 400);
  EXPECT_EQ(bytes.reply.message(), "query parameter limit: \"??%0a\" is not a whole number in [0, 4294967295]");
  const auto run = call("GET", "/api/runs/x1");
  EXPECT_EQ(run.status, 400);
  EXPECT_EQ(run.reply.message(), "run number: \"x1\" is not a whole number in [1, 4294967295]");
}

TEST_F(HttpServerTest, UnknownPathIsNotFound) {
  const auto r = call("GET", "/api/nothing");
  EXPECT_EQ(r.status, 404) << r.body;
  EXPECT_EQ(r.header("content-type"), "application/json");
  EXPECT_EQ(r.reply.code(), na64::control::NOT_FOUND);
  EXPECT_EQ(r.reply.message(), "no such path: /api/nothing");
  EXPECT_EQ(call("POST", "/api/status/", "", kShiftToken).status, 404);
}

TEST_F(HttpServerTest, WrongMethodIsNotAllowedWithAllow) {
  const auto get = call("GET", "/api/start");
  EXPECT_EQ(get.status, 405) << get.body;
  EXPECT_EQ(get.header("allow"), "POST");
  EXPECT_EQ(get.reply.message(), "/api/start takes POST, not GET");
  const auto del = call("DELETE", "/api/thresholds");
  EXPECT_EQ(del.status, 405);
  EXPECT_EQ(del.header("allow"), "GET, POST");
}

TEST_F(HttpServerTest, BodyOverOneMebibyteIsTooLarge) {
  Connection c(port());
  const std::string body((std::size_t{1} << 20) + 1, ' ');
  ASSERT_TRUE(c.send(Connection::request_text("POST", "/api/comment", body, kShiftToken)));
  const auto r = c.receive();
  EXPECT_EQ(r.status, 413) << r.body;
  EXPECT_EQ(r.reply.message(), "the body is over 1048576 bytes");
  EXPECT_EQ(r.header("connection"), "close");
  // A body of exactly 1 MiB is read (and then found not to be a comment).
  const std::string most(std::size_t{1} << 20, ' ');
  EXPECT_EQ(call("POST", "/api/comment", most, kShiftToken).status, 409);
}

TEST_F(HttpServerTest, ExpectContinueGetsAnInterimReply) {
  Connection c(port());
  const std::string body = R"({"configText":""})";
  ASSERT_TRUE(
      c.send(fmt::format("POST /api/configure HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n"
                         "Expect: 100-continue\r\nContent-Length: {}\r\n\r\n",
                         kExpertToken, body.size())));
  EXPECT_EQ(c.receive().status, 100);
  ASSERT_TRUE(c.send(body));
  const auto r = c.receive();
  EXPECT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.reply.status().state(), na64::control::CONFIGURED);
}

TEST_F(HttpServerTest, UnknownTokenIsUnauthorizedEvenForReads) {
  const auto r = call("GET", "/api/status", {}, "not-a-token-of-this-daemon-0123456789");
  EXPECT_EQ(r.status, 401) << r.body;
  EXPECT_EQ(r.header("www-authenticate"), "Bearer error=\"invalid_token\"");
  EXPECT_EQ(r.reply.message(), "unknown token");
  Connection c(port());
  c.send("GET /api/status HTTP/1.1\r\nHost: x\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n");
  const auto basic = c.receive();
  EXPECT_EQ(basic.status, 401);
  EXPECT_EQ(basic.reply.message(), "Authorization: expected \"Bearer TOKEN\"");
}

TEST_F(HttpServerTest, KeepAliveAndSeveralClientsAtOnce) {
  Connection a(port());
  Connection b(port());
  // Both requests are in before either reply is read.
  ASSERT_TRUE(a.send(Connection::request_text("GET", "/api/status", {}, {})));
  ASSERT_TRUE(b.send(Connection::request_text("GET", "/api/thresholds", {}, {})));
  EXPECT_EQ(b.receive().status, 200);
  EXPECT_EQ(a.receive().status, 200);
  // Three more on the same connection, the last pipelined after the second.
  EXPECT_EQ(a.call("GET", "/api/runs").status, 200);
  ASSERT_TRUE(a.send(Connection::request_text("GET", "/api/status", {}, {}) +
                     Connection::request_text("POST", "/api/start", {}, kShiftToken, true)));
  EXPECT_EQ(a.receive().status, 200);
  const auto last = a.receive();
  EXPECT_EQ(last.status, 409);
  EXPECT_EQ(last.header("connection"), "close");
  EXPECT_TRUE(a.closed_by_peer());
}

TEST_F(HttpServerTest, MalformedRequestDoesNotDisturbOtherSessions) {
  Connection good(port());
  EXPECT_EQ(good.call("GET", "/api/status").status, 200);
  Connection bad(port());
  ASSERT_TRUE(bad.send("NONSENSE\x01\x02 / HTTP/9.9\r\n\r\n"));
  const auto r = bad.receive();
  EXPECT_EQ(r.status, 400);
  EXPECT_TRUE(Contains(r.reply.message(), "malformed HTTP request: "));
  Connection half(port());
  ASSERT_TRUE(half.send("POST /api/comment HTTP/1.1\r\nContent-Length: 10\r\n\r\n{\"te"));  // and then silence
  EXPECT_EQ(good.call("GET", "/api/status").status, 200);
  EXPECT_EQ(call("GET", "/api/status").status, 200);
}

TEST_F(HttpServerTest, RequestLogHasOneLinePerFailureAndNoToken) {
  ::testing::internal::CaptureStderr();
  EXPECT_EQ(call("GET", "/api/status", {}, kShiftToken).status, 200);
  EXPECT_EQ(call("POST", "/api/start", "", kExpertToken).status, 403);
  EXPECT_EQ(call("POST", "/api/configure", "", kShiftToken + "x").status, 401);
  EXPECT_EQ(call("GET", "/api/nothing?token=" + kShiftToken).status, 404);
  const std::string log = ::testing::internal::GetCapturedStderr();
  EXPECT_EQ(log,
            "na64daq http: POST /api/start role=expert -> 403\n"
            "na64daq http: POST /api/configure role=invalid-token -> 401\n"
            "na64daq http: GET /api/nothing role=anonymous -> 404\n");
  EXPECT_TRUE(Lacks(log, kShiftToken.substr(6)));
  EXPECT_TRUE(Lacks(log, kExpertToken.substr(7)));
}

TEST_F(HttpServerTest, UnroutedGetGoesToTheHook) {
  server_.reset();
  server_.emplace(service_, HttpOptions{.address = "127.0.0.1", .port = 0, .tokens_file = {}},
                  [](std::string_view target) -> std::optional<na64::daq::HttpContent> {
                    if (target != "/index.html") return std::nullopt;
                    return na64::daq::HttpContent{200, "text/html", "<p>dashboard</p>"};
                  });
  const auto page = call("GET", "/index.html");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(page.header("content-type"), "text/html");
  EXPECT_EQ(page.body, "<p>dashboard</p>");
  EXPECT_EQ(call("GET", "/other").status, 404);
  // Without a tokens file every token is unknown: the server only reads.
  EXPECT_EQ(call("POST", "/api/start", "", kShiftToken).status, 401);
  EXPECT_EQ(call("GET", "/api/status").status, 200);
}

TEST_F(HttpServerTest, StopClosesConnectionsAndThePort) {
  const std::uint16_t p = port();
  Connection open(p);
  EXPECT_EQ(open.call("GET", "/api/status").status, 200);
  server_->stop();
  EXPECT_TRUE(open.closed_by_peer());
  EXPECT_FALSE(Connection(p).connected());
  server_->stop();  // again: nothing
}

TEST_F(HttpServerTest, PortInUseIsAnError) {
  try {
    HttpServer second(service_, HttpOptions{.address = "127.0.0.1", .port = port(), .tokens_file = tokens_file()});
    ADD_FAILURE() << "a second server on the same port";
  } catch (const ConfigError& e) {
    ADD_FAILURE() << e.what();
  } catch (const na64::daq::Error& e) {
    EXPECT_EQ(std::string(e.what()), fmt::format("HTTP: cannot bind to 127.0.0.1:{}: Address already in use", port()));
  }
  try {
    HttpServer bad(service_, HttpOptions{.address = "localhost", .port = 0, .tokens_file = {}});
    ADD_FAILURE() << "a host name as the address";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()), "HTTP address \"localhost\": Invalid argument");
  }
}

class TokensFileTest : public ::testing::Test {
 protected:
  TokensFileTest() : db_(dir_.path() / "runs.sqlite"), control_(db_, {}), service_(control_, db_) {}

  std::string start_with(const std::string& text, fs::perms perms = fs::perms(0600)) {
    write_file(file(), text, perms);
    return config_error(
        [&] { HttpServer server(service_, HttpOptions{.address = "127.0.0.1", .port = 0, .tokens_file = file()}); });
  }
  [[nodiscard]] fs::path file() const { return dir_.path() / "tokens"; }

  TempDir dir_;
  na64::daq::RunDatabase db_;
  na64::daq::RunControl control_;
  na64::daq::ControlService service_;
};

TEST_F(TokensFileTest, ShortTokenIsRefusedWithoutShowingIt) {
  const std::string e = start_with("# ok\nexpert " + kExpertToken + "\n\nshift tooshort-secret\n");
  EXPECT_EQ(e, file().string() + ":4: token shorter than 32 characters");
  EXPECT_TRUE(Lacks(e, "tooshort-secret"));
}

TEST_F(TokensFileTest, FileOpenToOthersIsRefused) {
  const std::string e = start_with("shift " + kShiftToken + "\n", fs::perms(0644));
  EXPECT_EQ(e, file().string() + ": the tokens file is open to group or others (mode 0644); chmod 600 it");
  EXPECT_TRUE(Lacks(e, kShiftToken));
  EXPECT_TRUE(Contains(start_with("shift " + kShiftToken + "\n", fs::perms(0640)), "(mode 0640)"));
}

TEST_F(TokensFileTest, UnknownRoleIsRefusedWithoutQuotingTheLine) {
  // Written the wrong way round: the token stands where the role should.
  const std::string e = start_with(kShiftToken + " shift\n");
  EXPECT_EQ(e, file().string() + ":1: unknown role (expected shift or expert)");
  EXPECT_TRUE(Lacks(e, kShiftToken));
  EXPECT_EQ(start_with("shift\n"), file().string() + ":1: expected \"ROLE TOKEN\"");
}

TEST_F(TokensFileTest, DuplicateTokenIsRefused) {
  const std::string e = start_with("shift " + kShiftToken + "\nexpert " + kShiftToken + "\n");
  EXPECT_EQ(e, file().string() + ":2: the same token as line 1");
  EXPECT_TRUE(Lacks(e, kShiftToken));
}

TEST_F(TokensFileTest, MissingFileIsRefused) {
  const std::string e = config_error([&] {
    HttpServer server(service_, HttpOptions{.address = "127.0.0.1", .port = 0, .tokens_file = dir_.path() / "none"});
  });
  EXPECT_EQ(e, (dir_.path() / "none").string() + ": cannot open the tokens file: No such file or directory");
}

using na64::testing::Outcome;

/// Runs na64ctl with `args`; `env` is put before it ("NAME=value ...").
Outcome na64ctl(const std::string& args, const std::string& env = "") {
  return na64::testing::run_command(env + " " + std::string(NA64CTL_PATH) + " " + args);
}

class Na64ctlTest : public HttpServerTest {
 protected:
  Na64ctlTest() {
    write_file(dir_.path() / "shift.token", "shift " + kShiftToken + "\n");
    write_file(dir_.path() / "expert.token", kExpertToken + "\n");
  }
  Outcome as(std::string_view role, const std::string& args) {
    return na64ctl(fmt::format("--url http://127.0.0.1:{} --token-file {} {}", port(),
                               (dir_.path() / fmt::format("{}.token", role)).string(), args));
  }
  Outcome anonymous(const std::string& args) {
    return na64ctl(fmt::format("--url http://127.0.0.1:{} {}", port(), args));
  }
};

TEST_F(Na64ctlTest, StatusPrintsTheState) {
  const auto o = anonymous("status");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_TRUE(Contains(o.output, "state       IDLE\n"));
  EXPECT_TRUE(Contains(o.output, "run         none\n"));
  EXPECT_TRUE(Contains(o.output, "allowed     configure\n"));
  const auto json = anonymous("status --json");
  EXPECT_EQ(json.exit_code, 0);
  EXPECT_TRUE(Contains(json.output, R"("state":"IDLE")"));
}

TEST_F(Na64ctlTest, RefusedStartExitsOneWithTheReason) {
  const auto o = as("shift", "start");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_EQ(o.output,
            "na64ctl: refused: start: not valid in state IDLE; valid now: configure (HTTP 409 Conflict, state IDLE)\n");
  const auto anon = anonymous("start");
  EXPECT_EQ(anon.exit_code, 1);
  EXPECT_TRUE(Contains(anon.output, "this command needs credentials (HTTP 401 Unauthorized"));
}

TEST_F(Na64ctlTest, ConfigureStartWithCommentAndStop) {
  const fs::path config = dir_.path() / "fast.textproto";
  write_file(config, fast_config());
  const auto configured = as("expert", "configure " + config.string());
  EXPECT_EQ(configured.exit_code, 0) << configured.output;
  EXPECT_TRUE(Contains(configured.output, "configured from configure request, hash "));
  EXPECT_TRUE(Contains(configured.output, "(state CONFIGURED)\n"));

  const auto started = as("shift", "start --comment 'first beam'");
  EXPECT_EQ(started.exit_code, 0) << started.output;
  EXPECT_EQ(started.output, "run 1 started (state RUNNING)\n");
  EXPECT_EQ(control_.status().comment(), "first beam");
  ASSERT_GE(wait_for([](const auto& s) { return s.spill() >= 1; }).spill(), 1u);

  const auto stopped = as("shift", "stop");
  EXPECT_EQ(stopped.exit_code, 0) << stopped.output;
  EXPECT_TRUE(Contains(stopped.output, "(state STOPPING)\n"));
  ASSERT_TRUE(control_.wait_for(na64::control::CONFIGURED, 30s));

  const auto list = anonymous("runs list");
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_TRUE(Contains(list.output, "   run  started"));
  EXPECT_TRUE(Contains(list.output, "  stopped       first beam\n"));
  const auto show = anonymous("runs show 1");
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_TRUE(Contains(show.output, "comment  first beam\n"));
  EXPECT_TRUE(Contains(show.output, "spill  set  particles"));
  EXPECT_TRUE(Contains(show.output, "    1    1       2000"));
}

TEST_F(Na64ctlTest, ThresholdsSetShowAndDiff) {
  ASSERT_EQ(configure(fast_config()).status, 200);
  const auto set = as("expert", "thresholds set ecal_max_gev=40 beam_prescale=500 --comment tighter");
  EXPECT_EQ(set.exit_code, 0) << set.output;
  EXPECT_EQ(set.output, "threshold set 2 active now (state CONFIGURED)\n");
  const auto show = anonymous("thresholds show --all");
  EXPECT_EQ(show.exit_code, 0) << show.output;
  EXPECT_TRUE(Contains(show.output, " set  use             ecal_max_gev  preshower_min_gev"));
  EXPECT_TRUE(Contains(show.output, "   2  active                    40"));
  const auto diff = anonymous("thresholds diff 1 active");
  EXPECT_EQ(diff.exit_code, 0) << diff.output;
  EXPECT_EQ(diff.output,
            "set 1 -> set 2\n"
            "ecal_max_gev       50 -> 40\n"
            "beam_prescale      1000 -> 500\n");
  const auto pending = anonymous("thresholds diff 1 pending");
  EXPECT_EQ(pending.exit_code, 1);
  EXPECT_EQ(pending.output, "na64ctl: refused: there is no pending threshold set\n");
}

TEST_F(Na64ctlTest, UsageErrorsExitTwo) {
  const auto key = as("expert", "thresholds set ecal_max=40");
  EXPECT_EQ(key.exit_code, 2) << key.output;
  EXPECT_TRUE(Contains(key.output, "na64ctl: unknown threshold key \"ecal_max\" (keys: ecal_max_gev, "));
  const auto number = as("expert", "thresholds set ecal_max_gev=4O");
  EXPECT_EQ(number.exit_code, 2);
  EXPECT_TRUE(Contains(number.output, "na64ctl: ecal_max_gev: \"4O\" is not a number\n"));
  const auto prescale = as("expert", "thresholds set beam_prescale=-1");
  EXPECT_EQ(prescale.exit_code, 2);
  EXPECT_TRUE(Contains(prescale.output, "beam_prescale: \"-1\" is not a whole number in [0, 4294967295]"));
  const auto command = anonymous("launch");
  EXPECT_EQ(command.exit_code, 2);
  EXPECT_TRUE(Contains(command.output, "na64ctl: unknown command \"launch\"\nusage: na64ctl"));
  EXPECT_EQ(anonymous("runs show x").exit_code, 2);
  EXPECT_EQ(anonymous("status extra").exit_code, 2);
  EXPECT_EQ(na64ctl("--url ftp://x status").exit_code, 2);
}

TEST(Na64ctl, NoDaemonExitsThreeWithTheUrl) {
  // A port that was free a moment ago: nothing listens there.
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address), 0);
  socklen_t len = sizeof address;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &len);
  ::close(fd);
  const std::string url = fmt::format("http://127.0.0.1:{}", ntohs(address.sin_port));
  const auto o = na64ctl("--url " + url + " status");
  EXPECT_EQ(o.exit_code, 3) << o.output;
  EXPECT_EQ(o.output, "na64ctl: cannot connect to " + url + ": Connection refused\n");
  // The same through the environment.
  const auto env = na64ctl("status", "NA64DAQ_URL=" + url);
  EXPECT_EQ(env.exit_code, 3) << env.output;
  EXPECT_EQ(env.output, o.output);
}

}  // namespace
