// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/curve_keys.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <map>
#include <optional>
#include <system_error>

#include "na64/daq/error.hpp"

namespace na64::daq {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kZ85KeyChars = 40;
constexpr std::size_t kKeyBytes = 32;
// Key files are a few lines; anything bigger is not one.
constexpr std::size_t kMaxFileBytes = 1 << 20;

[[noreturn]] void fail(const fs::path& path, std::string_view what) {
  throw ConfigError(fmt::format("{}: {}", path.string(), what));
}
[[noreturn]] void fail(const fs::path& path, std::size_t line, std::string_view what) {
  throw ConfigError(fmt::format("{}:{}: {}", path.string(), line, what));
}
[[noreturn]] void fail_errno(std::string_view what, const fs::path& path, int err) {
  throw ConfigError(fmt::format("{} {}: {}", what, path.string(), std::strerror(err)));
}

class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) noexcept : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  [[nodiscard]] int get() const noexcept { return fd_; }
  /// close() whose error is reported: a full disk may show only here.
  [[nodiscard]] int close() noexcept {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

struct FileText {
  std::string text;
  mode_t mode = 0;
};

// Reads the whole file; the mode comes from the descriptor that was read, so
// that the file checked is the file read.
FileText read_file(const fs::path& path) {
  FileDescriptor fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) fail_errno("cannot open", path, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) fail_errno("cannot stat", path, errno);
  if (!S_ISREG(st.st_mode)) fail(path, "not a regular file");
  if (static_cast<std::size_t>(st.st_size) > kMaxFileBytes) fail(path, "too large for a key file");
  FileText file;
  file.mode = st.st_mode;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("cannot read", path, errno);
    }
    if (n == 0) break;
    file.text.append(buffer, static_cast<std::size_t>(n));
    if (file.text.size() > kMaxFileBytes) fail(path, "too large for a key file");
  }
  return file;
}

struct Line {
  std::size_t number = 0;  // from 1
  std::vector<std::string_view> words;
  std::string_view rest;  // after the second word, trimmed
};

constexpr std::string_view kBlanks = " \t\r\v\f";

std::string_view trim(std::string_view s) {
  const auto first = s.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return s.substr(first, s.find_last_not_of(kBlanks) - first + 1);
}

// The lines with content: blank lines and `#` comment lines are skipped. A
// `#` later in a line is not a comment, since Z85 uses it.
std::vector<Line> content_lines(std::string_view text) {
  std::vector<Line> lines;
  std::size_t number = 0;
  while (!text.empty()) {
    const auto end = text.find('\n');
    const std::string_view raw = trim(text.substr(0, end));
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++number;
    if (raw.empty() || raw.front() == '#') continue;
    Line line{.number = number, .words = {}, .rest = {}};
    std::string_view s = raw;
    while (!s.empty()) {
      const auto word_end = s.find_first_of(kBlanks);
      line.words.push_back(s.substr(0, word_end));
      s = word_end == std::string_view::npos ? std::string_view{} : trim(s.substr(word_end));
      if (line.words.size() == 2) {
        line.rest = s;
        break;
      }
    }
    lines.push_back(line);
  }
  return lines;
}

struct KeyLine {
  std::string key;
  std::size_t line = 0;  // 0: absent
};

// Parses `public KEY` / `secret KEY` lines, each at most once, and only the
// keywords in `allowed`. Never puts key text into a message.
std::map<std::string, KeyLine, std::less<>> parse_key_file(const fs::path& path, std::string_view text,
                                                            const std::vector<std::string_view>& allowed) {
  std::map<std::string, KeyLine, std::less<>> keys;
  for (const Line& line : content_lines(text)) {
    const bool known =
        line.words.size() == 2 && line.rest.empty() &&
        std::find(allowed.begin(), allowed.end(), line.words[0]) != allowed.end();
    if (!known) {
      fail(path, line.number,
           allowed.size() == 1 ? std::string("expected 'public KEY'") : std::string("expected 'public KEY' or 'secret KEY'"));
    }
    const std::string keyword(line.words[0]);
    if (!is_z85_key(line.words[1])) {
      fail(path, line.number,
           fmt::format("{} key is not {} characters of Z85 ({} characters)", keyword, kZ85KeyChars, line.words[1].size()));
    }
    auto [it, inserted] = keys.try_emplace(keyword, KeyLine{std::string(line.words[1]), line.number});
    if (!inserted) fail(path, line.number, fmt::format("second '{}' line (first on line {})", keyword, it->second.line));
  }
  for (const auto keyword : allowed) {
    if (!keys.contains(keyword)) fail(path, fmt::format("no '{}' line", keyword));
  }
  return keys;
}

std::optional<ClientRole> client_role_from_string(std::string_view name) {
  if (name == "viewer") return ClientRole::Viewer;
  if (name == "shift") return ClientRole::Shift;
  if (name == "expert") return ClientRole::Expert;
  return std::nullopt;
}

void check_key_name(std::string_view name) {
  const bool ok = !name.empty() && name.front() != '.' && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
           c == '.';
  });
  if (!ok) {
    throw ConfigError(
        fmt::format("key name '{}': use letters, digits, '-', '_' and '.', not starting with '.'", name));
  }
}

void write_all(int fd, std::string_view data, const fs::path& path) {
  while (!data.empty()) {
    const ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      fail_errno("cannot write", path, errno);
    }
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

// rename() that never replaces: renameat2(RENAME_NOREPLACE) where the file
// system has it, else link() + unlink(), which also fails on an existing name.
void rename_no_replace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  if (errno == EEXIST) fail(to, "exists; refusing to replace it");
  if (errno != EINVAL && errno != ENOSYS) fail_errno("cannot rename to", to, errno);
  if (::link(from.c_str(), to.c_str()) != 0) {
    if (errno == EEXIST) fail(to, "exists; refusing to replace it");
    fail_errno("cannot link to", to, errno);
  }
  ::unlink(from.c_str());
}

// Writes `text` to a new file `path` with `mode`: a temporary file in the same
// directory, created 0600 by mkstemp, synced, then renamed into place.
void write_new_file(const fs::path& path, std::string_view text, mode_t mode) {
  std::string tmp = (path.parent_path() / ("." + path.filename().string() + ".XXXXXX")).string();
  FileDescriptor fd(::mkostemp(tmp.data(), O_CLOEXEC));
  if (fd.get() < 0) fail_errno("cannot create a temporary file for", path, errno);
  try {
    if (::fchmod(fd.get(), mode) != 0) fail_errno("cannot set the mode of", tmp, errno);
    write_all(fd.get(), text, tmp);
    if (::fsync(fd.get()) != 0) fail_errno("cannot sync", tmp, errno);
    if (fd.close() != 0) fail_errno("cannot close", tmp, errno);
    rename_no_replace(tmp, path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

void sync_directory(const fs::path& dir) {
  FileDescriptor fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) fail_errno("cannot open directory", dir, errno);
  if (::fsync(fd.get()) != 0) fail_errno("cannot sync directory", dir, errno);
}

}  // namespace

const char* to_string(ClientRole role) noexcept {
  switch (role) {
    case ClientRole::Viewer:
      return "viewer";
    case ClientRole::Shift:
      return "shift";
    case ClientRole::Expert:
      return "expert";
  }
  return "?";
}

bool is_z85_key(std::string_view text) noexcept {
  if (text.size() != kZ85KeyChars) return false;
  char z85[kZ85KeyChars + 1] = {};
  std::copy(text.begin(), text.end(), z85);
  std::uint8_t key[kKeyBytes];
  if (zmq_z85_decode(key, z85) == nullptr) return false;
  // Z85 lets some 5-character groups overflow 32 bits; only the canonical
  // spelling is accepted, so that one key has one text.
  char again[kZ85KeyChars + 1] = {};
  if (zmq_z85_encode(again, key, kKeyBytes) == nullptr) return false;
  return text == std::string_view(again, kZ85KeyChars);
}

CurveKeyPair generate_key_pair() {
  char public_z85[kZ85KeyChars + 1] = {};
  char secret_z85[kZ85KeyChars + 1] = {};
  if (zmq_curve_keypair(public_z85, secret_z85) != 0) {
    throw Error(fmt::format("cannot generate a CURVE key pair: {}", zmq_strerror(zmq_errno())));
  }
  return CurveKeyPair{.public_z85 = public_z85, .secret_z85 = secret_z85};
}

CurveKeyPair write_key_pair(const fs::path& dir, std::string_view name) {
  check_key_name(name);
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw ConfigError(fmt::format("cannot create directory {}: {}", dir.string(), ec.message()));
  const fs::path key_path = dir / (std::string(name) + ".key");
  const fs::path pub_path = dir / (std::string(name) + ".pub");
  for (const auto& path : {key_path, pub_path}) {
    if (fs::exists(fs::symlink_status(path))) fail(path, "exists; refusing to replace it");
  }
  CurveKeyPair pair = generate_key_pair();
  write_new_file(key_path, fmt::format("public {}\nsecret {}\n", pair.public_z85, pair.secret_z85), 0600);
  try {
    write_new_file(pub_path, fmt::format("public {}\n", pair.public_z85), 0644);
  } catch (...) {
    ::unlink(key_path.c_str());  // no secret key without its public half
    throw;
  }
  sync_directory(dir);
  return pair;
}

CurveKeyPair read_secret_key_file(const fs::path& path) {
  const FileText file = read_file(path);
  if ((file.mode & 077) != 0) {
    fail(path, fmt::format("secret key file is open to group or others (mode {:04o}); chmod 600 it",
                           file.mode & 07777));
  }
  const auto keys = parse_key_file(path, file.text, {"public", "secret"});
  const KeyLine& public_key = keys.find("public")->second;
  const KeyLine& secret_key = keys.find("secret")->second;
  char derived[kZ85KeyChars + 1] = {};
  if (zmq_curve_public(derived, secret_key.key.c_str()) != 0) {
    fail(path, secret_key.line, fmt::format("cannot derive the public key: {}", zmq_strerror(zmq_errno())));
  }
  if (public_key.key != derived) fail(path, public_key.line, "public key does not belong to the secret key");
  return CurveKeyPair{.public_z85 = public_key.key, .secret_z85 = secret_key.key};
}

std::string read_public_key_file(const fs::path& path) {
  const FileText file = read_file(path);
  return parse_key_file(path, file.text, {"public"}).find("public")->second.key;
}

std::vector<AllowedClient> read_clients_file(const fs::path& path) {
  const FileText file = read_file(path);
  // Whoever may write the list may let anyone in.
  if ((file.mode & 022) != 0) {
    fail(path, fmt::format("clients file may be written by group or others (mode {:04o}); chmod go-w it",
                           file.mode & 07777));
  }
  std::vector<AllowedClient> clients;
  std::map<std::string, std::size_t, std::less<>> first_line;
  for (const Line& line : content_lines(file.text)) {
    if (line.words.size() < 2) fail(path, line.number, "expected 'ROLE KEY [name]'");
    const auto role = client_role_from_string(line.words[0]);
    if (!role) fail(path, line.number, fmt::format("unknown role '{}' (viewer, shift or expert)", line.words[0]));
    if (!is_z85_key(line.words[1])) {
      fail(path, line.number,
           fmt::format("public key is not {} characters of Z85 ({} characters)", kZ85KeyChars, line.words[1].size()));
    }
    const auto [it, inserted] = first_line.try_emplace(std::string(line.words[1]), line.number);
    if (!inserted) fail(path, line.number, fmt::format("key already listed on line {}", it->second));
    clients.push_back(AllowedClient{.role = *role, .public_z85 = std::string(line.words[1]), .name = std::string(line.rest)});
  }
  return clients;
}

}  // namespace na64::daq
