// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <stdexcept>

namespace na64::daq {

/// Set-up failures: one small hierarchy, caught in main().
struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};
/// A configuration that cannot be used; the message names the field path.
struct ConfigError : Error {
  using Error::Error;
};
/// A run that cannot start or go on (output directory, files, disk).
struct RunError : Error {
  using Error::Error;
};

}  // namespace na64::daq
