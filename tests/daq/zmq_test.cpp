// SPDX-License-Identifier: Apache-2.0
// The CURVE key files and the ZeroMQ control interface, over real sockets
// on 127.0.0.1.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "control.pb.h"
#include "na64/daq/config.hpp"
#include "na64/daq/control_service.hpp"
#include "na64/daq/curve_keys.hpp"
#include "na64/daq/error.hpp"
#include "na64/daq/run_control.hpp"
#include "na64/daq/run_db.hpp"
#include "na64/daq/zmq_server.hpp"
#include "na64/testing/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using na64::daq::ConfigError;
using na64::daq::CurveKeyPair;
using na64::daq::read_clients_file;
using na64::daq::read_public_key_file;
using na64::daq::read_secret_key_file;
using na64::daq::write_key_pair;
using na64::testing::TempDir;

void write_file(const fs::path& path, const std::string& text, fs::perms perms = fs::perms(0600)) {
  std::ofstream(path) << text;
  fs::permissions(path, perms);
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

template <class F>
std::string config_error(F&& f) {
  try {
    f();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "no ConfigError";
}

// A valid Z85 key of 40 characters that is nobody's.
const std::string kOtherKey = na64::daq::generate_key_pair().public_z85;

TEST(CurveKeys, WrittenPairReadsBack) {
  TempDir dir;
  const CurveKeyPair pair = write_key_pair(dir.path(), "server");
  EXPECT_TRUE(na64::daq::is_z85_key(pair.public_z85));
  EXPECT_TRUE(na64::daq::is_z85_key(pair.secret_z85));
  EXPECT_NE(pair.public_z85, pair.secret_z85);

  const fs::path key = dir.path() / "server.key";
  const fs::path pub = dir.path() / "server.pub";
  EXPECT_EQ(read_file(key), fmt::format("public {}\nsecret {}\n", pair.public_z85, pair.secret_z85));
  EXPECT_EQ(read_file(pub), fmt::format("public {}\n", pair.public_z85));
  EXPECT_EQ(fs::status(key).permissions(), fs::perms(0600));
  EXPECT_EQ(fs::status(pub).permissions(), fs::perms(0644));

  const CurveKeyPair back = read_secret_key_file(key);
  EXPECT_EQ(back.public_z85, pair.public_z85);
  EXPECT_EQ(back.secret_z85, pair.secret_z85);
  EXPECT_EQ(read_public_key_file(pub), pair.public_z85);
  // Only the two files: no temporary file is left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 2);
}

TEST(CurveKeys, WriteRefusesToReplaceAFile) {
  TempDir dir;
  write_key_pair(dir.path(), "server");
  const std::string before = read_file(dir.path() / "server.key");
  const fs::path key = dir.path() / "server.key";
  EXPECT_EQ(config_error([&] { write_key_pair(dir.path(), "server"); }),
            key.string() + ": exists; refusing to replace it");
  EXPECT_EQ(read_file(key), before);

  // A lone NAME.pub blocks NAME.key too, so that a pair never mixes.
  write_file(dir.path() / "client.pub", "public x\n", fs::perms(0644));
  EXPECT_EQ(config_error([&] { write_key_pair(dir.path(), "client"); }),
            (dir.path() / "client.pub").string() + ": exists; refusing to replace it");
  EXPECT_FALSE(fs::exists(dir.path() / "client.key"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir.path()), fs::directory_iterator()), 3);
}

TEST(CurveKeys, WriteRefusesAPathAsName) {
  TempDir dir;
  EXPECT_EQ(config_error([&] { write_key_pair(dir.path(), "../x"); }),
            "key name '../x': use letters, digits, '-', '_' and '.', not starting with '.'");
  EXPECT_EQ(config_error([&] { write_key_pair(dir.path(), ""); }),
            "key name '': use letters, digits, '-', '_' and '.', not starting with '.'");
}

TEST(CurveKeys, SecretKeyFileOpenToOthersIsRefused) {
  TempDir dir;
  write_key_pair(dir.path(), "server");
  const fs::path key = dir.path() / "server.key";
  fs::permissions(key, fs::perms(0640));
  EXPECT_EQ(config_error([&] { (void)read_secret_key_file(key); }),
            key.string() + ": secret key file is open to group or others (mode 0640); chmod 600 it");
  fs::permissions(key, fs::perms(0604));
  EXPECT_EQ(config_error([&] { (void)read_secret_key_file(key); }),
            key.string() + ": secret key file is open to group or others (mode 0604); chmod 600 it");
}

TEST(CurveKeys, MalformedKeyFilesAreRefusedWithTheLine) {
  TempDir dir;
  const CurveKeyPair pair = na64::daq::generate_key_pair();
  const CurveKeyPair other = na64::daq::generate_key_pair();
  const fs::path key = dir.path() / "bad.key";
  const auto secret_error = [&](const std::string& text) {
    write_file(key, text);
    return config_error([&] { (void)read_secret_key_file(key); });
  };
  const std::string k = key.string();

  EXPECT_EQ(secret_error(fmt::format("# comment\n\npublic {}\nsecret {}\n", pair.public_z85, pair.secret_z85)),
            "no ConfigError");
  EXPECT_EQ(secret_error(fmt::format("public {}\nsecret {}\n", pair.public_z85, pair.secret_z85.substr(1))),
            k + ":2: secret key is not 40 characters of Z85 (39 characters)");
  EXPECT_EQ(secret_error(fmt::format("public {}\nsecret {}~\n", pair.public_z85, pair.secret_z85.substr(1))),
            k + ":2: secret key is not 40 characters of Z85 (40 characters)");
  EXPECT_EQ(secret_error(fmt::format("public {}\n\nsecrets {}\n", pair.public_z85, pair.secret_z85)),
            k + ":3: expected 'public KEY' or 'secret KEY'");
  EXPECT_EQ(secret_error(fmt::format("public {} extra\n", pair.public_z85)),
            k + ":1: expected 'public KEY' or 'secret KEY'");
  EXPECT_EQ(secret_error(fmt::format("public {}\n", pair.public_z85)), k + ": no 'secret' line");
  EXPECT_EQ(secret_error(fmt::format("public {}\nsecret {}\npublic {}\n", pair.public_z85, pair.secret_z85,
                                     pair.public_z85)),
            k + ":3: second 'public' line (first on line 1)");
  EXPECT_EQ(secret_error(fmt::format("public {}\nsecret {}\n", other.public_z85, pair.secret_z85)),
            k + ":1: public key does not belong to the secret key");
  // The secret key never appears in a message.
  EXPECT_EQ(secret_error(fmt::format("public {}\nsecret {}\n", pair.public_z85, pair.secret_z85 + "x"))
                .find(pair.secret_z85),
            std::string::npos);

  const fs::path pub = dir.path() / "bad.pub";
  write_file(pub, fmt::format("public {}\nsecret {}\n", pair.public_z85, pair.secret_z85), fs::perms(0644));
  EXPECT_EQ(config_error([&] { (void)read_public_key_file(pub); }), pub.string() + ":2: expected 'public KEY'");
  write_file(pub, "# nothing\n", fs::perms(0644));
  EXPECT_EQ(config_error([&] { (void)read_public_key_file(pub); }), pub.string() + ": no 'public' line");
  EXPECT_EQ(config_error([&] { (void)read_public_key_file(dir.path() / "missing.pub"); }),
            "cannot open " + (dir.path() / "missing.pub").string() + ": No such file or directory");
}

TEST(CurveKeys, ClientsFileReadsRolesKeysAndNames) {
  TempDir dir;
  const CurveKeyPair a = na64::daq::generate_key_pair();
  const CurveKeyPair b = na64::daq::generate_key_pair();
  const fs::path file = dir.path() / "clients";
  write_file(file,
             fmt::format("# who may connect\n\nshift {}  shift desk 1\n  expert {}\nviewer {} dashboard\n",
                         a.public_z85, b.public_z85, kOtherKey),
             fs::perms(0644));
  const auto clients = read_clients_file(file);
  ASSERT_EQ(clients.size(), 3u);
  EXPECT_EQ(clients[0].role, na64::daq::ClientRole::Shift);
  EXPECT_EQ(clients[0].public_z85, a.public_z85);
  EXPECT_EQ(clients[0].name, "shift desk 1");
  EXPECT_EQ(clients[1].role, na64::daq::ClientRole::Expert);
  EXPECT_EQ(clients[1].public_z85, b.public_z85);
  EXPECT_EQ(clients[1].name, "");
  EXPECT_EQ(clients[2].role, na64::daq::ClientRole::Viewer);
  EXPECT_EQ(clients[2].name, "dashboard");
  EXPECT_STREQ(na64::daq::to_string(clients[2].role), "viewer");
}

TEST(CurveKeys, BadClientsFilesAreRefusedWithTheLine) {
  TempDir dir;
  const CurveKeyPair a = na64::daq::generate_key_pair();
  const fs::path file = dir.path() / "clients";
  const std::string f = file.string();
  const auto clients_error = [&](const std::string& text, fs::perms perms = fs::perms(0644)) {
    write_file(file, text, perms);
    return config_error([&] { (void)read_clients_file(file); });
  };
  EXPECT_EQ(clients_error(fmt::format("# x\nadmin {}\n", a.public_z85)),
            f + ":2: unknown role 'admin' (viewer, shift or expert)");
  EXPECT_EQ(clients_error(fmt::format("shift {}\n", a.public_z85.substr(0, 30))),
            f + ":1: public key is not 40 characters of Z85 (30 characters)");
  EXPECT_EQ(clients_error("shift\n"), f + ":1: expected 'ROLE KEY [name]'");
  EXPECT_EQ(clients_error(fmt::format("shift {} alice\n\nexpert {} alice again\n", a.public_z85, a.public_z85)),
            f + ":3: key already listed on line 1");
  EXPECT_EQ(clients_error(fmt::format("shift {}\n", a.public_z85), fs::perms(0664)),
            f + ": clients file may be written by group or others (mode 0664); chmod go-w it");
}

// A whole server on 127.0.0.1 with free ports, and clients: shift, expert
// and viewer keys listed, a stranger's key not.
class ZmqServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const fs::path keys = dir_.path() / "keys";
    server_key_ = write_key_pair(keys, "server");
    shift_ = write_key_pair(keys, "shift");
    expert_ = write_key_pair(keys, "expert");
    viewer_ = write_key_pair(keys, "viewer");
    stranger_ = write_key_pair(keys, "stranger");
    const fs::path clients = keys / "clients";
    write_file(clients,
               fmt::format("# test clients\nshift {} shift desk\nexpert {} expert\nviewer {} monitor\n",
                           shift_.public_z85, expert_.public_z85, viewer_.public_z85),
               fs::perms(0644));

    database_ = std::make_unique<na64::daq::RunDatabase>(dir_.path() / "runs.sqlite");
    control_ = std::make_unique<na64::daq::RunControl>(
        *database_, na64::daq::RunControlOptions{.config_file = "", .output_override = dir_.path() / "data"});
    service_ = std::make_unique<na64::daq::ControlService>(*control_, *database_);
    server_ = std::make_unique<na64::daq::ZmqServer>(
        *service_, na64::daq::ZmqOptions{.control_endpoint = "tcp://127.0.0.1:*",
                                          .publish_endpoint = "tcp://127.0.0.1:*",
                                          .server_key_file = keys / "server.key",
                                          .clients_file = clients});
  }

  void TearDown() override {
    server_.reset();
    service_.reset();
    control_.reset();
    database_.reset();
  }

  // A REQ client with CURVE and `key` (or none: the NULL mechanism).
  zmq::socket_t client(const CurveKeyPair* key, zmq::socket_type type = zmq::socket_type::req) {
    zmq::socket_t socket(context_, type);
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::sndtimeo, 1000);
    if (key != nullptr) {
      socket.set(zmq::sockopt::curve_serverkey, server_key_.public_z85);
      socket.set(zmq::sockopt::curve_publickey, key->public_z85);
      socket.set(zmq::sockopt::curve_secretkey, key->secret_z85);
    }
    socket.connect(server_->control_endpoint());
    return socket;
  }

  // Sends raw frames; the reply frame, or nullopt after `timeout`.
  static std::optional<std::string> exchange(zmq::socket_t& socket, const std::vector<std::string>& frames,
                                             std::chrono::milliseconds timeout) {
    socket.set(zmq::sockopt::rcvtimeo, static_cast<int>(timeout.count()));
    for (std::size_t i = 0; i < frames.size(); ++i) {
      const auto flags = i + 1 < frames.size() ? zmq::send_flags::sndmore : zmq::send_flags::none;
      if (!socket.send(zmq::buffer(frames[i]), flags)) return std::nullopt;
    }
    zmq::message_t reply;
    if (!socket.recv(reply)) return std::nullopt;
    return reply.to_string();
  }

  static na64::control::Reply call(zmq::socket_t& socket, const na64::control::Request& request) {
    const auto bytes = exchange(socket, {request.SerializeAsString()}, 30s);
    na64::control::Reply reply;
    if (!bytes) {
      reply.set_code(na64::control::INTERNAL);
      reply.set_message("test: no reply");
    } else if (!reply.ParseFromString(*bytes)) {
      reply.set_code(na64::control::INTERNAL);
      reply.set_message("test: reply does not parse");
    }
    return reply;
  }

  static na64::control::Request status_request() {
    na64::control::Request request;
    request.mutable_status();
    return request;
  }

  static na64::control::Request configure_request() {
    std::string text(na64::daq::default_config_text());
    const std::string from = "particles_per_spill: 20000";
    text.replace(text.find(from), from.size(), "particles_per_spill: 2000");
    na64::control::Request request;
    request.mutable_configure()->set_config_text(text);
    return request;
  }

  // Blocks until `socket` (monitored before it connects) has finished a
  // CURVE handshake; false after `timeout`.
  static bool wait_for_handshake(zmq::socket_t& monitor, std::chrono::milliseconds timeout) {
    monitor.set(zmq::sockopt::rcvtimeo, static_cast<int>(timeout.count()));
    std::vector<zmq::message_t> event;
    if (!zmq::recv_multipart(monitor, std::back_inserter(event))) return false;
    std::uint16_t id = 0;
    std::memcpy(&id, event.at(0).data(), sizeof id);
    return id == ZMQ_EVENT_HANDSHAKE_SUCCEEDED;
  }

  // Waits for the next event whose topic is `topic` (others are skipped);
  // nullopt after `timeout`.
  static std::optional<na64::control::Event> next_event(zmq::socket_t& subscriber, std::string_view topic,
                                                        std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    subscriber.set(zmq::sockopt::rcvtimeo, 100);
    while (std::chrono::steady_clock::now() < deadline) {
      std::vector<zmq::message_t> frames;
      if (!zmq::recv_multipart(subscriber, std::back_inserter(frames))) continue;
      if (frames.size() != 2) {
        ADD_FAILURE() << "an event of " << frames.size() << " frames";
        return std::nullopt;
      }
      na64::control::Event event;
      if (!event.ParseFromString(frames[1].to_string())) {
        ADD_FAILURE() << "an event that does not parse";
        return std::nullopt;
      }
      EXPECT_EQ(frames[0].to_string(), event.has_state() ? "state" : "spill");
      if (frames[0].to_string_view() == topic) return event;
    }
    return std::nullopt;
  }

  TempDir dir_;
  zmq::context_t context_;  // the clients'; destroyed after their sockets
  CurveKeyPair server_key_, shift_, expert_, viewer_, stranger_;
  std::unique_ptr<na64::daq::RunDatabase> database_;
  std::unique_ptr<na64::daq::RunControl> control_;
  std::unique_ptr<na64::daq::ControlService> service_;
  std::unique_ptr<na64::daq::ZmqServer> server_;
};

TEST_F(ZmqServerTest, EndpointsAreTheBoundPorts) {
  EXPECT_TRUE(server_->control_endpoint().starts_with("tcp://127.0.0.1:"));
  EXPECT_TRUE(server_->publish_endpoint().starts_with("tcp://127.0.0.1:"));
  EXPECT_NE(server_->control_endpoint(), "tcp://127.0.0.1:*");
  EXPECT_NE(server_->control_endpoint(), server_->publish_endpoint());
}

TEST_F(ZmqServerTest, ListedShiftKeyGetsTheStatus) {
  auto socket = client(&shift_);
  const auto reply = call(socket, status_request());
  EXPECT_EQ(reply.code(), na64::control::OK) << reply.message();
  EXPECT_EQ(reply.status().state(), na64::control::IDLE);
  EXPECT_EQ(server_->denied(), 0u);
}

TEST_F(ZmqServerTest, DealerWithoutDelimiterIsServedToo) {
  auto socket = client(&viewer_, zmq::socket_type::dealer);
  const auto bytes = exchange(socket, {status_request().SerializeAsString()}, 10s);
  ASSERT_TRUE(bytes.has_value());
  na64::control::Reply reply;
  ASSERT_TRUE(reply.ParseFromString(*bytes));
  EXPECT_EQ(reply.code(), na64::control::OK);
  EXPECT_EQ(reply.status().state(), na64::control::IDLE);
}

TEST_F(ZmqServerTest, RolesComeFromTheKey) {
  auto shift = client(&shift_);
  auto expert = client(&expert_);
  auto viewer = client(&viewer_);

  auto reply = call(shift, configure_request());
  EXPECT_EQ(reply.code(), na64::control::FORBIDDEN) << reply.message();
  EXPECT_EQ(reply.status().state(), na64::control::IDLE);

  reply = call(viewer, configure_request());
  EXPECT_EQ(reply.code(), na64::control::UNAUTHORIZED) << reply.message();

  reply = call(expert, configure_request());
  EXPECT_EQ(reply.code(), na64::control::OK) << reply.message();
  EXPECT_EQ(reply.status().state(), na64::control::CONFIGURED);

  na64::control::Request start;
  start.mutable_start()->set_comment("zmq test");
  reply = call(viewer, start);
  EXPECT_EQ(reply.code(), na64::control::UNAUTHORIZED) << reply.message();
  reply = call(expert, start);
  EXPECT_EQ(reply.code(), na64::control::FORBIDDEN) << reply.message();
  EXPECT_EQ(reply.status().state(), na64::control::CONFIGURED);

  reply = call(viewer, status_request());
  EXPECT_EQ(reply.code(), na64::control::OK) << reply.message();
  EXPECT_EQ(reply.status().state(), na64::control::CONFIGURED);
}

TEST_F(ZmqServerTest, RunIsStartedStoppedAndPublished) {
  // The viewer subscribes first, and waits until it is connected, so that
  // it sees the run from its start.
  zmq::socket_t subscriber(context_, zmq::socket_type::sub);
  subscriber.set(zmq::sockopt::linger, 0);
  subscriber.set(zmq::sockopt::curve_serverkey, server_key_.public_z85);
  subscriber.set(zmq::sockopt::curve_publickey, viewer_.public_z85);
  subscriber.set(zmq::sockopt::curve_secretkey, viewer_.secret_z85);
  subscriber.set(zmq::sockopt::subscribe, "state");
  subscriber.set(zmq::sockopt::subscribe, "spill");
  ASSERT_EQ(zmq_socket_monitor(subscriber.handle(), "inproc://subscriber-monitor", ZMQ_EVENT_HANDSHAKE_SUCCEEDED), 0);
  zmq::socket_t monitor(context_, zmq::socket_type::pair);
  monitor.set(zmq::sockopt::linger, 0);
  monitor.connect("inproc://subscriber-monitor");
  subscriber.connect(server_->publish_endpoint());
  ASSERT_TRUE(wait_for_handshake(monitor, 10s));
  // The subscriptions follow the handshake on the same connection.
  std::this_thread::sleep_for(200ms);

  auto shift = client(&shift_);
  auto expert = client(&expert_);
  auto reply = call(expert, configure_request());
  ASSERT_EQ(reply.code(), na64::control::OK) << reply.message();
  ASSERT_EQ(reply.status().state(), na64::control::CONFIGURED);

  na64::control::Request start;
  start.mutable_start()->set_comment("zmq test");
  reply = call(shift, start);
  ASSERT_EQ(reply.code(), na64::control::OK) << reply.message();
  EXPECT_EQ(reply.status().state(), na64::control::RUNNING);
  const std::uint32_t run = reply.status().run();
  EXPECT_GT(run, 0u);

  std::optional<na64::control::Event> event;
  do {
    event = next_event(subscriber, "state", 10s);
    ASSERT_TRUE(event.has_value()) << "no state event RUNNING";
  } while (event->state().state() != na64::control::RUNNING);
  EXPECT_EQ(event->state().run(), run);

  std::uint32_t last_spill = 0;
  for (int i = 0; i < 3; ++i) {
    event = next_event(subscriber, "spill", 30s);
    ASSERT_TRUE(event.has_value()) << "no spill event after spill " << last_spill;
    EXPECT_EQ(event->spill().run(), run);
    EXPECT_GT(event->spill().spill(), last_spill);
    last_spill = event->spill().spill();
  }

  na64::control::Request stop;
  stop.mutable_stop();
  reply = call(shift, stop);
  ASSERT_EQ(reply.code(), na64::control::OK) << reply.message();
  do {
    event = next_event(subscriber, "state", 30s);
    ASSERT_TRUE(event.has_value()) << "no state event CONFIGURED after stop";
  } while (event->state().state() != na64::control::CONFIGURED);

  reply = call(shift, status_request());
  EXPECT_EQ(reply.status().state(), na64::control::CONFIGURED);
  EXPECT_EQ(server_->denied(), 0u);
  EXPECT_EQ(server_->events_dropped(), 0u);
}

TEST_F(ZmqServerTest, UnknownKeyIsDenied) {
  auto socket = client(&stranger_);
  EXPECT_FALSE(exchange(socket, {status_request().SerializeAsString()}, 1s).has_value());
  // Each attempt to connect asks ZAP again; at least one has by now.
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (server_->denied() == 0 && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(10ms);
  EXPECT_GT(server_->denied(), 0u);

  // The server goes on serving listed keys.
  auto shift = client(&shift_);
  EXPECT_EQ(call(shift, status_request()).code(), na64::control::OK);
}

TEST_F(ZmqServerTest, ClientWithoutCurveGetsNoReply) {
  auto socket = client(nullptr);
  EXPECT_FALSE(exchange(socket, {status_request().SerializeAsString()}, 1s).has_value());
  // The mechanisms differ, so the handshake fails before ZAP is asked.
  EXPECT_EQ(server_->denied(), 0u);
}

TEST_F(ZmqServerTest, ClientWithWrongServerKeyGetsNoReply) {
  zmq::socket_t socket(context_, zmq::socket_type::req);
  socket.set(zmq::sockopt::linger, 0);
  socket.set(zmq::sockopt::curve_serverkey, kOtherKey);
  socket.set(zmq::sockopt::curve_publickey, shift_.public_z85);
  socket.set(zmq::sockopt::curve_secretkey, shift_.secret_z85);
  socket.connect(server_->control_endpoint());
  EXPECT_FALSE(exchange(socket, {status_request().SerializeAsString()}, 1s).has_value());
}

TEST_F(ZmqServerTest, UnparsableRequestGetsBadRequest) {
  auto socket = client(&shift_);
  auto bytes = exchange(socket, {std::string("\x0a\xff", 2)}, 10s);
  ASSERT_TRUE(bytes.has_value());
  na64::control::Reply reply;
  ASSERT_TRUE(reply.ParseFromString(*bytes));
  EXPECT_EQ(reply.code(), na64::control::BAD_REQUEST);
  EXPECT_EQ(reply.message(), "not a binary na64.control.Request (2 bytes)");
  EXPECT_EQ(reply.status().state(), na64::control::IDLE);

  bytes = exchange(socket, {status_request().SerializeAsString(), "more"}, 10s);
  ASSERT_TRUE(bytes.has_value());
  ASSERT_TRUE(reply.ParseFromString(*bytes));
  EXPECT_EQ(reply.code(), na64::control::BAD_REQUEST);
  EXPECT_EQ(reply.message(), "a request is one frame, not 2");

  // The connection goes on.
  EXPECT_EQ(call(socket, status_request()).code(), na64::control::OK);
}

TEST(ZmqServer, BadOptionsAreRefused) {
  TempDir dir;
  write_key_pair(dir.path(), "server");
  const fs::path key = dir.path() / "server.key";
  const fs::path clients = dir.path() / "clients";
  write_file(clients, "shift nonsense\n", fs::perms(0644));
  na64::daq::RunDatabase database(dir.path() / "runs.sqlite");
  na64::daq::RunControl control(database,
                                na64::daq::RunControlOptions{.config_file = "", .output_override = dir.path() / "data"});
  na64::daq::ControlService service(control, database);
  const auto start = [&](const std::string& endpoint, const fs::path& key_file, const fs::path& clients_file) {
    return config_error([&] {
      na64::daq::ZmqServer server(service, na64::daq::ZmqOptions{.control_endpoint = endpoint,
                                                                 .publish_endpoint = "tcp://127.0.0.1:*",
                                                                 .server_key_file = key_file,
                                                                 .clients_file = clients_file});
    });
  };
  const std::string any = "tcp://127.0.0.1:*";
  EXPECT_EQ(start(any, {}, clients), "zmq: no server key file given");
  EXPECT_EQ(start(any, key, {}), "zmq: no clients file given");
  EXPECT_EQ(start(any, key, clients), clients.string() + ":1: public key is not 40 characters of Z85 (8 characters)");
  write_file(clients, "# nobody yet\n", fs::perms(0644));
  EXPECT_EQ(start("tcp://no-such-host.invalid:1", key, clients),
            "cannot bind the control endpoint tcp://no-such-host.invalid:1: No such device");
  EXPECT_EQ(start(any, key, clients), "no ConfigError");
}

}  // namespace
