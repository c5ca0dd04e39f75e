// SPDX-License-Identifier: Apache-2.0
// Reading DATE files back with the project's decoder.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "na64/firmware/date_event.hpp"
#include "na64/firmware/msadc.hpp"
#include "na64/firmware/run_record.hpp"

namespace na64::daq {

/// What check_date_file found.
struct FileCheck {
  std::uint64_t bytes = 0;
  std::uint64_t events = 0;
  std::array<std::uint64_t, 16> by_type{};  ///< index = DATE event type
  std::uint64_t equipments = 0;
  std::uint64_t channels = 0;
  std::uint64_t tracker_hits = 0;  ///< APV strips and straw hits of the trackers the start of run names
  /// Equipments flagged as missing their source's data, by reason (raw-data format v2).
  std::array<std::uint64_t, firmware::kNumMissingReasons> missing{};
  std::vector<std::string> errors;  ///< "file: message"; the file is not read past an event error
};

/// Reads a whole DATE file as 32-bit words. A file that cannot be opened
/// ("path: cannot open") or whose size is not a multiple of 4 gets its
/// error appended to `errors`; the whole words are still returned. `bytes`,
/// when given, receives the file's size.
[[nodiscard]] std::vector<std::uint32_t> read_date_words(const std::filesystem::path& path,
                                                         std::vector<std::string>& errors,
                                                         std::uint64_t* bytes = nullptr);

/// Called for every MSADC channel of every event that carries equipment.
using ChannelVisitor =
    std::function<void(const firmware::DateHeader&, std::uint32_t source_id, const firmware::MsadcChannel&)>;

/// Reads a whole DATE file and validates every event (DOMAIN.md 4) and every
/// payload: MSADC, or APV / straw TDC for the tracker sources that the start
/// of run's configuration record names (tracker blocks carry the particle's
/// number, DATE word 10). A bad event ends the reading, as it does for the
/// collaboration's decoder; a bad payload is reported and reading goes on.
[[nodiscard]] FileCheck check_date_file(const std::filesystem::path& path, const ChannelVisitor& visit = {});

}  // namespace na64::daq
