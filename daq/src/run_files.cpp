// SPDX-License-Identifier: Apache-2.0
#include "na64/daq/run_files.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <regex>
#include <system_error>

#include "na64/daq/error.hpp"

namespace na64::daq {

namespace fs = std::filesystem;

namespace {

[[noreturn]] void fail(const std::string& what, const fs::path& path, int err) {
  throw RunError(fmt::format("{} {}: {}", what, path.string(), std::strerror(err)));
}

void write_all(int fd, const void* data, std::size_t bytes, const fs::path& path) {
  const auto* p = static_cast<const char*>(data);
  while (bytes > 0) {
    const ssize_t n = ::write(fd, p, bytes);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail("cannot write", path, errno);
    }
    p += n;
    bytes -= static_cast<std::size_t>(n);
  }
}

void sync_directory(const fs::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) fail("cannot open directory", dir, errno);
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);
  if (rc != 0) fail("cannot sync directory", dir, err);
}

// rename() that never replaces: renameat2(RENAME_NOREPLACE) where the file
// system has it, else link() + unlink(), which also fails on an existing name.
void rename_no_replace(const fs::path& from, const fs::path& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return;
  if (errno == EEXIST) fail("refusing to replace existing file", to, EEXIST);
  if (errno != EINVAL && errno != ENOSYS) fail("cannot rename to", to, errno);
  if (::link(from.c_str(), to.c_str()) != 0) fail("cannot link to", to, errno);
  ::unlink(from.c_str());
}

void ensure_directory(const fs::path& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw RunError(fmt::format("cannot create output directory {}: {}", dir.string(), ec.message()));
  if (::access(dir.c_str(), W_OK | X_OK) != 0) fail("output directory is not writable:", dir, errno);
}

}  // namespace

std::string chunk_file_name(std::uint32_t gdc_id, std::uint32_t chunk, std::uint32_t run) {
  return fmt::format("cdr{:02}{:03}-{:06}.dat", gdc_id, chunk, run);
}
std::string map_file_name(std::uint32_t run) { return fmt::format("run-{:06}.map.xml", run); }
std::string summary_file_name(std::uint32_t run) { return fmt::format("run-{:06}.summary.json", run); }

std::uint32_t next_run_number(const fs::path& dir) {
  std::error_code ec;
  std::uint32_t last = 0;
  static const std::regex kRunFile(R"(^(?:\.?cdr\d{5}-|run-)(\d{6})\..*)");
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::smatch m;
    const std::string name = entry.path().filename().string();
    if (std::regex_match(name, m, kRunFile)) last = std::max<std::uint32_t>(last, static_cast<std::uint32_t>(std::stoul(m[1])));
  }
  return last + 1;
}

void write_file_once(const fs::path& dir, const std::string& name, std::string_view content) {
  ensure_directory(dir);
  const fs::path final_path = dir / name;
  const fs::path tmp = dir / ("." + name + ".part");
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) fail("cannot create", tmp, errno);
  try {
    write_all(fd, content.data(), content.size(), tmp);
    if (::fsync(fd) != 0) fail("cannot sync", tmp, errno);
  } catch (...) {
    ::close(fd);
    ::unlink(tmp.c_str());
    throw;
  }
  ::close(fd);
  try {
    rename_no_replace(tmp, final_path);
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
  sync_directory(dir);
}

ChunkWriter::ChunkWriter(fs::path dir, std::uint32_t gdc_id, std::uint32_t run, std::uint64_t max_chunk_bytes,
                         std::size_t buffer_bytes)
    : dir_(std::move(dir)),
      gdc_id_(gdc_id),
      run_(run),
      max_chunk_bytes_(max_chunk_bytes),
      buffer_words_(buffer_bytes / 4) {
  ensure_directory(dir_);
  const std::regex mine(fmt::format(R"(^\.?cdr{:02}\d{{3}}-{:06}\.dat(\.part)?$)", gdc_id, run));
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    if (std::regex_match(entry.path().filename().string(), mine)) {
      throw RunError(fmt::format("run {} already has data in {} ({}); a run file is never overwritten", run,
                                 dir_.string(), entry.path().filename().string()));
    }
  }
  buffer_ = std::make_unique<std::uint32_t[]>(buffer_words_);
  std::memset(buffer_.get(), 0, buffer_words_ * 4);
  open_chunk();
}

ChunkWriter::~ChunkWriter() {
  if (fd_ < 0) return;
  // Not closed properly (an error unwound the run). An empty chunk is
  // removed; one with data stays under its temporary name for inspection,
  // never as a run file.
  ::close(fd_);
  if (chunk_bytes_ == 0) ::unlink((dir_ / ("." + chunk_file_name(gdc_id_, chunk_, run_) + ".part")).c_str());
}

void ChunkWriter::open_chunk() {
  if (chunk_ == kMaxChunks) {
    throw RunError(fmt::format("run {}: more than {} chunk files; raise run.max_chunk_bytes", run_, kMaxChunks));
  }
  ++chunk_;
  const fs::path tmp = dir_ / ("." + chunk_file_name(gdc_id_, chunk_, run_) + ".part");
  fd_ = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create", tmp, errno);
  chunk_bytes_ = 0;
}

void ChunkWriter::flush() {
  if (used_ == 0) return;
  write_all(fd_, buffer_.get(), used_ * 4, dir_ / chunk_file_name(gdc_id_, chunk_, run_));
  used_ = 0;
}

std::span<std::uint32_t> ChunkWriter::reserve(std::size_t max_words) {
  if (max_words > buffer_words_) {
    throw RunError(fmt::format("event of {} bytes larger than the write buffer", max_words * 4));
  }
  if (buffer_words_ - used_ < max_words) flush();
  return {buffer_.get() + used_, max_words};
}

void ChunkWriter::commit(std::size_t words) {
  const std::uint64_t bytes = std::uint64_t{words} * 4;
  if (chunk_bytes_ > 0 && chunk_bytes_ + bytes > max_chunk_bytes_) {
    // The event starts a new chunk: the old one ends on the previous event.
    const std::size_t before = used_;
    flush();
    finish_chunk();
    open_chunk();
    std::memmove(buffer_.get(), buffer_.get() + before, words * 4);
  }
  used_ += words;
  chunk_bytes_ += bytes;
  bytes_total_ += bytes;
}

void ChunkWriter::sync() {
  if (fd_ < 0) return;
  flush();
  if (::fdatasync(fd_) != 0) fail("cannot sync", dir_ / chunk_file_name(gdc_id_, chunk_, run_), errno);
}

void ChunkWriter::finish_chunk() {
  const std::string name = chunk_file_name(gdc_id_, chunk_, run_);
  if (::fsync(fd_) != 0) fail("cannot sync", dir_ / name, errno);
  ::close(fd_);
  fd_ = -1;
  rename_no_replace(dir_ / ("." + name + ".part"), dir_ / name);
  sync_directory(dir_);
  files_.push_back(name);
}

void ChunkWriter::close() {
  if (fd_ < 0) return;
  flush();
  finish_chunk();
}

}  // namespace na64::daq
