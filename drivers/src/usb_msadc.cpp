// SPDX-License-Identifier: Apache-2.0
#include "na64/drivers/usb_msadc.hpp"

#include <fmt/format.h>
#include <libusb.h>
#include <sys/time.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "na64/firmware/msadc_readout.hpp"

namespace na64::drivers {

namespace ro = firmware::msadc_readout;

namespace {

/// Index of the register at `address` in kRegisterMap.
std::optional<std::size_t> register_index(std::uint32_t address) noexcept {
  for (std::size_t i = 0; i < ro::kRegisterMap.size(); ++i) {
    if (ro::kRegisterMap[i].address == address) return i;
  }
  return std::nullopt;
}

std::string register_name(std::uint32_t address) {
  if (auto i = register_index(address)) return fmt::format("{} (0x{:02X})", ro::kRegisterMap[*i].name, address);
  return fmt::format("0x{:02X} (no register)", address);
}

/// Why the board may have stalled a register request.
std::string refusal(std::uint32_t address, bool write) {
  const auto i = register_index(address);
  if (!i) return fmt::format("the board refused it: no register at 0x{:02X}", address);
  if (write && ro::kRegisterMap[*i].access == ro::Access::ReadOnly) {
    return fmt::format("the board refused it: {} is read-only", ro::kRegisterMap[*i].name);
  }
  return "the board refused it";
}

}  // namespace

const char* to_string(UsbSourceState s) noexcept {
  switch (s) {
    case UsbSourceState::Closed: return "closed";
    case UsbSourceState::Open: return "open";
    case UsbSourceState::Streaming: return "streaming";
    case UsbSourceState::Lost: return "lost";
  }
  return "?";
}

/// The libusb callbacks: they find the driver through user_data.
struct UsbMsadcCallbacks {
  static void LIBUSB_CALL read(libusb_transfer* t) {
    auto* slot = static_cast<UsbMsadcDriver::Slot*>(t->user_data);
    slot->driver->handle_read(*slot);
  }
  static void LIBUSB_CALL write(libusb_transfer* t) {
    auto* slot = static_cast<UsbMsadcDriver::Slot*>(t->user_data);
    slot->driver->handle_write(*slot);
  }
  static int LIBUSB_CALL hotplug(libusb_context*, libusb_device* dev, libusb_hotplug_event event, void* self) {
    static_cast<UsbMsadcDriver*>(self)->handle_hotplug(dev, event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED);
    return 0;  // stay registered
  }
};

UsbMsadcDriver::UsbMsadcDriver(UsbMsadcOptions options, UsbMsadcSink& sink)
    : options_(options), sink_(&sink), config_(ro::kRegisterMap.size()) {
  if (options_.transfers_in_flight < 1 || options_.transfers_in_flight > 64) {
    throw UsbSetupError(fmt::format("USB MSADC: transfers_in_flight {} is not 1-64", options_.transfers_in_flight));
  }
  if (options_.transfer_bytes == 0 || options_.transfer_bytes % 512 != 0 || options_.transfer_bytes > (1u << 24)) {
    throw UsbSetupError(
        fmt::format("USB MSADC: transfer_bytes {} is not a multiple of 512 up to 16 MiB", options_.transfer_bytes));
  }
  if (options_.requests_in_flight < 1 || options_.requests_in_flight > 64) {
    throw UsbSetupError(fmt::format("USB MSADC: requests_in_flight {} is not 1-64", options_.requests_in_flight));
  }
  if (options_.max_request_words < ro::event_requests_words(1) ||
      options_.max_request_words > ro::event_requests_words(ro::kMaxParticlesPerPacket)) {
    throw UsbSetupError(fmt::format("USB MSADC: max_request_words {} is not {}-{}", options_.max_request_words,
                                    ro::event_requests_words(1), ro::event_requests_words(ro::kMaxParticlesPerPacket)));
  }
  const int r = libusb_init(&ctx_);
  if (r < 0) throw UsbSetupError(fmt::format("USB MSADC: libusb_init: {}", libusb_error_name(r)));

  auto make_slots = [&](std::vector<Slot>& slots, std::size_t n, std::size_t words) {
    slots.resize(n);
    for (Slot& s : slots) {
      s.driver = this;
      s.words.assign(words, 0);
      s.transfer = libusb_alloc_transfer(0);
      if (s.transfer == nullptr) return false;
    }
    return true;
  };
  if (!make_slots(reads_, options_.transfers_in_flight, options_.transfer_bytes / 4) ||
      !make_slots(writes_, options_.requests_in_flight, options_.max_request_words)) {
    for (Slot& s : reads_) libusb_free_transfer(s.transfer);
    for (Slot& s : writes_) libusb_free_transfer(s.transfer);
    libusb_exit(ctx_);
    throw UsbSetupError("USB MSADC: libusb_alloc_transfer failed");
  }

  if (libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG) != 0) {
    const int h = libusb_hotplug_register_callback(
        ctx_,
        static_cast<libusb_hotplug_event>(LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT),
        static_cast<libusb_hotplug_flag>(0), options_.vendor_id, options_.product_id, LIBUSB_HOTPLUG_MATCH_ANY,
        &UsbMsadcCallbacks::hotplug, this, &hotplug_);
    hotplug_registered_ = h == LIBUSB_SUCCESS;
  }
  events_ = std::jthread([this](std::stop_token stop) { run_events(stop); });
  if (options_.reopen_on_arrival && hotplug_registered_) {
    reopener_ = std::jthread([this](std::stop_token stop) { run_reopen(stop); });
  }
}

UsbMsadcDriver::~UsbMsadcDriver() {
  if (reopener_.joinable()) {
    reopener_.request_stop();
    reopener_.join();
  }
  close();
  if (hotplug_registered_) libusb_hotplug_deregister_callback(ctx_, hotplug_);
  events_.request_stop();
  libusb_interrupt_event_handler(ctx_);
  events_.join();
  for (Slot& s : reads_) libusb_free_transfer(s.transfer);
  for (Slot& s : writes_) libusb_free_transfer(s.transfer);
  libusb_exit(ctx_);
}

void UsbMsadcDriver::run_events(const std::stop_token& stop) {
  while (!stop.stop_requested()) {
    timeval tv{0, 100'000};
    const int r = libusb_handle_events_timeout_completed(ctx_, &tv, nullptr);
    if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED) {
      // Nothing to report to: avoid spinning on a broken event source.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
}

void UsbMsadcDriver::run_reopen(const std::stop_token& stop) {
  std::unique_lock lock(mu_);
  while (reopen_cv_.wait(lock, stop, [this] { return arrival_pending_; })) {
    arrival_pending_ = false;
    lock.unlock();
    // Only a lost board: one closed meanwhile stays closed. A failed reopen
    // leaves the source lost; the sink hears why.
    (void)reopen_board(true);
    lock.lock();
  }
}

std::string UsbMsadcDriver::where() const {
  std::string s = fmt::format("USB MSADC {:04x}:{:04x}", options_.vendor_id, options_.product_id);
  if (address_) s += fmt::format(" bus {} address {}", address_->bus, address_->address);
  return s;
}

UsbError UsbMsadcDriver::error(int code, std::string_view what) const {
  return UsbError{code, fmt::format("{}: {}: {}", where(), what, libusb_error_name(code))};
}

void UsbMsadcDriver::notify(const std::optional<Notice>& n) {
  if (n) sink_->on_state(n->state, n->why);
}

void UsbMsadcDriver::set_state_locked(UsbSourceState s) {
  state_ = s;
  cv_.notify_all();
}

std::optional<UsbMsadcDriver::Notice> UsbMsadcDriver::mark_lost_locked(std::string why) {
  if (state_ == UsbSourceState::Lost || state_ == UsbSourceState::Closed) return std::nullopt;
  set_state_locked(UsbSourceState::Lost);
  counters_.lost.fetch_add(1, std::memory_order_relaxed);
  cancel_locked();
  return Notice{UsbSourceState::Lost, fmt::format("{}: source lost: {}", where(), why)};
}

void UsbMsadcDriver::cancel_locked() noexcept {
  // A transfer that already ended (or whose device is gone) refuses the
  // cancel; its callback comes anyway.
  for (Slot& s : reads_) {
    if (s.busy) (void)libusb_cancel_transfer(s.transfer);
  }
  for (Slot& s : writes_) {
    if (s.busy) (void)libusb_cancel_transfer(s.transfer);
  }
}

bool UsbMsadcDriver::drain(std::unique_lock<std::mutex>& lock) {
  return cv_.wait_for(lock, options_.drain_timeout,
                      [this] { return reads_in_flight_ == 0 && writes_in_flight_ == 0; });
}

// ---------------------------------------------------------------------------
// Transfer callbacks, on the event thread.

void UsbMsadcDriver::handle_read(Slot& slot) {
  libusb_transfer* t = slot.transfer;
  const libusb_transfer_status status = t->status;
  if ((status == LIBUSB_TRANSFER_COMPLETED || status == LIBUSB_TRANSFER_TIMED_OUT) && t->actual_length > 0) {
    const auto bytes = static_cast<std::size_t>(t->actual_length);
    if (bytes % 4 != 0) counters_.odd_lengths.fetch_add(1, std::memory_order_relaxed);
    counters_.buffers.fetch_add(1, std::memory_order_relaxed);
    counters_.bytes_in.fetch_add(bytes, std::memory_order_relaxed);
    // Outside the lock: the sink may send requests.
    sink_->on_words(std::span<const std::uint32_t>(slot.words.data(), bytes / 4));
  } else if (status == LIBUSB_TRANSFER_COMPLETED) {
    counters_.empty_transfers.fetch_add(1, std::memory_order_relaxed);
  }
  std::optional<Notice> notice;
  {
    std::lock_guard lock(mu_);
    bool resubmit = false;
    switch (status) {
      case LIBUSB_TRANSFER_COMPLETED: resubmit = true; break;
      case LIBUSB_TRANSFER_TIMED_OUT:
        counters_.in_timeouts.fetch_add(1, std::memory_order_relaxed);
        resubmit = true;
        break;
      case LIBUSB_TRANSFER_CANCELLED: break;
      case LIBUSB_TRANSFER_NO_DEVICE:
        notice = mark_lost_locked("bulk IN transfer ended with LIBUSB_TRANSFER_NO_DEVICE");
        break;
      case LIBUSB_TRANSFER_OVERFLOW:
        counters_.in_errors.fetch_add(1, std::memory_order_relaxed);
        resubmit = true;
        break;
      case LIBUSB_TRANSFER_STALL:
      case LIBUSB_TRANSFER_ERROR:
        counters_.in_errors.fetch_add(1, std::memory_order_relaxed);
        break;
    }
    if (resubmit && state_ == UsbSourceState::Streaming) {
      const int r = libusb_submit_transfer(t);
      if (r == LIBUSB_SUCCESS) return;
      if (r == LIBUSB_ERROR_NO_DEVICE) {
        notice = mark_lost_locked("resubmitting a bulk IN transfer: LIBUSB_ERROR_NO_DEVICE");
      } else {
        counters_.in_errors.fetch_add(1, std::memory_order_relaxed);
      }
    }
    slot.busy = false;
    --reads_in_flight_;
    if (state_ == UsbSourceState::Streaming && reads_in_flight_ == 0 && status != LIBUSB_TRANSFER_CANCELLED) {
      // Every transfer failed: the link is unusable until it is reopened.
      notice = mark_lost_locked(fmt::format("every bulk IN transfer failed, the last with {}",
                                            libusb_error_name(static_cast<int>(status))));
    }
    cv_.notify_all();
  }
  notify(notice);
}

void UsbMsadcDriver::handle_write(Slot& slot) {
  libusb_transfer* t = slot.transfer;
  std::optional<Notice> notice;
  {
    std::lock_guard lock(mu_);
    switch (t->status) {
      case LIBUSB_TRANSFER_COMPLETED:
        if (t->actual_length == t->length) {
          counters_.request_messages.fetch_add(1, std::memory_order_relaxed);
        } else {
          counters_.out_errors.fetch_add(1, std::memory_order_relaxed);
        }
        counters_.bytes_out.fetch_add(static_cast<std::uint64_t>(t->actual_length), std::memory_order_relaxed);
        break;
      case LIBUSB_TRANSFER_NO_DEVICE:
        counters_.out_errors.fetch_add(1, std::memory_order_relaxed);
        notice = mark_lost_locked("bulk OUT transfer ended with LIBUSB_TRANSFER_NO_DEVICE");
        break;
      case LIBUSB_TRANSFER_CANCELLED: break;
      default: counters_.out_errors.fetch_add(1, std::memory_order_relaxed); break;
    }
    slot.busy = false;
    --writes_in_flight_;
    cv_.notify_all();
  }
  notify(notice);
}

void UsbMsadcDriver::handle_hotplug(libusb_device* dev, bool arrived) {
  std::optional<Notice> notice;
  {
    std::lock_guard lock(mu_);
    if (!arrived) {
      if (dev == device_) notice = mark_lost_locked("hotplug: the board left the bus");
    } else if (state_ == UsbSourceState::Lost &&
               (!options_.bus || *options_.bus == libusb_get_bus_number(dev))) {
      arrival_pending_ = true;
      reopen_cv_.notify_all();
    }
  }
  notify(notice);
}

// ---------------------------------------------------------------------------
// Open, close, reopen. control_mu_ held; mu_ only around state changes, never
// across a synchronous libusb call (its completion needs the event thread,
// whose callbacks take mu_).

UsbResult<> UsbMsadcDriver::open_device() {
  libusb_device** list = nullptr;
  const ssize_t n = libusb_get_device_list(ctx_, &list);
  if (n < 0) return error(static_cast<int>(n), "listing the USB devices");
  const bool first = !opened_once_;
  libusb_device* found = nullptr;
  for (ssize_t i = 0; i < n && found == nullptr; ++i) {
    libusb_device_descriptor d{};
    if (libusb_get_device_descriptor(list[i], &d) != LIBUSB_SUCCESS) continue;
    if (d.idVendor != options_.vendor_id || d.idProduct != options_.product_id) continue;
    if (options_.bus && *options_.bus != libusb_get_bus_number(list[i])) continue;
    if (first && options_.address && *options_.address != libusb_get_device_address(list[i])) continue;
    found = list[i];
  }
  if (found == nullptr) {
    libusb_free_device_list(list, 1);
    std::string filter;
    if (options_.bus) filter += fmt::format(" on bus {}", *options_.bus);
    if (first && options_.address) filter += fmt::format(" at address {}", *options_.address);
    return UsbError{LIBUSB_ERROR_NOT_FOUND, fmt::format("{}: no such board{} among {} USB devices: {}", where(), filter,
                                                        n, libusb_error_name(LIBUSB_ERROR_NOT_FOUND))};
  }
  const UsbDeviceAddress address{libusb_get_bus_number(found), libusb_get_device_address(found)};
  const std::string at = fmt::format("{} bus {} address {}", where(), address.bus, address.address);
  auto fail = [&](int code, std::string_view what) {
    return UsbError{code, fmt::format("{}: {}: {}", at, what, libusb_error_name(code))};
  };

  libusb_config_descriptor* config = nullptr;
  int r = libusb_get_active_config_descriptor(found, &config);
  if (r < 0) {
    libusb_free_device_list(list, 1);
    return fail(r, "reading the configuration descriptor");
  }
  bool in = false;
  bool out = false;
  if (config->bNumInterfaces > usb_msadc::kInterface && config->interface[usb_msadc::kInterface].num_altsetting > 0) {
    const libusb_interface_descriptor& alt = config->interface[usb_msadc::kInterface].altsetting[0];
    for (int e = 0; e < alt.bNumEndpoints; ++e) {
      const libusb_endpoint_descriptor& ep = alt.endpoint[e];
      const bool bulk = (ep.bmAttributes & 0x3) == LIBUSB_TRANSFER_TYPE_BULK;
      in = in || (bulk && ep.bEndpointAddress == usb_msadc::kEndpointIn);
      out = out || (bulk && ep.bEndpointAddress == usb_msadc::kEndpointOut);
    }
  }
  libusb_free_config_descriptor(config);
  if (!in || !out) {
    libusb_free_device_list(list, 1);
    return UsbError{LIBUSB_ERROR_NOT_SUPPORTED,
                    fmt::format("{}: interface {} has no bulk IN 0x{:02x} and bulk OUT 0x{:02x} endpoints: {}", at,
                                usb_msadc::kInterface, usb_msadc::kEndpointIn, usb_msadc::kEndpointOut,
                                libusb_error_name(LIBUSB_ERROR_NOT_SUPPORTED))};
  }

  libusb_device_handle* h = nullptr;
  r = libusb_open(found, &h);
  libusb_free_device_list(list, 1);  // the open handle keeps its device referenced
  if (r < 0) return fail(r, "opening the board");
  r = libusb_claim_interface(h, usb_msadc::kInterface);
  if (r < 0) {
    libusb_close(h);
    return fail(r, fmt::format("claiming interface {}", usb_msadc::kInterface));
  }
  std::lock_guard lock(mu_);
  handle_ = h;
  device_ = libusb_get_device(h);
  address_ = address;
  opened_once_ = true;
  set_state_locked(UsbSourceState::Open);
  return {};
}

bool UsbMsadcDriver::close_device() {
  libusb_device_handle* h = nullptr;
  {
    std::unique_lock lock(mu_);
    // Not streaming any more: the cancelled transfers are not resubmitted,
    // nor taken for a failing link.
    if (state_ == UsbSourceState::Streaming) set_state_locked(UsbSourceState::Open);
    cancel_locked();
    if (!drain(lock)) return false;  // keep the handle: closing it under live transfers is unsafe
    h = std::exchange(handle_, nullptr);
    device_ = nullptr;
  }
  if (h != nullptr) {
    (void)libusb_release_interface(h, usb_msadc::kInterface);  // fails harmlessly on a vanished board
    libusb_close(h);
  }
  std::lock_guard lock(mu_);
  address_.reset();
  return true;
}

UsbResult<> UsbMsadcDriver::open() {
  std::lock_guard control(control_mu_);
  {
    std::lock_guard lock(mu_);
    if (state_ == UsbSourceState::Open || state_ == UsbSourceState::Streaming) return {};
    if (state_ == UsbSourceState::Lost) {
      return UsbError{LIBUSB_ERROR_NO_DEVICE, fmt::format("{}: open: the source is lost, reopen() it: {}", where(),
                                                          libusb_error_name(LIBUSB_ERROR_NO_DEVICE))};
    }
  }
  auto r = open_device();
  if (r) notify(Notice{UsbSourceState::Open, fmt::format("{}: opened", where())});
  return r;
}

void UsbMsadcDriver::close() {
  std::lock_guard control(control_mu_);
  {
    std::lock_guard lock(mu_);
    want_streaming_ = false;
    if (state_ == UsbSourceState::Closed) return;
  }
  std::string why = fmt::format("{}: closed", where());
  if (!close_device()) why += " (transfers did not end; the handle is left open)";
  {
    std::lock_guard lock(mu_);
    set_state_locked(UsbSourceState::Closed);
  }
  notify(Notice{UsbSourceState::Closed, why});
}

UsbResult<> UsbMsadcDriver::reopen() { return reopen_board(false); }

UsbResult<> UsbMsadcDriver::reopen_board(bool lost_only) {
  std::lock_guard control(control_mu_);
  bool was_lost = false;
  {
    std::lock_guard lock(mu_);
    if (state_ == UsbSourceState::Open || state_ == UsbSourceState::Streaming) return {};
    was_lost = state_ == UsbSourceState::Lost;
    if (lost_only && !was_lost) return {};
  }
  if (!close_device()) {
    return UsbError{LIBUSB_ERROR_BUSY, fmt::format("{}: reopen: the transfers of the lost board did not end: {}",
                                                   where(), libusb_error_name(LIBUSB_ERROR_BUSY))};
  }
  auto fail = [&](UsbError e) {
    notify(Notice{was_lost ? UsbSourceState::Lost : UsbSourceState::Closed, "reopen failed: " + e.message});
    return e;
  };
  {
    // open_device() wants Closed or Lost; restore Lost after a failure.
    auto r = open_device();
    if (!r) return fail(r.error());
  }
  for (std::size_t i = 0; i < config_.size(); ++i) {
    if (!config_[i]) continue;
    auto w = write_locked(ro::kRegisterMap[i].address, *config_[i]);
    if (!w) {
      std::lock_guard lock(mu_);
      if (state_ != UsbSourceState::Lost) set_state_locked(UsbSourceState::Open);
      return fail(w.error());
    }
  }
  std::optional<Notice> notice;
  {
    std::lock_guard lock(mu_);
    if (want_streaming_) {
      auto s = submit_reads_locked();
      if (!s) {
        notice = Notice{state_, "reopen: " + s.error().message};
      }
    }
    if (was_lost) counters_.reopened.fetch_add(1, std::memory_order_relaxed);
    if (!notice) notice = Notice{state_, fmt::format("{}: reopened", where())};
  }
  notify(notice);
  return {};
}

// ---------------------------------------------------------------------------
// Registers.

UsbResult<std::uint32_t> UsbMsadcDriver::read_register(std::uint32_t address) {
  std::lock_guard control(control_mu_);
  const std::string what = fmt::format("reading register {}", register_name(address));
  libusb_device_handle* h = nullptr;
  {
    std::lock_guard lock(mu_);
    if (state_ == UsbSourceState::Closed || state_ == UsbSourceState::Lost) {
      return error(LIBUSB_ERROR_NO_DEVICE, fmt::format("{}: the source is {}", what, to_string(state_)));
    }
    h = handle_;
  }
  if (address > 0xFFFF) return error(LIBUSB_ERROR_INVALID_PARAM, what);
  std::array<unsigned char, 4> b{};
  const int r = libusb_control_transfer(h, usb_msadc::kRequestTypeVendorIn, usb_msadc::kRequestReadRegister, 0,
                                        static_cast<std::uint16_t>(address), b.data(), 4,
                                        static_cast<unsigned>(options_.control_timeout.count()));
  if (r == LIBUSB_ERROR_PIPE) return error(r, fmt::format("{} ({})", what, refusal(address, false)));
  if (r < 0) {
    if (r == LIBUSB_ERROR_NO_DEVICE) {
      std::optional<Notice> n;
      {
        std::lock_guard lock(mu_);
        n = mark_lost_locked(what + ": LIBUSB_ERROR_NO_DEVICE");
      }
      notify(n);
    }
    return error(r, what);
  }
  if (r != 4) return error(LIBUSB_ERROR_IO, fmt::format("{}: {} of 4 bytes", what, r));
  return static_cast<std::uint32_t>(b[0] | (b[1] << 8) | (b[2] << 16)) | (std::uint32_t{b[3]} << 24);
}

UsbResult<> UsbMsadcDriver::write_register(std::uint32_t address, std::uint32_t value) {
  std::lock_guard control(control_mu_);
  {
    std::lock_guard lock(mu_);
    if (state_ == UsbSourceState::Closed || state_ == UsbSourceState::Lost) {
      return error(LIBUSB_ERROR_NO_DEVICE, fmt::format("writing register {} = 0x{:X}: the source is {}",
                                                       register_name(address), value, to_string(state_)));
    }
  }
  auto r = write_locked(address, value);
  if (r) {
    const auto i = register_index(address);
    if (i && ro::kRegisterMap[*i].access == ro::Access::ReadWrite) config_[*i] = value;
  }
  return r;
}

UsbResult<> UsbMsadcDriver::write_locked(std::uint32_t address, std::uint32_t value) {
  const std::string what = fmt::format("writing register {} = 0x{:X}", register_name(address), value);
  libusb_device_handle* h = nullptr;
  {
    std::lock_guard lock(mu_);
    h = handle_;
  }
  if (h == nullptr) return error(LIBUSB_ERROR_NO_DEVICE, what);
  if (address > 0xFFFF) return error(LIBUSB_ERROR_INVALID_PARAM, what);
  std::array<unsigned char, 4> b{static_cast<unsigned char>(value), static_cast<unsigned char>(value >> 8),
                                 static_cast<unsigned char>(value >> 16), static_cast<unsigned char>(value >> 24)};
  const int r = libusb_control_transfer(h, usb_msadc::kRequestTypeVendorOut, usb_msadc::kRequestWriteRegister, 0,
                                        static_cast<std::uint16_t>(address), b.data(), 4,
                                        static_cast<unsigned>(options_.control_timeout.count()));
  if (r == LIBUSB_ERROR_PIPE) return error(r, fmt::format("{} ({})", what, refusal(address, true)));
  if (r < 0) {
    if (r == LIBUSB_ERROR_NO_DEVICE) {
      std::optional<Notice> n;
      {
        std::lock_guard lock(mu_);
        n = mark_lost_locked(what + ": LIBUSB_ERROR_NO_DEVICE");
      }
      notify(n);
    }
    return error(r, what);
  }
  if (r != 4) return error(LIBUSB_ERROR_IO, fmt::format("{}: {} of 4 bytes", what, r));
  return {};
}

// ---------------------------------------------------------------------------
// Streaming and requests.

UsbResult<> UsbMsadcDriver::submit_reads_locked() {
  const auto timeout_ms = static_cast<unsigned>(options_.in_timeout.count());
  for (Slot& s : reads_) {
    libusb_fill_bulk_transfer(s.transfer, handle_, usb_msadc::kEndpointIn,
                              reinterpret_cast<unsigned char*>(s.words.data()),
                              static_cast<int>(s.words.size() * 4), &UsbMsadcCallbacks::read, &s, timeout_ms);
    const int r = libusb_submit_transfer(s.transfer);
    if (r < 0) {
      // Those in flight end through their callbacks: cancelled, or lost.
      if (r == LIBUSB_ERROR_NO_DEVICE) {
        // The caller tells the sink, from state_.
        (void)mark_lost_locked("submitting a bulk IN transfer: LIBUSB_ERROR_NO_DEVICE");
      } else {
        cancel_locked();
      }
      return error(r, "submitting a bulk IN transfer");
    }
    s.busy = true;
    ++reads_in_flight_;
  }
  set_state_locked(UsbSourceState::Streaming);
  return {};
}

UsbResult<> UsbMsadcDriver::start_streaming() {
  std::lock_guard control(control_mu_);
  std::optional<Notice> notice;
  UsbResult<> r;
  {
    std::lock_guard lock(mu_);
    if (state_ == UsbSourceState::Streaming) return {};
    if (state_ != UsbSourceState::Open) {
      return error(LIBUSB_ERROR_NO_DEVICE, fmt::format("start streaming: the source is {}", to_string(state_)));
    }
    want_streaming_ = true;
    r = submit_reads_locked();
    notice = Notice{state_, r ? fmt::format("{}: streaming", where()) : r.error().message};
  }
  notify(notice);
  return r;
}

void UsbMsadcDriver::stop_streaming() {
  std::lock_guard control(control_mu_);
  {
    std::unique_lock lock(mu_);
    want_streaming_ = false;
    if (state_ != UsbSourceState::Streaming) return;
    set_state_locked(UsbSourceState::Open);  // before cancelling: the callbacks do not resubmit
    for (Slot& s : reads_) {
      if (s.busy) (void)libusb_cancel_transfer(s.transfer);
    }
    (void)cv_.wait_for(lock, options_.drain_timeout, [this] { return reads_in_flight_ == 0; });
  }
  notify(Notice{UsbSourceState::Open, fmt::format("{}: streaming stopped", where())});
}

UsbResult<> UsbMsadcDriver::send_requests(std::span<const std::uint32_t> message) {
  std::optional<Notice> notice;
  auto r = [&]() -> UsbResult<> {
    std::lock_guard lock(mu_);
    if (message.empty() || message.size() > options_.max_request_words) {
      return error(LIBUSB_ERROR_INVALID_PARAM, fmt::format("sending a request message of {} words (1-{})",
                                                           message.size(), options_.max_request_words));
    }
    if (state_ != UsbSourceState::Open && state_ != UsbSourceState::Streaming) {
      return error(LIBUSB_ERROR_NO_DEVICE,
                   fmt::format("sending a request message: the source is {}", to_string(state_)));
    }
    auto slot = std::find_if(writes_.begin(), writes_.end(), [](const Slot& s) { return !s.busy; });
    if (slot == writes_.end()) {
      return error(LIBUSB_ERROR_BUSY,
                   fmt::format("sending a request message: all {} request transfers in flight", writes_.size()));
    }
    std::copy(message.begin(), message.end(), slot->words.begin());
    libusb_fill_bulk_transfer(slot->transfer, handle_, usb_msadc::kEndpointOut,
                              reinterpret_cast<unsigned char*>(slot->words.data()),
                              static_cast<int>(message.size() * 4), &UsbMsadcCallbacks::write, &*slot,
                              static_cast<unsigned>(options_.out_timeout.count()));
    const int s = libusb_submit_transfer(slot->transfer);
    if (s == LIBUSB_SUCCESS) {
      slot->busy = true;
      ++writes_in_flight_;
      return {};
    }
    counters_.out_errors.fetch_add(1, std::memory_order_relaxed);
    if (s == LIBUSB_ERROR_NO_DEVICE) {
      notice = mark_lost_locked("submitting a bulk OUT transfer: LIBUSB_ERROR_NO_DEVICE");
    }
    return error(s, "sending a request message");
  }();
  notify(notice);
  return r;
}

UsbSourceState UsbMsadcDriver::state() const {
  std::lock_guard lock(mu_);
  return state_;
}

bool UsbMsadcDriver::wait_for_state(UsbSourceState s, std::chrono::milliseconds timeout) const {
  std::unique_lock lock(mu_);
  return cv_.wait_for(lock, timeout, [&] { return state_ == s; });
}

UsbMsadcCounters UsbMsadcDriver::counters() const noexcept {
  constexpr auto relaxed = std::memory_order_relaxed;
  const Counters& c = counters_;
  return UsbMsadcCounters{c.buffers.load(relaxed),          c.bytes_in.load(relaxed),  c.empty_transfers.load(relaxed),
                          c.odd_lengths.load(relaxed),      c.in_timeouts.load(relaxed), c.in_errors.load(relaxed),
                          c.request_messages.load(relaxed), c.bytes_out.load(relaxed), c.out_errors.load(relaxed),
                          c.lost.load(relaxed),             c.reopened.load(relaxed)};
}

std::optional<UsbDeviceAddress> UsbMsadcDriver::device_address() const {
  std::lock_guard lock(mu_);
  return address_;
}

}  // namespace na64::drivers
