// SPDX-License-Identifier: Apache-2.0
// na64daq: the DAQ's main program.
#include <fmt/format.h>
#include <signal.h>

#include <charconv>
#include <optional>
#include <stop_token>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "na64/daq/config.hpp"
#include "na64/daq/error.hpp"
#include "na64/daq/pipeline.hpp"
#include "na64/daq/raw_file.hpp"
#include "na64/daq/run_files.hpp"

namespace {

using namespace na64;

constexpr int kExitRunError = 1;
constexpr int kExitUsage = 2;

constexpr std::string_view kUsage = R"(usage:
  na64daq run --spills N --output DIR [--config FILE] [--run R] [--seed S] [--particles P]
      Runs start of run, N spills and end of run on the simulated beam and writes
      DATE files, the decoder map and the run summary into DIR. Without --config
      it uses the embedded default; without --run, the next free number in DIR.
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
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
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

int command_check(const std::vector<std::string_view>& args) {
  if (args.empty()) throw UsageError("check needs at least one file");
  int rc = 0;
  for (auto file : args) {
    const auto c = daq::check_date_file(std::string(file));
    fmt::print("{}: {} bytes, {} events (start-of-run {}, start-of-burst {}, physics {}, end-of-burst {}, "
               "end-of-run {}), {} equipments, {} channels, {} errors\n",
               file, c.bytes, c.events, c.by_type[1], c.by_type[5], c.by_type[7], c.by_type[6], c.by_type[2],
               c.equipments, c.channels, c.errors.size());
    for (const auto& e : c.errors) fmt::print(stderr, "  {}\n", e);
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
