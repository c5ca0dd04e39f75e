// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/tracker_frontend.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <vector>

#include "na64/firmware/frontend_link.hpp"

namespace na64::drivers {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
namespace fl = firmware::frontend_link;

namespace {

/// The longest host message read: a request message of 65535 requests.
constexpr std::size_t kMaxHostMessageWords = fl::event_requests_words(0xFFFF);
/// Room kept in an output buffer for spill begin and end messages, which do
/// not wait for the answers ahead of them to be written.
constexpr std::size_t kNoticeReserveWords = 16 * fl::fixed_length_words(fl::MessageType::SpillEnd);
/// What the garbage fault writes: key 0xBEEF, not 0x4C46.
constexpr std::array<std::uint32_t, 2> kGarbage{0xDEAD'BEEFu, 0x0BAD'F00Du};
/// Particle limit of a spill whose count is not known (a gate opened by the host and not closed).
constexpr std::uint32_t kOpenEnded = fl::kMaxParticle + 1;
constexpr std::uint32_t kMaxHoldSpills = 64;

enum class Answer : std::uint8_t { Data, TooLate, NotFound };

}  // namespace

class EmulatedTrackerFrontEnd::Impl {
 public:
  Impl(const EmulatedTrackers& trackers, TrackerFrontEndParameters p)
      : trackers_(&trackers),
        p_(p),
        acceptor_(io_),
        socket_(io_),
        delay_timer_(io_) {
    if (p.source_id > firmware::kMaxSourceId) {
      throw std::invalid_argument(fmt::format("tracker front-end: source id {} is not < 896", p.source_id));
    }
    if (p.hold_spills == 0 || p.hold_spills > kMaxHoldSpills) {
      throw std::invalid_argument(
          fmt::format("tracker front-end {}: hold_spills {} is not 1-{}", p.source_id, p.hold_spills, kMaxHoldSpills));
    }
    if (p.answers_per_buffer == 0 || p.answers_per_buffer > 4096) {
      throw std::invalid_argument(fmt::format("tracker front-end {}: answers_per_buffer {} is not 1-4096",
                                              p.source_id, p.answers_per_buffer));
    }
    faults_ = p.faults;
    held_.resize(p.hold_spills);
    const std::size_t block_words = p.kind == TrackerKind::Straw ? trackers.max_straw_words()
                                    : p.kind == TrackerKind::Gem ? trackers.max_apv_words(ApvSource::Gem)
                                                                 : trackers.max_apv_words(ApvSource::Micromegas);
    max_answer_words_ =
        std::max(fl::kEventDataHeadWords + block_words, fl::fixed_length_words(fl::MessageType::TooLate));
    for (auto& out : out_) out.resize(p.answers_per_buffer * max_answer_words_ + kGarbage.size() + kNoticeReserveWords);
    in_.resize(kMaxHostMessageWords);

    const tcp::endpoint endpoint(asio::ip::make_address_v4("127.0.0.1"), p.port);
    acceptor_.open(endpoint.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(endpoint);
    acceptor_.listen();
    port_ = acceptor_.local_endpoint().port();
    do_accept();
    thread_ = std::jthread([this] { io_.run(); });
  }

  ~Impl() {
    asio::post(io_, [this] {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      end_session();
      io_.stop();
    });
    thread_.join();
  }

  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  [[nodiscard]] std::uint16_t port() const noexcept { return port_; }
  [[nodiscard]] std::uint32_t source_id() const noexcept { return p_.source_id; }

  bool begin_spill(std::uint32_t spill, std::uint32_t particles) {
    if (!fl::field::kSpill.fits(spill) || particles > fl::kMaxParticleCount) return false;
    {
      std::lock_guard lock(mutex_);
      if (gate_open_) return false;
      open_gate(spill, particles);
    }
    asio::post(io_, [this, spill] { send_notice(fl::SpillBegin{p_.source_id, spill}); });
    return true;
  }

  bool end_spill() {
    std::uint32_t spill = 0;
    std::uint32_t held = 0;
    {
      std::lock_guard lock(mutex_);
      if (!gate_open_) return false;
      gate_open_ = false;
      spill = newest().spill;
      held = newest().limit == kOpenEnded ? 0 : newest().limit;
    }
    asio::post(io_, [this, spill, held] { send_notice(fl::SpillEnd{p_.source_id, spill, held}); });
    return true;
  }

  void set_faults(const FrontEndFaults& faults) {
    std::lock_guard lock(mutex_);
    faults_ = faults;
    answers_ = 0;
    close_fired_ = false;
    garbage_fired_ = false;
  }

  [[nodiscard]] FrontEndCounters counters() const {
    std::lock_guard lock(mutex_);
    return counters_;
  }

  [[nodiscard]] bool connected() const {
    std::lock_guard lock(mutex_);
    return connected_;
  }

 private:
  /// A spill in the latency buffer: particles 1 to `limit` are held.
  struct HeldSpill {
    std::uint32_t spill = 0;
    std::uint32_t limit = 0;
  };

  // The gate and the latency buffer (mutex_ held).

  HeldSpill& newest() noexcept { return held_[(held_next_ + held_.size() - 1) % held_.size()]; }

  void open_gate(std::uint32_t spill, std::uint32_t limit) noexcept {
    held_[held_next_] = HeldSpill{spill, limit};
    held_next_ = (held_next_ + 1) % held_.size();
    held_count_ = std::min(held_count_ + 1, held_.size());
    gated_[spill] = true;
    gate_open_ = true;
    ++counters_.spills;
  }

  /// What the buffer says about `ref`; `oldest_spill` is set for too late.
  Answer classify(const fl::EventRef& ref, std::uint32_t& oldest_spill) const noexcept {
    const std::size_t n = held_.size();
    for (std::size_t k = 0; k < held_count_; ++k) {  // newest first: a spill number gated again is its latest gate
      const HeldSpill& h = held_[(held_next_ + n - 1 - k) % n];
      if (h.spill == ref.spill) return ref.particle != 0 && ref.particle <= h.limit ? Answer::Data : Answer::NotFound;
    }
    if (!gated_[ref.spill]) return Answer::NotFound;
    oldest_spill = held_[(held_next_ + n - held_count_) % n].spill;
    return Answer::TooLate;
  }

  // The connection (I/O thread).

  void do_accept() {
    acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted) return;
      if (!ec) {
        if (active_) {
          {
            std::lock_guard lock(mutex_);
            ++counters_.replaced;
          }
          end_session();
        }
        start_session(std::move(socket));
      }
      do_accept();
    });
  }

  void start_session(tcp::socket socket) {
    socket_ = std::move(socket);
    boost::system::error_code ignored;
    socket_.set_option(tcp::no_delay(true), ignored);
    active_ = true;
    offset_bytes_ = 0;
    {
      std::lock_guard lock(mutex_);
      ++counters_.connections;
      connected_ = true;
    }
    do_read_header();
  }

  /// Closes the connection; what it had not answered is counted dropped.
  /// Handlers of its operations still queued see another session and return.
  void end_session() {
    if (!active_) return;
    active_ = false;
    ++session_;
    boost::system::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
    delay_timer_.cancel();
    {
      std::lock_guard lock(mutex_);
      if (answering_) counters_.dropped += (answer_end_ - answer_pos_) / fl::kEventRefWords;
      connected_ = false;
    }
    answering_ = blocked_ = writing_ = closing_ = false;
    fill_words_ = 0;
  }

  void do_read_header() {
    asio::async_read(socket_, asio::buffer(in_.data(), fl::kMessageHeaderWords * 4),
                     [this, s = session_](const boost::system::error_code& ec, std::size_t) {
                       if (s == session_) on_read_header(ec);
                     });
  }

  void on_read_header(const boost::system::error_code& ec) {
    if (ec) {
      end_session();
      return;
    }
    const auto h = fl::decode_frame_header(std::span<const std::uint32_t, fl::kMessageHeaderWords>(in_.data(), 2),
                                           offset_bytes_);
    if (!h || h->length_words > in_.size()) {  // the framing is lost: nothing says where the next message starts
      {
        std::lock_guard lock(mutex_);
        ++counters_.host_errors;
      }
      end_session();
      return;
    }
    const std::size_t length = h->length_words;
    if (length == fl::kMessageHeaderWords) {
      on_message(length);
      return;
    }
    asio::async_read(socket_, asio::buffer(in_.data() + 2, (length - 2) * 4),
                     [this, s = session_, length](const boost::system::error_code& e, std::size_t) {
                       if (s != session_) return;
                       if (e) {
                         end_session();
                         return;
                       }
                       on_message(length);
                     });
  }

  void on_message(std::size_t length) {
    const std::size_t offset = offset_bytes_;
    offset_bytes_ += length * 4;
    std::optional<fl::SpillGate> gate;
    std::size_t requests = 0;
    const auto r = fl::decode_host_message(std::span<const std::uint32_t>(in_.data(), length), offset,
                                           [&](const auto& m) {
                                             if constexpr (std::is_same_v<std::decay_t<decltype(m)>, fl::SpillGate>) {
                                               gate = m;
                                             } else {
                                               ++requests;
                                             }
                                           });
    const std::uint32_t source = fl::field::kSourceId.get(in_[1]);
    if (!r || source != p_.source_id) {
      std::lock_guard lock(mutex_);
      ++(r ? counters_.wrong_source : counters_.host_errors);
    } else if (gate) {
      handle_gate(*gate);
    } else {
      {
        std::lock_guard lock(mutex_);
        counters_.requests += requests;
      }
      answering_ = true;
      answer_pos_ = fl::kMessageHeaderWords;
      answer_end_ = length;
      std::chrono::milliseconds delay{0};
      {
        std::lock_guard lock(mutex_);
        delay = faults_.answer_delay;
      }
      if (delay.count() > 0) {
        delay_timer_.expires_after(delay);
        delay_timer_.async_wait([this, s = session_](const boost::system::error_code& ec) {
          if (s == session_ && !ec) answer_more();
        });
      } else {
        answer_more();
      }
      return;
    }
    do_read_header();
  }

  void handle_gate(const fl::SpillGate& g) {
    std::optional<fl::SpillBegin> begin;
    std::optional<fl::SpillEnd> end;
    {
      std::lock_guard lock(mutex_);
      if (g.open) {
        if (gate_open_) ++counters_.gate_errors;  // the close never came: the open spill stays open-ended
        open_gate(g.spill, kOpenEnded);
        begin = fl::SpillBegin{p_.source_id, g.spill};
      } else if (!gate_open_ || newest().spill != g.spill) {
        ++counters_.gate_errors;
      } else {
        gate_open_ = false;
        newest().limit = g.particles;
        end = fl::SpillEnd{p_.source_id, g.spill, g.particles};
      }
    }
    if (begin) send_notice(*begin);
    if (end) send_notice(*end);
  }

  template <class Message>
  void send_notice(const Message& m) {
    const std::size_t n =
        active_ ? fl::encode(m, std::span<std::uint32_t>(out_[fill_]).subspan(fill_words_)) : std::size_t{0};
    if (n == 0) {
      std::lock_guard lock(mutex_);
      ++counters_.notices_dropped;
      return;
    }
    fill_words_ += n;
    flush();
  }

  /// Answers the requests of the current message while the output buffer
  /// has room; resumed by on_write() when it ran out.
  void answer_more() {
    blocked_ = false;
    const std::size_t need = max_answer_words_ + kGarbage.size() + kNoticeReserveWords;
    while (answer_pos_ < answer_end_) {
      if (out_[fill_].size() - fill_words_ < need) {
        blocked_ = true;
        flush();
        return;
      }
      const std::uint32_t w0 = in_[answer_pos_];
      const std::uint32_t w1 = in_[answer_pos_ + 1];
      answer_pos_ += fl::kEventRefWords;
      answer(fl::EventRef{fl::field::kSpill.get(w1), fl::field::kParticle.get(w0), fl::field::kRequestId.get(w1)});
      if (closing_) {
        std::lock_guard lock(mutex_);
        counters_.dropped += (answer_end_ - answer_pos_) / fl::kEventRefWords;
        answer_pos_ = answer_end_;
      }
    }
    answering_ = false;
    flush();
    if (closing_) {
      if (!writing_) end_session();
      return;
    }
    do_read_header();
  }

  /// Writes the answer to `ref` into the output buffer, faults permitting.
  void answer(const fl::EventRef& ref) {
    std::lock_guard lock(mutex_);
    if (!close_fired_ && answers_ >= faults_.close_after) {
      close_fired_ = closing_ = true;
      ++counters_.dropped;
      return;
    }
    if (answers_ >= faults_.silent_after) {
      ++counters_.dropped;
      return;
    }
    std::span<std::uint32_t> out = std::span<std::uint32_t>(out_[fill_]).subspan(fill_words_);
    if (!garbage_fired_ && answers_ >= faults_.garbage_after) {
      garbage_fired_ = true;
      std::copy(kGarbage.begin(), kGarbage.end(), out.begin());
      fill_words_ += kGarbage.size();
      out = out.subspan(kGarbage.size());
    }
    std::uint32_t oldest_spill = 0;
    std::size_t n = 0;
    switch (classify(ref, oldest_spill)) {
      case Answer::Data: {
        // The block is written in place, behind the head words.
        const auto block_out = out.subspan(fl::kEventDataHeadWords);
        std::size_t block = 0;
        fl::BlockKind kind = fl::BlockKind::Apv;
        switch (p_.kind) {
          case TrackerKind::Micromegas:
            block = trackers_->write_apv(ref.spill, ref.particle, ApvSource::Micromegas, block_out);
            break;
          case TrackerKind::Gem:
            block = trackers_->write_apv(ref.spill, ref.particle, ApvSource::Gem, block_out);
            break;
          case TrackerKind::Straw:
            block = trackers_->write_straw(ref.spill, ref.particle, block_out);
            kind = fl::BlockKind::StrawTdc;
            break;
        }
        n = block == 0 ? 0 : fl::encode(fl::EventData{p_.source_id, ref, kind, block_out.first(block)}, out);
        if (n != 0) ++counters_.served;
        break;
      }
      case Answer::TooLate:
        n = fl::encode(fl::TooLate{p_.source_id, ref, oldest_spill, 1}, out);
        if (n != 0) ++counters_.too_late;
        break;
      case Answer::NotFound:
        n = fl::encode(fl::NotFound{p_.source_id, ref}, out);
        if (n != 0) ++counters_.not_found;
        break;
    }
    if (n == 0) {  // a block larger than max_*_words says: a fault of the emulation, not of the host
      ++counters_.dropped;
      return;
    }
    fill_words_ += n;
    ++answers_;
    if (!close_fired_ && answers_ >= faults_.close_after) close_fired_ = closing_ = true;
  }

  void flush() {
    if (writing_ || fill_words_ == 0 || !active_) return;
    const std::size_t sending = fill_;
    const std::size_t words = fill_words_;
    fill_ ^= 1;
    fill_words_ = 0;
    writing_ = true;
    asio::async_write(socket_, asio::buffer(out_[sending].data(), words * 4),
                      [this, s = session_](const boost::system::error_code& ec, std::size_t) {
                        if (s == session_) on_write(ec);
                      });
  }

  void on_write(const boost::system::error_code& ec) {
    writing_ = false;
    if (ec) {
      end_session();
      return;
    }
    flush();
    if (closing_ && !answering_ && !writing_) {
      end_session();
    } else if (blocked_) {
      answer_more();
    }
  }

  const EmulatedTrackers* trackers_;
  const TrackerFrontEndParameters p_;
  std::size_t max_answer_words_ = 0;
  std::uint16_t port_ = 0;

  // Shared with the callers' threads.
  mutable std::mutex mutex_;
  std::vector<HeldSpill> held_;  ///< ring of the last hold_spills gates
  std::size_t held_next_ = 0;    ///< where the next gate goes
  std::size_t held_count_ = 0;
  std::array<bool, fl::kMaxSpill + 1> gated_{};  ///< spill numbers gated since construction
  bool gate_open_ = false;
  FrontEndFaults faults_;
  std::uint64_t answers_ = 0;  ///< answers sent since the faults were set
  bool close_fired_ = false;
  bool garbage_fired_ = false;
  bool connected_ = false;
  FrontEndCounters counters_;

  // The I/O thread's own.
  asio::io_context io_;
  tcp::acceptor acceptor_;
  tcp::socket socket_;
  asio::steady_timer delay_timer_;
  std::uint64_t session_ = 0;  ///< changes when a connection ends
  bool active_ = false;        ///< a connection is open
  std::size_t offset_bytes_ = 0;  ///< bytes read on this connection, for error offsets
  std::vector<std::uint32_t> in_;
  std::array<std::vector<std::uint32_t>, 2> out_;
  std::size_t fill_ = 0;        ///< the buffer answers go into; the other one is being written
  std::size_t fill_words_ = 0;
  bool writing_ = false;
  bool answering_ = false;  ///< a request message is being answered
  bool blocked_ = false;    ///< ... and waits for room in the output buffer
  bool closing_ = false;    ///< close after what is buffered is written (fault)
  std::size_t answer_pos_ = 0;
  std::size_t answer_end_ = 0;
  std::jthread thread_;
};

EmulatedTrackerFrontEnd::EmulatedTrackerFrontEnd(const EmulatedTrackers& trackers, TrackerFrontEndParameters p)
    : impl_(std::make_unique<Impl>(trackers, p)) {}

EmulatedTrackerFrontEnd::~EmulatedTrackerFrontEnd() = default;

std::uint16_t EmulatedTrackerFrontEnd::port() const noexcept { return impl_->port(); }
std::uint32_t EmulatedTrackerFrontEnd::source_id() const noexcept { return impl_->source_id(); }
bool EmulatedTrackerFrontEnd::begin_spill(std::uint32_t spill, std::uint32_t particles) {
  return impl_->begin_spill(spill, particles);
}
bool EmulatedTrackerFrontEnd::end_spill() { return impl_->end_spill(); }
void EmulatedTrackerFrontEnd::set_faults(const FrontEndFaults& faults) { impl_->set_faults(faults); }
FrontEndCounters EmulatedTrackerFrontEnd::counters() const { return impl_->counters(); }
bool EmulatedTrackerFrontEnd::connected() const { return impl_->connected(); }

}  // namespace na64::drivers
