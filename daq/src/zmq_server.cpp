// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/zmq_server.hpp"

#include <fmt/format.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <exception>
#include <iterator>
#include <mutex>
#include <span>
#include <stop_token>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "control.pb.h"
#include "na64/daq/control_service.hpp"
#include "na64/daq/curve_keys.hpp"
#include "na64/daq/error.hpp"

namespace na64::daq {

namespace {

// How long the threads wait on their sockets before they look at the stop
// token and (server thread) at the event queue.
constexpr long kPollIntervalMs = 20;
// Requests served in a row before queued events get their turn.
constexpr int kRequestsPerTurn = 64;
constexpr std::size_t kMaxQueuedEvents = 1024;
// Messages a slow peer may have queued; replies and events beyond are dropped.
constexpr int kSendHighWaterMark = 1000;
// A configuration text is a few kB; anything far bigger is not a request.
constexpr std::int64_t kMaxRequestBytes = 16 << 20;

constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";
constexpr std::string_view kZapDomain = "na64";
constexpr std::string_view kZapVersion = "1.0";
constexpr std::size_t kCurveKeyBytes = 32;
// ZMQ_ZAP_ENFORCE_DOMAIN: a draft option in the libzmq 4.3 headers, which the
// library honours. With it, a CURVE socket whose ZAP handler is missing
// refuses every connection instead of accepting every one.
constexpr int kZapEnforceDomain = 93;

// Events from the threads where they happen, waiting for the server thread,
// the only one that may use the PUB socket. Shared with the listener given
// to ControlService, which has no unsubscribe: after close() the listener
// does nothing, however long it outlives the server.
class EventQueue {
 public:
  // When full, the oldest event goes: a subscriber wants the present state.
  void push(const control::Event& event) {
    std::lock_guard lock(mutex_);
    if (closed_) return;
    if (events_.size() == kMaxQueuedEvents) {
      events_.pop_front();
      dropped_.fetch_add(1, std::memory_order_relaxed);
    }
    events_.push_back(event);
  }
  std::deque<control::Event> take_all() {
    std::lock_guard lock(mutex_);
    return std::exchange(events_, {});
  }
  void close() {
    std::lock_guard lock(mutex_);
    closed_ = true;
    events_.clear();
  }
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  std::mutex mutex_;
  std::deque<control::Event> events_;
  bool closed_ = false;
  std::atomic<std::uint64_t> dropped_{0};
};

std::string_view view(const zmq::message_t& message) {
  return {static_cast<const char*>(message.data()), message.size()};
}

void set_curve_server(zmq::socket_t& socket, const std::string& secret_z85) {
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, secret_z85);
  socket.set(zmq::sockopt::zap_domain, kZapDomain);
  const int enforce = 1;
  if (zmq_setsockopt(socket.handle(), kZapEnforceDomain, &enforce, sizeof enforce) != 0) {
    throw Error(fmt::format("cannot set ZMQ_ZAP_ENFORCE_DOMAIN: {}", zmq_strerror(zmq_errno())));
  }
  socket.set(zmq::sockopt::sndhwm, kSendHighWaterMark);
}

std::string bind_endpoint(zmq::socket_t& socket, const std::string& endpoint, std::string_view what) {
  try {
    socket.bind(endpoint);
  } catch (const zmq::error_t& e) {
    throw ConfigError(fmt::format("cannot bind the {} endpoint {}: {}", what, endpoint, e.what()));
  }
  return socket.get(zmq::sockopt::last_endpoint);
}

}  // namespace

struct ZmqServer::Impl {
  Impl(ControlService& control_service, const ZmqOptions& options);

  void run_zap(const std::stop_token& stop);
  void answer_zap(std::vector<zmq::message_t>& frames);
  void run_server(const std::stop_token& stop);
  void serve(std::vector<zmq::message_t>& frames);
  control::Reply refusal(control::Code code, std::string message);
  void publish_events();

  ControlService& service;
  // Read-only once the threads run.
  std::unordered_map<std::string, AllowedClient> clients;  // by Z85 public key
  std::string control_endpoint;
  std::string publish_endpoint;

  std::atomic<std::uint64_t> denied{0};
  std::shared_ptr<EventQueue> events = std::make_shared<EventQueue>();

  // Declared before the sockets: the context is terminated after they close.
  zmq::context_t context;
  // ROUTER rather than REP: a reply that fails cannot wedge it.
  zmq::socket_t zap{context, zmq::socket_type::router};        // ZAP thread
  zmq::socket_t router{context, zmq::socket_type::router};     // server thread
  zmq::socket_t publisher{context, zmq::socket_type::pub};     // server thread
  std::jthread zap_thread;
  std::jthread server_thread;
};

ZmqServer::Impl::Impl(ControlService& control_service, const ZmqOptions& options) : service(control_service) {
  if (options.server_key_file.empty()) throw ConfigError("zmq: no server key file given");
  if (options.clients_file.empty()) throw ConfigError("zmq: no clients file given");
  const CurveKeyPair server_key = read_secret_key_file(options.server_key_file);
  for (auto& client : read_clients_file(options.clients_file)) {
    std::string key = client.public_z85;
    clients.emplace(std::move(key), std::move(client));
  }

  // The ZAP handler is bound first, so that no connection is ever accepted
  // without it.
  zap.set(zmq::sockopt::linger, 0);
  zap.bind(kZapEndpoint);

  set_curve_server(router, server_key.secret_z85);
  router.set(zmq::sockopt::maxmsgsize, kMaxRequestBytes);
  control_endpoint = bind_endpoint(router, options.control_endpoint, "control");

  set_curve_server(publisher, server_key.secret_z85);
  // Subscribers send only subscriptions.
  publisher.set(zmq::sockopt::maxmsgsize, std::int64_t{64 << 10});
  publish_endpoint = bind_endpoint(publisher, options.publish_endpoint, "publish");

  service.subscribe([queue = events](const control::Event& event) { queue->push(event); });

  zap_thread = std::jthread([this](std::stop_token stop) { run_zap(stop); });
  server_thread = std::jthread([this](std::stop_token stop) { run_server(stop); });
}

// The ZAP handler has a thread of its own so that handshakes go on while the
// server thread is inside a long ControlService call (configure, start).
void ZmqServer::Impl::run_zap(const std::stop_token& stop) {
  zmq::pollitem_t item{zap.handle(), 0, ZMQ_POLLIN, 0};
  while (!stop.stop_requested()) {
    if (zmq_poll(&item, 1, kPollIntervalMs) <= 0) continue;  // timeout or EINTR
    std::vector<zmq::message_t> request;
    try {
      if (!zmq::recv_multipart(zap, std::back_inserter(request), zmq::recv_flags::dontwait)) continue;
      answer_zap(request);
    } catch (const zmq::error_t&) {
      // EINTR; that handshake times out on the client's side.
    }
  }
}

// ZMQ RFC 27. Request: version, request id, domain, address, identity,
// mechanism, credentials (for CURVE: the client's 32-byte public key).
// Reply: version, request id, status code, status text, user id, metadata.
// Both come after the envelope: routing id and an empty delimiter.
void ZmqServer::Impl::answer_zap(std::vector<zmq::message_t>& frames) {
  if (frames.size() < 2 || frames[1].size() != 0) return;  // not from libzmq
  std::vector<zmq::message_t> reply;
  reply.push_back(std::move(frames[0]));
  reply.push_back(std::move(frames[1]));
  const std::span<zmq::message_t> request = std::span(frames).subspan(2);

  std::string_view status_text = "OK";
  std::string user_id;
  const AllowedClient* client = nullptr;
  if (request.size() < 6 || view(request[0]) != kZapVersion) {
    status_text = "malformed ZAP request";
  } else if (view(request[2]) != kZapDomain) {
    status_text = "unknown domain";
  } else if (view(request[5]) != "CURVE") {
    status_text = "CURVE only";
  } else if (request.size() != 7 || request[6].size() != kCurveKeyBytes) {
    status_text = "malformed CURVE credentials";
  } else {
    char z85[41] = {};
    zmq_z85_encode(z85, static_cast<const std::uint8_t*>(request[6].data()), kCurveKeyBytes);
    const auto it = clients.find(z85);
    if (it == clients.end()) {
      status_text = "key not allowed";
    } else {
      client = &it->second;
      user_id = to_string(client->role);
    }
  }
  if (client == nullptr) denied.fetch_add(1, std::memory_order_relaxed);

  const std::string_view request_id = request.size() > 1 ? view(request[1]) : std::string_view{};
  reply.emplace_back(kZapVersion);
  reply.emplace_back(request_id);
  reply.emplace_back(std::string_view(client != nullptr ? "200" : "400"));
  reply.emplace_back(status_text);
  reply.emplace_back(std::string_view(user_id));
  reply.emplace_back();
  zmq::send_multipart(zap, reply, zmq::send_flags::dontwait);
}

// One thread serves the ROUTER and the PUB socket, since ZeroMQ sockets are
// not thread-safe. Events from other threads wait in EventQueue; the poll
// timeout bounds how long (20 ms, against spills seconds apart). A wake-up
// signal (inproc PAIR) would cut that latency but needs one socket per
// sending thread; the timeout also bounds how long stop() waits.
void ZmqServer::Impl::run_server(const std::stop_token& stop) {
  zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
  while (!stop.stop_requested()) {
    if (zmq_poll(&item, 1, kPollIntervalMs) > 0) {
      for (int i = 0; i < kRequestsPerTurn; ++i) {
        std::vector<zmq::message_t> frames;
        try {
          if (!zmq::recv_multipart(router, std::back_inserter(frames), zmq::recv_flags::dontwait)) break;
          serve(frames);
        } catch (const zmq::error_t&) {
          break;  // EINTR; the next turn goes on
        }
      }
    }
    publish_events();
  }
}

// Frames: routing id, then an empty delimiter if the client is REQ, then the
// request. The reply goes back with the same envelope.
void ZmqServer::Impl::serve(std::vector<zmq::message_t>& frames) {
  if (frames.size() < 2) return;
  const std::size_t body_index = frames.size() >= 3 && frames[1].size() == 0 ? 2 : 1;
  const std::size_t body_frames = frames.size() - body_index;

  control::Reply reply;
  control::Request request;
  if (body_frames != 1) {
    reply = refusal(control::BAD_REQUEST, fmt::format("a request is one frame, not {}", body_frames));
  } else if (!request.ParseFromArray(frames[body_index].data(), static_cast<int>(frames[body_index].size()))) {
    reply = refusal(control::BAD_REQUEST,
                    fmt::format("not a binary na64.control.Request ({} bytes)", frames[body_index].size()));
  } else {
    // Set from the ZAP User-Id of the connection: "viewer", "shift" or "expert".
    const char* user_id = zmq_msg_gets(frames[body_index].handle(), "User-Id");
    const Role role = user_id != nullptr ? role_from_string(user_id).value_or(Role::Anonymous) : Role::Anonymous;
    try {
      reply = service.handle(request, role);
    } catch (const std::exception& e) {
      reply = refusal(control::INTERNAL, fmt::format("internal error: {}", e.what()));
    }
  }

  std::vector<zmq::message_t> out;
  for (std::size_t i = 0; i < body_index; ++i) out.push_back(std::move(frames[i]));
  out.emplace_back(reply.SerializeAsString());
  // A ROUTER drops a reply to a peer that has gone or is over its HWM; it
  // never blocks.
  zmq::send_multipart(router, out, zmq::send_flags::dontwait);
}

// A reply made here, not by ControlService; it carries the status all the
// same, as every reply does.
control::Reply ZmqServer::Impl::refusal(control::Code code, std::string message) {
  control::Request status;
  status.mutable_status();
  control::Reply reply;
  *reply.mutable_status() = service.handle(status, Role::Anonymous).status();
  reply.set_code(code);
  reply.set_message(std::move(message));
  return reply;
}

void ZmqServer::Impl::publish_events() {
  for (const control::Event& event : events->take_all()) {
    std::string_view topic;
    switch (event.what_case()) {
      case control::Event::kState:
        topic = "state";
        break;
      case control::Event::kSpill:
        topic = "spill";
        break;
      case control::Event::kAlarm:
        topic = "alarm";
        break;
      case control::Event::WHAT_NOT_SET:
        continue;
    }
    std::vector<zmq::message_t> frames;
    frames.emplace_back(topic);
    frames.emplace_back(event.SerializeAsString());
    // A PUB drops for subscribers over their HWM; it never blocks.
    try {
      zmq::send_multipart(publisher, frames, zmq::send_flags::dontwait);
    } catch (const zmq::error_t&) {
      // EINTR: this event is lost, as for a slow subscriber.
    }
  }
}

ZmqServer::ZmqServer(ControlService& service, ZmqOptions options)
    : impl_(std::make_unique<Impl>(service, options)) {}

ZmqServer::~ZmqServer() { stop(); }

std::string ZmqServer::control_endpoint() const { return impl_->control_endpoint; }
std::string ZmqServer::publish_endpoint() const { return impl_->publish_endpoint; }
std::uint64_t ZmqServer::denied() const noexcept { return impl_->denied.load(std::memory_order_relaxed); }
std::uint64_t ZmqServer::events_dropped() const noexcept { return impl_->events->dropped(); }

void ZmqServer::stop() {
  Impl& impl = *impl_;
  impl.events->close();
  impl.server_thread.request_stop();
  impl.zap_thread.request_stop();
  if (impl.server_thread.joinable()) impl.server_thread.join();
  if (impl.zap_thread.joinable()) impl.zap_thread.join();
  // The threads are joined, so their sockets may be used here.
  for (zmq::socket_t* socket : {&impl.router, &impl.publisher, &impl.zap}) {
    if (*socket) {
      socket->set(zmq::sockopt::linger, 0);
      socket->close();
    }
  }
}

}  // namespace na64::daq
