// SPDX-License-Identifier: Apache-2.0
// The dashboard's side of `na64daq serve` as a real process over real
// sockets: the JSON API, /metrics through promtool, alarms and their
// acknowledgement by role, a dead ECAL cell judged bad, the WebSocket, the
// dashboard's files, and the Python client of the ZeroMQ DQM stream.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "na64/daq/config.hpp"
#include "na64/testing/command.hpp"
#include "na64/testing/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
namespace json = boost::json;
namespace asio = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using namespace std::chrono_literals;
using na64::testing::run_command;
using Clock = std::chrono::steady_clock;

constexpr const char* kShiftToken = "shift-token-0123456789abcdef0123456789abcdef";
constexpr const char* kExpertToken = "expert-token-0123456789abcdef0123456789abcdef";

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

/// The embedded default with small spills `cycle_s` apart, and `extra` appended.
std::string config_text(double cycle_s, const std::string& extra = "") {
  std::string text(na64::daq::default_config_text());
  text = std::regex_replace(text, std::regex("particles_per_spill: [0-9]+"), "particles_per_spill: 2000");
  text = std::regex_replace(text, std::regex("seed: 1\n"), fmt::format("seed: 1\n  spill_cycle_s: {}\n", cycle_s));
  return text + extra;
}

struct HttpReply {
  int status = 0;  ///< 0: no reply
  std::map<std::string, std::string> headers;  ///< names in lower case
  std::string body;
  [[nodiscard]] json::value json() const {
    boost::system::error_code ec;
    auto v = json::parse(body, ec);
    return ec ? json::value(json::string("(not JSON) " + body)) : v;
  }
};

/// One request on its own connection ("Connection: close"), exactly as given.
HttpReply http(std::uint16_t port, const std::string& method, const std::string& target, const std::string& body = "",
               const std::string& token = "") {
  HttpReply r;
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const timeval timeout{20, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return r;
  }
  std::string text = fmt::format("{} {} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n", method, target);
  if (!token.empty()) text += fmt::format("Authorization: Bearer {}\r\n", token);
  if (method == "POST") text += fmt::format("Content-Type: application/json\r\nContent-Length: {}\r\n", body.size());
  text += "\r\n" + body;
  (void)::send(fd, text.data(), text.size(), MSG_NOSIGNAL);
  std::string in;
  char buf[65536];
  for (ssize_t n; (n = ::recv(fd, buf, sizeof buf, 0)) > 0;) in.append(buf, static_cast<std::size_t>(n));
  ::close(fd);
  const auto end = in.find("\r\n\r\n");
  if (end == std::string::npos || in.size() < 12) return r;
  r.status = std::stoi(in.substr(9, 3));
  std::size_t pos = in.find("\r\n");
  while (pos < end) {
    const std::size_t next = in.find("\r\n", pos + 2);
    const std::string line = in.substr(pos + 2, next - pos - 2);
    const auto colon = line.find(':');
    if (colon != std::string::npos) {
      std::string name = line.substr(0, colon);
      for (auto& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      r.headers[name] = line.substr(line.find_first_not_of(' ', colon + 1));
    }
    pos = next;
  }
  r.body = in.substr(end + 4);
  return r;
}

std::string str(const json::value& v) { return v.is_string() ? std::string(v.as_string()) : json::serialize(v); }

/// `na64daq serve` in a temporary directory, with tokens, a web directory and
/// the DQM stream on; restartable on the same database.
class Serve {
 public:
  explicit Serve(std::string config) {
    std::ofstream(path("tokens")) << "shift " << kShiftToken << "\nexpert " << kExpertToken << "\n";
    ::chmod(path("tokens").c_str(), 0600);
    std::ofstream(path("config.textproto")) << config;
    fs::create_directories(dir_.path() / "web");
  }
  ~Serve() { stop(); }

  [[nodiscard]] std::string path(const std::string& name) const { return (dir_.path() / name).string(); }
  [[nodiscard]] std::uint16_t port() const { return port_; }
  [[nodiscard]] const std::string& dqm_endpoint() const { return dqm_; }
  [[nodiscard]] std::string log() const { return read_file(log_); }

  void start(const std::string& extra = "") {
    log_ = path(fmt::format("serve-{}.log", ++starts_));
    const std::string cmd = fmt::format(
        "exec {} serve --http 127.0.0.1:0 --tokens {} --db {} --output {} --config {} --configure --web {} "
        "--dqm-pub tcp://127.0.0.1:* {} > {} 2>&1",
        NA64DAQ_PATH, path("tokens"), path("runs.sqlite"), path("data"), path("config.textproto"), path("web"), extra,
        log_);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    const std::regex http_line("http://127.0.0.1:([0-9]+)/");
    const std::regex dqm_line("dqm publisher (tcp://[^ \n]+)");
    for (int i = 0; i < 1000; ++i) {
      const std::string out = log();
      std::smatch h;
      std::smatch d;
      if (std::regex_search(out, h, http_line) && std::regex_search(out, d, dqm_line)) {
        port_ = static_cast<std::uint16_t>(std::stoi(h[1]));
        dqm_ = d[1];
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "the daemon did not come up: " << log();
  }

  /// Stops the daemon; a sanitizer's report in its log fails the test (the
  /// daemon is built like the test, with the same sanitizers).
  void stop() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    const std::string out = log();
    for (const char* report : {"WARNING: ThreadSanitizer", "ERROR: AddressSanitizer", "runtime error:"}) {
      EXPECT_EQ(out.find(report), std::string::npos) << "the daemon's log " << log_ << ":\n" << out;
    }
  }

  [[nodiscard]] json::object status() const { return http(port_, "GET", "/api/status").json().as_object(); }

  void command(const std::string& what) const {
    const auto r = http(port_, "POST", "/api/" + what, "", kShiftToken);
    ASSERT_EQ(r.status, 200) << what << ": " << r.body;
  }

  /// Waits until spill `spill` has reached disk.
  void wait_spill(std::uint32_t spill) const {
    for (int i = 0; i < 600; ++i) {
      if (status().at("spill").to_number<std::uint32_t>() >= spill) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "spill " << spill << " never came: " << log();
  }

  void wait_state(const std::string& state) const {
    for (int i = 0; i < 600; ++i) {
      if (str(status().at("state")) == state) return;
      std::this_thread::sleep_for(50ms);
    }
    FAIL() << "state " << state << " never came: " << log();
  }

 private:
  na64::testing::TempDir dir_;
  pid_t pid_ = -1;
  int starts_ = 0;
  std::string log_;
  std::uint16_t port_ = 0;
  std::string dqm_;
};

/// First column of the first row, through a read-only connection of the test's own.
std::string query(const std::string& file, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string out = "(error)";
  if (::sqlite3_open_v2(file.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* s = nullptr;
    if (::sqlite3_prepare_v2(db, sql.c_str(), -1, &s, nullptr) == SQLITE_OK) {
      const int rc = ::sqlite3_step(s);
      if (rc == SQLITE_ROW) {
        const auto* text = ::sqlite3_column_text(s, 0);
        out = text != nullptr ? reinterpret_cast<const char*>(text) : "(null)";
      } else if (rc == SQLITE_DONE) {
        out = "(no row)";
      }
    }
    ::sqlite3_finalize(s);
  }
  ::sqlite3_close_v2(db);
  return out;
}

std::set<std::string> keys(const json::object& o) {
  std::set<std::string> k;
  for (const auto& [name, v] : o) k.emplace(name);
  return k;
}

TEST(Dashboard, MetricsPassPromtoolDuringARun) {
  const auto which = run_command("command -v promtool");
  ASSERT_EQ(which.exit_code, 0) << "promtool is not installed: install the Debian package prometheus "
                                   "(scripts/setup.sh does)";
  Serve d(config_text(0.2));
  d.start();
  d.command("start");
  d.wait_spill(2);
  const auto r = http(d.port(), "GET", "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.at("content-type"), "text/plain; version=0.0.4; charset=utf-8");
  std::ofstream(d.path("metrics.txt")) << r.body;
  const auto check = run_command(fmt::format("promtool check metrics < {}", d.path("metrics.txt")));
  EXPECT_EQ(check.exit_code, 0) << check.output << "\n" << r.body;
  EXPECT_EQ(check.output, "");
  for (const char* line : {"\nna64_run_state{state=\"RUNNING\"} 1\n", "\nna64_run_state{state=\"IDLE\"} 0\n",
                           "\nna64_run_number 1\n", "\nna64_beam_on 1\n", "\nna64_alarms_unacknowledged 0\n",
                           "\nna64_source_lost_spills_total{source=\"621\"} 0\n",
                           "\n# TYPE na64_particles_total counter\n",
                           "\n# TYPE na64_trigger_accepted_events_total counter\n", "\nna64_decode_errors_total 0\n",
                           "\n# TYPE na64_disk_free_bytes gauge\n", "\nna64_disk_limit_bytes 1073741824\n"}) {
    EXPECT_NE(r.body.find(line), std::string::npos) << line << " is not in:\n" << r.body;
  }
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.body, m, std::regex("\nna64_spills_total ([0-9]+)\n")));
  const auto spills = std::stoul(m[1]);
  EXPECT_GE(spills, 2u);
  ASSERT_TRUE(std::regex_search(r.body, m, std::regex("\nna64_particles_total ([0-9]+)\n")));
  EXPECT_EQ(std::stoul(m[1]), spills * 2000);
  d.command("stop");
}

TEST(Dashboard, TheJsonApiDuringARun) {
  Serve d(config_text(0.3));
  d.start();
  // Before any run: clear answers, not crashes.
  EXPECT_EQ(http(d.port(), "GET", "/api/spills").body, "[]\n");
  // What does not exist yet is null, not an error.
  auto r = http(d.port(), "GET", "/api/event");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "null\n");
  for (const char* target : {"/api/dqm/hist/ecal_energy", "/api/dqm/hist/ecal_energy?run",
                             "/api/dqm/reference/ecal_energy"}) {
    r = http(d.port(), "GET", target);
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_EQ(r.body, "null\n") << target;
  }
  r = http(d.port(), "GET", "/api/dqm/hist/nope");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(str(r.json().at("message")), "no histogram named \"nope\" (see /api/dqm/list)");

  d.command("start");
  d.wait_spill(3);
  const json::object st = d.status();
  EXPECT_EQ(str(st.at("state")), "RUNNING");
  EXPECT_EQ(st.at("run"), 1);
  EXPECT_GE(st.at("spill").to_number<int>(), 3);
  EXPECT_EQ(st.at("beam_on"), true);
  EXPECT_GT(st.at("disk_free_bytes").to_number<double>(), 0);
  EXPECT_EQ(json::serialize(st.at("valid_commands")), R"(["stop","pause","comment"])");
  EXPECT_EQ(json::serialize(st.at("sources")),
            R"([{"id":620,"kind":"msadc","state":"ok"},{"id":621,"kind":"msadc","state":"ok"},)"
            R"({"id":622,"kind":"msadc","state":"ok"},{"id":400,"kind":"tracker","state":"ok"},)"
            R"({"id":401,"kind":"tracker","state":"ok"},{"id":402,"kind":"tracker","state":"ok"}])");
  EXPECT_EQ(st.at("alarms_unacknowledged"), 0);
  EXPECT_EQ(json::serialize(st.at("reference")), R"({"origin":"run 1 spills 1, 2","complete":true})");
  EXPECT_EQ(str(st.at("status").at("state")), "RUNNING") << "the control Reply as before";

  r = http(d.port(), "GET", "/api/spills?last=2");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto last = r.json().as_array();
  ASSERT_EQ(last.size(), 2u);
  EXPECT_EQ(last[1].at("spill").to_number<int>(), last[0].at("spill").to_number<int>() + 1);
  for (const auto& s : last) {
    EXPECT_EQ(keys(s.as_object()),
              (std::set<std::string>{"run", "spill", "particles", "built", "incomplete", "accepted", "accepted_events",
                                     "written", "bytes", "decode_errors", "seconds", "dead_time", "threshold_set",
                                     "shadow_set", "shadow_accepted", "shadow_overlap", "verdict", "reasons"}));
    EXPECT_EQ(s.at("run"), 1);
    EXPECT_EQ(s.at("particles"), 2000);
    EXPECT_EQ(s.at("incomplete"), 0);
    EXPECT_EQ(keys(s.at("accepted").as_object()), (std::set<std::string>{"invisible", "beam", "random"}));
    EXPECT_EQ(s.at("threshold_set"), 1);
    EXPECT_EQ(s.at("shadow_set"), 0);
  }
  const auto all = http(d.port(), "GET", "/api/spills").json().as_array();
  ASSERT_GE(all.size(), 3u);
  EXPECT_EQ(all[0].at("spill"), 1);
  EXPECT_EQ(str(all[0].at("verdict")), "good");
  EXPECT_EQ(json::serialize(all[0].at("reasons")),
            R"j(["no reference yet: the spill starts the run's reference (1 of 2)"])j");
  EXPECT_EQ(str(all[2].at("verdict")), "good") << json::serialize(all[2]);

  const auto names = http(d.port(), "GET", "/api/dqm/list").json().as_array();
  ASSERT_EQ(names.size(), 23u);
  EXPECT_EQ(str(names[0]), "ecal_energy");
  EXPECT_EQ(str(names[22]), "ecal1_occupancy");
  // 2000 complete events a spill, one in 4 filled.
  auto h = http(d.port(), "GET", "/api/dqm/hist/ecal_energy?spill=1").json();
  EXPECT_EQ(str(h.at("_typename")), "TH1D");
  EXPECT_EQ(str(h.at("fName")), "ecal_energy");
  EXPECT_EQ(h.at("fEntries").to_number<double>(), 500);
  h = http(d.port(), "GET", "/api/dqm/hist/ecal_energy").json();
  EXPECT_EQ(h.at("fEntries").to_number<double>(), 500) << "the last spill";
  h = http(d.port(), "GET", "/api/dqm/hist/ecal_energy?spill=run").json();
  EXPECT_GE(h.at("fEntries").to_number<double>(), 1500);
  EXPECT_GE(http(d.port(), "GET", "/api/dqm/hist/ecal_energy?run").json().at("fEntries").to_number<double>(),
            h.at("fEntries").to_number<double>())
      << "?run is ?spill=run";
  h = http(d.port(), "GET", "/api/dqm/reference/ecal_energy").json();
  EXPECT_EQ(h.at("fEntries").to_number<double>(), 1000) << "spills 1 and 2";
  h = http(d.port(), "GET", "/api/dqm/hist/ecal1_energy_map").json();
  EXPECT_EQ(str(h.at("_typename")), "TH2D");

  r = http(d.port(), "GET", "/api/event");
  ASSERT_EQ(r.status, 200) << r.body;
  const auto e = r.json().as_object();
  EXPECT_EQ(keys(e), (std::set<std::string>{"run", "spill", "event", "particle", "trigger_mask", "serial", "cells",
                                            "waveforms"}));
  EXPECT_EQ(e.at("run"), 1);
  EXPECT_NE(e.at("trigger_mask"), 0) << "a written event fired a line";
  ASSERT_EQ(e.at("cells").as_array().size(), 120u);
  ASSERT_EQ(e.at("waveforms").as_array().size(), 120u);
  double ecal = 0;
  for (const auto& c : e.at("cells").as_array()) {
    EXPECT_EQ(keys(c.as_object()), (std::set<std::string>{"detector", "x", "y", "energy_gev"}));
    const std::string det = str(c.at("detector"));
    if (det == "ECAL0" || det == "ECAL1") ecal += c.at("energy_gev").to_number<double>();
  }
  EXPECT_GT(ecal, 0);
  EXPECT_EQ(str(e.at("waveforms").at(37).at("detector")), "ECAL1");
  EXPECT_EQ(e.at("waveforms").at(37).at("x"), 1);
  EXPECT_EQ(e.at("waveforms").at(37).at("samples").as_array().size(), 32u);

  // Bad requests: the status, the reason, counted.
  const auto refused = [&](const std::string& target, int status, const std::string& message) {
    const auto b = http(d.port(), "GET", target);
    EXPECT_EQ(b.status, status) << target << ": " << b.body;
    EXPECT_EQ(str(b.json().at("message")), message) << target;
  };
  refused("/api/dqm/hist/nope", 404, "no histogram named \"nope\" (see /api/dqm/list)");
  refused("/api/dqm/hist/ecal_energy?spill=abc", 400,
          "query parameter spill: \"abc\" is neither a spill number in [1, 2047] nor run");
  r = http(d.port(), "GET", "/api/dqm/hist/ecal_energy?spill=2000");
  EXPECT_EQ(r.status, 404);
  EXPECT_TRUE(std::regex_match(str(r.json().at("message")),
                               std::regex("spill 2000 of run 1 is not held; the last [0-9]+ spills are \\([0-9]+ to "
                                          "[0-9]+\\)")))
      << r.body;
  refused("/api/spills?last=x", 400, "query parameter last: \"x\" is not a whole number in [1, 2047]");
  refused("/api/spills?x=1", 400, "query: unknown parameter x");
  refused("/api/alarms?last=2&last=3", 400, "query: parameter last given twice");
  const std::string metrics = http(d.port(), "GET", "/metrics").body;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(metrics, m, std::regex("\nna64_http_replies_total\\{status=\"400\"\\} ([0-9]+)\n")));
  EXPECT_GE(std::stoi(m[1]), 4);
  d.command("stop");
}

TEST(Dashboard, ADeadEcalCellIsJudgedBadStoredAndAlarmedUntilAcknowledged) {
  Serve d(config_text(0.3, "emulator { dead_cell { detector: \"ECAL1\" x: 3 y: 4 from_spill: 2 } }\n"));
  d.start();
  d.command("start");
  d.wait_spill(3);
  d.command("stop");
  d.wait_state("CONFIGURED");

  const auto spills = http(d.port(), "GET", "/api/spills").json().as_array();
  ASSERT_GE(spills.size(), 3u);
  EXPECT_EQ(str(spills[0].at("verdict")), "good");
  const std::regex dead("ECAL1 cell \\(3,4\\) dead: 0 hits, [0-9]+ expected");
  for (std::size_t i = 1; i < spills.size(); ++i) {
    EXPECT_EQ(str(spills[i].at("verdict")), "bad") << json::serialize(spills[i]);
    ASSERT_EQ(spills[i].at("reasons").as_array().size(), 1u) << json::serialize(spills[i]);
    EXPECT_TRUE(std::regex_match(str(spills[i].at("reasons").at(0)), dead)) << json::serialize(spills[i]);
  }
  // Stored with the spill in the run database.
  EXPECT_EQ(query(d.path("runs.sqlite"), "SELECT verdict FROM spills WHERE run = 1 AND spill = 2"), "bad");
  EXPECT_EQ(query(d.path("runs.sqlite"), "SELECT verdict_reasons FROM spills WHERE run = 1 AND spill = 2"),
            str(spills[1].at("reasons").at(0)));
  EXPECT_EQ(query(d.path("runs.sqlite"), "SELECT verdict FROM spills WHERE run = 1 AND spill = 1"), "good");

  const auto expect_open = [&] {
    const auto alarms = http(d.port(), "GET", "/api/alarms").json().as_array();
    ASSERT_EQ(alarms.size(), 1u) << json::serialize(alarms);
    const auto& a = alarms[0];
    EXPECT_EQ(keys(a.as_object()),
              (std::set<std::string>{"id", "level", "text", "run", "first_spill", "last_spill", "raised_at", "last_at",
                                     "acknowledged", "acknowledged_by", "acknowledged_at"}));
    EXPECT_EQ(a.at("id"), 1);
    EXPECT_EQ(str(a.at("level")), "error");
    EXPECT_EQ(str(a.at("text")), "run 1 spill 2: verdict bad: " + str(spills[1].at("reasons").at(0)));
    EXPECT_EQ(a.at("first_spill"), 2);
    EXPECT_EQ(a.at("last_spill"), spills.back().at("spill"));
    EXPECT_EQ(a.at("acknowledged"), false);
    EXPECT_EQ(str(a.at("acknowledged_by")), "");
    EXPECT_TRUE(a.at("acknowledged_at").is_null());
    EXPECT_EQ(d.status().at("alarms_unacknowledged"), 1);
  };
  expect_open();
  std::this_thread::sleep_for(1500ms);
  expect_open();
  // It outlives the daemon.
  d.stop();
  d.start();
  expect_open();

  // The shift crew's command line sees it, and cannot acknowledge it without its token.
  const std::string ctl = fmt::format("{} --url http://127.0.0.1:{} ", NA64CTL_PATH, d.port());
  auto listed = na64::testing::run_command(ctl + "alarms");
  EXPECT_EQ(listed.exit_code, 0) << listed.output;
  EXPECT_TRUE(std::regex_search(listed.output, std::regex("\\n   1  error  +[0-9-]+  [0-9: -]+  no  +run 1 spill 2: verdict bad: "
                                                          "ECAL1 cell \\(3,4\\) dead")))
      << listed.output;
  const auto refused = na64::testing::run_command(ctl + "ack 1");
  EXPECT_EQ(refused.exit_code, 1) << refused.output;

  EXPECT_EQ(http(d.port(), "POST", "/api/alarms/1/ack").status, 401);
  EXPECT_EQ(http(d.port(), "POST", "/api/alarms/1/ack", "", kExpertToken).status, 403);
  auto r = http(d.port(), "POST", "/api/alarms/1/ack", "", kShiftToken);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(str(r.json().at("message")), "alarm 1 acknowledged");
  EXPECT_EQ(str(r.json().at("alarms").at(0).at("acknowledgedBy")), "shift");
  r = http(d.port(), "POST", "/api/alarms/1/ack", "", kShiftToken);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(str(r.json().at("message")), "alarm 1 was already acknowledged by shift");
  r = http(d.port(), "POST", "/api/alarms/99/ack", "", kShiftToken);
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(str(r.json().at("message")), "there is no unacknowledged alarm 99");
  r = http(d.port(), "POST", "/api/alarms/abc/ack", "", kShiftToken);
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(str(r.json().at("message")), "alarm id: \"abc\" is not a whole number in [1, 4294967295]");

  std::ofstream(d.path("shift.token")) << kShiftToken << "\n";
  const auto again = na64::testing::run_command(ctl + "--token-file " + d.path("shift.token") + " ack 1");
  EXPECT_EQ(again.exit_code, 0) << again.output;
  EXPECT_NE(again.output.find("alarm 1 was already acknowledged by shift"), std::string::npos) << again.output;
  listed = na64::testing::run_command(ctl + "alarms");
  EXPECT_NE(listed.output.find("  shift "), std::string::npos) << listed.output;

  const auto alarms = http(d.port(), "GET", "/api/alarms").json().as_array();
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0].at("acknowledged"), true);
  EXPECT_EQ(str(alarms[0].at("acknowledged_by")), "shift");
  EXPECT_GT(alarms[0].at("acknowledged_at").to_number<double>(), 0);
  EXPECT_EQ(d.status().at("alarms_unacknowledged"), 0);
  EXPECT_EQ(query(d.path("runs.sqlite"), "SELECT acknowledged_by FROM alarms WHERE id = 1"), "shift");
  EXPECT_NE(read_file(d.path("serve-1.log"))
                .find("na64daq: alarm 1 (error) raised: run 1 spill 2: verdict bad: ECAL1 cell (3,4) dead: 0 hits, "),
            std::string::npos)
      << read_file(d.path("serve-1.log"));
  EXPECT_NE(d.log().find("na64daq: alarm 1 acknowledged by shift: run 1 spill 2: verdict bad: ECAL1 cell (3,4)"),
            std::string::npos)
      << d.log();
}

/// A WebSocket client of /ws on 127.0.0.1.
class LiveClient {
 public:
  explicit LiveClient(std::uint16_t port) {
    const asio::ip::tcp::endpoint at(asio::ip::make_address("127.0.0.1"), port);
    beast::get_lowest_layer(ws_).connect(at);
    ws_.handshake("127.0.0.1", "/ws");
  }

  /// The next message as JSON, or nullopt after `timeout`.
  std::optional<json::object> next(std::chrono::milliseconds timeout) {
    buffer_.clear();
    bool done = false;
    beast::error_code ec;
    ws_.async_read(buffer_, [&](beast::error_code e, std::size_t) {
      ec = e;
      done = true;
    });
    io_.restart();
    io_.run_for(timeout);
    if (!done) {
      beast::get_lowest_layer(ws_).cancel();
      io_.restart();
      io_.run();
      return std::nullopt;
    }
    if (ec) return std::nullopt;
    return json::parse(beast::buffers_to_string(buffer_.data())).as_object();
  }

 private:
  asio::io_context io_;
  websocket::stream<beast::tcp_stream> ws_{io_};
  beast::flat_buffer buffer_;
};

TEST(Dashboard, TheWebSocketPushesTheStatusEverySecondAndEverySpill) {
  Serve d(config_text(0.4));
  d.start();
  LiveClient live(d.port());
  const auto first = live.next(1000ms);
  ASSERT_TRUE(first) << "no status within 1 s of connecting";
  EXPECT_EQ(str(first->at("type")), "status");
  EXPECT_EQ(str(first->at("state")), "CONFIGURED");
  EXPECT_EQ(json::serialize(first->at("valid_commands")), R"(["configure","start","reset"])");

  d.command("start");
  const auto started = Clock::now();
  std::optional<Clock::duration> running_after;
  std::vector<int> spills;
  std::vector<Clock::time_point> statuses;
  // At least 3 spills and 3 s: statuses come at least every second besides.
  while ((spills.size() < 3 || Clock::now() - started < 3s) && Clock::now() - started < 30s) {
    const auto m = live.next(2000ms);
    ASSERT_TRUE(m) << "no message for 2 s";
    const std::string type = str(m->at("type"));
    if (type == "status") {
      statuses.push_back(Clock::now());
      if (!running_after && str(m->at("state")) == "RUNNING") running_after = Clock::now() - started;
    } else if (type == "spill") {
      spills.push_back(m->at("spill").to_number<int>());
      EXPECT_TRUE(m->contains("verdict"));
      EXPECT_EQ(m->at("particles"), 2000);
    }
  }
  ASSERT_TRUE(running_after);
  EXPECT_LT(*running_after, 1s);
  ASSERT_GE(spills.size(), 3u);
  for (std::size_t i = 0; i < spills.size(); ++i) EXPECT_EQ(spills[i], static_cast<int>(i) + 1) << "each spill once, in order";
  ASSERT_GE(statuses.size(), 3u);
  for (std::size_t i = 1; i < statuses.size(); ++i) EXPECT_LT(statuses[i] - statuses[i - 1], 1500ms);

  // A second page gets its status at once, too.
  LiveClient second(d.port());
  const auto hello = second.next(1000ms);
  ASSERT_TRUE(hello);
  EXPECT_EQ(str(hello->at("state")), "RUNNING");
  d.command("stop");
}

TEST(Dashboard, TheFilesWithTheirTypesAndNoWayOut) {
  Serve d(config_text(0));
  const fs::path web = d.path("web");
  std::ofstream(web / "index.html") << "<!doctype html><title>NA64</title>";
  std::ofstream(web / "app.js") << "console.log('na64');";
  std::ofstream(web / "style.css") << "body { color: black; }";
  std::ofstream(web / "data.json") << "{}";
  std::ofstream(web / "icon.svg") << "<svg/>";
  fs::create_directories(web / "sub");
  std::ofstream(web / "sub" / "index.html") << "<p>sub</p>";
  std::ofstream(d.path("secret.txt")) << "the shift token";
  fs::create_symlink(d.path("secret.txt"), web / "link.txt");
  d.start();

  const auto served = [&](const std::string& target, const std::string& type, const std::string& body) {
    const auto r = http(d.port(), "GET", target);
    EXPECT_EQ(r.status, 200) << target;
    EXPECT_EQ(r.headers.count("content-type") != 0 ? r.headers.at("content-type") : "(none)", type) << target;
    EXPECT_EQ(r.body, body) << target;
  };
  served("/", "text/html; charset=utf-8", "<!doctype html><title>NA64</title>");
  served("/index.html", "text/html; charset=utf-8", "<!doctype html><title>NA64</title>");
  served("/app.js?v=3", "text/javascript; charset=utf-8", "console.log('na64');");
  served("/style.css", "text/css; charset=utf-8", "body { color: black; }");
  served("/data.json", "application/json", "{}");
  served("/icon.svg", "image/svg+xml", "<svg/>");
  served("/sub/", "text/html; charset=utf-8", "<p>sub</p>");
  served("/%73tyle.css", "text/css; charset=utf-8", "body { color: black; }");

  for (const char* target : {"/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E%2Fsecret.txt",
                             "/sub/..%2f..%2fsecret.txt", "/link.txt", "/missing.html", "/sub", "/%zz", "/a%00b"}) {
    const auto r = http(d.port(), "GET", target);
    EXPECT_EQ(r.status, 404) << target << ": " << r.body;
    EXPECT_EQ(r.body.find("shift token"), std::string::npos) << target;
  }
  EXPECT_EQ(http(d.port(), "GET", "/api/nothing").status, 404) << "the API's paths are not files";
}

TEST(Dashboard, ThePythonClientPrintsSpillSummariesAndEvents) {
  const std::string python = NA64_PYTHON3;
  ASSERT_EQ(run_command(python + " -c 'import zmq, google.protobuf'").exit_code, 0)
      << "Debian's python3-zmq and python3-protobuf are needed (" << python
      << "); scripts/setup.sh installs them";
  Serve d(config_text(0.3));
  d.start();
  d.command("start");
  d.wait_spill(1);
  const std::string client = fmt::format("PYTHONPATH={} {} {} {}", NA64_PYTHON_DIR, python, NA64_DQM_CLIENT,
                                         d.dqm_endpoint());
  auto o = run_command(client + " --topic spill --count 2 --timeout 30");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  const std::regex spill_line(
      "spill run 1 spill ([0-9]+): particles 2000 built 2000 incomplete 0 \\| accepted invisible [0-9]+ beam [0-9]+ "
      "random [0-9]+ \\| written [0-9]+ [0-9.]+ MB \\| dead time [0-9.]+ % \\| verdict good\n");
  std::smatch m;
  EXPECT_TRUE(std::regex_search(o.output, m, spill_line)) << o.output;
  o = run_command(client + " --topic event --count 1 --timeout 30");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_TRUE(std::regex_search(
      o.output, std::regex("^event run 1 spill [0-9]+ event [0-9]+ particle [0-9]+ trigger mask 0x[0-7]: ECAL "
                           "[0-9.]+ GeV, HCAL [0-9.]+ GeV, 120 cells, [0-9]+ bytes of DATE event\n$")))
      << o.output;
  // Without a run nothing comes: the client says so and fails.
  d.command("stop");
  d.wait_state("CONFIGURED");
  std::this_thread::sleep_for(200ms);  // the publisher sends what it had queued
  o = run_command(fmt::format("PYTHONPATH={} {} {} {} --timeout 1", NA64_PYTHON_DIR, python, NA64_DQM_CLIENT,
                              d.dqm_endpoint()));
  EXPECT_EQ(o.exit_code, 1);
  EXPECT_EQ(o.output, "dqm_client: nothing received for 1.0 s\n");
}

}  // namespace
