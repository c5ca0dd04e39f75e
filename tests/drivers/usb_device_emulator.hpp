// SPDX-License-Identifier: Apache-2.0
// An emulated USB device for testing libusb code through its real code path,
// in one process, with umockdev (>= 0.16, its ioctl-handler API). The test
// must run under libumockdev-preload.so (reexec_under_umockdev()).
//
// Three layers:
// - UsbDeviceModel: what the device does (control requests, bulk OUT, bulk IN);
// - UsbDeviceEmulator: the usbdevfs URB layer libusb's Linux backend talks to
//   (submit, reap, discard, capabilities, claim), run by umockdev's worker
//   thread; its device node is a FIFO kept full, so that libusb's poll()
//   sleeps until a URB is ready (a plain file would make it spin);
// - UsbTestbed: the umockdev testbed, plugging and unplugging devices in
//   sysfs and /dev with their uevents (libusb hotplug ARRIVED / LEFT).
// UsbMsadcModel puts an EmulatedReadoutBoard behind the USB transport of
// usb_msadc.hpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "na64/drivers/emulated_readout_board.hpp"

struct _UMockdevTestbed;
struct _UMockdevIoctlBase;
struct _UMockdevIoctlClient;
struct _UMockdevIoctlData;

namespace na64::testing {

/// Re-executes the program with libumockdev-preload.so.0 in LD_PRELOAD
/// unless it is there (as `umockdev-wrapper` does). Returns only if it was
/// there already, or the exec failed (then the tests skip).
void reexec_under_umockdev(char** argv);

/// The setup packet of a control request.
struct UsbSetup {
  std::uint8_t request_type = 0;
  std::uint8_t request = 0;
  std::uint16_t value = 0;
  std::uint16_t index = 0;
  std::uint16_t length = 0;
};

/// The device's behaviour. Called with the emulator's lock held, from
/// umockdev's worker thread and the emulator's ticker.
class UsbDeviceModel {
 public:
  virtual ~UsbDeviceModel() = default;
  /// A control request other than the standard ones; `data` is the data
  /// stage (IN: to fill). Returns the bytes of the data stage, or nullopt to
  /// stall (LIBUSB_ERROR_PIPE).
  virtual std::optional<std::size_t> control(const UsbSetup& setup, std::span<std::uint8_t> data) = 0;
  /// One bulk OUT transfer.
  virtual void bulk_out(std::uint8_t endpoint, std::span<const std::uint8_t> data) = 0;
  /// Fills one bulk IN transfer; nullopt: nothing to send now, the URB stays
  /// in flight (asked again at the next reap or tick).
  virtual std::optional<std::size_t> bulk_in(std::uint8_t endpoint, std::span<std::uint8_t> out) = 0;
};

/// USB identity: a device with one vendor interface, one bulk IN and one bulk OUT endpoint.
struct UsbDeviceIdentity {
  std::uint16_t vendor_id = 0;
  std::uint16_t product_id = 0;
  std::uint8_t endpoint_in = 0x81;
  std::uint8_t endpoint_out = 0x02;
};

/// The usbdevfs URB layer of one plugged device.
///
/// Thread safety: all state under one mutex; the ioctl handler runs on
/// umockdev's worker thread, the ticker on its own, unplug() and stats() on
/// the test thread.
class UsbDeviceEmulator {
 public:
  struct Stats {
    unsigned submitted = 0;
    unsigned reaped = 0;
    unsigned discarded = 0;
    unsigned max_in_flight_in = 0;
    unsigned unhandled_ioctls = 0;
  };

  UsbDeviceEmulator(UsbDeviceIdentity identity, UsbDeviceModel& model);
  ~UsbDeviceEmulator();
  UsbDeviceEmulator(const UsbDeviceEmulator&) = delete;
  UsbDeviceEmulator& operator=(const UsbDeviceEmulator&) = delete;

  [[nodiscard]] _UMockdevIoctlBase* handler() const noexcept { return handler_; }
  /// Replaces the node (a plain file, as umockdev makes it) with a FIFO whose
  /// writability says "a URB is ready"; starts the ticker. False on failure.
  bool use_fifo_wakeup(const std::string& node_path);
  /// As the kernel on a disconnect: every URB in flight ends with
  /// -ESHUTDOWN, every later ioctl fails with ENODEV.
  void unplug();
  [[nodiscard]] Stats stats() const;

 private:
  struct Urb {
    _UMockdevIoctlClient* client = nullptr;
    _UMockdevIoctlData* urb = nullptr;  ///< owned ref: the client's struct usbdevfs_urb
    _UMockdevIoctlData* buf = nullptr;  ///< owned ref: its buffer, or null
    unsigned long client_address = 0;
  };

  friend struct UsbDeviceEmulatorCallbacks;
  bool handle_ioctl(_UMockdevIoctlClient* client);
  void drop_client(_UMockdevIoctlClient* client);
  // The functions below: mu_ held.
  void submit(_UMockdevIoctlClient* client, long& ret, int& err);
  void reap(_UMockdevIoctlClient* client, long& ret, int& err);
  void discard(_UMockdevIoctlClient* client, long& ret, int& err);
  void control(Urb& u);
  void produce_in();
  void update_ready();
  void tick(const std::stop_token& stop);
  static void free_urb(Urb& u);

  UsbDeviceIdentity identity_;
  UsbDeviceModel* model_;
  _UMockdevIoctlBase* handler_ = nullptr;
  mutable std::mutex mu_;
  bool unplugged_ = false;
  std::deque<Urb> pending_in_;  ///< bulk IN URBs waiting for data
  std::deque<Urb> done_;        ///< URBs to reap
  Stats stats_;
  int fifo_fd_ = -1;
  bool fifo_ready_ = true;
  std::jthread ticker_;
};

/// The USB descriptors of `id` as sysfs `descriptors` holds them.
[[nodiscard]] std::vector<std::uint8_t> usb_descriptors(const UsbDeviceIdentity& id);

/// The umockdev testbed with the devices plugged into it.
///
/// Thread safety: test thread only. Devices plugged stay (answering ENODEV
/// once unplugged) until the testbed goes: destroy it after the host closed them.
class UsbTestbed {
 public:
  struct Device {
    std::string syspath;
    std::string node;
    std::unique_ptr<UsbDeviceEmulator> emulator;
    bool present = false;
  };

  /// Throws std::runtime_error if not running under the umockdev preload.
  UsbTestbed();
  ~UsbTestbed();
  UsbTestbed(const UsbTestbed&) = delete;
  UsbTestbed& operator=(const UsbTestbed&) = delete;

  /// Plugs a device answering with `model` (which must outlive the testbed)
  /// at `bus`/`address`; sends the "add" uevent.
  Device& plug(const UsbDeviceIdentity& id, UsbDeviceModel& model, int bus, int address);
  /// Unplugs: URBs end, "remove" uevent, the sysfs entry and node vanish.
  void unplug(Device& d);

 private:
  _UMockdevTestbed* testbed_ = nullptr;
  std::vector<std::unique_ptr<Device>> devices_;
};

/// An EmulatedReadoutBoard behind the USB transport of usb_msadc.hpp:
/// register control requests, event requests on bulk OUT, board messages on
/// bulk IN (answers first, then the spill's stream, whole messages a
/// transfer).
///
/// Thread safety: every function takes the model's lock; the board is only
/// touched through them.
class UsbMsadcModel final : public UsbDeviceModel {
 public:
  explicit UsbMsadcModel(std::unique_ptr<drivers::EmulatedReadoutBoard> board);

  /// Streams no particle numbered `particle` or above (a few may slip
  /// through: the board packs particles by the packet) until release();
  /// the transfers stay in flight meanwhile, as with a gate that is quiet.
  void hold_from(std::uint32_t particle);
  void release();
  /// Opens the spill gate; the stream goes out as the host reads, then the
  /// spill end. False if a spill is going on or the board refuses.
  bool begin_spill(std::uint32_t spill);
  [[nodiscard]] bool spill_done() const;
  /// Particles streamed so far in this spill.
  [[nodiscard]] std::uint32_t particles_streamed() const;
  [[nodiscard]] firmware::msadc_readout::SpillCounters spill_counters() const;
  [[nodiscard]] firmware::msadc_readout::BoardStatus board_status() const;
  [[nodiscard]] std::optional<std::uint32_t> read_register(std::uint32_t address) const;
  /// Request messages received on bulk OUT.
  [[nodiscard]] std::uint64_t request_messages() const;

  std::optional<std::size_t> control(const UsbSetup& setup, std::span<std::uint8_t> data) override;
  void bulk_out(std::uint8_t endpoint, std::span<const std::uint8_t> data) override;
  std::optional<std::size_t> bulk_in(std::uint8_t endpoint, std::span<std::uint8_t> out) override;

 private:
  mutable std::mutex mu_;
  std::unique_ptr<drivers::EmulatedReadoutBoard> board_;
  std::optional<std::uint32_t> hold_from_;
  std::vector<std::uint32_t> outgoing_;  ///< whole messages waiting for bulk IN (answers, spill begin/end)
  std::size_t outgoing_pos_ = 0;
  bool spill_on_ = false;
  bool spill_done_ = false;
  std::uint32_t total_ = 0;     ///< particles of the spill
  std::uint32_t streamed_ = 0;
  std::uint64_t request_messages_ = 0;
  std::vector<std::uint32_t> scratch_;
};

}  // namespace na64::testing
