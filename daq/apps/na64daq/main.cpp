// SPDX-License-Identifier: Apache-2.0
// na64daq: the DAQ's main program.
#include <fmt/format.h>
#include <signal.h>

#include <charconv>
#include <filesystem>
#include <optional>
#include <stop_token>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <limits>
#include <memory>

#include "na64/daq/config.hpp"
#include "na64/daq/control_service.hpp"
#include "na64/daq/curve_keys.hpp"
#include "na64/daq/dashboard.hpp"
#include "na64/daq/dqm_publisher.hpp"
#include "na64/daq/http_server.hpp"
#include "na64/daq/monitor.hpp"
#include "na64/daq/run_control.hpp"
#include "na64/daq/run_db.hpp"
#include "na64/daq/what_if.hpp"
#include "na64/daq/zmq_server.hpp"
#include "na64/daq/error.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/daq/raw_file.hpp"
#include "na64/daq/run_files.hpp"
#include "na64/drivers/beam.hpp"
#include "na64/drivers/emulated_trackers.hpp"
#include "na64/drivers/tracker_frontend.hpp"

namespace {

using namespace na64;

constexpr int kExitRunError = 1;
constexpr int kExitUsage = 2;

constexpr std::string_view kUsage = R"(usage:
  na64daq run --spills N --output DIR [--config FILE] [--run R] [--seed S] [--particles P]
      Runs start of run, N spills and end of run on the simulated beam and writes
      DATE files, the decoder map and the run summary into DIR. Without --config
      it uses the embedded default; without --run, the next free number in DIR.
  na64daq serve [--config FILE] [--configure] [--output DIR] [--db FILE]
                [--http HOST:PORT] [--tokens FILE] [--web DIR]
                [--zmq ENDPOINT --pub ENDPOINT --server-key FILE --clients FILE]
                [--dqm-pub ENDPOINT] [--reference FILE] [--disk-limit BYTES] [--dqm-sample N]
      The long-running daemon, driven by run control over HTTP/JSON (default
      127.0.0.1:8080; read-only without --tokens) and over ZeroMQ with CURVE
      (only with --server-key and --clients). The run database defaults to
      na64daq.sqlite. --configure loads the configuration at start.
      The same HTTP server carries the dashboard: its files from --web (default
      the build's monitoring/web/dist), its API, /metrics and /ws. --dqm-pub
      publishes spill summaries, verdicts, sampled events and alarms on a plain
      ZeroMQ PUB socket. --reference judges every run against an earlier run's
      reference (run-RRRRRR.dqm-reference); --dqm-sample N fills the data-quality
      histograms with one complete event in N (default 4; 32 at the two-level
      readout's full rate, see README "Monitoring"); --disk-limit (default 1 GiB) is the
      free space below which the disk alarm is raised.
      SIGINT/SIGTERM stop a run in progress cleanly and exit.
  na64daq keygen DIR NAME
      Writes a CURVE key pair: DIR/NAME.key (secret, mode 0600) and DIR/NAME.pub.
  na64daq what-if [--thresholds TEXT] FILE...
      Replays the DATE files of one recorded run through a candidate threshold
      set: the recorded configuration's set with the fields in TEXT replaced
      (e.g. "ecal_max_gev: 40 hcal_max_gev: 2"), and reports per spill the
      invisible line's counts, its rate on the unbiased (beam-line) sample,
      and the fraction of the recorded invisible-line events it keeps.
  na64daq frontend --kind MM|GEM|STRAW --source ID [--port P] [--config FILE] [--hold-spills N]
                   [--silent-after N] [--close-after N]
      Serves an emulated tracker front-end (front-end link protocol v1) on
      127.0.0.1:P (0: any free port, printed) with the hits of the
      configuration's beam, until SIGINT/SIGTERM. A run reads it with
      readout { tracker { kind: "MM" source: ID port: P } }. Faults for
      tests: answer only the first N requests, or close the connection after
      N answers (once).
  na64daq check FILE...
      Reads DATE files with the project's decoder and reports every error.
  na64daq default-config
      Prints the embedded default configuration.
)";

struct UsageError : daq::Error {
  using Error::Error;
};

std::uint64_t parse_number(std::string_view flag, std::string_view text, std::uint64_t lo, std::uint64_t hi) {
  std::uint64_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < lo || v > hi) {
    throw UsageError(fmt::format("{}: \"{}\" is not a whole number in [{}, {}]", flag, text, lo, hi));
  }
  return v;
}

// SIGINT/SIGTERM are taken by sigtimedwait() in one thread, never by a handler.
sigset_t block_stop_signals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  return signals;
}

int command_run(const std::vector<std::string_view>& args) {
  std::string config_path;
  std::string output;
  std::uint64_t spills = 0;
  std::uint64_t run = 0;
  std::optional<std::uint64_t> seed;
  std::optional<std::uint64_t> particles;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view flag = args[i];
    if (i + 1 >= args.size()) throw UsageError(fmt::format("{} needs a value", flag));
    const std::string_view value = args[++i];
    if (flag == "--spills") {
      spills = parse_number(flag, value, 1, 2047);
    } else if (flag == "--output") {
      output = value;
    } else if (flag == "--config") {
      config_path = value;
    } else if (flag == "--run") {
      run = parse_number(flag, value, 1, 999999);
    } else if (flag == "--seed") {
      seed = parse_number(flag, value, 0, UINT64_MAX);
    } else if (flag == "--particles") {
      particles = parse_number(flag, value, 1, daq::kMaxParticlesPerSpill);
    } else {
      throw UsageError(fmt::format("unknown option {}", flag));
    }
  }
  if (spills == 0) throw UsageError("--spills is required");
  if (output.empty()) throw UsageError("--output is required");

  daq::DaqConfig config = config_path.empty() ? daq::load_config(daq::default_config_text(), "embedded default")
                                              : daq::load_config_file(config_path);
  if (seed) config.beam.seed = *seed;
  if (particles) config.beam.particles_per_spill = static_cast<std::uint32_t>(*particles);

  daq::RunOptions options;
  options.output = output;
  options.spills = static_cast<std::uint32_t>(spills);
  options.run = run != 0 ? static_cast<std::uint32_t>(run) : daq::next_run_number(options.output);

  // SIGINT/SIGTERM end the run cleanly after the current spill; a second one exits at once.
  sigset_t signals = block_stop_signals();
  std::stop_source stop;
  std::jthread signal_watch([&](std::stop_token done) {
    const timespec tick{0, 200'000'000};
    while (!done.stop_requested()) {
      if (sigtimedwait(&signals, nullptr, &tick) > 0) {
        if (stop.stop_requested()) {
          fmt::print(stderr, "na64daq: second stop request; exiting at once, the open chunk stays *.part\n");
          std::_Exit(130);
        }
        fmt::print(stderr, "na64daq: stop requested; finishing the current spill (again to exit at once)\n");
        stop.request_stop();
      }
    }
  });

  fmt::print("na64daq: run {} -> {}: {} spills of {} particles, seed {}\n", options.run, output, spills,
             config.beam.particles_per_spill, config.beam.seed);
  std::fflush(stdout);
  const auto summary = daq::run_simulated(
      config, options,
      [](const daq::SpillSummary& s) {
        fmt::print("spill {:4} | particles {:8} | built {:8} | incomplete {:5} | accepted invisible {:5} beam {:5} "
                   "random {:5} | written {:6} | {:8.2f} MB | {:6.2f} s\n",
                   s.spill, s.builder.particles, s.builder.complete, s.builder.incomplete, s.accepted[0],
                   s.accepted[1], s.accepted[2], s.written, static_cast<double>(s.bytes) / 1e6, s.seconds);
        std::fflush(stdout);
      },
      stop.get_token());
  const auto& t = summary.total;
  fmt::print("run {} | spills {} | particles {} | built {} | incomplete {} | written {} | {:.2f} MB | {:.2f} s\n",
             summary.run, summary.spills.size(), t.builder.particles, t.builder.complete, t.builder.incomplete,
             t.written, static_cast<double>(t.bytes) / 1e6, summary.seconds);
  for (const auto& f : summary.files) fmt::print("wrote {}/{}\n", output, f);
  fmt::print("wrote {}/{}\nwrote {}/{}\n", output, summary.map_file, output, summary.summary_file);
  return 0;
}

/// Holds an exclusive lock next to the run database, so that one daemon at
/// a time writes it (a second would mark the first one's run interrupted).
class DatabaseLock {
 public:
  explicit DatabaseLock(const std::string& db) : path_(db + ".lock") {
    fd_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) throw daq::Error(fmt::format("{}: cannot open: {}", path_, std::strerror(errno)));
    if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
      ::close(fd_);
      throw daq::Error(fmt::format("{}: another na64daq serve uses this run database", db));
    }
  }
  ~DatabaseLock() { ::close(fd_); }
  DatabaseLock(const DatabaseLock&) = delete;
  DatabaseLock& operator=(const DatabaseLock&) = delete;

 private:
  std::string path_;
  int fd_ = -1;
};

int command_serve(const std::vector<std::string_view>& args) {
  daq::RunControlOptions rc_options;
  std::string db_path = "na64daq.sqlite";
  bool configure_now = false;
  daq::HttpOptions http;
  daq::ZmqOptions zmq;
  bool with_zmq = false;
  daq::MonitorOptions monitor_options;
  daq::DashboardOptions dashboard_options;
  dashboard_options.web_dir = NA64_DEFAULT_WEB_DIR;
  std::string dqm_endpoint;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view flag = args[i];
    if (flag == "--configure") {
      configure_now = true;
      continue;
    }
    if (i + 1 >= args.size()) throw UsageError(fmt::format("{} needs a value", flag));
    const std::string_view value = args[++i];
    if (flag == "--config") {
      rc_options.config_file = value;
    } else if (flag == "--output") {
      rc_options.output_override = value;
    } else if (flag == "--db") {
      db_path = value;
    } else if (flag == "--http") {
      const auto colon = value.rfind(':');
      if (colon == std::string_view::npos) throw UsageError(fmt::format("--http: \"{}\" is not HOST:PORT", value));
      http.address = value.substr(0, colon);
      http.port = static_cast<std::uint16_t>(parse_number(flag, value.substr(colon + 1), 0, 65535));
    } else if (flag == "--tokens") {
      http.tokens_file = value;
    } else if (flag == "--zmq") {
      zmq.control_endpoint = value;
    } else if (flag == "--pub") {
      zmq.publish_endpoint = value;
    } else if (flag == "--server-key") {
      zmq.server_key_file = value;
      with_zmq = true;
    } else if (flag == "--clients") {
      zmq.clients_file = value;
    } else if (flag == "--web") {
      dashboard_options.web_dir = value;
      if (!std::filesystem::is_directory(dashboard_options.web_dir)) {
        throw UsageError(fmt::format("--web: {} is not a directory", value));
      }
    } else if (flag == "--dqm-pub") {
      dqm_endpoint = value;
    } else if (flag == "--reference") {
      monitor_options.reference_file = value;
      if (!std::filesystem::is_regular_file(monitor_options.reference_file)) {
        throw UsageError(fmt::format("--reference: {} is not a file", value));
      }
    } else if (flag == "--disk-limit") {
      monitor_options.disk_limit_bytes = parse_number(flag, value, 0, UINT64_MAX);
    } else if (flag == "--dqm-sample") {
      monitor_options.sample_period = static_cast<std::uint32_t>(parse_number(flag, value, 1, 1024));
    } else {
      throw UsageError(fmt::format("unknown option {}", flag));
    }
  }
  if (with_zmq && zmq.clients_file.empty()) throw UsageError("--server-key needs --clients (the allow-list)");

  const sigset_t signals = block_stop_signals();
  const DatabaseLock lock(db_path);
  daq::RunDatabase database(db_path);
  daq::Monitor monitor(database, monitor_options);
  rc_options.monitor = &monitor;
  daq::RunControl control(database, rc_options);
  daq::ControlService service(control, database, &monitor);
  if (configure_now) {
    const auto r = control.configure("");
    if (r.code() != na64::control::OK) throw daq::ConfigError(r.message());
  }
  daq::Dashboard dashboard(service, monitor, dashboard_options);
  daq::HttpServer http_server(service, http, dashboard.http_extensions());
  dashboard.publish_to(&http_server);
  std::unique_ptr<daq::ZmqServer> zmq_server;
  if (with_zmq) zmq_server = std::make_unique<daq::ZmqServer>(service, zmq);
  std::unique_ptr<daq::DqmPublisher> dqm_publisher;
  if (!dqm_endpoint.empty()) dqm_publisher = std::make_unique<daq::DqmPublisher>(service, monitor, dqm_endpoint);

  fmt::print("na64daq: run database {}\n", database.file().string());
  fmt::print("na64daq: http://{}:{}/ ({})\n", http.address, http_server.port(),
             http.tokens_file.empty() ? "read-only: no tokens file" : "tokens from " + http.tokens_file.string());
  if (zmq_server) {
    fmt::print("na64daq: zmq control {} publisher {}\n", zmq_server->control_endpoint(), zmq_server->publish_endpoint());
  } else {
    fmt::print("na64daq: zmq interface off (no --server-key)\n");
  }
  if (dqm_publisher) fmt::print("na64daq: dqm publisher {}\n", dqm_publisher->endpoint());
  fmt::print("na64daq: web files {}\n", std::filesystem::is_directory(dashboard_options.web_dir)
                                             ? dashboard_options.web_dir.string()
                                             : "none (no --web directory; the API alone is served)");
  fmt::print("na64daq: state {}\n", daq::to_string(control.status().state()));
  std::fflush(stdout);

  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  fmt::print(stderr, "na64daq: signal {}: stopping; a run in progress ends after its spill\n", sig);
  // A second signal exits at once, leaving the open chunk as *.part and the
  // run for the next daemon to mark interrupted.
  std::jthread second_signal([&](std::stop_token done) {
    const timespec tick{0, 200'000'000};
    while (!done.stop_requested()) {
      if (sigtimedwait(&signals, nullptr, &tick) > 0) {
        fmt::print(stderr, "na64daq: second signal; exiting at once\n");
        std::_Exit(130);
      }
    }
  });
  // Interfaces first, so that no command arrives while the run ends.
  if (zmq_server) zmq_server->stop();
  http_server.stop();
  dashboard.publish_to(nullptr);
  (void)control.stop();  // refused (and harmless) when no run is going on
  while (control.status().state() == na64::control::STOPPING) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return 0;
}

// An emulated tracker front-end on loopback, for a run that reads its
// trackers over Ethernet from another process (readout.tracker.port).
int command_frontend(const std::vector<std::string_view>& args) {
  std::optional<std::string> config_file;
  std::string_view kind;
  std::optional<std::uint32_t> source;
  std::uint32_t port = 0;
  std::uint32_t hold = 2;
  std::uint64_t silent_after = drivers::FrontEndFaults::kNever;
  std::uint64_t close_after = drivers::FrontEndFaults::kNever;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string_view flag = args[i];
    if (i + 1 >= args.size()) throw UsageError(fmt::format("{} needs a value", flag));
    const std::string_view value = args[++i];
    if (flag == "--config") {
      config_file = std::string(value);
    } else if (flag == "--kind") {
      kind = value;
    } else if (flag == "--source") {
      source = static_cast<std::uint32_t>(parse_number(flag, value, 0, 895));
    } else if (flag == "--port") {
      port = static_cast<std::uint32_t>(parse_number(flag, value, 0, 65535));
    } else if (flag == "--hold-spills") {
      hold = static_cast<std::uint32_t>(parse_number(flag, value, 1, 64));
    } else if (flag == "--silent-after") {
      silent_after = parse_number(flag, value, 0, std::numeric_limits<std::uint32_t>::max());
    } else if (flag == "--close-after") {
      close_after = parse_number(flag, value, 0, std::numeric_limits<std::uint32_t>::max());
    } else {
      throw UsageError(fmt::format("unknown option {}", flag));
    }
  }
  drivers::TrackerFrontEndParameters p;
  if (kind == "MM") {
    p.kind = drivers::TrackerKind::Micromegas;
  } else if (kind == "GEM") {
    p.kind = drivers::TrackerKind::Gem;
  } else if (kind == "STRAW") {
    p.kind = drivers::TrackerKind::Straw;
  } else {
    throw UsageError(fmt::format("--kind: \"{}\" is not MM, GEM or STRAW", kind));
  }
  if (!source) throw UsageError("--source is required");
  p.source_id = *source;
  p.port = static_cast<std::uint16_t>(port);
  p.hold_spills = hold;
  p.faults.silent_after = silent_after;
  p.faults.close_after = close_after;
  const daq::DaqConfig config = config_file ? daq::load_config_file(*config_file)
                                            : daq::load_config(daq::default_config_text(), "embedded default");
  const sigset_t signals = block_stop_signals();
  const drivers::NA64Beam beam(config.beam);
  const drivers::EmulatedTrackers trackers(beam, drivers::TrackerParameters{});
  const drivers::EmulatedTrackerFrontEnd front_end(trackers, p);
  fmt::print("tracker front-end {} source {} on 127.0.0.1:{}\n", kind, p.source_id, front_end.port());
  std::fflush(stdout);
  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  const auto c = front_end.counters();
  fmt::print("signal {}: {} spills gated, {} requests: {} served, {} too late, {} not found, {} dropped\n", sig, c.spills,
             c.requests, c.served, c.too_late, c.not_found, c.dropped);
  return 0;
}

int command_keygen(const std::vector<std::string_view>& args) {
  if (args.size() != 2) throw UsageError("keygen needs DIR and NAME");
  const auto keys = daq::write_key_pair(std::filesystem::path(args[0]), args[1]);
  fmt::print("{}/{}.key (secret) and {}/{}.pub: public key {}\n", args[0], args[1], args[0], args[1], keys.public_z85);
  return 0;
}

int command_what_if(const std::vector<std::string_view>& args) {
  std::string overrides;
  std::vector<std::filesystem::path> files;
  for (std::size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--thresholds") {
      if (i + 1 >= args.size()) throw UsageError("--thresholds needs a value");
      overrides = args[++i];
    } else {
      files.emplace_back(args[i]);
    }
  }
  if (files.empty()) throw UsageError("what-if needs at least one file");
  const auto report = daq::what_if(files, overrides);
  fmt::print("{}", daq::format_report(report));
  return report.errors.empty() ? 0 : kExitRunError;
}

int command_check(const std::vector<std::string_view>& args) {
  if (args.empty()) throw UsageError("check needs at least one file");
  int rc = 0;
  for (auto file : args) {
    const auto c = daq::check_date_file(std::string(file));
    fmt::print("{}: {} bytes, {} events (start-of-run {}, start-of-burst {}, physics {}, end-of-burst {}, "
               "end-of-run {}), {} equipments, {} channels, {} errors\n",
               file, c.bytes, c.events, c.by_type[1], c.by_type[5], c.by_type[7], c.by_type[6], c.by_type[2],
               c.equipments, c.channels, c.errors.size());
    std::uint64_t flagged = 0;
    for (const std::uint64_t n : c.missing) flagged += n;
    if (c.tracker_hits != 0 || flagged != 0) {
      std::string reasons;
      for (std::size_t r = 1; r < c.missing.size(); ++r) {
        if (c.missing[r] != 0) {
          reasons += fmt::format(", {} {}", c.missing[r], na64::firmware::to_string(static_cast<na64::firmware::MissingReason>(r)));
        }
      }
      fmt::print("  {} tracker hits, {} equipments flagged missing{}\n", c.tracker_hits, flagged, reasons);
    }
    constexpr std::size_t kShownErrors = 20;
    for (std::size_t i = 0; i < c.errors.size() && i < kShownErrors; ++i) fmt::print(stderr, "  {}\n", c.errors[i]);
    if (c.errors.size() > kShownErrors) fmt::print(stderr, "  ... and {} more\n", c.errors.size() - kShownErrors);
    if (!c.errors.empty()) rc = kExitRunError;
  }
  return rc;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string_view> args(argv + 1, argv + argc);
  try {
    if (args.empty()) throw UsageError("no command");
    const std::string_view command = args.front();
    args.erase(args.begin());
    if (command == "run") return command_run(args);
    if (command == "check") return command_check(args);
    if (command == "serve") return command_serve(args);
    if (command == "what-if") return command_what_if(args);
    if (command == "keygen") return command_keygen(args);
    if (command == "frontend") return command_frontend(args);
    if (command == "default-config") {
      fmt::print("{}", daq::default_config_text());
      return 0;
    }
    if (command == "--help" || command == "help") {
      fmt::print("{}", kUsage);
      return 0;
    }
    throw UsageError(fmt::format("unknown command \"{}\"", command));
  } catch (const UsageError& e) {
    fmt::print(stderr, "na64daq: {}\n{}", e.what(), kUsage);
    return kExitUsage;
  } catch (const daq::ConfigError& e) {
    fmt::print(stderr, "na64daq: bad configuration: {}\n", e.what());
    return kExitUsage;
  } catch (const std::exception& e) {
    fmt::print(stderr, "na64daq: {}\n", e.what());
    return kExitRunError;
  }
}
