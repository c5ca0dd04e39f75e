// SPDX-License-Identifier: Apache-2.0
#include "usb_device_emulator.hpp"

#include <fcntl.h>
#include <linux/usbdevice_fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <umockdev.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>

#include "na64/drivers/usb_msadc.hpp"

namespace na64::testing {

namespace ro = firmware::msadc_readout;

void reexec_under_umockdev(char** argv) {
  // Not umockdev_in_mock_environment(): it caches its first answer, and a
  // FALSE cached before a testbed exists stops the "add" uevents.
  const char* old = std::getenv("LD_PRELOAD");
  if (old != nullptr && std::strstr(old, "libumockdev-preload") != nullptr) return;
  std::string preload = "libumockdev-preload.so.0";
  if (old != nullptr && *old != '\0') preload += std::string(":") + old;
  setenv("LD_PRELOAD", preload.c_str(), 1);
  execv("/proc/self/exe", argv);
  std::perror("usb tests: re-executing under libumockdev-preload.so.0");
}

// ---------------------------------------------------------------------------
// UsbDeviceEmulator

struct UsbDeviceEmulatorCallbacks {
  static gboolean ioctl(UMockdevIoctlBase*, UMockdevIoctlClient* client, gpointer self) {
    return static_cast<UsbDeviceEmulator*>(self)->handle_ioctl(client) ? TRUE : FALSE;
  }
  static void connected(UMockdevIoctlBase*, UMockdevIoctlClient* client, gpointer self) {
    // 0.17.16 declares but never emits client-vanished: watch "connected".
    g_signal_connect(client, "notify::connected", G_CALLBACK(&UsbDeviceEmulatorCallbacks::notify), self);
  }
  static void notify(GObject* object, GParamSpec*, gpointer self) {
    auto* client = UMOCKDEV_IOCTL_CLIENT(object);
    if (umockdev_ioctl_client_get_connected(client) == FALSE) {
      static_cast<UsbDeviceEmulator*>(self)->drop_client(client);
    }
  }
};

UsbDeviceEmulator::UsbDeviceEmulator(UsbDeviceIdentity identity, UsbDeviceModel& model)
    : identity_(identity), model_(&model), handler_(umockdev_ioctl_base_new()) {
  g_signal_connect(handler_, "handle-ioctl", G_CALLBACK(&UsbDeviceEmulatorCallbacks::ioctl), this);
  g_signal_connect(handler_, "client-connected", G_CALLBACK(&UsbDeviceEmulatorCallbacks::connected), this);
}

UsbDeviceEmulator::~UsbDeviceEmulator() {
  // The testbed has detached the handler (UsbTestbed's destructor).
  g_signal_handlers_disconnect_by_data(handler_, this);
  if (ticker_.joinable()) {
    ticker_.request_stop();
    ticker_.join();
  }
  if (fifo_fd_ >= 0) ::close(fifo_fd_);
  std::lock_guard lock(mu_);
  for (Urb& u : pending_in_) free_urb(u);
  for (Urb& u : done_) free_urb(u);
  g_object_unref(handler_);
}

void UsbDeviceEmulator::free_urb(Urb& u) {
  if (u.buf != nullptr) g_object_unref(u.buf);
  if (u.urb != nullptr) g_object_unref(u.urb);
  u.buf = nullptr;
  u.urb = nullptr;
}

bool UsbDeviceEmulator::use_fifo_wakeup(const std::string& node_path) {
  if (::unlink(node_path.c_str()) != 0 || ::mkfifo(node_path.c_str(), 0666) != 0) return false;
  // Reader and writer both: the pipe never sees EOF or EPIPE.
  fifo_fd_ = ::open(node_path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fifo_fd_ < 0) return false;
  {
    std::lock_guard lock(mu_);
    fifo_ready_ = true;
    update_ready();
  }
  ticker_ = std::jthread([this](std::stop_token stop) { tick(stop); });
  return true;
}

void UsbDeviceEmulator::update_ready() {
  if (fifo_fd_ < 0) return;
  // libusb polls the node for POLLOUT: a free pipe slot means "reap me".
  const bool want = !done_.empty();
  static char page[4096];
  if (want && !fifo_ready_) {
    if (::read(fifo_fd_, page, sizeof page) > 0) fifo_ready_ = true;
  } else if (!want && fifo_ready_) {
    while (::write(fifo_fd_, page, sizeof page) > 0) {
    }
    fifo_ready_ = false;
  }
}

void UsbDeviceEmulator::tick(const std::stop_token& stop) {
  // Rate-limited data appears with time, not only when the host reaps.
  while (!stop.stop_requested()) {
    {
      std::lock_guard lock(mu_);
      if (!unplugged_) produce_in();
      update_ready();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
}

void UsbDeviceEmulator::unplug() {
  std::lock_guard lock(mu_);
  unplugged_ = true;
  while (!pending_in_.empty()) {
    Urb u = pending_in_.front();
    pending_in_.pop_front();
    auto* k = reinterpret_cast<usbdevfs_urb*>(u.urb->data);
    k->status = -ESHUTDOWN;
    k->actual_length = 0;
    done_.push_back(u);
  }
  update_ready();
}

UsbDeviceEmulator::Stats UsbDeviceEmulator::stats() const {
  std::lock_guard lock(mu_);
  return stats_;
}

void UsbDeviceEmulator::drop_client(UMockdevIoctlClient* client) {
  std::lock_guard lock(mu_);
  auto drop = [&](std::deque<Urb>& q) {
    for (auto it = q.begin(); it != q.end();) {
      if (it->client == client) {
        free_urb(*it);
        it = q.erase(it);
      } else {
        ++it;
      }
    }
  };
  drop(pending_in_);
  drop(done_);
  update_ready();
}

bool UsbDeviceEmulator::handle_ioctl(UMockdevIoctlClient* client) {
  const gulong request = umockdev_ioctl_client_get_request(client);
  UMockdevIoctlData* arg = umockdev_ioctl_client_get_arg(client);
  long ret = 0;
  int err = 0;
  {
    std::lock_guard lock(mu_);
    switch (request) {
      case USBDEVFS_SUBMITURB: submit(client, ret, err); break;
      case USBDEVFS_REAPURBNDELAY:
      case USBDEVFS_REAPURB:  // libusb never blocks in a reap; answered as NDELAY
        reap(client, ret, err);
        break;
      case USBDEVFS_DISCARDURB: discard(client, ret, err); break;
      case USBDEVFS_GET_CAPABILITIES: {
        if (unplugged_) {
          ret = -1;
          err = ENODEV;
          break;
        }
        GError* e = nullptr;
        UMockdevIoctlData* d = umockdev_ioctl_data_resolve(arg, 0, sizeof(std::uint32_t), &e);
        if (d == nullptr) {
          g_clear_error(&e);
          ret = -1;
          err = EFAULT;
          break;
        }
        const std::uint32_t caps = USBDEVFS_CAP_BULK_SCATTER_GATHER | USBDEVFS_CAP_BULK_CONTINUATION |
                                   USBDEVFS_CAP_NO_PACKET_SIZE_LIM | USBDEVFS_CAP_REAP_AFTER_DISCONNECT |
                                   USBDEVFS_CAP_ZERO_PACKET;
        std::memcpy(d->data, &caps, sizeof caps);
        g_object_unref(d);
        break;
      }
      case USBDEVFS_CLAIMINTERFACE:
      case USBDEVFS_RELEASEINTERFACE:
      case USBDEVFS_SETINTERFACE:
      case USBDEVFS_SETCONFIGURATION:
      case USBDEVFS_CLEAR_HALT:
      case USBDEVFS_RESETEP:
      case USBDEVFS_RESET:
        if (unplugged_) {
          ret = -1;
          err = ENODEV;
        }
        break;
      case USBDEVFS_GETDRIVER:  // no kernel driver bound
        ret = -1;
        err = unplugged_ ? ENODEV : ENODATA;
        break;
      default:
        ++stats_.unhandled_ioctls;
        std::fprintf(stderr, "usb emulator: unhandled ioctl 0x%lx\n", request);
        ret = -1;
        err = ENOTTY;
        break;
    }
    if (!unplugged_) produce_in();  // a request may have an answer now
    update_ready();
  }
  umockdev_ioctl_client_complete(client, ret, err);
  return true;
}

void UsbDeviceEmulator::submit(UMockdevIoctlClient* client, long& ret, int& err) {
  ++stats_.submitted;
  if (unplugged_) {
    ret = -1;
    err = ENODEV;
    return;
  }
  GError* e = nullptr;
  UMockdevIoctlData* arg = umockdev_ioctl_client_get_arg(client);
  Urb u;
  u.client = client;
  std::memcpy(&u.client_address, arg->data, sizeof u.client_address);
  u.urb = umockdev_ioctl_data_resolve(arg, 0, sizeof(usbdevfs_urb), &e);
  if (u.urb == nullptr) {
    g_clear_error(&e);
    ret = -1;
    err = EFAULT;
    return;
  }
  auto* k = reinterpret_cast<usbdevfs_urb*>(u.urb->data);
  if (k->buffer_length > 0) {
    u.buf = umockdev_ioctl_data_resolve(u.urb, offsetof(usbdevfs_urb, buffer),
                                        static_cast<gsize>(k->buffer_length), &e);
    if (u.buf == nullptr) {
      g_clear_error(&e);
      free_urb(u);
      ret = -1;
      err = EFAULT;
      return;
    }
  }
  k->status = 0;
  k->actual_length = 0;
  if (k->type == USBDEVFS_URB_TYPE_CONTROL) {
    control(u);
    done_.push_back(u);
  } else if (k->type == USBDEVFS_URB_TYPE_BULK && k->endpoint == identity_.endpoint_out) {
    const std::size_t n = u.buf != nullptr ? static_cast<std::size_t>(u.buf->data_len) : 0;
    model_->bulk_out(k->endpoint, std::span<const std::uint8_t>(n > 0 ? u.buf->data : nullptr, n));
    k->actual_length = static_cast<int>(n);
    done_.push_back(u);
  } else if (k->type == USBDEVFS_URB_TYPE_BULK && k->endpoint == identity_.endpoint_in) {
    pending_in_.push_back(u);
    stats_.max_in_flight_in = std::max(stats_.max_in_flight_in, static_cast<unsigned>(pending_in_.size()));
  } else {
    free_urb(u);
    ret = -1;
    err = EINVAL;
  }
}

void UsbDeviceEmulator::control(Urb& u) {
  auto* k = reinterpret_cast<usbdevfs_urb*>(u.urb->data);
  if (u.buf == nullptr || u.buf->data_len < 8) {
    k->status = -EINVAL;
    return;
  }
  const std::uint8_t* b = u.buf->data;
  UsbSetup setup;
  setup.request_type = b[0];
  setup.request = b[1];
  setup.value = static_cast<std::uint16_t>(b[2] | (b[3] << 8));
  setup.index = static_cast<std::uint16_t>(b[4] | (b[5] << 8));
  setup.length = static_cast<std::uint16_t>(b[6] | (b[7] << 8));
  const std::size_t room = std::min<std::size_t>(setup.length, static_cast<std::size_t>(u.buf->data_len) - 8);
  const auto r = model_->control(setup, std::span<std::uint8_t>(u.buf->data + 8, room));
  if (!r) {
    k->status = -EPIPE;  // a stall: LIBUSB_ERROR_PIPE
    return;
  }
  k->actual_length = static_cast<int>(*r);  // the data stage only, as the kernel counts
}

void UsbDeviceEmulator::produce_in() {
  while (!pending_in_.empty()) {
    Urb& u = pending_in_.front();
    auto* k = reinterpret_cast<usbdevfs_urb*>(u.urb->data);
    const std::size_t cap = u.buf != nullptr ? static_cast<std::size_t>(u.buf->data_len) : 0;
    const auto n = model_->bulk_in(k->endpoint, std::span<std::uint8_t>(cap > 0 ? u.buf->data : nullptr, cap));
    if (!n) return;  // nothing to send: the URB stays in flight
    k->status = 0;
    k->actual_length = static_cast<int>(*n);
    done_.push_back(u);
    pending_in_.pop_front();
  }
}

void UsbDeviceEmulator::reap(UMockdevIoctlClient* client, long& ret, int& err) {
  if (!unplugged_) produce_in();
  auto it = std::find_if(done_.begin(), done_.end(), [&](const Urb& u) { return u.client == client; });
  if (it == done_.end()) {
    ret = -1;
    err = unplugged_ ? ENODEV : EAGAIN;
    return;
  }
  Urb u = *it;
  done_.erase(it);
  GError* e = nullptr;
  UMockdevIoctlData* arg = umockdev_ioctl_client_get_arg(client);
  // arg points to libusb's `struct usbdevfs_urb*`: point it at the reaped URB.
  UMockdevIoctlData* ptr = umockdev_ioctl_data_resolve(arg, 0, sizeof(void*), &e);
  if (ptr == nullptr) {
    g_clear_error(&e);
    free_urb(u);
    ret = -1;
    err = EFAULT;
    return;
  }
  umockdev_ioctl_data_set_ptr(ptr, 0, u.urb);  // its own ref; written back on complete()
  g_object_unref(ptr);
  ++stats_.reaped;
  free_urb(u);
}

void UsbDeviceEmulator::discard(UMockdevIoctlClient* client, long& ret, int& err) {
  UMockdevIoctlData* arg = umockdev_ioctl_client_get_arg(client);
  unsigned long address = 0;
  std::memcpy(&address, arg->data, sizeof address);
  for (auto it = pending_in_.begin(); it != pending_in_.end(); ++it) {
    if (it->client_address == address && it->client == client) {
      auto* k = reinterpret_cast<usbdevfs_urb*>(it->urb->data);
      k->status = -ENOENT;  // libusb: cancelled or timed out
      k->actual_length = 0;
      done_.push_back(*it);
      pending_in_.erase(it);
      ++stats_.discarded;
      return;
    }
  }
  ret = -1;
  err = EINVAL;  // already done: the kernel's answer too; libusb reaps it
}

// ---------------------------------------------------------------------------
// UsbTestbed

std::vector<std::uint8_t> usb_descriptors(const UsbDeviceIdentity& id) {
  const auto lo = [](std::uint16_t v) { return static_cast<std::uint8_t>(v & 0xFF); };
  const auto hi = [](std::uint16_t v) { return static_cast<std::uint8_t>(v >> 8); };
  return {
      // Device: USB 2.0, class per interface, EP0 64 bytes, bcdDevice 1.00, no strings, 1 configuration.
      18, 0x01, 0x00, 0x02, 0x00, 0x00, 0x00, 64, lo(id.vendor_id), hi(id.vendor_id), lo(id.product_id),
      hi(id.product_id), 0x00, 0x01, 0, 0, 0, 1,
      // Configuration 1: 32 bytes in all, 1 interface, bus powered, 100 mA.
      9, 0x02, 32, 0, 1, 1, 0, 0x80, 50,
      // Interface 0: 2 endpoints, vendor class.
      9, 0x04, 0, 0, 2, 0xFF, 0x00, 0x00, 0,
      // Bulk IN and bulk OUT, 512 bytes.
      7, 0x05, id.endpoint_in, 0x02, 0x00, 0x02, 0,
      7, 0x05, id.endpoint_out, 0x02, 0x00, 0x02, 0};
}

UsbTestbed::UsbTestbed() : testbed_(umockdev_testbed_new()) {
  if (umockdev_in_mock_environment() == FALSE) {
    g_object_unref(testbed_);
    throw std::runtime_error("not running under libumockdev-preload.so.0");
  }
}

UsbTestbed::~UsbTestbed() {
  for (auto& d : devices_) {
    GError* e = nullptr;
    if (umockdev_testbed_detach_ioctl(testbed_, d->node.c_str(), &e) == FALSE) g_clear_error(&e);
    d->emulator.reset();
  }
  g_object_unref(testbed_);
}

UsbTestbed::Device& UsbTestbed::plug(const UsbDeviceIdentity& id, UsbDeviceModel& model, int bus, int address) {
  auto d = std::make_unique<Device>();
  char node[64];
  std::snprintf(node, sizeof node, "/dev/bus/usb/%03d/%03d", bus, address);
  d->node = node;
  d->emulator = std::make_unique<UsbDeviceEmulator>(id, model);
  GError* e = nullptr;
  // The handler first, so that it is there when the "add" uevent is.
  if (umockdev_testbed_attach_ioctl(testbed_, node, d->emulator->handler(), &e) == FALSE) {
    std::string m = e->message;
    g_clear_error(&e);
    throw std::runtime_error("umockdev_testbed_attach_ioctl " + d->node + ": " + m);
  }
  std::string hex;
  for (std::uint8_t b : usb_descriptors(id)) {
    char h[3];
    std::snprintf(h, sizeof h, "%02X", b);
    hex += h;
  }
  // add_from_string writes the binary attribute before the "add" uevent:
  // libusb's hotplug thread reads the descriptors as soon as it hears it.
  // Text attributes end with a newline, as the kernel's do.
  char* description = g_strdup_printf(
      "P: /devices/usb%d/%d-1\n"
      "N: bus/usb/%03d/%03d\n"
      "E: SUBSYSTEM=usb\nE: DEVTYPE=usb_device\nE: DEVNAME=/dev/bus/usb/%03d/%03d\n"
      "E: BUSNUM=%03d\nE: DEVNUM=%03d\nE: PRODUCT=%x/%x/100\n"
      "A: busnum=%d\\n\nA: devnum=%d\\n\nA: speed=480\\n\nA: bConfigurationValue=1\\n\n"
      "A: bNumConfigurations=1\\n\nA: idVendor=%04x\\n\nA: idProduct=%04x\\n\nA: dev=189:%d\\n\n"
      "H: descriptors=%s\n",
      bus, bus, bus, address, bus, address, bus, address, id.vendor_id, id.product_id, bus, address, id.vendor_id,
      id.product_id, (bus - 1) * 128 + address - 1, hex.c_str());
  const bool added = umockdev_testbed_add_from_string(testbed_, description, &e) != FALSE;
  g_free(description);
  if (!added) {
    std::string m = e->message;
    g_clear_error(&e);
    throw std::runtime_error("umockdev_testbed_add_from_string: " + m);
  }
  gchar* root = umockdev_testbed_get_root_dir(testbed_);
  const std::string node_path = std::string(root) + node;
  g_free(root);
  if (!d->emulator->use_fifo_wakeup(node_path)) {
    throw std::runtime_error("making " + node_path + " a FIFO: " + std::strerror(errno));
  }
  d->syspath = "/sys/devices/usb" + std::to_string(bus) + "/" + std::to_string(bus) + "-1";
  d->present = true;
  devices_.push_back(std::move(d));
  return *devices_.back();
}

void UsbTestbed::unplug(Device& d) {
  if (!d.present) return;
  d.emulator->unplug();
  // remove_device() sends no uevent, and the uevent reads sysfs: first the uevent.
  umockdev_testbed_uevent(testbed_, d.syspath.c_str(), "remove");
  umockdev_testbed_remove_device(testbed_, d.syspath.c_str());
  d.present = false;
}

// ---------------------------------------------------------------------------
// UsbMsadcModel

UsbMsadcModel::UsbMsadcModel(std::unique_ptr<drivers::EmulatedReadoutBoard> board) : board_(std::move(board)) {}

void UsbMsadcModel::hold_from(std::uint32_t particle) {
  std::lock_guard lock(mu_);
  hold_from_ = particle;
}

void UsbMsadcModel::release() {
  std::lock_guard lock(mu_);
  hold_from_.reset();
}

bool UsbMsadcModel::begin_spill(std::uint32_t spill) {
  std::lock_guard lock(mu_);
  if (spill_on_) return false;
  std::array<std::uint32_t, 3> begin{};
  const auto r = board_->begin_spill(spill, begin);
  if (!r) return false;
  outgoing_.insert(outgoing_.end(), begin.begin(), begin.begin() + static_cast<std::ptrdiff_t>(*r));
  spill_on_ = true;
  spill_done_ = false;
  total_ = board_->particles_left();
  streamed_ = 0;
  return true;
}

bool UsbMsadcModel::spill_done() const {
  std::lock_guard lock(mu_);
  return spill_done_;
}

std::uint32_t UsbMsadcModel::particles_streamed() const {
  std::lock_guard lock(mu_);
  return streamed_;
}

ro::SpillCounters UsbMsadcModel::spill_counters() const {
  std::lock_guard lock(mu_);
  return board_->spill_counters();
}

ro::BoardStatus UsbMsadcModel::board_status() const {
  std::lock_guard lock(mu_);
  return board_->board_status();
}

std::optional<std::uint32_t> UsbMsadcModel::read_register(std::uint32_t address) const {
  std::lock_guard lock(mu_);
  return board_->read_register(address);
}

std::uint64_t UsbMsadcModel::request_messages() const {
  std::lock_guard lock(mu_);
  return request_messages_;
}

std::optional<std::size_t> UsbMsadcModel::control(const UsbSetup& setup, std::span<std::uint8_t> data) {
  namespace usb = drivers::usb_msadc;
  std::lock_guard lock(mu_);
  if (setup.length != 4 || data.size() != 4 || setup.value != 0) return std::nullopt;
  if (setup.request_type == usb::kRequestTypeVendorIn && setup.request == usb::kRequestReadRegister) {
    const auto v = board_->read_register(setup.index);
    if (!v) return std::nullopt;
    for (std::size_t i = 0; i < 4; ++i) data[i] = static_cast<std::uint8_t>(*v >> (8 * i));
    return 4;
  }
  if (setup.request_type == usb::kRequestTypeVendorOut && setup.request == usb::kRequestWriteRegister) {
    const std::uint32_t v = std::uint32_t{data[0]} | (std::uint32_t{data[1]} << 8) | (std::uint32_t{data[2]} << 16) |
                            (std::uint32_t{data[3]} << 24);
    if (board_->write_register(setup.index, v) != drivers::RegisterWrite::Done) return std::nullopt;
    return 4;
  }
  return std::nullopt;
}

void UsbMsadcModel::bulk_out(std::uint8_t, std::span<const std::uint8_t> data) {
  std::lock_guard lock(mu_);
  ++request_messages_;
  std::vector<std::uint32_t> words(data.size() / 4);
  if (!words.empty()) std::memcpy(words.data(), data.data(), words.size() * 4);
  const std::size_t requests = words.size() > ro::kMessageHeaderWords ? (words.size() - ro::kMessageHeaderWords) / 2 : 1;
  std::vector<std::uint32_t> answers(board_->answer_words_bound(requests));
  const auto r = board_->handle_requests(words, answers);
  outgoing_.insert(outgoing_.end(), answers.begin(), answers.begin() + static_cast<std::ptrdiff_t>(r.words));
}

std::optional<std::size_t> UsbMsadcModel::bulk_in(std::uint8_t, std::span<std::uint8_t> out) {
  std::lock_guard lock(mu_);
  const std::size_t cap = out.size() / 4;
  scratch_.resize(cap);
  std::size_t n = 0;
  // Whole messages only: a transfer ends on a message boundary.
  auto flush = [&] {
    while (outgoing_pos_ + ro::kMessageHeaderWords <= outgoing_.size()) {
      const std::size_t len = ro::field::kLength.get(outgoing_[outgoing_pos_ + 1]);
      if (len < ro::kMessageHeaderWords || n + len > cap) break;
      std::copy_n(outgoing_.begin() + static_cast<std::ptrdiff_t>(outgoing_pos_), len,
                  scratch_.begin() + static_cast<std::ptrdiff_t>(n));
      n += len;
      outgoing_pos_ += len;
    }
    if (outgoing_pos_ == outgoing_.size()) {
      outgoing_.clear();
      outgoing_pos_ = 0;
    }
  };
  flush();
  if (spill_on_ && outgoing_.empty()) {
    // Particles count from 1: held from particle p, the first p - 1 go out.
    const std::uint32_t allowed =
        hold_from_ ? std::min(total_, *hold_from_ == 0 ? 0u : *hold_from_ - 1) : total_;
    while (board_->particles_left() > 0 && streamed_ < allowed && n < cap) {
      // Held: room for a few more particles than allowed only.
      std::size_t room = cap - n;
      if (allowed < total_) {
        room = std::min(room, std::max(board_->min_stream_words(),
                                       ro::kSummaryPacketHeadWords + (allowed - streamed_) * ro::kParticleHeaderWords));
      }
      const auto r = board_->stream(std::span<std::uint32_t>(scratch_.data() + n, room));
      if (r.particles == 0) break;
      n += r.words;
      streamed_ += r.particles;
    }
    if (board_->particles_left() == 0) {
      std::array<std::uint32_t, 9> end{};
      const auto r = board_->end_spill(end);
      outgoing_.insert(outgoing_.end(), end.begin(), end.begin() + static_cast<std::ptrdiff_t>(r.value_or(0)));
      spill_on_ = false;
      spill_done_ = true;
      flush();
    }
  }
  if (n == 0) return std::nullopt;
  std::memcpy(out.data(), scratch_.data(), n * 4);
  return n * 4;
}

}  // namespace na64::testing
