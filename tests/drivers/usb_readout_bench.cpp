// SPDX-License-Identifier: Apache-2.0
// na64-usb-readout-bench: throughput of the two-level readout through the
// real libusb code path, printed as figures. Each MSADC board of the default
// configuration is an EmulatedReadoutBoard behind an emulated USB device
// (umockdev, usb_device_emulator.hpp), read by UsbMsadcDriver with 8 bulk IN
// transfers of 64 KiB in flight into a ReadoutHost, as a run would:
// - summary stream: the board streams a whole spill; timed from opening the
//   gate to the host walking the spill-end message;
// - event answers: the host requests the last events of that spill, 64 per
//   bulk OUT message, up to 1024 requests in flight; timed from the first
//   request to the last answer walked.
// The same board and host without USB (the host consuming the board's
// buffers in one thread) give the in-process reference on the same machine.
// Every figure is the median of 3 runs (steady_clock). The program
// re-executes itself under libumockdev-preload.so.0, as the driver's tests do.
#include <fmt/format.h>
#include <libusb.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <fstream>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "na64/daq/config.hpp"
#include "na64/drivers/beam.hpp"
#include "na64/drivers/emulated_readout_board.hpp"
#include "na64/drivers/readout_host.hpp"
#include "na64/drivers/usb_msadc.hpp"
#include "na64/firmware/msadc_readout.hpp"
#include "usb_device_emulator.hpp"

namespace {

using namespace na64;
namespace ro = na64::firmware::msadc_readout;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::string_view kUsage = R"(usage: na64-usb-readout-bench [--quick]
  --quick   a tiny spill and few requests (a smoke test; the figures mean little)
)";

/// Every figure is the median of this many runs.
constexpr int kRuns = 3;
constexpr std::uint32_t kRequestsPerMessage = 64;
/// Requests sent and not yet answered at most (the host's table holds 4096).
constexpr std::size_t kRequestWindow = 1024;
constexpr std::size_t kTransfersInFlight = 8;
constexpr std::size_t kTransferBytes = 64 * 1024;
/// Words of the buffer the in-process reference streams into (a transfer's worth).
constexpr std::size_t kStreamWords = kTransferBytes / 4;
/// A spill or a batch of answers not done after this long is a failure.
constexpr auto kPatience = 120s;

struct Sizes {
  std::uint32_t spill_particles = 200'000;
  std::uint32_t answer_events = 20'000;
};

/// One timed pass: how long, how many particles or events, how many words.
struct Pass {
  double seconds = 0;
  std::uint64_t items = 0;
  std::uint64_t words = 0;
  std::uint64_t bad = 0;  ///< decode errors, missing particles, requests without their event
};

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

std::uint64_t steady_ns() {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

template <class F>
Pass median_run(F&& run) {
  std::array<Pass, kRuns> v{};
  for (Pass& p : v) p = run();
  std::sort(v.begin(), v.end(), [](const Pass& a, const Pass& b) { return a.seconds < b.seconds; });
  return v[kRuns / 2];
}

std::unique_ptr<drivers::EmulatedReadoutBoard> make_board(const daq::DaqConfig& config, std::uint32_t source,
                                                          const drivers::NA64Beam& beam) {
  return std::make_unique<drivers::EmulatedReadoutBoard>(
      source, config.channel_map, beam, config.emulator,
      drivers::ReadoutBoardParameters{.latency_capacity = config.readout.latency_depth});
}

/// The host behind the driver: a ReadoutHost walking every completed
/// transfer, counting what it hands on.
///
/// Thread safety: on_words() and on_state() run on the driver's event
/// thread; everything else takes mu.
class HostSink final : public drivers::UsbMsadcSink, public drivers::ReadoutSink {
 public:
  explicit HostSink(std::uint32_t source) : host(drivers::ReadoutHostParameters{.source_id = source}) {}

  void on_words(std::span<const std::uint32_t> words) override {
    {
      std::lock_guard lock(mu);
      (void)host.consume(words, *this);
      words_in += words.size();
    }
    cv.notify_all();
  }
  void on_state(drivers::UsbSourceState state, std::string_view why) override {
    if (state == drivers::UsbSourceState::Lost) {
      std::lock_guard lock(mu);
      lost_source = std::string(why);
    }
    cv.notify_all();
  }
  bool on_particle(const ro::ParticleSummary&) override { return false; }
  void on_spill_end(const ro::SpillEnd& m) override { last_spill_end = m.spill; }
  void on_event(const ro::EventAnswer&) override { ++events; }
  void on_lost(const ro::EventRef&, drivers::RequestOutcome) override { ++lost; }

  std::mutex mu;
  std::condition_variable cv;
  drivers::ReadoutHost host;
  std::uint64_t words_in = 0;
  std::uint32_t last_spill_end = 0;
  std::uint64_t events = 0;
  std::uint64_t lost = 0;
  std::string lost_source;
};

/// One board on the emulated bus and the driver reading it.
class UsbBoardBench {
 public:
  UsbBoardBench(testing::UsbTestbed& testbed, std::unique_ptr<drivers::EmulatedReadoutBoard> board,
                const daq::DaqConfig& config, std::uint32_t source, int address)
      : testbed_(testbed), model_(std::move(board)), sink_(source), source_(source) {
    device_ = &testbed.plug({drivers::usb_msadc::kVendorId, drivers::usb_msadc::kProductId, drivers::usb_msadc::kEndpointIn,
                  drivers::usb_msadc::kEndpointOut},
                 model_, 1, address);
    drivers::UsbMsadcOptions o;
    o.bus = 1;
    o.address = static_cast<std::uint8_t>(address);
    o.transfers_in_flight = kTransfersInFlight;
    o.transfer_bytes = kTransferBytes;
    driver_ = std::make_unique<drivers::UsbMsadcDriver>(o, sink_);
    check(driver_->open(), "opening");
    for (const auto& [reg, value] : daq::board_registers(config, source)) {
      check(driver_->write_register(reg, value), "writing a register");
    }
    check(driver_->start_streaming(), "starting the stream");
    request_words_.assign(ro::event_requests_words(kRequestsPerMessage), 0u);
  }
  ~UsbBoardBench() {
    // The driver first; then the device goes off the bus, after which the
    // emulator (which lives as long as the testbed) never calls the model.
    driver_.reset();
    testbed_.unplug(*device_);
  }
  UsbBoardBench(const UsbBoardBench&) = delete;
  UsbBoardBench& operator=(const UsbBoardBench&) = delete;

  /// Opens the gate of `spill` and waits for the host to walk its end.
  Pass stream_spill(std::uint32_t spill) {
    std::unique_lock lock(sink_.mu);
    const std::uint64_t words0 = sink_.words_in;
    const std::uint64_t errors0 = errors();
    lock.unlock();
    const auto t0 = Clock::now();
    if (!model_.begin_spill(spill)) throw std::runtime_error(fmt::format("source {}: spill {} refused", source_, spill));
    lock.lock();
    if (!sink_.cv.wait_for(lock, kPatience, [&] { return sink_.last_spill_end == spill || !sink_.lost_source.empty(); }) ||
        !sink_.lost_source.empty()) {
      throw std::runtime_error(fmt::format("source {}: spill {} did not end: {} particles of {} seen{}", source_, spill,
                                           sink_.host.spill(spill).particles, model_.particles_streamed(),
                                           sink_.lost_source.empty() ? "" : "; " + sink_.lost_source));
    }
    Pass p;
    p.seconds = seconds_since(t0);
    p.items = sink_.host.spill(spill).particles;
    p.words = sink_.words_in - words0;
    p.bad = errors() - errors0 + sink_.host.spill(spill).missing_particles;
    return p;
  }

  /// Requests particles [first, first + count) of `spill` and waits for every answer.
  Pass answer_events(std::uint32_t spill, std::uint32_t first, std::uint32_t count) {
    std::unique_lock lock(sink_.mu);
    const std::uint64_t words0 = sink_.words_in;
    const std::uint64_t ended0 = sink_.events + sink_.lost;
    const std::uint64_t events0 = sink_.events;
    lock.unlock();
    const std::uint32_t end = first + count;
    std::uint32_t next = first;
    const auto t0 = Clock::now();
    for (;;) {
      lock.lock();
      // Whole messages of 64 (the last one shorter), while the window has room for one.
      while (next < end && sink_.host.in_flight() + sink_.host.pending() + kRequestsPerMessage <= kRequestWindow) {
        const std::uint32_t n = std::min(kRequestsPerMessage, end - next);
        for (std::uint32_t k = 0; k < n; ++k) {
          if (!sink_.host.request(spill, next)) {
            throw std::runtime_error(fmt::format("source {}: the host refused request {}", source_, next));
          }
          ++next;
        }
      }
      const std::size_t words = sink_.host.take_requests(request_words_, steady_ns());
      if (words == 0) {
        const std::uint64_t ended = sink_.events + sink_.lost;
        if (ended - ended0 == count) break;
        // Nothing to send: the window is full or everything is requested; wait for answers.
        if (!sink_.cv.wait_for(lock, kPatience,
                               [&] { return sink_.events + sink_.lost != ended || !sink_.lost_source.empty(); }) ||
            !sink_.lost_source.empty()) {
          throw std::runtime_error(fmt::format("source {}: {} answers of {} came{}", source_,
                                               sink_.events + sink_.lost - ended0, count,
                                               sink_.lost_source.empty() ? "" : "; " + sink_.lost_source));
        }
        lock.unlock();
        continue;
      }
      lock.unlock();
      send(std::span<const std::uint32_t>(request_words_.data(), words));
    }
    Pass p;
    p.seconds = seconds_since(t0);
    p.items = sink_.events - events0;
    p.words = sink_.words_in - words0;
    p.bad = count - p.items;
    lock.unlock();
    return p;
  }

  [[nodiscard]] drivers::UsbMsadcCounters counters() const noexcept { return driver_->counters(); }

 private:
  void check(const drivers::UsbResult<>& r, std::string_view what) const {
    if (!r) throw std::runtime_error(fmt::format("source {}: {}: {}", source_, what, r.error().message));
  }
  /// Sends one request message; waits while every bulk OUT transfer is in flight.
  void send(std::span<const std::uint32_t> message) {
    const auto t0 = Clock::now();
    for (;;) {
      const drivers::UsbResult<> r = driver_->send_requests(message);
      if (r) return;
      if (r.error().code != LIBUSB_ERROR_BUSY || Clock::now() - t0 > kPatience) {
        throw std::runtime_error(fmt::format("source {}: sending requests: {}", source_, r.error().message));
      }
      std::this_thread::sleep_for(20us);
    }
  }
  [[nodiscard]] std::uint64_t errors() const {
    return sink_.host.counts().decode_errors + sink_.host.counts().framing_errors;
  }

  testing::UsbTestbed& testbed_;
  testing::UsbMsadcModel model_;
  testing::UsbTestbed::Device* device_ = nullptr;
  HostSink sink_;
  std::uint32_t source_;
  std::unique_ptr<drivers::UsbMsadcDriver> driver_;
  std::vector<std::uint32_t> request_words_;
};

/// The same board and host in one thread, without USB: the reference.
class InProcessBench final : public drivers::ReadoutSink {
 public:
  InProcessBench(std::unique_ptr<drivers::EmulatedReadoutBoard> board, const daq::DaqConfig& config,
                 std::uint32_t source)
      : board_(std::move(board)), host_(drivers::ReadoutHostParameters{.source_id = source}) {
    for (const auto& [address, value] : daq::board_registers(config, source)) {
      if (board_->write_register(address, value) != drivers::RegisterWrite::Done) {
        throw std::runtime_error(fmt::format("source {}: the board refused register 0x{:02x}", source, address));
      }
    }
    stream_.assign(std::max(board_->min_stream_words(), kStreamWords), 0u);  // zero-filled: pre-faulted
    requests_.assign(ro::event_requests_words(kRequestsPerMessage), 0u);
    answers_.assign(board_->answer_words_bound(kRequestsPerMessage), 0u);
  }

  Pass stream_spill(std::uint32_t spill) {
    const auto t0 = Clock::now();
    std::uint64_t words = 0;
    auto hand_on = [&](std::size_t n) {
      (void)host_.consume(std::span<const std::uint32_t>(stream_.data(), n), *this);
      words += n;
    };
    hand_on(board_->begin_spill(spill, stream_).value_or(0));
    while (board_->particles_left() != 0) {
      const drivers::StreamResult r = board_->stream(stream_);
      if (r.particles == 0) break;
      hand_on(r.words);
    }
    hand_on(board_->end_spill(stream_).value_or(0));
    return Pass{seconds_since(t0), host_.spill(spill).particles, words,
                host_.counts().decode_errors + host_.spill(spill).missing_particles};
  }

  Pass answer_events(std::uint32_t spill, std::uint32_t first, std::uint32_t count) {
    const std::uint64_t events0 = events_;
    const auto t0 = Clock::now();
    std::uint64_t words = 0;
    for (std::uint32_t p = first; p < first + count;) {
      const std::uint32_t n = std::min(kRequestsPerMessage, first + count - p);
      for (std::uint32_t k = 0; k < n; ++k) (void)host_.request(spill, p++);
      const std::size_t m = host_.take_requests(requests_, steady_ns());
      const drivers::RequestsResult r = board_->handle_requests(std::span<const std::uint32_t>(requests_.data(), m), answers_);
      (void)host_.consume(std::span<const std::uint32_t>(answers_.data(), r.words), *this);
      words += r.words;
    }
    const std::uint64_t events = events_ - events0;
    return Pass{seconds_since(t0), events, words, count - events};
  }

  bool on_particle(const ro::ParticleSummary&) override { return false; }
  void on_event(const ro::EventAnswer&) override { ++events_; }

 private:
  std::unique_ptr<drivers::EmulatedReadoutBoard> board_;
  drivers::ReadoutHost host_;
  std::vector<std::uint32_t> stream_;
  std::vector<std::uint32_t> requests_;
  std::vector<std::uint32_t> answers_;
  std::uint64_t events_ = 0;
};

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(' ', colon + 1));
    }
  }
  return "unknown CPU";
}

std::string load_average() {
  std::ifstream in("/proc/loadavg");
  std::string a, b, c;
  if (!(in >> a >> b >> c)) return "unknown";
  return fmt::format("{} {} {}", a, b, c);
}

void print_pass(std::string_view what, std::string_view unit, const Pass& p, double reference_rate) {
  const double rate = static_cast<double>(p.items) / p.seconds;
  const double bytes = static_cast<double>(p.words) * 4;
  const std::string ratio = reference_rate > 0 ? fmt::format("{:.2f}", rate / reference_rate) : std::string("-");
  fmt::print("  {:<38} {:>10.0f} {:<12} {:>8.1f} {:>8.0f} {:>8} {:>5} {:>7}\n", what, rate, unit, bytes / p.seconds / 1e6,
             bytes / static_cast<double>(p.items), p.items, p.bad, ratio);
}

int run_bench(bool quick) {
  const Sizes sizes = quick ? Sizes{2'000, 256} : Sizes{};
  daq::DaqConfig config = daq::load_config(daq::default_config_text(), "embedded default");
  config.beam.particles_per_spill = sizes.spill_particles;
  const drivers::NA64Beam beam(config.beam);
  const std::uint32_t answers = std::min({sizes.answer_events, sizes.spill_particles, config.readout.latency_depth});

  fmt::print("na64-usb-readout-bench: the two-level readout through libusb (median of {} runs, steady_clock){}\n",
             kRuns, quick ? "; --quick: tiny sizes, figures not meaningful" : "");
  fmt::print("machine   {} CPUs, {}; load average {}\n", std::thread::hardware_concurrency(), cpu_model(),
             load_average());
  fmt::print("          shared and noisy: compare figures of one run with each other, not across runs or machines\n");
  fmt::print("USB       UsbMsadcDriver, {} bulk IN transfers of {} KiB in flight, requests on bulk OUT ({} per\n"
             "          message, up to {} in flight); the board is an EmulatedReadoutBoard behind umockdev, whose\n"
             "          ioctl emulation (a GLib thread, a socket round trip per ioctl) is part of every figure\n",
             kTransfersInFlight, kTransferBytes / 1024, kRequestsPerMessage, kRequestWindow);
  fmt::print("sizes     a spill of {} particles per board; then its last {} events requested\n\n", sizes.spill_particles,
             answers);

  testing::UsbTestbed testbed;
  fmt::print("  {:<38} {:>10} {:<12} {:>8} {:>8} {:>8} {:>5} {:>7}\n", "what", "rate", "", "MB/s", "B/item", "items",
             "bad", "x in-pr");
  int address = 2;
  std::uint32_t spill = 0;
  for (const std::uint32_t source : config.channel_map.sources()) {
    InProcessBench reference(make_board(config, source, beam), config, source);
    std::uint32_t ref_spill = 0;
    const Pass ref_stream = median_run([&] { return reference.stream_spill(++ref_spill); });
    const Pass ref_answers =
        median_run([&] { return reference.answer_events(ref_spill, sizes.spill_particles - answers + 1, answers); });

    UsbBoardBench usb(testbed, make_board(config, source, beam), config, source, address++);
    const Pass usb_stream = median_run([&] { return usb.stream_spill(++spill); });
    const Pass usb_answers =
        median_run([&] { return usb.answer_events(spill, sizes.spill_particles - answers + 1, answers); });
    const drivers::UsbMsadcCounters c = usb.counters();

    const auto rate = [](const Pass& p) { return static_cast<double>(p.items) / p.seconds; };
    print_pass(fmt::format("MSADC {}: summary stream, in-process", source), "particles/s", ref_stream, 0);
    print_pass(fmt::format("MSADC {}: summary stream over USB", source), "particles/s", usb_stream, rate(ref_stream));
    print_pass(fmt::format("MSADC {}: event answers, in-process", source), "events/s", ref_answers, 0);
    print_pass(fmt::format("MSADC {}: event answers over USB", source), "events/s", usb_answers, rate(ref_answers));
    fmt::print("    driver, 6 runs: {} bulk IN transfers ({:.1f} KiB on average), {} empty, {} IN errors; {} request\n"
               "    messages, {} OUT errors\n",
               c.buffers, static_cast<double>(c.bytes_in) / 1024.0 / static_cast<double>(std::max<std::uint64_t>(c.buffers, 1)),
               c.empty_transfers, c.in_errors, c.request_messages, c.out_errors);
  }
  fmt::print("  rate: particles (summaries) or events (answers) per second; MB/s and B/item: bytes of the\n"
             "  board's messages the host walked (summary stream, or answer messages with their blocks);\n"
             "  bad: decode errors, missing particles, requests without their event (0 expected);\n"
             "  x in-pr: the USB rate / the same board and host in one thread without USB.\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  na64::testing::reexec_under_umockdev(argv);
  bool quick = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") {
      fmt::print("{}", kUsage);
      return 0;
    }
    if (flag != "--quick") {
      fmt::print(stderr, "na64-usb-readout-bench: unknown option {}\n{}", flag, kUsage);
      return 2;
    }
    quick = true;
  }
  try {
    return run_bench(quick);
  } catch (const std::exception& e) {
    fmt::print(stderr, "na64-usb-readout-bench: {}\n", e.what());
    return 1;
  }
}
