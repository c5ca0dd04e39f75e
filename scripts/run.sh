#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Sets up, builds and runs na64daq on its embedded default: a simulated NA64
# beam, a few spills, data written under ./data. Extra arguments go to
# 'na64daq run'.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset release
cmake --build --preset release -j "$(nproc)" --target na64daq
exec build/release/daq/apps/na64daq/na64daq run --spills 3 --output data "$@"
