#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs the Debian bookworm packages the build needs. Idempotent: installs
# only what is missing. Run as root or with sudo available.
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config
  libboost1.81-dev libboost-json1.81-dev
  libzmq3-dev cppzmq-dev libsodium-dev
  libsqlite3-dev sqlite3
  libprotobuf-dev protobuf-compiler
  libusb-1.0-0-dev libfmt-dev
  umockdev libumockdev-dev
  libgtest-dev libgmock-dev
  prometheus
  python3-zmq python3-protobuf
  chromium fonts-dejavu-core
)
# The dashboard's build and browser tests need Node.js and npm. A machine
# that has them from elsewhere (e.g. a nodejs package bundling npm, which
# conflicts with Debian's npm) keeps them; otherwise Debian's are installed.
for tool in node:nodejs npm:npm; do
  if ! command -v "${tool%%:*}" >/dev/null 2>&1; then
    packages+=("${tool#*:}")
  fi
done
if [[ "${NA64_WITH_FUZZERS:-0}" == 1 ]]; then
  packages+=(clang)
fi

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
if ((${#missing[@]} == 0)); then
  echo "setup: all ${#packages[@]} packages present"
  exit 0
fi

sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then
  sudo_cmd=(sudo)
fi
echo "setup: installing ${missing[*]}"
"${sudo_cmd[@]}" apt-get update -q
DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
