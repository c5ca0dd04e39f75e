// SPDX-License-Identifier: Apache-2.0
// Configuration texts for tests: the embedded default with another readout.
#pragma once

#include <string>
#include <string_view>

#include "na64/daq/config.hpp"

namespace na64::daq::testing_config {

/// The embedded default's text with its `readout { ... }` block replaced by
/// `readout` (a whole block, or empty for none: the direct readout).
inline std::string default_with_readout(std::string_view readout) {
  std::string text(default_config_text());
  const auto begin = text.find("\nreadout {");
  if (begin != std::string::npos) {
    const auto end = text.find("\n}\n", begin);
    text.erase(begin + 1, end == std::string::npos ? std::string::npos : end + 3 - (begin + 1));
  }
  return text + std::string(readout) + "\n";
}

/// The embedded default read with the direct readout.
inline std::string direct_default() { return default_with_readout("readout { mode: DIRECT }"); }

}  // namespace na64::daq::testing_config
