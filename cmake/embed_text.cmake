# SPDX-License-Identifier: Apache-2.0
# Writes OUT, a C++ file defining na64::daq::kDefaultConfigText from IN.
file(READ "${IN}" text)
file(WRITE "${OUT}" "// Generated from daq/config/default.textproto; do not edit.\nnamespace na64::daq {\nextern const char* const kDefaultConfigText;\nconst char* const kDefaultConfigText = R\"na64cfg(${text})na64cfg\";\n}  // namespace na64::daq\n")
