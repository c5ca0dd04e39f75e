// SPDX-License-Identifier: Apache-2.0
// Recording and replay of the two-level readout's sources (README,
// "Record and replay"). A recording holds, per source, what its link
// handed the host: an MSADC board's message buffers with their arrival
// times, or a tracker front-end's answers. Replayed through the same link
// interfaces, a recorded run gives byte-identical files. Internal to na64_daq.
#pragma once

#include <array>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "na64/eventbuilder/spill_clock.hpp"
#include "readout_links.hpp"

namespace na64::daq::recording {

/// The file header: "NA64REC1", version, kind, source, run start time, and
/// the configuration text the run used.
inline constexpr std::array<char, 8> kMagic{'N', 'A', '6', '4', 'R', 'E', 'C', '1'};
inline constexpr std::uint32_t kVersion = 1;
enum class Kind : std::uint32_t { BoardStream = 1, TrackerAnswers = 2 };

struct Header {
  Kind kind = Kind::BoardStream;
  std::uint32_t source = 0;
  std::uint32_t run = 0;
  std::uint32_t start_time_s = 0;  ///< the run's DATE start-of-run time
  std::string config_text;         ///< the configuration exactly as the run used it
};

/// `dir`/run-RRRRRR-source-SSS.na64rec
[[nodiscard]] std::filesystem::path file_path(const std::filesystem::path& dir, std::uint32_t run, std::uint32_t source);

/// Writes one source's recording under a temporary name (.part), renamed
/// when closed after an fsync. Buffered: no allocation per record.
/// Throws RunError when the file cannot be created or written.
class Writer {
 public:
  Writer(const std::filesystem::path& dir, const Header& header);
  ~Writer();
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;

  /// Board stream: one buffer of whole messages.
  void buffer(std::span<const std::uint32_t> words, std::uint64_t time_ns);
  /// Tracker answers: one answer.
  void answer(std::uint32_t spill, std::uint32_t particle, links::TrackerOutcome outcome,
              std::span<const std::uint32_t> block);
  /// Flushes, fsyncs and renames; also done by the destructor (errors then only reported).
  void close();

 private:
  void put(const void* data, std::size_t bytes);
  std::filesystem::path path_;
  std::filesystem::path part_;
  std::FILE* file_ = nullptr;
  std::vector<char> buffer_;
};

/// Reads a recording whole. Throws RunError naming the file and the offset
/// of anything that does not read.
struct Recording {
  Header header;
  /// Board stream: the buffers in order.
  struct Buffer {
    std::uint64_t time_ns = 0;
    std::vector<std::uint32_t> words;
  };
  std::vector<Buffer> buffers;
  /// Tracker answers by (spill, particle).
  struct Answer {
    links::TrackerOutcome outcome = links::TrackerOutcome::Data;
    std::vector<std::uint32_t> block;
  };
  std::map<std::pair<std::uint32_t, std::uint32_t>, Answer> answers;
};
[[nodiscard]] Recording read(const std::filesystem::path& path);

/// Records what `inner` hands on, then hands it on.
class RecordingBoardLink final : public links::BoardLink, private links::BufferSink {
 public:
  RecordingBoardLink(std::unique_ptr<links::BoardLink> inner, std::unique_ptr<Writer> writer)
      : inner_(std::move(inner)), writer_(std::move(writer)) {}
  std::size_t poll(std::chrono::microseconds wait, links::BufferSink& sink) override;
  bool send(std::span<const std::uint32_t> message) override { return inner_->send(message); }
  [[nodiscard]] bool lost() const override { return inner_->lost(); }
  void retry() override { inner_->retry(); }
  void add_busy(std::chrono::steady_clock::duration busy) override { inner_->add_busy(busy); }
  links::BoardLink& inner() noexcept { return *inner_; }
  void close() { writer_->close(); }

 private:
  void on_buffer(std::span<const std::uint32_t> words, std::uint64_t time_ns) override;
  std::unique_ptr<links::BoardLink> inner_;
  std::unique_ptr<Writer> writer_;
  links::BufferSink* sink_ = nullptr;
};

class RecordingTrackerPort final : public links::TrackerPort, private links::TrackerSink {
 public:
  RecordingTrackerPort(std::unique_ptr<links::TrackerPort> inner, std::unique_ptr<Writer> writer)
      : inner_(std::move(inner)), writer_(std::move(writer)) {}
  void gate(std::uint32_t spill, bool open, std::uint32_t particles) override { inner_->gate(spill, open, particles); }
  bool request(std::uint32_t spill, std::uint32_t particle) override { return inner_->request(spill, particle); }
  void poll(std::chrono::microseconds wait, links::TrackerSink& sink) override;
  void close() { writer_->close(); }

 private:
  void on_answer(std::uint32_t spill, std::uint32_t particle, links::TrackerOutcome outcome,
                 std::span<const std::uint32_t> block) override;
  std::unique_ptr<links::TrackerPort> inner_;
  std::unique_ptr<Writer> writer_;
  links::TrackerSink* sink_ = nullptr;
};

/// A board replayed from its recording: the stream's spills are handed on
/// as the beam clock announces them (at the recorded pace, or as fast as
/// possible), and each request is answered with the answer recorded for
/// its (spill, particle), carrying the new request's id. A request the
/// recording holds no answer for gets none, as it got none then.
class ReplayBoardLink final : public links::BoardLink {
 public:
  ReplayBoardLink(Recording recording, eventbuilder::SpillClock& clock, bool paced);
  std::size_t poll(std::chrono::microseconds wait, links::BufferSink& sink) override;
  bool send(std::span<const std::uint32_t> message) override;

 private:
  struct Piece {
    std::uint64_t time_ns = 0;
    std::size_t begin = 0;  ///< words in stream_
    std::size_t end = 0;
    std::uint32_t spill_begin = 0;  ///< the spill this piece begins, 0: none
    std::uint32_t spill_end = 0;    ///< the spill this piece ends, 0: none
  };
  std::vector<std::uint32_t> stream_;  ///< the recording without its answers
  std::vector<Piece> pieces_;
  std::map<std::pair<std::uint32_t, std::uint32_t>, std::vector<std::uint32_t>> answers_;
  std::vector<std::uint32_t> pending_;  ///< answers to deliver
  std::uint64_t pending_time_ns_ = 0;
  eventbuilder::SpillClock& clock_;
  bool paced_;
  std::size_t next_ = 0;
  std::uint32_t open_spill_ = 0;
  std::uint64_t first_ns_ = 0;
  std::chrono::steady_clock::time_point started_{};
  std::uint64_t last_time_ns_ = 0;
};

/// A tracker front-end replayed from its recorded answers.
class ReplayTrackerPort final : public links::TrackerPort {
 public:
  explicit ReplayTrackerPort(Recording recording) : answers_(std::move(recording.answers)) {}
  void gate(std::uint32_t, bool, std::uint32_t) override {}
  bool request(std::uint32_t spill, std::uint32_t particle) override;
  void poll(std::chrono::microseconds wait, links::TrackerSink& sink) override;

 private:
  std::map<std::pair<std::uint32_t, std::uint32_t>, Recording::Answer> answers_;
  std::vector<std::pair<std::uint32_t, std::uint32_t>> queue_;
};

}  // namespace na64::daq::recording
