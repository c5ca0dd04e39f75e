// SPDX-License-Identifier: Apache-2.0
// The two-level readout chain:
//
//   MSADC boards --summaries--> source threads --> event builder --> trigger
//        ^                        |     ^                              |
//        |  requests / answers    v     | answers               accepted events
//        +---------------------- completion <--------------------------+
//   tracker front-ends <-- requests --/    \--> writer (DATE, one equipment per source)
//
// Every board streams one summary word per channel and particle; the
// builder assembles them by (spill, particle); the trigger decides; the
// completion stage asks every board and tracker front-end for an accepted
// event's full data, and hands the event on when all have answered, or with
// the missing ones flagged (late, lost source, buffer overflow, ...).
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <new>
#include <thread>

#include "chain.hpp"
#include "na64/drivers/emulated_readout_board.hpp"
#include "na64/drivers/emulated_trackers.hpp"
#include "na64/drivers/readout_host.hpp"
#include "na64/eventbuilder/event_builder.hpp"
#include "na64/eventbuilder/spsc_ring.hpp"
#include "na64/firmware/msadc_readout.hpp"
#include "readout_links.hpp"
#include "two_level_sources.hpp"

namespace na64::daq::chain {

namespace ro = na64::firmware::msadc_readout;

namespace {

/// Summary fragments a source thread publishes at once.
constexpr std::size_t kFragmentBatch = 32;
/// Accepted events being completed at once.
constexpr std::size_t kCompletionWindow = 512;
/// Requests and answers queued per source.
constexpr std::size_t kRequestSlots = 4096;
constexpr std::size_t kAnswerSlots = 256;
/// How long a source thread waits for its link when it has nothing to do.
constexpr std::chrono::microseconds kPollWait{200};
/// How often a lost board is looked for.
constexpr std::chrono::milliseconds kRetryPeriod{100};

[[nodiscard]] std::uint64_t steady_ns() noexcept {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count());
}

[[nodiscard]] fw::MissingReason reason_of(drivers::RequestOutcome o) noexcept {
  switch (o) {
    case drivers::RequestOutcome::Completed: return fw::MissingReason::None;
    case drivers::RequestOutcome::TooLate: return fw::MissingReason::Late;
    case drivers::RequestOutcome::NotFound: return fw::MissingReason::NotFound;
    case drivers::RequestOutcome::BadRequest: return fw::MissingReason::Refused;
    case drivers::RequestOutcome::Unanswered: return fw::MissingReason::Late;
  }
  return fw::MissingReason::Late;
}

[[nodiscard]] fw::MissingReason reason_of(links::TrackerOutcome o) noexcept {
  switch (o) {
    case links::TrackerOutcome::Data: return fw::MissingReason::None;
    case links::TrackerOutcome::TooLate: return fw::MissingReason::Late;
    case links::TrackerOutcome::NotFound: return fw::MissingReason::NotFound;
    case links::TrackerOutcome::Unanswered: return fw::MissingReason::Late;
    case links::TrackerOutcome::Lost: return fw::MissingReason::LostSource;
  }
  return fw::MissingReason::Late;
}

/// Writes one answer (data, or why there is none) for the completion stage.
void put_answer(AnswerRing& ring, std::uint32_t spill, std::uint32_t particle, fw::MissingReason missing,
                std::span<const std::uint32_t> block, const std::stop_token& abort) {
  if (!wait_writable(ring, 1, abort)) return;
  const std::size_t n = std::min(block.size(), ring.slot_words());
  if (n != 0) std::memcpy(ring.write_words(0).data(), block.data(), n * 4);
  ring.write_desc(0) = AnswerDesc{spill, particle, missing, static_cast<std::uint32_t>(n)};
  ring.commit(1);
}

/// The host side of one MSADC board: walks its messages, puts each
/// particle's summaries into the builder's ring, sends the completion's
/// requests and hands the answers back. Makes the spill markers of a lost
/// board itself, so the builder goes on without it.
class BoardSourceThread final : public drivers::ReadoutSink, public links::BufferSink {
 public:
  BoardSourceThread(std::uint32_t source, links::BoardLink& link, eb::FragmentRing& fragments, SourceChannels& channels,
                    eb::SpillClock& clock, SpillTimes& times, std::chrono::nanoseconds request_timeout)
      : link_(link),
        fragments_(fragments),
        channels_(channels),
        clock_(clock),
        times_(times),
        host_(drivers::ReadoutHostParameters{.source_id = source,
                                             .requests_per_message = 64,
                                             .max_in_flight = 4096,
                                             .timeout_ns = static_cast<std::uint64_t>(request_timeout.count()),
                                             .errors_kept = 16}),
        request_words_(ro::event_requests_words(64)) {}

  /// Until `done` (the completion has ended, so no request will come) or `abort`.
  void run(const std::stop_token& abort, const std::stop_token& done) {
    abort_ = abort;
    while (!abort.stop_requested()) {
      pump_requests();
      (void)link_.poll(kPollWait, *this);
      host_.expire(steady_ns(), *this);
      follow_lost();
      if (!run_end_sent_ && !spill_open_ && clock_.over_after(last_ended_)) {
        run_end_sent_ = marker(eb::RecordKind::RunEnd, 0, 0);
      }
      if (run_end_sent_ && done.stop_requested()) return;
    }
  }

  [[nodiscard]] const drivers::ReadoutHost& host() const noexcept { return host_; }

  /// After the run: what did not fit the protocol, on stderr with the first
  /// errors and where (nothing when all was well).
  void report(std::uint32_t source) const {
    const drivers::HostCounts& c = host_.counts();
    if (c.decode_errors + c.framing_errors + c.unexpected_answers + c.wrong_source + outside_spill_ == 0) return;
    fmt::print(stderr,
               "na64daq: source {}: {} corrupt messages, {} unframed buffers, {} answers matching no request, "
               "{} messages of another source, {} particles outside a spill\n",
               source, c.decode_errors, c.framing_errors, c.unexpected_answers, c.wrong_source, outside_spill_);
    for (const drivers::HostDecodeError& e : host_.errors()) fmt::print(stderr, "  {}\n", e.message());
  }

 private:
  // --- links::BufferSink ---
  void on_buffer(std::span<const std::uint32_t> words, std::uint64_t time_ns) override {
    buffer_time_s_ = static_cast<std::uint32_t>(time_ns / 1'000'000'000u);
    (void)host_.consume(words, *this);
    flush();
  }

  // --- drivers::ReadoutSink ---
  bool on_particle(const ro::ParticleSummary& p) override {
    if (!spill_open_ || p.spill != open_spill_) {
      ++outside_spill_;
      return false;
    }
    if (fragments_.writable(filled_ + 1) <= filled_) {
      flush();
      const auto t = Clock::now();
      if (!wait_writable(fragments_, 1, abort_)) return false;
      link_.add_busy(Clock::now() - t);
    }
    auto words = fragments_.write_words(filled_);
    const std::size_t n = std::min(p.summaries.size(), words.size() - trigger::kSummaryHeadWords);
    words[0] = p.time_ticks;
    words[1] = p.not_buffered ? trigger::kSummaryNotBuffered : 0u;
    std::memcpy(words.data() + trigger::kSummaryHeadWords, p.summaries.data(), n * 4);
    fragments_.write_desc(filled_) = eb::FragmentDesc{eb::RecordKind::Data, p.spill, p.particle,
                                                      static_cast<std::uint32_t>(trigger::kSummaryHeadWords + n)};
    last_particle_ = p.particle;
    if (++filled_ == kFragmentBatch) flush();
    return false;  // the trigger, which sees every board, decides
  }
  void on_spill_begin(const ro::SpillBegin& m) override {
    if (spill_open_ && m.spill == open_spill_) return;  // begun already, while the board was lost
    if (spill_open_) end_spill(last_particle_);
    times_.set_if_unset(m.spill, buffer_time_s_);
    begin_spill(m.spill, false);
  }
  void on_spill_end(const ro::SpillEnd& m) override {
    if (!spill_open_ || m.spill != open_spill_) return;
    end_spill(m.counters.particles);
  }
  void on_event(const ro::EventAnswer& a) override {
    put_answer(channels_.answers, a.ref.spill, a.ref.particle, fw::MissingReason::None, a.block, abort_);
  }
  void on_lost(const ro::EventRef& ref, drivers::RequestOutcome outcome) override {
    put_answer(channels_.answers, ref.spill, ref.particle,
               link_.lost() ? fw::MissingReason::LostSource : reason_of(outcome), {}, abort_);
  }

  void flush() {
    if (filled_ == 0) return;
    fragments_.commit(filled_);
    filled_ = 0;
  }
  bool marker(eb::RecordKind kind, std::uint32_t spill, std::uint32_t count) {
    flush();
    if (!wait_writable(fragments_, 1, abort_)) return false;
    fragments_.write_desc(0) = eb::FragmentDesc{kind, spill, count, 0};
    fragments_.commit(1);
    return true;
  }
  void begin_spill(std::uint32_t spill, bool synthesized) {
    (void)marker(eb::RecordKind::SpillBegin, spill, 0);
    spill_open_ = true;
    synthesized_ = synthesized;
    open_spill_ = spill;
    last_particle_ = 0;
  }
  void end_spill(std::uint32_t particles) {
    (void)marker(eb::RecordKind::SpillEnd, open_spill_, particles);
    spill_open_ = false;
    last_ended_ = open_spill_;
  }

  void pump_requests() {
    RequestRing& in = channels_.requests;
    const std::size_t n = in.readable(64);
    for (std::size_t k = 0; k < n; ++k) {
      const RequestRef r = in.read_slot(k);
      if (link_.lost()) {
        put_answer(channels_.answers, r.spill, r.particle, fw::MissingReason::LostSource, {}, abort_);
      } else if (!host_.request(r.spill, r.particle)) {
        put_answer(channels_.answers, r.spill, r.particle, fw::MissingReason::Refused, {}, abort_);
      }
    }
    in.consume(n);
    // A message the link could not take yet (all its transfers busy) goes
    // first; its requests keep the time they were taken.
    for (;;) {
      if (unsent_words_ == 0) unsent_words_ = host_.take_requests(request_words_, steady_ns());
      if (unsent_words_ == 0) return;
      if (!link_.send(std::span<const std::uint32_t>(request_words_.data(), unsent_words_))) return;
      unsent_words_ = 0;
    }
  }

  // A lost board sends no spill markers: they are made here, following the
  // beam's spills, so that the builder releases the other sources' events
  // (without this board's, as lost: it is silent past the builder timeout).
  void follow_lost() {
    const bool lost = link_.lost();
    if (!lost && !synthesized_) return;
    if (lost && Clock::now() >= next_retry_) {
      link_.retry();  // a board that came back is taken back, at the latest for the next spill
      next_retry_ = Clock::now() + kRetryPeriod;
    }
    if (lost && spill_open_ && !synthesized_) {
      synthesized_ = true;  // unplugged mid-spill: its end is made here too
      return;
    }
    const std::uint32_t announced = clock_.announced();
    if (spill_open_ && synthesized_ && (announced > open_spill_ || clock_.over_after(open_spill_))) {
      end_spill(last_particle_);
      synthesized_ = false;
      return;
    }
    if (!spill_open_ && lost && announced > last_ended_) {
      times_.set_if_unset(last_ended_ + 1, unix_now());
      begin_spill(last_ended_ + 1, true);
    }
  }

  links::BoardLink& link_;
  eb::FragmentRing& fragments_;
  SourceChannels& channels_;
  eb::SpillClock& clock_;
  SpillTimes& times_;
  drivers::ReadoutHost host_;
  std::vector<std::uint32_t> request_words_;
  std::size_t unsent_words_ = 0;
  std::stop_token abort_;
  std::size_t filled_ = 0;
  std::uint32_t buffer_time_s_ = 0;
  bool spill_open_ = false;
  bool synthesized_ = false;
  bool run_end_sent_ = false;
  std::uint32_t open_spill_ = 0;
  std::uint32_t last_ended_ = 0;
  std::uint32_t last_particle_ = 0;
  std::uint64_t outside_spill_ = 0;
  Clock::time_point next_retry_{};
};

/// The host side of one tracker front-end: gates it with the beam's
/// spills, sends the completion's requests and hands the answers back.
class TrackerSourceThread final : public links::TrackerSink {
 public:
  TrackerSourceThread(links::TrackerPort& port, SourceChannels& channels, const eb::SpillClock& clock,
                      std::uint32_t particles_per_spill)
      : port_(port), channels_(channels), clock_(clock), particles_(particles_per_spill) {}

  void run(const std::stop_token& abort, const std::stop_token& done) {
    abort_ = abort;
    while (!abort.stop_requested() && !done.stop_requested()) {
      const std::uint32_t announced = clock_.announced();
      if (announced > gated_) {
        if (gated_ != 0) port_.gate(gated_, false, particles_);
        gated_ = announced;
        port_.gate(gated_, true, particles_);
      }
      RequestRing& in = channels_.requests;
      const std::size_t n = in.readable(64);
      for (std::size_t k = 0; k < n; ++k) {
        const RequestRef r = in.read_slot(k);
        if (!port_.request(r.spill, r.particle)) {
          put_answer(channels_.answers, r.spill, r.particle, fw::MissingReason::Refused, {}, abort_);
        }
      }
      in.consume(n);
      port_.poll(kPollWait, *this);
    }
  }

 private:
  void on_answer(std::uint32_t spill, std::uint32_t particle, links::TrackerOutcome outcome,
                 std::span<const std::uint32_t> block) override {
    put_answer(channels_.answers, spill, particle, reason_of(outcome), block, abort_);
  }

  links::TrackerPort& port_;
  SourceChannels& channels_;
  const eb::SpillClock& clock_;
  std::uint32_t particles_;
  std::uint32_t gated_ = 0;
  std::stop_token abort_;
};

/// Completes accepted events: asks every source for its data, gathers the
/// answers, and hands the events on in the order they were accepted, each
/// once all sources have answered or the completion timeout has passed.
class CompletionStage {
 public:
  CompletionStage(std::span<const SourceInfo> sources, std::vector<SourceChannels*> channels, AcceptedRing& in,
                  AcceptedRing& out, std::chrono::nanoseconds timeout)
      : sources_(sources.begin(), sources.end()), channels_(std::move(channels)), in_(in), out_(out), timeout_(timeout) {
    std::size_t offset = 0;
    for (const SourceInfo& s : sources_) {
      offsets_.push_back(offset);
      offset += s.max_words;
    }
    item_words_ = std::max(offset, kCounterWords);
    items_.resize(kCompletionWindow);
    storage_.resize(kCompletionWindow * item_words_);
    std::fill(storage_.begin(), storage_.end(), 0u);  // pre-fault
  }

  void run(const std::stop_token& abort) {
    eb::Backoff backoff;
    while (!abort.stop_requested()) {
      bool progress = take_accepted(abort);
      progress |= take_answers();
      const auto [released, run_end] = release(abort);
      if (run_end) return;
      progress |= released;
      if (progress) {
        backoff.reset();
      } else {
        backoff.pause();
      }
    }
  }

 private:
  struct Item {
    AcceptedDesc desc;
    Clock::time_point accepted_at{};
    std::uint32_t waiting = 0;  ///< source slots asked and not answered
    std::array<std::uint32_t, eb::kMaxSources> words{};
  };

  [[nodiscard]] std::size_t used() const noexcept { return tail_ - head_; }
  Item& item(std::size_t seq) noexcept { return items_[seq % items_.size()]; }
  std::span<std::uint32_t> data(std::size_t seq, std::size_t source) noexcept {
    return {storage_.data() + (seq % items_.size()) * item_words_ + offsets_[source], sources_[source].max_words};
  }

  bool take_accepted(const std::stop_token& abort) {
    const std::size_t avail = in_.readable(kStageBatch);
    std::size_t k = 0;
    for (; k < avail && used() < items_.size(); ++k) {
      const AcceptedDesc& d = in_.read_desc(k);
      const std::size_t seq = tail_++;
      Item& it = item(seq);
      it.desc = d;
      it.accepted_at = Clock::now();
      it.waiting = 0;
      it.words.fill(0);
      if (d.kind == eb::RecordKind::SpillEnd) {
        std::memcpy(storage_.data() + (seq % items_.size()) * item_words_, in_.read_words(k).data(),
                    kCounterWords * 4);
      }
      if (d.kind != eb::RecordKind::Data) continue;
      for (std::size_t s = 0; s < sources_.size(); ++s) {
        const bool board = sources_[s].msadc;
        if (board && ((d.present_mask >> s) & 1u) == 0) {
          // No summary from this board: nothing to ask it for.
          const bool lost = d.builder_reason == eb::IncompleteReason::SourceLost ||
                            d.builder_reason == eb::IncompleteReason::Timeout;
          it.desc.missing_mask |= 1u << s;
          it.desc.missing_reason[s] = lost ? fw::MissingReason::LostSource : fw::MissingReason::NoSummary;
          continue;
        }
        RequestRing& r = channels_[s]->requests;
        if (!wait_writable(r, 1, abort)) return true;
        r.write_slot(0) = RequestRef{d.spill, d.particle};
        r.commit(1);
        it.waiting |= 1u << s;
      }
    }
    in_.consume(k);
    return k != 0;
  }

  bool take_answers() {
    bool any = false;
    for (std::size_t s = 0; s < sources_.size(); ++s) {
      AnswerRing& ring = channels_[s]->answers;
      const std::size_t n = ring.readable(kStageBatch);
      for (std::size_t k = 0; k < n; ++k) {
        const AnswerDesc& a = ring.read_desc(k);
        std::size_t seq = head_;
        while (seq < tail_) {
          const Item& it = item(seq);
          if (it.desc.kind == eb::RecordKind::Data && it.desc.spill == a.spill && it.desc.particle == a.particle &&
              ((it.waiting >> s) & 1u) != 0) {
            break;
          }
          ++seq;
        }
        if (seq == tail_) {
          ++spill_.late_answers;  // its event was written already
          continue;
        }
        Item& it = item(seq);
        it.waiting &= ~(1u << s);
        if (a.missing == fw::MissingReason::None) {
          std::memcpy(data(seq, s).data(), ring.read_words(k).data(), std::size_t{a.n_words} * 4);
          it.words[s] = a.n_words;
        } else {
          fw::MissingReason why = a.missing;
          // A board that did not buffer the particle answers too late.
          if (why == fw::MissingReason::Late && ((it.desc.not_buffered >> s) & 1u) != 0) {
            why = fw::MissingReason::BufferOverflow;
          }
          it.desc.missing_mask |= 1u << s;
          it.desc.missing_reason[s] = why;
        }
      }
      ring.consume(n);
      any |= n != 0;
    }
    return any;
  }

  // Hands on the oldest items that are done; returns (any released, RunEnd released).
  std::pair<bool, bool> release(const std::stop_token& abort) {
    bool any = false;
    const auto now = Clock::now();
    while (head_ < tail_) {
      Item& it = item(head_);
      if (it.desc.kind == eb::RecordKind::Data && it.waiting != 0) {
        if (now - it.accepted_at < timeout_) break;
        for (std::size_t s = 0; s < sources_.size(); ++s) {
          if (((it.waiting >> s) & 1u) == 0) continue;
          it.desc.missing_mask |= 1u << s;
          it.desc.missing_reason[s] = fw::MissingReason::Late;
        }
        it.waiting = 0;
      }
      if (!wait_writable(out_, 1, abort)) return {any, false};
      const bool run_end = it.desc.kind == eb::RecordKind::RunEnd;
      emit(it, head_);
      ++head_;
      any = true;
      if (run_end) return {true, true};
    }
    return {any, false};
  }

  void emit(Item& it, std::size_t seq) {
    auto slot = out_.write_words(0);
    AcceptedDesc d = it.desc;
    switch (d.kind) {
      case eb::RecordKind::SpillEnd: {
        TriggerSpillCounters c;
        std::memcpy(static_cast<void*>(&c), storage_.data() + (seq % items_.size()) * item_words_, sizeof(c));
        spill_.silent_sources = asked_ & ~answered_ & ~spill_.lost_sources;
        c.completion = spill_;
        spill_ = CompletionCounters{};
        asked_ = 0;
        answered_ = 0;
        std::memcpy(slot.data(), &c, sizeof(c));
        break;
      }
      case eb::RecordKind::Data: {
        std::size_t pos = 0;
        for (std::size_t s = 0; s < sources_.size(); ++s) {
          if (((d.missing_mask >> s) & 1u) != 0) {
            if (d.missing_reason[s] == fw::MissingReason::LostSource) spill_.lost_sources |= 1u << s;
            if (d.missing_reason[s] != fw::MissingReason::NoSummary) asked_ |= 1u << s;
            continue;
          }
          asked_ |= 1u << s;
          answered_ |= 1u << s;
          const std::uint32_t n = it.words[s];
          slot[pos] = static_cast<std::uint32_t>(s);
          slot[pos + 1] = n;
          std::memcpy(slot.data() + pos + 2, data(seq, s).data(), std::size_t{n} * 4);
          pos += 2 + n;
        }
        d.n_words = static_cast<std::uint32_t>(pos);
        ++spill_.requested;  // counted as it leaves, so that it counts in its own spill
        if (d.missing_mask == 0) {
          ++spill_.completed;
        } else {
          ++spill_.incomplete;
          const auto first = static_cast<std::size_t>(std::countr_zero(d.missing_mask));
          ++spill_.by_reason[static_cast<std::size_t>(d.missing_reason[first])];
        }
        break;
      }
      case eb::RecordKind::SpillBegin:
      case eb::RecordKind::RunEnd:
        break;
    }
    out_.write_desc(0) = d;
    out_.commit(1);
  }

  std::vector<SourceInfo> sources_;
  std::vector<SourceChannels*> channels_;
  AcceptedRing& in_;
  AcceptedRing& out_;
  std::chrono::nanoseconds timeout_;
  std::vector<std::size_t> offsets_;
  std::size_t item_words_ = 0;
  std::vector<Item> items_;
  std::vector<std::uint32_t> storage_;
  std::size_t head_ = 0;
  std::size_t tail_ = 0;
  CompletionCounters spill_;
  std::uint32_t asked_ = 0;     ///< sources asked for an event of the spill
  std::uint32_t answered_ = 0;  ///< sources that answered one
};

}  // namespace

RunSummary run_two_level(const DaqConfig& given, const RunOptions& given_options,
                         const std::function<void(const SpillSummary&)>& on_spill, std::stop_token stop) {
  const auto t0 = Clock::now();
  // The DATE times come from the data (the run's start, each spill's
  // begin), so that a replay of the run writes the same bytes.
  RunOptions options = given_options;
  DaqConfig replayed;
  const bool replay = !given.readout.replay_dir.empty();
  if (replay) replayed = replay_config(given, options);
  if (options.start_time_s == 0) options.start_time_s = unix_now();
  const DaqConfig& config = replay ? replayed : given;
  RunSummary summary;
  summary.run = options.run;
  refuse_existing_run(options);

  std::unique_ptr<eb::SpillClock> own_clock;
  if (!options.clock) own_clock = make_spill_clock(config, options);
  eb::SpillClock& clock = options.clock ? *options.clock : *own_clock;
  std::stop_source abort;

  // The sources: links to the boards and ports to the tracker front-ends,
  // opened (and emulated ones started) before anything is written.
  Sources sources(config, options, clock, abort.get_token());
  const std::size_t n_boards = config.channel_map.sources().size();
  const std::size_t n_sources = sources.info().size();

  std::vector<std::unique_ptr<eb::FragmentRing>> fragment_rings;
  std::vector<eb::FragmentRing*> inputs;
  std::vector<std::unique_ptr<SourceChannels>> channels;
  std::unique_ptr<eb::BuiltRing> built;
  std::unique_ptr<AcceptedRing> accepted;
  std::unique_ptr<AcceptedRing> completed;
  std::size_t event_words = 0;
  try {
    for (std::size_t s = 0; s < n_sources; ++s) {
      const SourceInfo& info = sources.info()[s];
      if (info.msadc) {
        fragment_rings.push_back(std::make_unique<eb::FragmentRing>(config.ring_slots, info.max_summary_words));
        inputs.push_back(fragment_rings.back().get());
      }
      channels.push_back(std::make_unique<SourceChannels>(kRequestSlots, kAnswerSlots, info.max_words));
      event_words += 2 + info.max_words;
    }
    built = std::make_unique<eb::BuiltRing>(config.ring_slots, std::max(eb::built_slot_words(inputs), kCounterWords));
    accepted = std::make_unique<AcceptedRing>(std::max<std::size_t>(config.ring_slots / 4, 64), kCounterWords);
    completed = std::make_unique<AcceptedRing>(64, std::max(event_words, kCounterWords));
  } catch (const std::bad_alloc&) {
    throw RunError(fmt::format("cannot allocate the ring buffers for builder.ring_slots = {}", config.ring_slots));
  }
  eb::EventBuilder builder(inputs, *built, config.builder);
  ThresholdBoard own_thresholds(VersionedThresholds{0, config.thresholds});
  TriggerStage trigger_stage(config, options.thresholds ? *options.thresholds : own_thresholds, *built, *accepted,
                             true, options.dqm);
  std::vector<SourceChannels*> channel_ptrs;
  for (auto& c : channels) channel_ptrs.push_back(c.get());
  CompletionStage completion(sources.info(), channel_ptrs, *accepted, *completed,
                             config.readout.completion_timeout + std::chrono::milliseconds(100));

  ChunkWriter chunks(options.output, config.run.gdc_id, options.run, config.run.max_chunk_bytes);
  summary.map_file = map_file_name(options.run);
  write_file_once(options.output, summary.map_file, map_text(config, options.run));

  ReportQueue reports;
  SpillTimes times;
  std::vector<Equipment> equipment;
  for (const SourceInfo& s : sources.info()) equipment.push_back({s.source, s.msadc});
  WriterStage writer_stage(config, options, clock, std::move(equipment), times, *completed, chunks, reports);

  std::vector<std::unique_ptr<BoardSourceThread>> board_threads;
  std::vector<std::unique_ptr<TrackerSourceThread>> tracker_threads;
  for (std::size_t s = 0; s < n_sources; ++s) {
    if (s < n_boards) {
      board_threads.push_back(std::make_unique<BoardSourceThread>(sources.info()[s].source, sources.board(s),
                                                                  *fragment_rings[s], *channels[s], clock, times,
                                                                  config.readout.completion_timeout));
    } else {
      tracker_threads.push_back(std::make_unique<TrackerSourceThread>(sources.tracker(s), *channels[s], clock,
                                                                      config.beam.particles_per_spill));
    }
  }

  std::stop_source end_spills;
  std::stop_source completion_done;
  const std::stop_callback on_stop(stop, [&] { end_spills.request_stop(); });
  const std::stop_callback on_abort(abort.get_token(), [&] { end_spills.request_stop(); });
  {
    std::vector<std::jthread> threads;
    struct AbortOnExit {
      std::stop_source& abort;
      ~AbortOnExit() { abort.request_stop(); }
    } abort_on_exit{abort};
    sources.start(abort.get_token());
    for (auto& t : board_threads) {
      threads.emplace_back([&, p = t.get()] { p->run(abort.get_token(), completion_done.get_token()); });
    }
    for (auto& t : tracker_threads) {
      threads.emplace_back([&, p = t.get()] { p->run(abort.get_token(), completion_done.get_token()); });
    }
    threads.emplace_back([&] { drive_spills(clock, config.run.spill_cycle_s, end_spills.get_token()); });
    threads.emplace_back([&] { builder.run(abort.get_token()); });
    threads.emplace_back([&] { trigger_stage.run(abort.get_token()); });
    threads.emplace_back([&] {
      completion.run(abort.get_token());
      completion_done.request_stop();
    });
    threads.emplace_back([&] { writer_stage.run(abort.get_token()); });

    const std::string error = collect_reports(reports, summary, on_spill);
    abort.request_stop();
    threads.clear();
    sources.stop();
    for (std::size_t b = 0; b < board_threads.size(); ++b) board_threads[b]->report(sources.info()[b].source);
    sources.finish_recordings();
    if (!error.empty()) throw RunError(fmt::format("run {}: {}", options.run, error));
  }
  finish_run(summary, options, builder.totals(), chunks, t0);
  return summary;
}

}  // namespace na64::daq::chain
