// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/dqm_publisher.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <deque>
#include <mutex>
#include <stop_token>
#include <thread>
#include <utility>
#include <vector>
#include <zmq.hpp>
#include <zmq_addon.hpp>

#include "control.pb.h"
#include "dqm.pb.h"
#include "na64/daq/control_service.hpp"
#include "na64/daq/error.hpp"
#include "na64/daq/event_display.hpp"
#include "na64/daq/monitor.hpp"
#include "na64/firmware/channel_map.hpp"

namespace na64::daq {

namespace {

namespace fw = na64::firmware;

/// How often the thread looks at its queue and for a new sampled event.
constexpr auto kTick = std::chrono::milliseconds(50);
constexpr int kEventTicks = 5;
constexpr std::size_t kMaxQueued = 1024;
constexpr int kSendHighWaterMark = 1000;

/// Messages from the threads where they happen to the publishing thread.
/// The listener given to ControlService, which has no unsubscribe, holds it:
/// after close() it does nothing, however long it outlives the publisher.
class Outbox {
 public:
  void push(std::string_view topic, std::string body) {
    std::lock_guard lock(m_);
    if (closed_) return;
    if (queue_.size() == kMaxQueued) {
      queue_.pop_front();  // a consumer wants the present
      dropped_.fetch_add(1, std::memory_order_relaxed);
    }
    queue_.emplace_back(std::string(topic), std::move(body));
  }
  std::deque<std::pair<std::string, std::string>> take_all() {
    std::lock_guard lock(m_);
    return std::exchange(queue_, {});
  }
  void close() {
    std::lock_guard lock(m_);
    closed_ = true;
    queue_.clear();
  }
  void count_drop() noexcept { dropped_.fetch_add(1, std::memory_order_relaxed); }
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_.load(std::memory_order_relaxed); }

 private:
  std::mutex m_;
  std::deque<std::pair<std::string, std::string>> queue_;
  bool closed_ = false;
  std::atomic<std::uint64_t> dropped_{0};
};

dqm::Spill to_dqm(const control::SpillRecord& s) {
  dqm::Spill d;
  d.set_run(s.run());
  d.set_spill(s.spill());
  d.set_particles(s.particles());
  d.set_built(s.built());
  d.set_incomplete(s.incomplete());
  for (const auto n : s.accepted()) d.add_accepted(n);
  d.set_written(s.written());
  d.set_bytes(s.bytes());
  d.set_decode_errors(s.decode_errors());
  d.set_seconds(s.seconds());
  d.set_dead_time(s.dead_time());
  d.set_threshold_set(s.threshold_set());
  d.set_shadow_set(s.shadow_set());
  for (const auto n : s.shadow_accepted()) d.add_shadow_accepted(n);
  d.set_verdict(s.verdict());
  for (const auto& r : s.verdict_reasons()) d.add_reasons(r);
  return d;
}

dqm::Alarm to_dqm(const control::Alarm& a) {
  dqm::Alarm d;
  d.set_id(a.id());
  d.set_level(a.level());
  d.set_text(a.text());
  d.set_run(a.run());
  d.set_first_spill(a.first_spill());
  d.set_last_spill(a.last_spill());
  d.set_raised_unix_ms(a.raised_unix_ms());
  d.set_acknowledged(a.acknowledged());
  d.set_acknowledged_by(a.acknowledged_by());
  d.set_acknowledged_unix_ms(a.acknowledged_unix_ms());
  return d;
}

}  // namespace

struct DqmPublisher::Impl {
  Impl(ControlService& service, Monitor& m, const std::string& endpoint) : monitor(m) {
    socket.set(zmq::sockopt::linger, 0);
    socket.set(zmq::sockopt::sndhwm, kSendHighWaterMark);
    // Subscribers send only subscriptions.
    socket.set(zmq::sockopt::maxmsgsize, std::int64_t{64 << 10});
    try {
      socket.bind(endpoint);
    } catch (const zmq::error_t& e) {
      throw ConfigError(fmt::format("cannot bind the DQM publish endpoint {}: {}", endpoint, e.what()));
    }
    bound = socket.get(zmq::sockopt::last_endpoint);
    service.subscribe([box = outbox](const control::Event& e) {
      switch (e.what_case()) {
        case control::Event::kSpill: box->push("spill", to_dqm(e.spill()).SerializeAsString()); break;
        case control::Event::kAlarm: box->push("alarm", to_dqm(e.alarm()).SerializeAsString()); break;
        case control::Event::kState:
        case control::Event::WHAT_NOT_SET: break;
      }
    });
    thread = std::jthread([this](std::stop_token stop) { run(stop); });
  }

  void run(const std::stop_token& stop) {
    int ticks = 0;
    while (!stop.stop_requested()) {
      std::this_thread::sleep_for(kTick);
      for (auto& [topic, body] : outbox->take_all()) send(topic, body);
      if (++ticks % kEventTicks == 0) publish_event();
    }
  }

  void publish_event() {
    const auto sampled = monitor.sampled_event();
    if (!sampled || sampled->serial == last_serial) return;
    last_serial = sampled->serial;
    std::string error;
    const auto e = decode_display_event(sampled->words, *sampled->config, error);
    if (!e) {
      outbox->count_drop();
      fmt::print(stderr, "na64daq: dqm publisher: the sampled event of run {} does not decode: {}\n", sampled->run,
                 error);
      return;
    }
    dqm::Event d;
    d.set_run(e->run);
    d.set_spill(e->spill);
    d.set_event(e->event);
    d.set_particle(e->particle);
    d.set_trigger_mask(e->trigger_mask);
    for (const auto& c : e->cells) {
      const fw::Cell where = fw::cell_at(c.cell);
      auto* cell = d.add_cells();
      cell->set_detector(std::string(fw::geometry(where.detector).name));
      cell->set_x(where.x);
      cell->set_y(where.y);
      cell->set_energy_gev(c.energy_gev);
    }
    d.set_date_event(sampled->words.data(), sampled->words.size() * sizeof(std::uint32_t));
    send("event", d.SerializeAsString());
  }

  void send(const std::string& topic, const std::string& body) {
    std::vector<zmq::message_t> frames;
    frames.emplace_back(topic);
    frames.emplace_back(body);
    try {
      // A PUB drops for subscribers over their high-water mark; it never blocks.
      zmq::send_multipart(socket, frames, zmq::send_flags::dontwait);
      published.fetch_add(1, std::memory_order_relaxed);
    } catch (const zmq::error_t&) {
      outbox->count_drop();  // EINTR: this message is lost, as for a slow subscriber
    }
  }

  Monitor& monitor;
  std::shared_ptr<Outbox> outbox = std::make_shared<Outbox>();
  std::atomic<std::uint64_t> published{0};
  std::uint64_t last_serial = 0;  ///< publishing thread only
  std::string bound;
  // Declared before the socket: the context is terminated after it closes.
  zmq::context_t context;
  zmq::socket_t socket{context, zmq::socket_type::pub};
  std::jthread thread;
};

DqmPublisher::DqmPublisher(ControlService& service, Monitor& monitor, const std::string& endpoint)
    : impl_(std::make_unique<Impl>(service, monitor, endpoint)) {}

DqmPublisher::~DqmPublisher() { stop(); }

std::string DqmPublisher::endpoint() const { return impl_->bound; }
std::uint64_t DqmPublisher::published() const noexcept { return impl_->published.load(std::memory_order_relaxed); }
std::uint64_t DqmPublisher::dropped() const noexcept { return impl_->outbox->dropped(); }

void DqmPublisher::stop() {
  impl_->outbox->close();
  impl_->thread.request_stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  if (impl_->socket) impl_->socket.close();
}

}  // namespace na64::daq
