// SPDX-License-Identifier: Apache-2.0
// `na64daq serve` as a real process, driven over real sockets: ZeroMQ with
// CURVE (a cppzmq client) and HTTP (the na64ctl binary).
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>
#include <zmq.hpp>

#include "control.pb.h"
#include "na64/daq/run_db.hpp"
#include "na64/testing/command.hpp"
#include "na64/testing/temp_dir.hpp"

namespace na64::daq {
namespace {

using namespace std::chrono_literals;
namespace json = boost::json;

using testing::Outcome;
using testing::run_command;

std::string read_file(const std::filesystem::path& p) {
  std::ifstream in(p);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string public_key(const std::filesystem::path& pub) {
  const std::string text = read_file(pub);
  std::smatch m;
  const std::regex key("public ([^\\s]{40})");
  if (!std::regex_search(text, m, key)) return {};
  return m[1];
}

std::string secret_key(const std::filesystem::path& key) {
  const std::string text = read_file(key);
  std::smatch m;
  const std::regex secret("secret ([^\\s]{40})");
  if (!std::regex_search(text, m, secret)) return {};
  return m[1];
}

/// Keys, tokens and a daemon process in a temporary directory.
class Daemon {
 public:
  Daemon() {
    for (const char* name : {"server", "shift", "expert", "viewer", "stranger"}) {
      const auto o = run_command(fmt::format("{} keygen {} {}", NA64DAQ_PATH, dir_.path().string(), name));
      EXPECT_EQ(o.exit_code, 0) << o.output;
    }
    std::ofstream(dir_.path() / "clients") << "# role key name\n"
                                           << "shift " << public_key(dir_.path() / "shift.pub") << " shift crew\n"
                                           << "expert " << public_key(dir_.path() / "expert.pub") << " trigger expert\n"
                                           << "viewer " << public_key(dir_.path() / "viewer.pub") << " dqm\n";
    std::ofstream(path("tokens")) << "shift " << kShiftToken << "\nexpert " << kExpertToken << "\n";
    ::chmod(path("tokens").c_str(), 0600);
    std::ofstream(path("shift.token")) << kShiftToken << "\n";
    std::ofstream(path("expert.token")) << kExpertToken << "\n";
  }
  ~Daemon() { kill(SIGTERM); }

  std::string path(const std::string& name) const { return (dir_.path() / name).string(); }

  void start(const std::string& extra = "") {
    const std::string log = path(fmt::format("serve-{}.log", ++starts_));
    const std::string cmd = fmt::format(
        "exec {} serve --http 127.0.0.1:0 --tokens {} --zmq tcp://127.0.0.1:* --pub tcp://127.0.0.1:* "
        "--server-key {} --clients {} --db {} --output {} {} > {} 2>&1",
        NA64DAQ_PATH, path("tokens"), path("server.key"), path("clients"), path("runs.sqlite"), path("data"), extra,
        log);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
      ::_exit(127);
    }
    std::smatch m;
    for (int i = 0; i < 1000; ++i) {
      const std::string out = read_file(log);
      const std::regex http("http://127.0.0.1:([0-9]+)/");
      const std::regex zmq("zmq control (tcp://[^ ]+) publisher (tcp://[^ \n]+)");
      std::smatch h;
      std::smatch z;
      if (std::regex_search(out, h, http) && std::regex_search(out, z, zmq)) {
        url_ = fmt::format("http://127.0.0.1:{}", h[1].str());
        control_ = z[1];
        publish_ = z[2];
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    FAIL() << "the daemon did not come up: " << read_file(log);
  }
  void kill(int sig) {
    if (pid_ <= 0) return;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    exit_status_ = status;
    pid_ = -1;
  }
  [[nodiscard]] int exit_status() const { return exit_status_; }

  Outcome ctl(const std::string& args, const std::string& token = "") const {
    const std::string auth = token.empty() ? "" : " --token-file " + path(token + ".token");
    return run_command(fmt::format("{} --url {}{} {}", NA64CTL_PATH, url_, auth, args));
  }
  json::value ctl_json(const std::string& args, const std::string& token = "") const {
    const auto o = ctl("--json " + args, token);
    EXPECT_EQ(o.exit_code, 0) << o.output;
    boost::system::error_code ec;
    auto v = json::parse(o.output, ec);
    EXPECT_FALSE(ec) << o.output;
    return v;
  }
  std::string state() const {
    const auto v = ctl_json("status");
    return json::value_to<std::string>(v.at("status").at("state"));
  }
  bool wait_state(const std::string& want, std::chrono::milliseconds timeout = 30s) const {
    for (auto t0 = std::chrono::steady_clock::now(); std::chrono::steady_clock::now() - t0 < timeout;) {
      if (state() == want) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }

  /// A CURVE client socket with `who`'s keys.
  zmq::socket_t client(zmq::context_t& ctx, const std::string& who, zmq::socket_type type) const {
    zmq::socket_t s(ctx, type);
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::rcvtimeo, 5000);
    s.set(zmq::sockopt::curve_serverkey, public_key(dir_.path() / "server.pub"));
    s.set(zmq::sockopt::curve_publickey, public_key(dir_.path() / (who + ".pub")));
    s.set(zmq::sockopt::curve_secretkey, secret_key(dir_.path() / (who + ".key")));
    s.connect(type == zmq::socket_type::sub ? publish_ : control_);
    return s;
  }

  static constexpr const char* kShiftToken = "shift-token-0123456789abcdef0123456789abcdef";
  static constexpr const char* kExpertToken = "expert-token-0123456789abcdef0123456789abcdef";

 private:
  testing::TempDir dir_;
  pid_t pid_ = -1;
  int starts_ = 0;
  int exit_status_ = -1;
  std::string url_;
  std::string control_;
  std::string publish_;
};

std::optional<control::Reply> request(zmq::socket_t& s, const control::Request& r) {
  s.send(zmq::buffer(r.SerializeAsString()), zmq::send_flags::none);
  zmq::message_t m;
  if (!s.recv(m)) return std::nullopt;
  control::Reply reply;
  if (!reply.ParseFromArray(m.data(), static_cast<int>(m.size()))) return std::nullopt;
  return reply;
}

TEST(Serve, AWholeRunOverZeroMqAndHttp) {
  Daemon d;
  d.start();
  zmq::context_t ctx;
  auto shift = d.client(ctx, "shift", zmq::socket_type::req);
  auto expert = d.client(ctx, "expert", zmq::socket_type::req);
  auto sub = d.client(ctx, "viewer", zmq::socket_type::sub);
  sub.set(zmq::sockopt::subscribe, "");

  // Configure over ZeroMQ (expert), from the embedded default with faster spills.
  std::string text = run_command(fmt::format("{} default-config", NA64DAQ_PATH)).output;
  text = std::regex_replace(text, std::regex("particles_per_spill: [0-9]+"), "particles_per_spill: 2000");
  control::Request configure;
  configure.mutable_configure()->set_config_text(text);
  auto r = request(shift, configure);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code(), control::FORBIDDEN) << r->message();
  r = request(expert, configure);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->code(), control::OK) << r->message();
  EXPECT_EQ(r->status().state(), control::CONFIGURED);

  // Start over HTTP with na64ctl: no token 401, the expert's 403, the shift's works.
  auto o = d.ctl("start --comment 'first beam'");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_NE(o.output.find("401"), std::string::npos) << o.output;
  o = d.ctl("start --comment 'first beam'", "expert");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_NE(o.output.find("403"), std::string::npos) << o.output;
  o = d.ctl("start --comment 'first beam'", "shift");
  ASSERT_EQ(o.exit_code, 0) << o.output;
  o = d.ctl("start", "shift");
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_NE(o.output.find("409"), std::string::npos) << o.output;

  // Spill events arrive on the publisher.
  std::set<std::uint32_t> spills;
  for (int i = 0; i < 200 && spills.size() < 3; ++i) {
    zmq::message_t topic;
    zmq::message_t body;
    ASSERT_TRUE(sub.recv(topic));
    ASSERT_TRUE(sub.recv(body));
    control::Event e;
    ASSERT_TRUE(e.ParseFromArray(body.data(), static_cast<int>(body.size())));
    if (topic.to_string() == "spill") spills.insert(e.spill().spill());
  }
  EXPECT_EQ(spills.size(), 3u);

  // A threshold change over HTTP (expert), in force from a spill boundary.
  o = d.ctl("thresholds set ecal_max_gev=40 --comment 'tighter ECAL'", "expert");
  ASSERT_EQ(o.exit_code, 0) << o.output;
  std::uint32_t new_set = 0;
  for (int i = 0; i < 100 && new_set == 0; ++i) {
    const auto t = d.ctl_json("thresholds show");
    const auto& ts = t.at("thresholds");
    if (json::value_to<std::uint32_t>(ts.at("pendingId")) == 0) new_set = json::value_to<std::uint32_t>(ts.at("activeId"));
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_GT(new_set, 1u);

  // Pause and resume over ZeroMQ (shift).
  control::Request pause;
  pause.mutable_pause();
  r = request(shift, pause);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->code(), control::OK) << r->message();
  // The spill in progress reaches disk, then no spill begins until resume.
  json::value held;
  for (int i = 0; i < 300; ++i) {
    held = d.ctl_json("status").at("status");
    if (held.at("spill") == held.at("spillsBegun")) break;
    std::this_thread::sleep_for(20ms);
  }
  ASSERT_EQ(held.at("spill"), held.at("spillsBegun"));
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(d.ctl_json("status").at("status").at("spillsBegun"), held.at("spillsBegun")) << "a spill began while paused";
  control::Request resume;
  resume.mutable_resume();
  r = request(shift, resume);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->code(), control::OK) << r->message();
  EXPECT_EQ(r->status().state(), control::RUNNING);
  std::this_thread::sleep_for(200ms);

  // Stop over ZeroMQ; the run ends whole and is in the database.
  control::Request stop;
  stop.mutable_stop();
  r = request(shift, stop);
  ASSERT_TRUE(r);
  ASSERT_EQ(r->code(), control::OK) << r->message();
  ASSERT_TRUE(d.wait_state("CONFIGURED"));
  const std::uint32_t run = r->status().run();

  const auto shown = d.ctl_json(fmt::format("runs show {}", run));
  ASSERT_EQ(shown.at("runs").as_array().size(), 1u);
  EXPECT_EQ(json::value_to<std::string>(shown.at("runs").at(0).at("ended")), "stopped");
  EXPECT_EQ(json::value_to<std::string>(shown.at("runs").at(0).at("comment")), "first beam");
  bool used_new_set = false;
  for (const auto& s : shown.at("spills").as_array()) {
    EXPECT_EQ(json::value_to<std::string>(s.at("particles")), "2000");
    used_new_set = used_new_set || json::value_to<std::uint32_t>(s.at("thresholdSet")) == new_set;
  }
  EXPECT_TRUE(used_new_set);
  o = d.ctl("runs list");
  EXPECT_EQ(o.exit_code, 0) << o.output;
  EXPECT_NE(o.output.find(std::to_string(run)), std::string::npos) << o.output;

  // The files decode, and the start of run carries the configuration.
  const auto check = run_command(fmt::format("{} check {}/data/cdr01001-{:06}.dat", NA64DAQ_PATH, d.path(""), run));
  EXPECT_EQ(check.exit_code, 0) << check.output;
}

TEST(Serve, AnUnknownCurveKeyCannotConnect) {
  Daemon d;
  d.start();
  zmq::context_t ctx;
  auto stranger = d.client(ctx, "stranger", zmq::socket_type::req);
  stranger.set(zmq::sockopt::rcvtimeo, 1000);
  control::Request status;
  status.mutable_status();
  EXPECT_FALSE(request(stranger, status).has_value()) << "a key not in the allow-list got an answer";
  auto viewer = d.client(ctx, "viewer", zmq::socket_type::req);
  const auto r = request(viewer, status);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->code(), control::OK);
}

TEST(Serve, TheDatabaseSurvivesKillNineAndTheNextRunGetsANewNumber) {
  Daemon d;
  d.start("--configure");
  ASSERT_EQ(d.ctl("start --comment 'will be killed'", "shift").exit_code, 0);
  std::this_thread::sleep_for(500ms);
  const auto killed_run = d.ctl_json("status").at("status").at("run").as_int64();
  ASSERT_GT(killed_run, 0);
  d.kill(SIGKILL);
  ASSERT_TRUE(WIFSIGNALED(d.exit_status()));

  d.start("--configure");
  const auto rec = d.ctl_json(fmt::format("runs show {}", killed_run));
  EXPECT_EQ(json::value_to<std::string>(rec.at("runs").at(0).at("ended")), "interrupted");
  EXPECT_EQ(json::value_to<std::string>(rec.at("runs").at(0).at("comment")), "will be killed");
  ASSERT_EQ(d.ctl("start", "shift").exit_code, 0);
  const auto next_run = d.ctl_json("status").at("status").at("run").as_int64();
  EXPECT_EQ(next_run, killed_run + 1);
  ASSERT_EQ(d.ctl("stop", "shift").exit_code, 0);
  EXPECT_TRUE(d.wait_state("CONFIGURED"));
}

TEST(Serve, ABadConfigurationFileIsRejectedWithTheFieldPath) {
  Daemon d;
  std::ofstream(d.path("bad.textproto")) << "source { id: 620 block { detector: \"ECAL1\" port: 9 gev_per_count: 0.02 } }\n";
  const auto o = run_command(fmt::format("{} serve --http 127.0.0.1:0 --db {} --config {} --configure", NA64DAQ_PATH,
                                         d.path("runs.sqlite"), d.path("bad.textproto")));
  EXPECT_EQ(o.exit_code, 2) << o.output;
  EXPECT_NE(o.output.find("source[0].block[0].port: 9 is out of range [0, 7]"), std::string::npos) << o.output;

  d.start();
  const auto c = d.ctl("configure " + d.path("bad.textproto"), "expert");
  EXPECT_EQ(c.exit_code, 1) << c.output;
  EXPECT_NE(c.output.find("400"), std::string::npos) << c.output;
  EXPECT_NE(c.output.find("source[0].block[0].port"), std::string::npos) << c.output;
  EXPECT_EQ(d.state(), "IDLE");
}

TEST(Serve, ASecondDaemonOnTheSameDatabaseIsRefused) {
  Daemon d;
  d.start();
  const auto o = run_command(fmt::format("{} serve --http 127.0.0.1:0 --db {}", NA64DAQ_PATH, d.path("runs.sqlite")));
  EXPECT_EQ(o.exit_code, 1) << o.output;
  EXPECT_NE(o.output.find(d.path("runs.sqlite") + ": another na64daq serve uses this run database"), std::string::npos)
      << o.output;
  EXPECT_EQ(d.state(), "IDLE") << "the first daemon goes on";
}

TEST(Serve, TokensNeverAppearInTheLog) {
  Daemon d;
  d.start("--configure");
  (void)d.ctl("start", "expert");  // refused: 403, logged
  (void)d.ctl("thresholds set ecal_max_gev=-5", "expert");  // refused: 400, logged
  d.kill(SIGTERM);
  const std::string log = read_file(d.path("serve-1.log"));
  EXPECT_NE(log.find("403"), std::string::npos) << log;
  EXPECT_EQ(log.find(Daemon::kExpertToken), std::string::npos) << log;
  EXPECT_EQ(log.find(Daemon::kShiftToken), std::string::npos) << log;
}

}  // namespace
}  // namespace na64::daq
