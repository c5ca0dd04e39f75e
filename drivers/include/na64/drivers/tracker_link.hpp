// SPDX-License-Identifier: Apache-2.0
// The host side of one tracker front-end read over TCP with the front-end
// link protocol v1 (firmware-interfaces/README.md, frontend_link.hpp):
// requests the accepted events by (spill, particle), frames and checks what
// comes back, and ends every request exactly once, with its block or with
// the reason it has none.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

#include "na64/firmware/decode_error.hpp"
#include "na64/firmware/frontend_link.hpp"

namespace na64::drivers {

/// One particle of one spill: what the host asks a front-end for.
struct ParticleRef {
  std::uint32_t spill = 0;     ///< 0-2047
  std::uint32_t particle = 0;  ///< 1-0xFFFFFF, counted from 1 in the spill
  bool operator==(const ParticleRef&) const = default;
};

/// How a request ended without its block.
enum class LinkOutcome : std::uint8_t {
  TooLate,       ///< the event had left the front-end's latency buffer
  NotFound,      ///< the front-end never recorded it
  Unanswered,    ///< no answer within the request timeout
  Disconnected,  ///< the connection dropped (or could not be made) before the answer came
};
[[nodiscard]] const char* to_string(LinkOutcome o) noexcept;

enum class LinkState : std::uint8_t {
  Idle,        ///< never connected
  Connecting,  ///< a connection is being made
  Connected,
  Lost,        ///< the connection dropped or could not be made; waits for reconnect() or gate(open)
};
[[nodiscard]] const char* to_string(LinkState s) noexcept;

enum class SpillEdge : std::uint8_t { Begin, End };

/// What the link hands on. Every function is called on the link's I/O
/// thread, never with a lock of the link held: it may call request() and
/// gate(), but not connect() or the destructor (they wait for the I/O thread).
class TrackerLinkSink {
 public:
  virtual ~TrackerLinkSink() = default;
  /// The block of a request; `block` points into the link's read buffer and
  /// is valid until return. It has passed decode_apv or decode_straw_tdc.
  virtual void on_event(const ParticleRef& ref, firmware::frontend_link::BlockKind kind,
                        std::span<const std::uint32_t> block) = 0;
  /// A request that ended without its block. `oldest_held`: for TooLate,
  /// the oldest event the front-end still held when it answered (how far
  /// behind the host is); empty for the other outcomes.
  virtual void on_lost(const ParticleRef& ref, LinkOutcome outcome, std::optional<ParticleRef> oldest_held) = 0;
  /// Spill begin or end from the front-end; `events_held` is 0 at begin.
  virtual void on_spill(SpillEdge edge, std::uint32_t spill, std::uint32_t events_held) {
    (void)edge;
    (void)spill;
    (void)events_held;
  }
  /// The connection came up (Connected) or went (Lost); `why` says what
  /// happened and where.
  virtual void on_state(LinkState state, std::string_view why) {
    (void)state;
    (void)why;
  }
};

struct TrackerLinkParameters {
  std::uint32_t source_id = 0;  ///< the front-end read, < 896; messages of another source are counted and ignored
  /// Requests taken and not ended at most: the request table, 1 to 2^20.
  std::uint32_t max_in_flight = 4096;
  /// Requests in one request message at most, 1-65535.
  std::uint32_t requests_per_message = 64;
  /// A request not answered this long after it was taken ends Unanswered.
  std::chrono::milliseconds request_timeout{200};
  /// Time allowed to an automatic reconnection (after a framing error, or at gate(open)).
  std::chrono::milliseconds connect_timeout{1000};
  /// The longest message read, in words; a longer one loses the framing.
  std::size_t max_message_words = 1 << 16;
  /// Decode errors kept with their place (the first ones).
  std::size_t errors_kept = 16;
};

/// Counts since construction; a snapshot.
struct TrackerLinkCounters {
  std::uint64_t messages = 0;      ///< messages read whole (decoded or not)
  std::uint64_t bytes = 0;         ///< bytes read
  std::uint64_t taken = 0;         ///< requests taken by request()
  std::uint64_t refused_full = 0;  ///< requests not taken: the table was full
  std::uint64_t refused_lost = 0;  ///< requests not taken: no connection (Idle or Lost)
  std::uint64_t refused_invalid = 0;  ///< requests not taken: spill or particle out of range
  std::uint64_t requests_sent = 0;
  std::uint64_t request_messages = 0;
  std::uint64_t completed = 0;      ///< ended with their block
  std::uint64_t too_late = 0;
  std::uint64_t not_found = 0;
  std::uint64_t unanswered = 0;
  std::uint64_t disconnected = 0;
  std::uint64_t unexpected = 0;     ///< answers matching no request in flight (late, duplicate)
  std::uint64_t wrong_source = 0;   ///< messages of another source id (ignored)
  std::uint64_t decode_errors = 0;  ///< messages that did not decode, framing errors included
  std::uint64_t framing_errors = 0; ///< headers that did not decode (or too long): the connection was dropped
  std::uint64_t gates_sent = 0;
  std::uint64_t gates_dropped = 0;  ///< gate() with no connection to send it on (a close while lost)
  std::uint64_t connections = 0;    ///< connections made
  std::uint64_t reconnects = 0;     ///< connection attempts by reconnect(), gate(open) on a lost link, or framing loss

  /// Requests taken and not ended; 0 once the link is idle.
  [[nodiscard]] std::uint64_t in_flight() const noexcept {
    return taken - completed - too_late - not_found - unanswered - disconnected;
  }
};

/// A decode error and where: its byte offset is in the stream of the
/// connection (counted from 0 at each connection), `connection` the number
/// of that connection (1 for the first).
struct LinkDecodeError {
  firmware::DecodeError error;
  std::uint64_t connection = 0;
  /// "source 700, connection 2: offset 8 (0x8): message key: ..."
  [[nodiscard]] std::string message(std::uint32_t source_id) const;
};

/// The host-side TCP client of one tracker front-end, with its own I/O thread.
///
/// Requests are taken into a bounded table (allocated at construction),
/// given request ids, and sent in request messages of up to
/// requests_per_message. Every message read is framed by its header's
/// length into a read buffer allocated at construction and checked with the
/// protocol's decoders before anything is handed on. Every request taken
/// ends exactly once: on_event() with its block, or on_lost() with TooLate,
/// NotFound, Unanswered (request_timeout after it was taken, by a steady
/// timer; a request that could not even be sent ends so too) or Disconnected
/// (every request not ended when the connection drops).
///
/// A well-framed message that does not decode is counted, its first errors
/// kept with where, and skipped: its request ends Unanswered. A header that
/// does not decode loses the framing (TCP says nothing of where the next
/// message starts): the connection is dropped and made again at once.
/// A connection dropped by the front-end or by an I/O error stays Lost
/// until reconnect() or the next gate(open).
///
/// No allocation per request or per message after connect(), but the first
/// uses of Asio's recycled handler memory.
///
/// Thread safety: request(), gate(), reconnect(), state(), counters() and
/// errors() may be called from any thread, the sink included. connect(),
/// close() and the destructor wait for the I/O thread: not from the sink.
class TrackerLink {
 public:
  /// Starts the I/O thread; connects nothing. Throws std::invalid_argument
  /// for a parameter out of range. `sink` must outlive the link.
  TrackerLink(TrackerLinkParameters p, TrackerLinkSink& sink);
  /// close(), then stops the I/O thread.
  ~TrackerLink();
  TrackerLink(const TrackerLink&) = delete;
  TrackerLink& operator=(const TrackerLink&) = delete;

  /// Connects to the front-end at `host` (a name or an address) and `port`,
  /// waiting at most `timeout`; remembered for reconnecting. An error
  /// (std::errc::timed_out on timeout, the socket's error, or
  /// std::errc::already_connected if the link is connected or connecting)
  /// leaves the link Lost (or as it was).
  [[nodiscard]] std::error_code connect(std::string_view host, std::uint16_t port,
                                        std::chrono::milliseconds timeout);
  /// Connects again, asynchronously (connect_timeout), if the link is Lost
  /// after a first connect(); nothing otherwise. on_state() tells the outcome.
  void reconnect();
  /// Drops the connection (its requests end Disconnected) and stays Lost.
  void close();

  /// Sends a spill gate for `spill` (0-2047): open, or closed after
  /// `particles` (0-0xFFFFFF). An opening gate on a Lost link reconnects
  /// first and is sent once connected. False if a value is out of range or
  /// the gate cannot be sent (a close on a link that is not connected,
  /// counted gates_dropped).
  bool gate(std::uint32_t spill, bool open, std::uint32_t particles);

  /// Takes requests for `refs`, in order, until the table is full or a
  /// reference is out of range; returns how many were taken (the first
  /// ones). Takes none while the link is Idle or Lost. The refused ones are
  /// counted; none of them ends through the sink.
  [[nodiscard]] std::size_t request(std::span<const ParticleRef> refs);

  [[nodiscard]] LinkState state() const;
  [[nodiscard]] TrackerLinkCounters counters() const;
  /// The first errors_kept decode errors.
  [[nodiscard]] std::vector<LinkDecodeError> errors() const;

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace na64::drivers
