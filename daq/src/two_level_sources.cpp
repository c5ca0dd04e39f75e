// SPDX-License-Identifier: Apache-2.0
#include "two_level_sources.hpp"

#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "na64/daq/error.hpp"

#include "na64/drivers/beam.hpp"
#include "na64/drivers/emulated_readout_board.hpp"
#include "na64/drivers/emulated_trackers.hpp"
#include "na64/drivers/tracker_frontend.hpp"
#include "na64/drivers/tracker_link.hpp"
#include "na64/drivers/usb_msadc.hpp"
#include "na64/firmware/msadc_readout.hpp"
#include "recording.hpp"

namespace na64::daq::chain {

namespace ro = na64::firmware::msadc_readout;

namespace {

[[nodiscard]] std::uint64_t unix_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

/// An MSADC board emulated in the host: the link is a function call. The
/// board's gate follows the beam's spills (the clock), and the board
/// streams as fast as the source thread reads, as a board on a link that
/// is never the bottleneck.
class InProcessBoardLink final : public links::BoardLink {
 public:
  InProcessBoardLink(const DaqConfig& config, std::uint32_t source, const drivers::NA64Beam& beam, eb::SpillClock& clock)
      : board_(source, config.channel_map, beam, config.emulator,
               drivers::ReadoutBoardParameters{.latency_capacity = config.readout.latency_depth}),
        clock_(clock),
        particles_(config.beam.particles_per_spill) {
    for (const RegisterValue& r : board_registers(config, source)) {
      if (board_.write_register(r.address, r.value) != drivers::RegisterWrite::Done) {
        throw RunError(fmt::format("source {}: emulated board refused register 0x{:02x}", source, r.address));
      }
    }
    // Small buffers: answers wait behind the summaries of one buffer at most.
    stream_.resize(std::max<std::size_t>(board_.min_stream_words(), 4096));
    answers_.resize(board_.answer_words_bound(64) * 4);
  }

  std::size_t poll(std::chrono::microseconds wait, links::BufferSink& sink) override {
    if (answer_words_ != 0) {
      sink.on_buffer(std::span<const std::uint32_t>(answers_.data(), answer_words_), unix_ns());
      answer_words_ = 0;
      return 1;
    }
    if (!board_.gate_open()) {
      if (clock_.announced() < next_spill_) {
        std::this_thread::sleep_for(std::min(wait, std::chrono::microseconds(100)));
        return 0;
      }
      busy_ = {};
      return deliver(board_.begin_spill(next_spill_, stream_).value_or(0), sink);
    }
    if (const std::uint32_t left = board_.particles_left(); left != 0) {
      if (stalled(left, wait)) return 0;
      return deliver(board_.stream(stream_).words, sink);
    }
    const std::size_t n = board_.end_spill(stream_).value_or(0);
    clock_.spill_done(next_spill_++, busy_);
    return deliver(n, sink);
  }

  bool send(std::span<const std::uint32_t> message) override {
    const std::span<std::uint32_t> room(answers_.data() + answer_words_, answers_.size() - answer_words_);
    const drivers::RequestsResult r = board_.handle_requests(message, room);
    if (!r.taken) return false;
    answer_words_ += r.words;
    return true;
  }

  void add_busy(std::chrono::steady_clock::duration busy) override { busy_ += busy; }

 private:
  // emulator.stall: the board goes silent before the packet holding the
  // stall particle (packets of up to 64 particles), for stall.ms, once.
  // Requests are still answered meanwhile.
  bool stalled(std::uint32_t left, std::chrono::microseconds wait) {
    const auto now = std::chrono::steady_clock::now();
    if (now < stall_until_) {
      std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(wait, stall_until_ - now));
      return true;
    }
    const std::uint32_t next = particles_ - left + 1;
    for (std::uint32_t p = next; p < next + kPacket && p <= particles_; ++p) {
      if (const std::uint32_t ms = board_.msadc().stall_ms(next_spill_, p); ms != 0 && stalled_spill_ != next_spill_) {
        stalled_spill_ = next_spill_;
        stall_until_ = now + std::chrono::milliseconds(ms);
        return true;
      }
    }
    return false;
  }
  static constexpr std::uint32_t kPacket = 64;
  std::size_t deliver(std::size_t words, links::BufferSink& sink) {
    if (words == 0) return 0;
    sink.on_buffer(std::span<const std::uint32_t>(stream_.data(), words), unix_ns());
    return 1;
  }

  drivers::EmulatedReadoutBoard board_;
  eb::SpillClock& clock_;
  std::vector<std::uint32_t> stream_;
  std::vector<std::uint32_t> answers_;
  std::size_t answer_words_ = 0;
  std::uint32_t next_spill_ = 1;
  std::chrono::steady_clock::duration busy_{};
  std::uint32_t particles_;
  std::uint32_t stalled_spill_ = 0;
  std::chrono::steady_clock::time_point stall_until_{};
};

/// A USB MSADC board through the libusb driver. The driver's event thread
/// copies each completed transfer into a ring the source thread reads.
class UsbBoardLink final : public links::BoardLink, public drivers::UsbMsadcSink {
 public:
  UsbBoardLink(const DaqConfig& config, const UsbBoardSettings& s)
      : source_(s.source), buffers_(64, 64 * 1024 / 4), driver_(options(s), *this) {
    if (auto r = driver_.open(); !r) throw RunError(fmt::format("source {}: {}", source_, r.error().message));
    for (const RegisterValue& reg : board_registers(config, source_)) {
      if (auto r = driver_.write_register(reg.address, reg.value); !r) {
        throw RunError(fmt::format("source {}: {}", source_, r.error().message));
      }
    }
  }
  ~UsbBoardLink() override { stop(); }

  void start() {
    if (auto r = driver_.start_streaming(); !r) throw RunError(fmt::format("source {}: {}", source_, r.error().message));
    started_.store(true);
  }
  void stop() noexcept {
    stopping_.store(true);
    driver_.close();
  }

  std::size_t poll(std::chrono::microseconds wait, links::BufferSink& sink) override {
    std::size_t n = buffers_.readable(16);
    if (n == 0) {
      std::this_thread::sleep_for(std::min(wait, std::chrono::microseconds(100)));
      n = buffers_.readable(16);
    }
    for (std::size_t k = 0; k < n; ++k) {
      const Buffer& b = buffers_.read_desc(k);
      sink.on_buffer(buffers_.read_words(k).first(b.words), b.time_ns);
    }
    buffers_.consume(n);
    return n;
  }

  bool send(std::span<const std::uint32_t> message) override { return driver_.send_requests(message).ok(); }
  [[nodiscard]] bool lost() const override { return lost_.load(std::memory_order_acquire); }
  void retry() override {
    if (!lost()) return;
    if (driver_.reopen()) fmt::print(stderr, "na64daq: source {} is back\n", source_);
  }

 private:
  struct Buffer {
    std::size_t words = 0;
    std::uint64_t time_ns = 0;
  };

  static drivers::UsbMsadcOptions options(const UsbBoardSettings& s) {
    drivers::UsbMsadcOptions o;
    o.vendor_id = s.vendor_id;
    o.product_id = s.product_id;
    o.bus = s.bus;
    o.address = s.address;
    return o;
  }

  // The driver's event thread.
  void on_words(std::span<const std::uint32_t> words) override {
    eb::Backoff backoff;
    while (buffers_.writable(1) == 0) {
      if (stopping_.load()) return;
      backoff.pause();
    }
    const std::size_t n = std::min(words.size(), buffers_.slot_words());
    std::memcpy(buffers_.write_words(0).data(), words.data(), n * 4);
    buffers_.write_desc(0) = Buffer{n, unix_ns()};
    buffers_.commit(1);
  }
  // Once streaming, any other state is a board gone (a failed reopen leaves it closed).
  void on_state(drivers::UsbSourceState state, std::string_view why) override {
    const bool gone = started_.load() && !stopping_.load() && state != drivers::UsbSourceState::Streaming;
    lost_.store(gone, std::memory_order_release);
    if (state == drivers::UsbSourceState::Lost) fmt::print(stderr, "na64daq: source {} lost: {}\n", source_, why);
  }

  std::uint32_t source_;
  eb::SlotRing<Buffer> buffers_;
  std::atomic<bool> lost_{false};
  std::atomic<bool> stopping_{false};
  std::atomic<bool> started_{false};
  drivers::UsbMsadcDriver driver_;  // last: its event thread stops first
};

/// A tracker front-end over Ethernet: the Boost.Asio TrackerLink (its own
/// I/O thread) hands its answers over through a ring the tracker's source
/// thread reads.
class TcpTrackerPort final : public links::TrackerPort, private drivers::TrackerLinkSink {
 public:
  TcpTrackerPort(const TrackerSettings& t, std::uint16_t port, std::size_t max_words, std::chrono::milliseconds timeout)
      : source_(t.source), answers_(1024, max_words), link_(parameters(t, timeout), *this) {
    if (const std::error_code ec = link_.connect(t.host, port, std::chrono::milliseconds(2000))) {
      throw RunError(fmt::format("tracker {} ({} at {}:{}): cannot connect: {}", t.source, to_string(t.kind), t.host,
                                 port, ec.message()));
    }
  }
  ~TcpTrackerPort() override { stop(); }

  void stop() noexcept {
    stopping_.store(true);
    link_.close();
  }

  // The particle count goes with the close (the gate-open message has none).
  void gate(std::uint32_t spill, bool open, std::uint32_t particles) override {
    if (!link_.gate(spill, open, open ? 0 : particles)) ++gates_refused_;
  }
  bool request(std::uint32_t spill, std::uint32_t particle) override {
    const drivers::ParticleRef ref{spill, particle};
    return link_.request(std::span<const drivers::ParticleRef>(&ref, 1)) == 1;
  }
  void poll(std::chrono::microseconds wait, links::TrackerSink& sink) override {
    std::size_t n = answers_.readable(64);
    if (n == 0) {
      std::this_thread::sleep_for(std::min(wait, std::chrono::microseconds(100)));
      n = answers_.readable(64);
    }
    for (std::size_t k = 0; k < n; ++k) {
      const Answer& a = answers_.read_desc(k);
      sink.on_answer(a.spill, a.particle, a.outcome, answers_.read_words(k).first(a.words));
    }
    answers_.consume(n);
  }

 private:
  struct Answer {
    std::uint32_t spill = 0;
    std::uint32_t particle = 0;
    links::TrackerOutcome outcome = links::TrackerOutcome::Data;
    std::size_t words = 0;
  };

  static drivers::TrackerLinkParameters parameters(const TrackerSettings& t, std::chrono::milliseconds timeout) {
    drivers::TrackerLinkParameters p;
    p.source_id = t.source;
    p.request_timeout = timeout;
    return p;
  }

  // The link's I/O thread.
  void put(const drivers::ParticleRef& ref, links::TrackerOutcome outcome, std::span<const std::uint32_t> block) {
    eb::Backoff backoff;
    while (answers_.writable(1) == 0) {
      if (stopping_.load()) return;
      backoff.pause();
    }
    const std::size_t n = std::min(block.size(), answers_.slot_words());
    if (n != 0) std::memcpy(answers_.write_words(0).data(), block.data(), n * 4);
    answers_.write_desc(0) = Answer{ref.spill, ref.particle, outcome, n};
    answers_.commit(1);
  }
  void on_event(const drivers::ParticleRef& ref, firmware::frontend_link::BlockKind, std::span<const std::uint32_t> block) override {
    put(ref, links::TrackerOutcome::Data, block);
  }
  void on_lost(const drivers::ParticleRef& ref, drivers::LinkOutcome outcome, std::optional<drivers::ParticleRef>) override {
    links::TrackerOutcome o = links::TrackerOutcome::Lost;
    switch (outcome) {
      case drivers::LinkOutcome::TooLate: o = links::TrackerOutcome::TooLate; break;
      case drivers::LinkOutcome::NotFound: o = links::TrackerOutcome::NotFound; break;
      case drivers::LinkOutcome::Unanswered: o = links::TrackerOutcome::Unanswered; break;
      case drivers::LinkOutcome::Disconnected: o = links::TrackerOutcome::Lost; break;
    }
    put(ref, o, {});
  }
  void on_state(drivers::LinkState state, std::string_view why) override {
    if (state == drivers::LinkState::Lost && !stopping_.load()) fmt::print(stderr, "na64daq: tracker {} lost: {}\n", source_, why);
  }

  std::uint32_t source_;
  std::uint64_t gates_refused_ = 0;
  eb::SlotRing<Answer> answers_;
  std::atomic<bool> stopping_{false};
  drivers::TrackerLink link_;  // last: its I/O thread stops first
};

drivers::TrackerKind emulated_kind(TrackerKind k) {
  switch (k) {
    case TrackerKind::Micromegas: return drivers::TrackerKind::Micromegas;
    case TrackerKind::Gem: return drivers::TrackerKind::Gem;
    case TrackerKind::Straw: return drivers::TrackerKind::Straw;
  }
  return drivers::TrackerKind::Micromegas;
}

std::size_t tracker_max_words(const drivers::EmulatedTrackers& t, TrackerKind k) {
  switch (k) {
    case TrackerKind::Micromegas: return t.max_apv_words(drivers::ApvSource::Micromegas);
    case TrackerKind::Gem: return t.max_apv_words(drivers::ApvSource::Gem);
    case TrackerKind::Straw: return t.max_straw_words();
  }
  return 0;
}

}  // namespace

struct Sources::Emulation {
  explicit Emulation(const DaqConfig& config) : beam(config.beam), trackers(beam, drivers::TrackerParameters{}) {}
  drivers::NA64Beam beam;
  drivers::EmulatedTrackers trackers;
  std::vector<UsbBoardLink*> usb;
  std::vector<TcpTrackerPort*> tcp;
  /// Tracker front-ends the run starts itself (port 0), on loopback.
  std::vector<std::unique_ptr<drivers::EmulatedTrackerFrontEnd>> front_ends;
};

Sources::Sources(const DaqConfig& config, const RunOptions& options, eb::SpillClock& clock, std::stop_token abort)
    : emulation_(std::make_unique<Emulation>(config)) {
  (void)abort;
  const auto& map = config.channel_map;
  const std::string& replay = config.readout.replay_dir;
  const std::string& record = config.readout.record_dir;
  auto recording_header = [&](recording::Kind kind, std::uint32_t source) {
    return recording::Header{kind, source, options.run, options.start_time_s, config.text};
  };
  auto recorded = [&](std::uint32_t source) {
    recording::Recording r = recording::read(recording::file_path(replay, options.run, source));
    if (r.header.source != source || r.header.run != options.run) {
      throw RunError(fmt::format("{}: holds source {} of run {}", recording::file_path(replay, options.run, source).string(),
                                 r.header.source, r.header.run));
    }
    return r;
  };
  for (std::size_t slot = 0; slot < map.sources().size(); ++slot) {
    const std::uint32_t source = map.sources()[slot];
    // Sizes from the board emulation of the same configuration, which a real
    // board's blocks cannot exceed (same channels and sample count).
    const drivers::EmulatedMsadcBoard sizing(source, map, emulation_->beam, config.emulator);
    info_.push_back(SourceInfo{source, true, sizing.max_fragment_words(),
                               trigger::kSummaryHeadWords + sizing.channel_count()});
    const auto usb = std::find_if(config.readout.usb.begin(), config.readout.usb.end(),
                                  [&](const UsbBoardSettings& u) { return u.source == source; });
    std::unique_ptr<links::BoardLink> link;
    if (!replay.empty()) {
      link = std::make_unique<recording::ReplayBoardLink>(recorded(source), clock, config.readout.replay_paced);
    } else if (usb != config.readout.usb.end()) {
      auto u = std::make_unique<UsbBoardLink>(config, *usb);
      emulation_->usb.push_back(u.get());
      link = std::move(u);
    } else {
      link = std::make_unique<InProcessBoardLink>(config, source, emulation_->beam, clock);
    }
    if (!record.empty()) {
      auto r = std::make_unique<recording::RecordingBoardLink>(
          std::move(link),
          std::make_unique<recording::Writer>(record, recording_header(recording::Kind::BoardStream, source)));
      close_recordings_.push_back([p = r.get()] { p->close(); });
      link = std::move(r);
    }
    boards_.push_back(std::move(link));
  }
  for (const TrackerSettings& t : config.readout.trackers) {
    const std::size_t max_words = tracker_max_words(emulation_->trackers, t.kind);
    info_.push_back(SourceInfo{t.source, false, max_words, 0});
    std::unique_ptr<links::TrackerPort> port;
    if (!replay.empty()) {
      port = std::make_unique<recording::ReplayTrackerPort>(recorded(t.source));
    } else {
      std::uint16_t tcp_port = t.port;
      if (tcp_port == 0) {  // an emulated front-end, served on loopback by the run
        drivers::TrackerFrontEndParameters fe;
        fe.source_id = t.source;
        fe.kind = emulated_kind(t.kind);
        emulation_->front_ends.push_back(std::make_unique<drivers::EmulatedTrackerFrontEnd>(emulation_->trackers, fe));
        tcp_port = emulation_->front_ends.back()->port();
      }
      auto p = std::make_unique<TcpTrackerPort>(t, tcp_port, max_words, config.readout.completion_timeout);
      emulation_->tcp.push_back(p.get());
      port = std::move(p);
    }
    if (!record.empty()) {
      auto r = std::make_unique<recording::RecordingTrackerPort>(
          std::move(port),
          std::make_unique<recording::Writer>(record, recording_header(recording::Kind::TrackerAnswers, t.source)));
      close_recordings_.push_back([p = r.get()] { p->close(); });
      port = std::move(r);
    }
    trackers_.push_back(std::move(port));
  }
}

void Sources::finish_recordings() {
  for (auto& close : close_recordings_) close();
}

DaqConfig replay_config(const DaqConfig& given, RunOptions& options) {
  const auto& sources = given.channel_map.sources();
  const auto path = recording::file_path(given.readout.replay_dir, options.run, sources.front());
  const recording::Recording r = recording::read(path);
  DaqConfig c = load_config(r.header.config_text, fmt::format("{} (recorded configuration)", path.string()));
  c.readout.replay_dir = given.readout.replay_dir;
  c.readout.replay_paced = given.readout.replay_paced;
  c.readout.record_dir.clear();
  c.readout.usb.clear();
  // As fast as possible: spills back to back. Paced: the recording's pace,
  // and the spill cycle as it was.
  if (!c.readout.replay_paced) c.run.spill_cycle_s = 0;
  options.start_time_s = r.header.start_time_s;
  std::uint32_t spills = 0;
  for (const auto& b : r.buffers) {
    std::size_t pos = 0;
    while (pos < b.words.size()) {
      const auto h = ro::decode_message_header(std::span<const std::uint32_t>(b.words).subspan(pos), pos * 4);
      if (!h) break;
      spills += h->type == ro::MessageType::SpillEnd;
      pos += h->length_words;
    }
  }
  if (options.spills == 0 || spills < options.spills) options.spills = spills;
  if (options.spills == 0) throw RunError(fmt::format("{}: no whole spill recorded", path.string()));
  return c;
}

Sources::~Sources() { stop(); }

void Sources::start(std::stop_token abort) {
  (void)abort;
  for (UsbBoardLink* u : emulation_->usb) u->start();
}

void Sources::stop() noexcept {
  for (UsbBoardLink* u : emulation_->usb) u->stop();
  for (TcpTrackerPort* t : emulation_->tcp) t->stop();
}

}  // namespace na64::daq::chain
