# SPDX-License-Identifier: Apache-2.0
# The browser tests' stand-in when they cannot run: fails, saying why.
message(FATAL_ERROR "install chromium and nodejs (Debian packages chromium, nodejs, npm) and reconfigure: ${WHY}")
