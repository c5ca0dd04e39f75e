// SPDX-License-Identifier: Apache-2.0
#include "recording.hpp"

#include <fmt/format.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include "na64/daq/error.hpp"
#include "na64/firmware/msadc_readout.hpp"

namespace na64::daq::recording {

namespace ro = na64::firmware::msadc_readout;

namespace {

[[nodiscard]] std::uint64_t unix_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

/// Words of the header's fixed part after the magic: version, kind, source,
/// run, start time, text bytes.
constexpr std::size_t kHeaderWords = 6;

[[nodiscard]] bool is_answer(ro::MessageType t) noexcept {
  return t == ro::MessageType::EventAnswer || t == ro::MessageType::TooLate || t == ro::MessageType::NotFound ||
         t == ro::MessageType::BadRequest;
}

}  // namespace

std::filesystem::path file_path(const std::filesystem::path& dir, std::uint32_t run, std::uint32_t source) {
  return dir / fmt::format("run-{:06}-source-{:03}.na64rec", run, source);
}

Writer::Writer(const std::filesystem::path& dir, const Header& header)
    : path_(file_path(dir, header.run, header.source)), buffer_(1 << 20) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (std::filesystem::exists(path_)) {
    throw RunError(fmt::format("{}: exists already; a recording is never overwritten", path_.string()));
  }
  part_ = path_;
  part_ += ".part";
  file_ = std::fopen(part_.c_str(), "wb");
  if (file_ == nullptr) throw RunError(fmt::format("{}: cannot create: {}", part_.string(), std::strerror(errno)));
  std::setvbuf(file_, buffer_.data(), _IOFBF, buffer_.size());
  put(kMagic.data(), kMagic.size());
  const std::array<std::uint32_t, kHeaderWords> fixed{kVersion, static_cast<std::uint32_t>(header.kind), header.source,
                                                      header.run, header.start_time_s,
                                                      static_cast<std::uint32_t>(header.config_text.size())};
  put(fixed.data(), sizeof(fixed));
  put(header.config_text.data(), header.config_text.size());
  const std::array<char, 3> pad{};
  put(pad.data(), (4 - header.config_text.size() % 4) % 4);
}

Writer::~Writer() {
  try {
    close();
  } catch (const std::exception& e) {
    fmt::print(stderr, "na64daq: {}\n", e.what());
  }
}

void Writer::put(const void* data, std::size_t bytes) {
  if (bytes != 0 && std::fwrite(data, 1, bytes, file_) != bytes) {
    throw RunError(fmt::format("{}: cannot write: {}", part_.string(), std::strerror(errno)));
  }
}

void Writer::buffer(std::span<const std::uint32_t> words, std::uint64_t time_ns) {
  const auto n = static_cast<std::uint32_t>(words.size());
  put(&time_ns, sizeof(time_ns));
  put(&n, sizeof(n));
  put(words.data(), words.size_bytes());
}

void Writer::answer(std::uint32_t spill, std::uint32_t particle, links::TrackerOutcome outcome,
                    std::span<const std::uint32_t> block) {
  const std::array<std::uint32_t, 4> head{spill, particle, static_cast<std::uint32_t>(outcome),
                                          static_cast<std::uint32_t>(block.size())};
  put(head.data(), sizeof(head));
  put(block.data(), block.size_bytes());
}

void Writer::close() {
  if (file_ == nullptr) return;
  std::FILE* f = file_;
  file_ = nullptr;
  const bool ok = std::fflush(f) == 0 && ::fsync(fileno(f)) == 0;
  const int err = errno;
  std::fclose(f);
  if (!ok) throw RunError(fmt::format("{}: cannot write: {}", part_.string(), std::strerror(err)));
  std::filesystem::rename(part_, path_);
}

Recording read(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw RunError(fmt::format("{}: cannot open the recording", path.string()));
  const std::vector<char> raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::size_t pos = 0;
  auto fail = [&](std::string_view what) -> void {
    throw RunError(fmt::format("{}: offset {}: {}", path.string(), pos, what));
  };
  auto take = [&](void* out, std::size_t bytes) {
    if (raw.size() - pos < bytes) fail("the recording ends inside a record");
    std::memcpy(out, raw.data() + pos, bytes);
    pos += bytes;
  };
  std::array<char, 8> magic{};
  take(magic.data(), magic.size());
  if (magic != kMagic) fail("not an na64daq recording (magic)");
  std::array<std::uint32_t, kHeaderWords> fixed{};
  take(fixed.data(), sizeof(fixed));
  if (fixed[0] != kVersion) fail(fmt::format("recording version {}, this reads {}", fixed[0], kVersion));
  Recording r;
  if (fixed[1] != static_cast<std::uint32_t>(Kind::BoardStream) && fixed[1] != static_cast<std::uint32_t>(Kind::TrackerAnswers)) {
    fail(fmt::format("unknown kind {}", fixed[1]));
  }
  r.header.kind = static_cast<Kind>(fixed[1]);
  r.header.source = fixed[2];
  r.header.run = fixed[3];
  r.header.start_time_s = fixed[4];
  r.header.config_text.resize(fixed[5]);
  take(r.header.config_text.data(), fixed[5]);
  std::array<char, 3> pad{};
  take(pad.data(), (4 - fixed[5] % 4) % 4);
  while (pos < raw.size()) {
    if (r.header.kind == Kind::BoardStream) {
      Recording::Buffer b;
      std::uint32_t n = 0;
      take(&b.time_ns, sizeof(b.time_ns));
      take(&n, sizeof(n));
      if (n > (raw.size() - pos) / 4) fail("a buffer runs past the end of the recording");
      b.words.resize(n);
      take(b.words.data(), std::size_t{n} * 4);
      r.buffers.push_back(std::move(b));
    } else {
      std::array<std::uint32_t, 4> head{};
      take(head.data(), sizeof(head));
      if (head[2] > static_cast<std::uint32_t>(links::TrackerOutcome::Lost)) fail(fmt::format("unknown outcome {}", head[2]));
      if (head[3] > (raw.size() - pos) / 4) fail("a block runs past the end of the recording");
      Recording::Answer a;
      a.outcome = static_cast<links::TrackerOutcome>(head[2]);
      a.block.resize(head[3]);
      take(a.block.data(), std::size_t{head[3]} * 4);
      r.answers[{head[0], head[1]}] = std::move(a);
    }
  }
  return r;
}

// --- recording ---

std::size_t RecordingBoardLink::poll(std::chrono::microseconds wait, links::BufferSink& sink) {
  sink_ = &sink;
  return inner_->poll(wait, *this);
}

void RecordingBoardLink::on_buffer(std::span<const std::uint32_t> words, std::uint64_t time_ns) {
  writer_->buffer(words, time_ns);
  sink_->on_buffer(words, time_ns);
}

void RecordingTrackerPort::poll(std::chrono::microseconds wait, links::TrackerSink& sink) {
  sink_ = &sink;
  inner_->poll(wait, *this);
}

void RecordingTrackerPort::on_answer(std::uint32_t spill, std::uint32_t particle, links::TrackerOutcome outcome,
                                     std::span<const std::uint32_t> block) {
  writer_->answer(spill, particle, outcome, block);
  sink_->on_answer(spill, particle, outcome, block);
}

// --- replay ---

ReplayBoardLink::ReplayBoardLink(Recording recording, eventbuilder::SpillClock& clock, bool paced)
    : clock_(clock), paced_(paced) {
  // Answers come out of the stream, kept by their event; the rest is cut
  // into pieces that begin at a spill begin and end after a spill end, so
  // that each piece belongs to one spill of the beam clock.
  for (const Recording::Buffer& b : recording.buffers) {
    std::size_t pos = 0;
    Piece piece{b.time_ns, stream_.size(), stream_.size(), 0, 0};
    auto cut = [&] {
      piece.end = stream_.size();
      if (piece.end != piece.begin) pieces_.push_back(piece);
      piece = Piece{b.time_ns, stream_.size(), stream_.size(), 0, 0};
    };
    while (pos < b.words.size()) {
      const auto words = std::span<const std::uint32_t>(b.words).subspan(pos);
      const auto h = ro::decode_message_header(words, pos * 4);
      if (!h || h->length_words > words.size()) {  // as recorded: the host counts it; hand on the rest as it came
        stream_.insert(stream_.end(), words.begin(), words.end());
        break;
      }
      const auto message = words.first(h->length_words);
      if (is_answer(h->type) && message.size() >= ro::kMessageHeaderWords + ro::kEventRefWords) {
        const std::uint32_t particle = ro::field::kParticle.get(message[2]);
        const std::uint32_t spill = ro::field::kSpill.get(message[3]);
        answers_[{spill, particle}].assign(message.begin(), message.end());
      } else {
        if (h->type == ro::MessageType::SpillBegin && message.size() >= 3) {
          cut();
          piece.spill_begin = ro::field::kSpill.get(message[2]);
        }
        stream_.insert(stream_.end(), message.begin(), message.end());
        if (h->type == ro::MessageType::SpillEnd && message.size() >= 3) {
          piece.spill_end = ro::field::kSpill.get(message[2]);
          cut();
        }
      }
      pos += h->length_words;
    }
    cut();
  }
  if (!pieces_.empty()) first_ns_ = pieces_.front().time_ns;
}

std::size_t ReplayBoardLink::poll(std::chrono::microseconds wait, links::BufferSink& sink) {
  if (started_ == std::chrono::steady_clock::time_point{}) started_ = std::chrono::steady_clock::now();
  if (!pending_.empty()) {
    sink.on_buffer(pending_, pending_time_ns_);
    pending_.clear();
    return 1;
  }
  auto idle = [&] {
    std::this_thread::sleep_for(std::min(wait, std::chrono::microseconds(100)));
    return std::size_t{0};
  };
  if (next_ == pieces_.size()) return idle();
  const Piece& p = pieces_[next_];
  if (p.spill_begin != 0 && clock_.announced() < p.spill_begin) return idle();  // the beam gates the board
  if (paced_ && std::chrono::steady_clock::now() - started_ < std::chrono::nanoseconds(p.time_ns - first_ns_)) return idle();
  ++next_;
  last_time_ns_ = p.time_ns;
  sink.on_buffer(std::span<const std::uint32_t>(stream_.data() + p.begin, p.end - p.begin), p.time_ns);
  if (p.spill_end != 0) clock_.spill_done(p.spill_end, {});
  return 1;
}

bool ReplayBoardLink::send(std::span<const std::uint32_t> message) {
  if (pending_.empty()) pending_time_ns_ = last_time_ns_ != 0 ? last_time_ns_ : unix_ns();
  (void)ro::decode_event_requests(message, 0, [&](const ro::EventRef& ref) {
    const auto it = answers_.find({ref.spill, ref.particle});
    if (it == answers_.end()) return;
    const std::size_t at = pending_.size();
    pending_.insert(pending_.end(), it->second.begin(), it->second.end());
    pending_[at + 3] = ro::field::kSpill.put(ref.spill) | ro::field::kRequestId.put(ref.request_id);
  });
  return true;  // a malformed message is answered by nothing, as a board that dropped it
}

bool ReplayTrackerPort::request(std::uint32_t spill, std::uint32_t particle) {
  if (queue_.capacity() == 0) queue_.reserve(4096);
  queue_.emplace_back(spill, particle);
  return true;
}

void ReplayTrackerPort::poll(std::chrono::microseconds wait, links::TrackerSink& sink) {
  if (queue_.empty()) {
    std::this_thread::sleep_for(std::min(wait, std::chrono::microseconds(100)));
    return;
  }
  for (const auto& key : queue_) {
    const auto it = answers_.find(key);
    if (it == answers_.end()) continue;  // none recorded: none now (it ends late, as then)
    sink.on_answer(key.first, key.second, it->second.outcome, it->second.block);
  }
  queue_.clear();
}

}  // namespace na64::daq::recording
