// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/tracker_link.hpp"

#include <fmt/format.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <cerrno>
#include <future>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <type_traits>
#include <utility>

namespace na64::drivers {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
namespace fl = firmware::frontend_link;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::uint32_t kMaxInFlight = 1u << 20;
/// Gates waiting for the connection at most; more are dropped (counted).
constexpr std::size_t kGateQueue = 16;
constexpr std::size_t kGateWords = fl::fixed_length_words(fl::MessageType::SpillGate);

}  // namespace

const char* to_string(LinkOutcome o) noexcept {
  switch (o) {
    case LinkOutcome::TooLate: return "too-late";
    case LinkOutcome::NotFound: return "not-found";
    case LinkOutcome::Unanswered: return "unanswered";
    case LinkOutcome::Disconnected: return "disconnected";
  }
  return "unknown";
}

const char* to_string(LinkState s) noexcept {
  switch (s) {
    case LinkState::Idle: return "idle";
    case LinkState::Connecting: return "connecting";
    case LinkState::Connected: return "connected";
    case LinkState::Lost: return "lost";
  }
  return "unknown";
}

std::string LinkDecodeError::message(std::uint32_t source_id) const {
  return fmt::format("source {}, connection {}: {}", source_id, connection, error.message());
}

class TrackerLink::Impl {
 public:
  Impl(TrackerLinkParameters p, TrackerLinkSink& sink)
      : p_(p),
        sink_(&sink),
        wake_(io_),
        socket_(io_),
        resolver_(io_),
        connect_timer_(io_),
        request_timer_(io_),
        work_(asio::make_work_guard(io_)) {
    if (p.source_id > firmware::kMaxSourceId) {
      throw std::invalid_argument(fmt::format("tracker link: source id {} is not < 896", p.source_id));
    }
    if (p.max_in_flight == 0 || p.max_in_flight > kMaxInFlight) {
      throw std::invalid_argument(
          fmt::format("tracker link {}: max_in_flight {} is not 1-{}", p.source_id, p.max_in_flight, kMaxInFlight));
    }
    if (p.requests_per_message == 0 || p.requests_per_message > 0xFFFF) {
      throw std::invalid_argument(fmt::format("tracker link {}: requests_per_message {} is not 1-65535", p.source_id,
                                              p.requests_per_message));
    }
    if (p.request_timeout.count() <= 0 || p.connect_timeout.count() <= 0) {
      throw std::invalid_argument(fmt::format("tracker link {}: the timeouts must be > 0", p.source_id));
    }
    if (p.max_message_words < fl::kEventDataHeadWords || p.max_message_words > fl::kMaxMessageWords) {
      throw std::invalid_argument(fmt::format("tracker link {}: max_message_words {} is not {}-{}", p.source_id,
                                              p.max_message_words, fl::kEventDataHeadWords, fl::kMaxMessageWords));
    }
    slots_.resize(p.max_in_flight);
    ended_.resize(p.max_in_flight);
    batch_.resize(p.requests_per_message);
    errors_.resize(p.errors_kept);
    in_.resize(p.max_message_words);
    // Two request messages and the gate queue per buffer.
    for (auto& out : out_) out.resize(2 * fl::event_requests_words(p.requests_per_message) + kGateQueue * kGateWords);
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw std::system_error(errno, std::system_category(), "tracker link: eventfd");
    wake_.assign(wake_fd_);
    do_wait_wake();
    thread_ = std::jthread([this] { io_.run(); });
  }

  ~Impl() {
    close();
    work_.reset();
    io_.stop();
    thread_.join();
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  std::error_code connect(std::string_view host, std::uint16_t port, std::chrono::milliseconds timeout) {
    {
      std::lock_guard lock(mutex_);
      if (state_ == LinkState::Connected || state_ == LinkState::Connecting) {
        return std::make_error_code(std::errc::already_connected);
      }
      state_ = LinkState::Connecting;
    }
    auto done = std::make_shared<std::promise<std::error_code>>();
    auto result = done->get_future();
    asio::post(io_, [this, host = std::string(host), port, timeout, done] {
      host_ = host;
      port_ = port;
      endpoints_ = {};
      start_connect(timeout, done);
    });
    // The connect timer ends the attempt; the margin only guards against a stalled I/O thread.
    if (result.wait_for(timeout + std::chrono::seconds(5)) != std::future_status::ready) {
      return std::make_error_code(std::errc::timed_out);
    }
    return result.get();
  }

  void reconnect() {
    {
      std::lock_guard lock(mutex_);
      if (state_ != LinkState::Lost) return;
      begin_reconnect();
    }
    asio::post(io_, [this] { start_connect(p_.connect_timeout, nullptr); });
  }

  void close() {
    std::promise<void> done;
    asio::post(io_, [this, &done] {
      const LinkState s = current_state();
      if (s == LinkState::Connected || s == LinkState::Connecting) drop("closed by the host", false);
      done.set_value();
    });
    done.get_future().wait();
  }

  bool gate(std::uint32_t spill, bool open, std::uint32_t particles) {
    if (!fl::field::kSpill.fits(spill) || particles > fl::kMaxParticleCount || (open && particles != 0)) return false;
    bool connect_first = false;
    {
      std::lock_guard lock(mutex_);
      const bool can = open ? state_ != LinkState::Idle
                            : state_ == LinkState::Connected || state_ == LinkState::Connecting;
      if (!can || gates_count_ == gates_.size()) {
        ++counters_.gates_dropped;
        return false;
      }
      // Connecting from here on, so that requests taken after this call wait for the connection.
      connect_first = state_ == LinkState::Lost;
      if (connect_first) begin_reconnect();
      gates_[gates_count_++] = QueuedGate{fl::SpillGate{p_.source_id, spill, open, particles}, next_seq_};
      wake();
    }
    if (connect_first) asio::post(io_, [this] { start_connect(p_.connect_timeout, nullptr); });
    return true;
  }

  std::size_t request(std::span<const ParticleRef> refs) {
    std::lock_guard lock(mutex_);
    if (state_ == LinkState::Idle || state_ == LinkState::Lost) {
      counters_.refused_lost += refs.size();
      return 0;
    }
    const auto now = Clock::now();
    std::size_t n = 0;
    for (; n < refs.size(); ++n) {
      const ParticleRef& r = refs[n];
      if (!fl::field::kSpill.fits(r.spill) || !fl::field::kParticle.fits(r.particle)) {
        counters_.refused_invalid += refs.size() - n;
        break;
      }
      if (next_seq_ - oldest_seq_ == slots_.size()) {
        counters_.refused_full += refs.size() - n;
        break;
      }
      const std::uint64_t seq = next_seq_++;
      slot(seq) = Slot{r, now, SlotState::Pending};
    }
    counters_.taken += n;
    if (n > 0) wake();
    return n;
  }

  [[nodiscard]] LinkState state() const { return current_state(); }

  [[nodiscard]] TrackerLinkCounters counters() const {
    std::lock_guard lock(mutex_);
    return counters_;
  }

  [[nodiscard]] std::vector<LinkDecodeError> errors() const {
    std::lock_guard lock(mutex_);
    return {errors_.begin(), errors_.begin() + static_cast<std::ptrdiff_t>(errors_count_)};
  }

 private:
  enum class SlotState : std::uint8_t { Free, Pending, Sent };
  /// A gate, sent after the requests taken before it, so that the host's
  /// messages go out in the order it made them.
  struct QueuedGate {
    fl::SpillGate gate;
    std::uint64_t after_seq = 0;  ///< next_seq_ when gate() was called
  };
  struct Slot {
    ParticleRef ref;
    Clock::time_point taken;
    SlotState state = SlotState::Free;
  };
  using ConnectDone = std::shared_ptr<std::promise<std::error_code>>;

  // The request table (mutex_ held). Requests are numbered in order by a
  // sequence number; [oldest_seq_, next_seq_) holds those not ended (some
  // ended already: Free), the sent ones before next_pending_seq_. The table
  // never holds more than it has slots, and slots < 2^21 - 1, so a 21-bit
  // request id finds its sequence number back.

  [[nodiscard]] Slot& slot(std::uint64_t seq) noexcept { return slots_[seq % slots_.size()]; }
  [[nodiscard]] static std::uint32_t id_of(std::uint64_t seq) noexcept {
    return static_cast<std::uint32_t>(seq % fl::kMaxRequestId) + 1;
  }

  void advance_oldest() noexcept {
    while (oldest_seq_ < next_seq_ && slot(oldest_seq_).state == SlotState::Free) ++oldest_seq_;
    next_pending_seq_ = std::max(next_pending_seq_, oldest_seq_);
  }

  /// The slot of the sent request `ref` answers, or null.
  [[nodiscard]] Slot* match(const fl::EventRef& ref) noexcept {
    if (ref.request_id == 0 || ref.request_id > fl::kMaxRequestId) return nullptr;
    const std::uint64_t base = oldest_seq_ % fl::kMaxRequestId;
    const std::uint64_t off = (ref.request_id - 1 + fl::kMaxRequestId - base) % fl::kMaxRequestId;
    const std::uint64_t seq = oldest_seq_ + off;
    if (seq >= next_pending_seq_) return nullptr;
    Slot& s = slot(seq);
    if (s.state != SlotState::Sent || s.ref != ParticleRef{ref.spill, ref.particle}) return nullptr;
    return &s;
  }

  void end(Slot& s) noexcept {
    s.state = SlotState::Free;
    advance_oldest();
  }

  [[nodiscard]] LinkState current_state() const {
    std::lock_guard lock(mutex_);
    return state_;
  }

  /// Has the I/O thread run pump() (mutex_ held). An eventfd write, because
  /// a post() from a thread outside the I/O thread allocates.
  void wake() noexcept {
    if (pump_posted_) return;
    pump_posted_ = true;
    const std::uint64_t one = 1;
    [[maybe_unused]] const auto written = ::write(wake_fd_, &one, sizeof one);
  }

  void do_wait_wake() {
    wake_.async_wait(asio::posix::stream_descriptor::wait_read, [this](const boost::system::error_code& ec) {
      if (ec) return;
      std::uint64_t count = 0;
      [[maybe_unused]] const auto read = ::read(wake_fd_, &count, sizeof count);
      pump();
      do_wait_wake();
    });
  }

  // The connection (I/O thread).

  /// Lost -> Connecting (mutex_ held); start_connect() follows on the I/O thread.
  void begin_reconnect() noexcept {
    ++counters_.reconnects;
    state_ = LinkState::Connecting;
  }

  /// Resolves the host once, then connects; the timer closes the socket
  /// (ending the attempt) after `timeout`. Nothing unless the state is
  /// Connecting with no attempt under way: a reconnection asked for twice
  /// (a sink's gate(open) while the link drops, say) makes one attempt.
  void start_connect(std::chrono::milliseconds timeout, ConnectDone done) {
    if (attempting_ || current_state() != LinkState::Connecting) {
      if (done) done->set_value(std::make_error_code(std::errc::operation_in_progress));
      return;
    }
    attempting_ = true;
    const std::uint64_t c = ++conn_;
    connect_done_ = std::move(done);
    timed_out_ = false;
    connect_timer_.expires_after(timeout);
    connect_timer_.async_wait([this, c](const boost::system::error_code& ec) {
      if (ec || c != conn_ || current_state() != LinkState::Connecting) return;
      timed_out_ = true;
      resolver_.cancel();
      boost::system::error_code ignored;
      socket_.close(ignored);
    });
    auto on_connect = [this, c](const boost::system::error_code& ec, const tcp::endpoint&) {
      if (c == conn_) on_connected(ec);
    };
    if (!endpoints_.empty()) {
      asio::async_connect(socket_, endpoints_, on_connect);
      return;
    }
    resolver_.async_resolve(host_, std::to_string(port_),
                            [this, c, on_connect](const boost::system::error_code& ec,
                                                  tcp::resolver::results_type results) {
                              if (c != conn_) return;
                              if (ec) {
                                on_connected(ec);
                                return;
                              }
                              endpoints_ = std::move(results);
                              asio::async_connect(socket_, endpoints_, on_connect);
                            });
  }

  void on_connected(boost::system::error_code ec) {
    connect_timer_.cancel();
    attempting_ = false;
    if (ec) {
      const std::error_code result = timed_out_ ? std::make_error_code(std::errc::timed_out) : std::error_code(ec);
      // connect() returns after the sink has been told.
      ConnectDone done = std::move(connect_done_);
      drop(fmt::format("connecting to {}:{}: {}", host_, port_, result.message()), false);
      if (done) done->set_value(result);
      return;
    }
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    offset_bytes_ = 0;
    writing_ = false;
    fill_words_ = 0;
    {
      std::lock_guard lock(mutex_);
      state_ = LinkState::Connected;
      ++counters_.connections;
      connection_ = counters_.connections;
    }
    sink_->on_state(LinkState::Connected, fmt::format("connected to {}:{}", host_, port_));
    finish_connect({});
    do_read_header();
    pump();
  }

  void finish_connect(std::error_code ec) {
    if (connect_done_) connect_done_->set_value(ec);
    connect_done_.reset();
  }

  /// Ends the connection (or the attempt): every request not ended ends
  /// Disconnected, the sink is told, and with `reconnect_now` a new
  /// connection is started at once.
  void drop(const std::string& why, bool reconnect_now) {
    ++conn_;  // the handlers of this connection's operations see another one and return
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    resolver_.cancel();
    connect_timer_.cancel();
    attempting_ = false;
    writing_ = false;
    fill_words_ = 0;
    std::size_t ended = 0;
    {
      std::lock_guard lock(mutex_);
      state_ = LinkState::Lost;
      for (std::uint64_t seq = oldest_seq_; seq < next_seq_; ++seq) {
        Slot& s = slot(seq);
        if (s.state == SlotState::Free) continue;
        ended_[ended++] = s.ref;
        s.state = SlotState::Free;
      }
      oldest_seq_ = next_pending_seq_ = next_seq_;
      counters_.disconnected += ended;
      if (!reconnect_now) {
        counters_.gates_dropped += gates_count_;
        gates_count_ = 0;
      }
    }
    finish_connect(std::make_error_code(std::errc::operation_canceled));
    sink_->on_state(LinkState::Lost, why);
    for (std::size_t k = 0; k < ended; ++k) sink_->on_lost(ended_[k], LinkOutcome::Disconnected, std::nullopt);
    if (reconnect_now) {
      {
        std::lock_guard lock(mutex_);
        if (state_ == LinkState::Lost) begin_reconnect();  // unless the sink began one
      }
      start_connect(p_.connect_timeout, nullptr);
    }
  }

  /// Moves the pending requests and the waiting gates, in the order they
  /// were made, into the output buffer as far as it has room, and writes it.
  void pump() {
    std::unique_lock lock(mutex_);
    pump_posted_ = false;
    if (state_ != LinkState::Connected) {
      lock.unlock();
      arm_timer();
      return;
    }
    std::span<std::uint32_t> out = std::span<std::uint32_t>(out_[fill_]).subspan(fill_words_);
    for (;;) {
      const std::uint64_t limit = gates_count_ > 0 ? gates_[0].after_seq : next_seq_;
      while (next_pending_seq_ < limit && out.size() >= fl::event_requests_words(1)) {
        const std::size_t fit = (out.size() - fl::kMessageHeaderWords) / fl::kEventRefWords;
        const std::size_t most = std::min<std::size_t>(fit, batch_.size());
        std::size_t k = 0;
        for (; k < most && next_pending_seq_ < limit; ++next_pending_seq_) {
          Slot& s = slot(next_pending_seq_);
          if (s.state != SlotState::Pending) continue;  // ended Unanswered before it could be sent
          s.state = SlotState::Sent;
          batch_[k++] = fl::EventRef{s.ref.spill, s.ref.particle, id_of(next_pending_seq_)};
        }
        if (k == 0) break;
        const std::size_t n =
            fl::encode_event_requests(p_.source_id, std::span<const fl::EventRef>(batch_.data(), k), out);
        out = out.subspan(n);
        fill_words_ += n;
        ++counters_.request_messages;
        counters_.requests_sent += k;
      }
      if (next_pending_seq_ < limit || gates_count_ == 0) break;  // out of room, or all sent
      const std::size_t n = fl::encode(gates_[0].gate, out);
      if (n == 0) break;
      out = out.subspan(n);
      fill_words_ += n;
      ++counters_.gates_sent;
      std::copy(gates_.begin() + 1, gates_.begin() + static_cast<std::ptrdiff_t>(gates_count_), gates_.begin());
      --gates_count_;
    }
    lock.unlock();
    flush();
    arm_timer();
  }

  void flush() {
    if (writing_ || fill_words_ == 0) return;
    const std::size_t sending = fill_;
    const std::size_t words = fill_words_;
    fill_ ^= 1;
    fill_words_ = 0;
    writing_ = true;
    asio::async_write(socket_, asio::buffer(out_[sending].data(), words * 4),
                      [this, c = conn_](const boost::system::error_code& ec, std::size_t) {
                        if (c != conn_) return;
                        writing_ = false;
                        if (ec) {
                          drop(fmt::format("writing to {}:{}: {}", host_, port_, ec.message()), false);
                          return;
                        }
                        pump();
                      });
  }

  void do_read_header() {
    asio::async_read(socket_, asio::buffer(in_.data(), fl::kMessageHeaderWords * 4),
                     [this, c = conn_](const boost::system::error_code& ec, std::size_t bytes) {
                       if (c == conn_) on_read_header(ec, bytes);
                     });
  }

  void on_read(const boost::system::error_code& ec, std::size_t bytes) {
    {
      std::lock_guard lock(mutex_);
      counters_.bytes += bytes;
    }
    if (ec == asio::error::eof) {
      drop(fmt::format("{}:{} closed the connection", host_, port_), false);
    } else if (ec) {
      drop(fmt::format("reading from {}:{}: {}", host_, port_, ec.message()), false);
    }
  }

  void on_read_header(const boost::system::error_code& ec, std::size_t bytes) {
    on_read(ec, bytes);
    if (ec) return;
    const auto h = fl::decode_frame_header(std::span<const std::uint32_t, fl::kMessageHeaderWords>(in_.data(), 2),
                                           offset_bytes_);
    if (!h) {
      framing_lost(h.error());
      return;
    }
    const std::size_t length = h->length_words;
    if (length > in_.size()) {
      framing_lost(firmware::DecodeError{firmware::DecodeErrc::BadSize, offset_bytes_ + 4, length, in_.size(),
                                         "message length in words", "<= the link's read buffer (max_message_words)"});
      return;
    }
    if (length == fl::kMessageHeaderWords) {
      on_message(length);
      return;
    }
    asio::async_read(socket_, asio::buffer(in_.data() + fl::kMessageHeaderWords, (length - 2) * 4),
                     [this, c = conn_, length](const boost::system::error_code& e, std::size_t n) {
                       if (c != conn_) return;
                       on_read(e, n);
                       if (!e) on_message(length);
                     });
  }

  void framing_lost(const firmware::DecodeError& e) {
    record_error(e, true);
    drop(fmt::format("framing lost reading {}:{}: {}", host_, port_, e.message()), true);
  }

  void record_error(const firmware::DecodeError& e, bool framing) {
    std::lock_guard lock(mutex_);
    ++counters_.decode_errors;
    if (framing) ++counters_.framing_errors;
    if (errors_count_ < errors_.size()) errors_[errors_count_++] = LinkDecodeError{e, connection_};
  }

  void on_message(std::size_t length) {
    const std::size_t offset = offset_bytes_;
    offset_bytes_ += length * 4;
    {
      std::lock_guard lock(mutex_);
      ++counters_.messages;
    }
    const auto r = fl::decode_frontend_message(std::span<const std::uint32_t>(in_.data(), length), offset,
                                               [this](const auto& m) { handle(m); });
    if (!r) record_error(r.error(), false);
    do_read_header();
  }

  /// False (counted) for a message of another source.
  bool ours(std::uint32_t source_id) {
    if (source_id == p_.source_id) return true;
    std::lock_guard lock(mutex_);
    ++counters_.wrong_source;
    return false;
  }

  void handle(const fl::SpillBegin& m) {
    if (ours(m.source_id)) sink_->on_spill(SpillEdge::Begin, m.spill, 0);
  }

  void handle(const fl::SpillEnd& m) {
    if (ours(m.source_id)) sink_->on_spill(SpillEdge::End, m.spill, m.events_held);
  }

  void handle(const fl::EventData& m) {
    if (!ours(m.source_id)) return;
    if (answered(m.ref, nullptr)) sink_->on_event(ParticleRef{m.ref.spill, m.ref.particle}, m.kind, m.block);
  }

  void handle(const fl::TooLate& m) {
    if (ours(m.source_id) && answered(m.ref, &counters_.too_late)) {
      sink_->on_lost(ParticleRef{m.ref.spill, m.ref.particle}, LinkOutcome::TooLate,
                     ParticleRef{m.oldest_spill, m.oldest_particle});
    }
  }

  void handle(const fl::NotFound& m) {
    if (ours(m.source_id) && answered(m.ref, &counters_.not_found)) {
      sink_->on_lost(ParticleRef{m.ref.spill, m.ref.particle}, LinkOutcome::NotFound, std::nullopt);
    }
  }

  /// Ends the request `ref` answers; `counter` (guarded by mutex_) counts the
  /// outcome, null: completed. False, counted unexpected, if no request in
  /// flight matches.
  bool answered(const fl::EventRef& ref, std::uint64_t* counter) {
    std::lock_guard lock(mutex_);
    Slot* s = match(ref);
    if (s == nullptr) {
      ++counters_.unexpected;
      return false;
    }
    ++(counter != nullptr ? *counter : counters_.completed);
    end(*s);
    return true;
  }

  /// Arms the request timer for the oldest request not ended, unless armed.
  void arm_timer() {
    if (timer_armed_) return;
    Clock::time_point deadline;
    {
      std::lock_guard lock(mutex_);
      if (oldest_seq_ == next_seq_) return;
      deadline = slot(oldest_seq_).taken + p_.request_timeout;
    }
    timer_armed_ = true;
    request_timer_.expires_at(deadline);
    request_timer_.async_wait([this](const boost::system::error_code& ec) {
      timer_armed_ = false;
      if (!ec) expire();
    });
  }

  /// Ends Unanswered the requests taken request_timeout ago or more. They
  /// were taken in sequence order, so the first one still young ends the walk.
  void expire() {
    const auto now = Clock::now();
    std::size_t ended = 0;
    {
      std::lock_guard lock(mutex_);
      while (oldest_seq_ < next_seq_) {
        Slot& s = slot(oldest_seq_);
        if (s.taken + p_.request_timeout > now) break;
        ended_[ended++] = s.ref;
        end(s);
      }
      counters_.unanswered += ended;
    }
    for (std::size_t k = 0; k < ended; ++k) sink_->on_lost(ended_[k], LinkOutcome::Unanswered, std::nullopt);
    arm_timer();
  }

  const TrackerLinkParameters p_;
  TrackerLinkSink* sink_;

  // Shared with the callers' threads.
  mutable std::mutex mutex_;
  LinkState state_ = LinkState::Idle;
  std::vector<Slot> slots_;
  std::uint64_t oldest_seq_ = 0;
  std::uint64_t next_pending_seq_ = 0;
  std::uint64_t next_seq_ = 0;
  bool pump_posted_ = false;  ///< the wake-up is written and pump() has not yet run
  TrackerLinkCounters counters_;
  std::vector<LinkDecodeError> errors_;
  std::size_t errors_count_ = 0;
  std::uint64_t connection_ = 0;  ///< number of the current (or last) connection
  std::array<QueuedGate, kGateQueue> gates_{};  ///< gates not yet sent, in order
  std::size_t gates_count_ = 0;

  // The I/O thread's own.
  asio::io_context io_;
  int wake_fd_ = -1;  ///< eventfd: request() wakes the I/O thread to send (owned by wake_)
  asio::posix::stream_descriptor wake_;
  tcp::socket socket_;
  tcp::resolver resolver_;
  asio::steady_timer connect_timer_;
  asio::steady_timer request_timer_;
  std::string host_;
  std::uint16_t port_ = 0;
  tcp::resolver::results_type endpoints_;
  std::uint64_t conn_ = 0;  ///< changes when a connection (or an attempt) starts or ends
  bool timed_out_ = false;
  bool attempting_ = false;  ///< a connection attempt is under way
  ConnectDone connect_done_;
  bool writing_ = false;
  std::array<std::vector<std::uint32_t>, 2> out_;
  std::size_t fill_ = 0;  ///< the buffer messages go into; the other one is being written
  std::size_t fill_words_ = 0;
  std::vector<std::uint32_t> in_;
  std::size_t offset_bytes_ = 0;  ///< bytes read on this connection: where errors are
  std::vector<fl::EventRef> batch_;
  std::vector<ParticleRef> ended_;  ///< requests ended together, handed to the sink after the lock
  bool timer_armed_ = false;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  std::jthread thread_;
};

TrackerLink::TrackerLink(TrackerLinkParameters p, TrackerLinkSink& sink)
    : impl_(std::make_unique<Impl>(p, sink)) {}

TrackerLink::~TrackerLink() = default;

std::error_code TrackerLink::connect(std::string_view host, std::uint16_t port, std::chrono::milliseconds timeout) {
  return impl_->connect(host, port, timeout);
}
void TrackerLink::reconnect() { impl_->reconnect(); }
void TrackerLink::close() { impl_->close(); }
bool TrackerLink::gate(std::uint32_t spill, bool open, std::uint32_t particles) {
  return impl_->gate(spill, open, particles);
}
std::size_t TrackerLink::request(std::span<const ParticleRef> refs) { return impl_->request(refs); }
LinkState TrackerLink::state() const { return impl_->state(); }
TrackerLinkCounters TrackerLink::counters() const { return impl_->counters(); }
std::vector<LinkDecodeError> TrackerLink::errors() const { return impl_->errors(); }

}  // namespace na64::drivers
