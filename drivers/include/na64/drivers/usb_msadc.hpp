// SPDX-License-Identifier: Apache-2.0
// The libusb driver of a USB MSADC board speaking the readout protocol v1
// (firmware-interfaces/README.md, msadc_readout.hpp). The protocol leaves the
// transport open; the USB transport of a board is defined here:
//
// - one vendor-class interface (0) with a bulk IN endpoint (0x81) carrying
//   the board's messages and a bulk OUT endpoint (0x02) taking the host's
//   event-request messages, one message a transfer;
// - the board ends every bulk IN transfer on a message boundary (with a
//   short packet), so a completed transfer holds whole messages, as
//   ReadoutHost::consume() wants them;
// - registers through vendor control requests on the default pipe:
//   READ_REGISTER  bmRequestType 0xC0, bRequest 0x01, wValue 0, wIndex = the
//                  register's byte address, wLength 4: the value, little-endian;
//   WRITE_REGISTER bmRequestType 0x40, bRequest 0x02, wValue 0, wIndex = the
//                  address, wLength 4: the value, little-endian.
//   The board stalls (LIBUSB_ERROR_PIPE) a read of no register and a write to
//   a read-only or unknown register.
#pragma once

#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <variant>
#include <vector>

struct libusb_context;
struct libusb_device;
struct libusb_device_handle;
struct libusb_transfer;

namespace na64::drivers {

namespace usb_msadc {
/// pid.codes test VID/PID until the board has its own; override in UsbMsadcOptions.
inline constexpr std::uint16_t kVendorId = 0x1209;
inline constexpr std::uint16_t kProductId = 0x0001;
inline constexpr int kInterface = 0;
inline constexpr std::uint8_t kEndpointIn = 0x81;
inline constexpr std::uint8_t kEndpointOut = 0x02;
inline constexpr std::uint8_t kRequestReadRegister = 0x01;
inline constexpr std::uint8_t kRequestWriteRegister = 0x02;
inline constexpr std::uint8_t kRequestTypeVendorIn = 0xC0;   ///< device-to-host | vendor | device
inline constexpr std::uint8_t kRequestTypeVendorOut = 0x40;  ///< host-to-device | vendor | device
}  // namespace usb_msadc

/// A failure at the USB edge: the libusb error code (libusb_error, or 0 for a
/// failure libusb did not report) and a message naming the board, the
/// operation and libusb_error_name().
struct UsbError {
  int code = 0;
  std::string message;
};

/// A value or a UsbError. `UsbResult<>` is the void case.
template <class T = std::monostate>
class [[nodiscard]] UsbResult {
 public:
  UsbResult() requires std::default_initializable<T> : v_(T{}) {}
  UsbResult(T value) : v_(std::move(value)) {}         // NOLINT(google-explicit-constructor)
  UsbResult(UsbError error) : v_(std::move(error)) {}  // NOLINT(google-explicit-constructor)

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  /// Precondition: ok().
  [[nodiscard]] const T& operator*() const { return std::get<0>(v_); }
  [[nodiscard]] const T* operator->() const { return &std::get<0>(v_); }
  /// Precondition: !ok().
  [[nodiscard]] const UsbError& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, UsbError> v_;
};

/// Set-up failures (libusb cannot start, options out of range).
struct UsbSetupError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

enum class UsbSourceState : std::uint8_t {
  Closed,     ///< no board open
  Open,       ///< board open and its interface claimed, not streaming
  Streaming,  ///< bulk IN transfers in flight
  Lost,       ///< the board went away (unplug, or the link failed); waits for reopen()
};
[[nodiscard]] const char* to_string(UsbSourceState s) noexcept;

struct UsbDeviceAddress {
  std::uint8_t bus = 0;
  std::uint8_t address = 0;
  bool operator==(const UsbDeviceAddress&) const = default;
};

struct UsbMsadcOptions {
  std::uint16_t vendor_id = usb_msadc::kVendorId;
  std::uint16_t product_id = usb_msadc::kProductId;
  /// Only a board on this bus.
  std::optional<std::uint8_t> bus;
  /// Only a board at this address. A re-plugged board gets a new address from
  /// the kernel, so the address is matched at the first open only; reopen()
  /// takes any board of the VID/PID (and bus).
  std::optional<std::uint8_t> address;
  /// Bulk IN transfers kept in flight while streaming, 1-64.
  std::size_t transfers_in_flight = 8;
  /// Bytes of one bulk IN transfer, a multiple of 512 and at least the
  /// board's largest message (EmulatedReadoutBoard::min_stream_words() x 4).
  std::size_t transfer_bytes = 64 * 1024;
  /// Request messages (bulk OUT) in flight at most, 1-64, each up to
  /// `max_request_words` words.
  std::size_t requests_in_flight = 4;
  std::size_t max_request_words = 2 + 2 * 1024;
  /// A bulk IN transfer without data this long ends, is counted (in_timeouts)
  /// and is resubmitted; 0: no timeout (a board is silent between spills).
  std::chrono::milliseconds in_timeout{0};
  std::chrono::milliseconds out_timeout{500};
  std::chrono::milliseconds control_timeout{500};
  /// Reopen a lost board from the hotplug ARRIVED event, on the driver's own
  /// thread. Without it (or without hotplug support), call reopen(), for
  /// example at the next spill.
  bool reopen_on_arrival = true;
  /// How long close() and reopen() wait for cancelled transfers to end.
  std::chrono::milliseconds drain_timeout{2000};
};

/// Counts since construction; a snapshot (see UsbMsadcDriver::counters()).
struct UsbMsadcCounters {
  std::uint64_t buffers = 0;          ///< bulk IN transfers handed to the sink
  std::uint64_t bytes_in = 0;
  std::uint64_t empty_transfers = 0;  ///< bulk IN transfers completed without data
  std::uint64_t odd_lengths = 0;      ///< transfers not a multiple of 4 bytes (the last bytes dropped)
  std::uint64_t in_timeouts = 0;
  std::uint64_t in_errors = 0;        ///< stall, overflow or error on bulk IN
  std::uint64_t request_messages = 0; ///< bulk OUT messages sent whole
  std::uint64_t bytes_out = 0;
  std::uint64_t out_errors = 0;       ///< bulk OUT transfers failed or timed out
  std::uint64_t lost = 0;             ///< times the source was lost
  std::uint64_t reopened = 0;         ///< times a lost board was opened again
};

/// What the driver hands on.
///
/// Thread safety: on_words() is called on the driver's event thread, one
/// buffer at a time, in the order the transfers completed; on_state() on the
/// event thread or the thread that changed the state. Neither may call
/// close(), reopen(), stop_streaming() or the register functions (they wait
/// for the event thread); send_requests() is fine.
class UsbMsadcSink {
 public:
  virtual ~UsbMsadcSink() = default;
  /// One completed bulk IN transfer: whole board messages, valid until return.
  virtual void on_words(std::span<const std::uint32_t> words) = 0;
  /// The source's state changed; `why` says what happened and where.
  virtual void on_state(UsbSourceState state, std::string_view why) {
    (void)state;
    (void)why;
  }
};

/// The driver of one USB MSADC board.
///
/// Its own libusb context and event thread, so that several boards (or other
/// libusb users) do not share event handling. Bulk IN buffers are allocated
/// at construction and reused: streaming allocates nothing per transfer.
/// When the board goes away (a transfer ends with LIBUSB_TRANSFER_NO_DEVICE,
/// a call returns LIBUSB_ERROR_NO_DEVICE, or the hotplug LEFT event) the
/// source is marked Lost, counted and the sink told; the transfers left are
/// cancelled. The configuration written with write_register() is remembered
/// and written again when the board is reopened (it comes back from
/// power-up with reset values).
///
/// Thread safety: the public functions may be called from any thread except
/// the event thread (that is, not from the sink, but for send_requests());
/// open/close/reopen and the register functions are serialised.
class UsbMsadcDriver {
 public:
  /// Starts libusb and the event thread; opens nothing. Throws UsbSetupError.
  UsbMsadcDriver(UsbMsadcOptions options, UsbMsadcSink& sink);
  ~UsbMsadcDriver();
  UsbMsadcDriver(const UsbMsadcDriver&) = delete;
  UsbMsadcDriver& operator=(const UsbMsadcDriver&) = delete;

  /// Finds the board (VID/PID, bus, address), opens it and claims its
  /// interface. Closed -> Open; Open or Streaming: nothing to do; Lost: an
  /// error (reopen() it).
  UsbResult<> open();
  /// Stops streaming and closes the board. -> Closed.
  void close();
  /// Lost or Closed: closes what is left and opens the board again, writes
  /// the remembered configuration and resumes streaming if it was
  /// streaming. Open or Streaming: nothing to do.
  UsbResult<> reopen();

  /// READ_REGISTER of a register at `address` (msadc_readout::kRegisterMap).
  UsbResult<std::uint32_t> read_register(std::uint32_t address);
  /// WRITE_REGISTER; a read-write register written is remembered for reopen().
  UsbResult<> write_register(std::uint32_t address, std::uint32_t value);

  /// Puts transfers_in_flight bulk IN transfers in flight. Open -> Streaming.
  UsbResult<> start_streaming();
  /// Cancels the bulk IN transfers and waits for them. Streaming -> Open.
  void stop_streaming();

  /// Sends one event-requests message (host to board) on bulk OUT,
  /// asynchronously: the words are copied. LIBUSB_ERROR_BUSY when all
  /// requests_in_flight transfers are in flight (try again later).
  UsbResult<> send_requests(std::span<const std::uint32_t> message);

  [[nodiscard]] UsbSourceState state() const;
  /// Waits until the state is `s`; false on timeout.
  [[nodiscard]] bool wait_for_state(UsbSourceState s, std::chrono::milliseconds timeout) const;
  [[nodiscard]] UsbMsadcCounters counters() const noexcept;
  /// Bus and address of the open board.
  [[nodiscard]] std::optional<UsbDeviceAddress> device_address() const;

 private:
  struct Slot {
    UsbMsadcDriver* driver = nullptr;
    libusb_transfer* transfer = nullptr;
    std::vector<std::uint32_t> words;
    bool busy = false;  ///< OUT slots: in flight
  };
  struct Counters {
    std::atomic<std::uint64_t> buffers{0}, bytes_in{0}, empty_transfers{0}, odd_lengths{0}, in_timeouts{0},
        in_errors{0}, request_messages{0}, bytes_out{0}, out_errors{0}, lost{0}, reopened{0};
  };
  /// A state change to tell the sink once the lock is released.
  struct Notice {
    UsbSourceState state = UsbSourceState::Closed;
    std::string why;
  };

  friend struct UsbMsadcCallbacks;  // the libusb callbacks, in usb_msadc.cpp
  void handle_read(Slot& slot);
  void handle_write(Slot& slot);
  void handle_hotplug(libusb_device* dev, bool arrived);
  void run_events(const std::stop_token& stop);
  void run_reopen(const std::stop_token& stop);

  /// reopen(); with `lost_only`, a board closed meanwhile is left closed.
  UsbResult<> reopen_board(bool lost_only);
  /// control_mu_ held; take mu_ briefly, never across a synchronous libusb call.
  UsbResult<> open_device();
  /// Cancels the transfers, waits for them, closes the handle; false (handle
  /// kept) if they did not end within drain_timeout.
  bool close_device();
  UsbResult<> write_locked(std::uint32_t address, std::uint32_t value);
  /// mu_ held.
  UsbResult<> submit_reads_locked();
  void cancel_locked() noexcept;
  bool drain(std::unique_lock<std::mutex>& lock);
  std::optional<Notice> mark_lost_locked(std::string why);
  void set_state_locked(UsbSourceState s);
  /// No lock held.
  void notify(const std::optional<Notice>& n);

  /// "USB MSADC 1209:0001 bus 1 address 2"; mu_ or control_mu_ held.
  [[nodiscard]] std::string where() const;
  [[nodiscard]] UsbError error(int code, std::string_view what) const;

  UsbMsadcOptions options_;
  UsbMsadcSink* sink_;
  libusb_context* ctx_ = nullptr;
  int hotplug_ = 0;  ///< libusb_hotplug_callback_handle
  bool hotplug_registered_ = false;

  /// Serialises open/close/reopen and control transfers; taken before mu_.
  std::mutex control_mu_;
  /// Guards everything below; the transfer callbacks take it.
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  libusb_device_handle* handle_ = nullptr;
  libusb_device* device_ = nullptr;  ///< of handle_, for matching hotplug LEFT
  std::optional<UsbDeviceAddress> address_;
  UsbSourceState state_ = UsbSourceState::Closed;
  bool want_streaming_ = false;  ///< streaming was asked for; reopen() resumes it
  bool opened_once_ = false;
  bool arrival_pending_ = false;
  std::size_t reads_in_flight_ = 0;
  std::size_t writes_in_flight_ = 0;
  std::vector<Slot> reads_;
  std::vector<Slot> writes_;
  /// The read-write registers written, by index in kRegisterMap.
  std::vector<std::optional<std::uint32_t>> config_;

  Counters counters_;
  std::condition_variable_any reopen_cv_;
  std::jthread events_;
  std::jthread reopener_;
};

}  // namespace na64::drivers
