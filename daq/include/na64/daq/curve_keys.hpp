// SPDX-License-Identifier: Apache-2.0
// CURVE keys of the ZeroMQ control interface: the server's key pair and the
// allow-list of client keys with their roles.
//
// File formats (text, one entry a line; blank lines and lines whose first
// non-blank character is `#` are ignored):
//   NAME.key      public Z85        (mode 0600)
//                 secret Z85
//   NAME.pub      public Z85
//   clients file  ROLE PUBLIC_Z85 [name]   ROLE: viewer, shift or expert
// A Z85 key is 40 characters encoding 32 bytes.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

namespace na64::daq {

struct CurveKeyPair {
  std::string public_z85;  ///< 40 characters
  std::string secret_z85;  ///< 40 characters
};

/// What a client key may do. Viewer only reads and subscribes; Shift and
/// Expert are the roles of ControlService.
enum class ClientRole { Viewer, Shift, Expert };

/// "viewer", "shift", "expert": also the ZAP User-Id of the client.
[[nodiscard]] const char* to_string(ClientRole role) noexcept;

struct AllowedClient {
  ClientRole role = ClientRole::Viewer;
  std::string public_z85;  ///< canonical Z85, 40 characters
  std::string name;        ///< free text after the key; may be empty
};

/// True for 40 characters of Z85 that decode to 32 bytes and encode back to
/// the same text (so that keys compare equal as text).
[[nodiscard]] bool is_z85_key(std::string_view text) noexcept;

/// A fresh key pair from libsodium. Throws Error if ZeroMQ has no CURVE.
[[nodiscard]] CurveKeyPair generate_key_pair();

/// Generates a key pair and writes DIR/NAME.key (mode 0600) and DIR/NAME.pub.
/// Each file is written under a temporary name, synced and renamed; neither
/// file is replaced if it exists. NAME is a plain file name (no `/`, not
/// starting with `.`). Returns the pair written. Throws ConfigError naming
/// the file.
CurveKeyPair write_key_pair(const std::filesystem::path& dir, std::string_view name);

/// Reads a NAME.key file. Refuses a file that group or others may read or
/// write, a malformed line, and a public key that does not belong to the
/// secret key. Throws ConfigError: "path:line: what is wrong" (or "path: ..."
/// for the whole file).
[[nodiscard]] CurveKeyPair read_secret_key_file(const std::filesystem::path& path);

/// Reads a NAME.pub file; returns the Z85 public key. Throws ConfigError as
/// read_secret_key_file.
[[nodiscard]] std::string read_public_key_file(const std::filesystem::path& path);

/// Reads the allow-list of client keys. Refuses a file that group or others
/// may write, unknown roles, bad keys and a key listed twice. Throws
/// ConfigError: "path:line: what is wrong" (or "path: ..." for the file).
[[nodiscard]] std::vector<AllowedClient> read_clients_file(const std::filesystem::path& path);

}  // namespace na64::daq
