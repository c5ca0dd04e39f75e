// SPDX-License-Identifier: Apache-2.0
// A bounded single-producer/single-consumer ring of slots, used in place and
// published in batches.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <stdexcept>
#include <type_traits>

namespace na64::eventbuilder {

// Fixed rather than std::hardware_destructive_interference_size, whose value
// may change with compiler flags and so break the layout across libraries.
inline constexpr std::size_t kCacheLine = 64;

/// Fixed-capacity SPSC ring. The producer fills slots in place
/// (`write_slot(k)` for k < writable()) and publishes them with `commit(n)`;
/// the consumer reads `read_slot(k)` for k < readable() and frees them with
/// `consume(n)`. Publishing once per batch is what makes it fast: one release
/// store and one cache-line transfer per batch, not per item.
///
/// Indices are 64-bit and never wrap in practice (2^64 items); a slot's
/// position is index & mask, and position() exposes it so callers can keep
/// parallel arrays (payload arenas) indexed the same way.
///
/// Thread safety: exactly one producer thread calls writable/write_slot/
/// write_position/commit, exactly one consumer thread calls readable/
/// read_slot/read_position/consume. capacity() is safe from any thread.
template <class T>
class SpscRing {
  static_assert(std::is_trivially_copyable_v<T>, "slots are reused in place without destruction");

 public:
  /// Capacity is rounded up to a power of two (minimum 2). All memory is
  /// allocated and touched here, never after.
  explicit SpscRing(std::size_t capacity) {
    std::size_t c = 2;
    while (c < capacity) c *= 2;
    if (c > (std::size_t{1} << 40)) throw std::invalid_argument("SpscRing: capacity too large");
    mask_ = c - 1;
    slots_ = std::make_unique<T[]>(c);
  }

  SpscRing(const SpscRing&) = delete;
  SpscRing& operator=(const SpscRing&) = delete;

  [[nodiscard]] std::size_t capacity() const noexcept { return mask_ + 1; }

  // ---- producer side ----

  /// Free slots the producer may fill now: at least `want` if the consumer
  /// has freed that many. Reads the consumer's index only when the cached
  /// copy shows fewer than `want` free slots, so the count may be lower than
  /// the true one, never higher.
  [[nodiscard]] std::size_t writable(std::size_t want = 1) noexcept {
    const std::uint64_t w = write_.value.load(std::memory_order_relaxed);
    if (capacity() - (w - read_cache_) < want) {
      // Acquire pairs with the release in consume(): the consumer is done
      // reading the slots it freed before we overwrite them.
      read_cache_ = read_.value.load(std::memory_order_acquire);
    }
    return capacity() - static_cast<std::size_t>(w - read_cache_);
  }
  /// Precondition: k < a count writable() returned.
  [[nodiscard]] T& write_slot(std::size_t k) noexcept { return slots_[write_position(k)]; }
  [[nodiscard]] std::size_t write_position(std::size_t k) const noexcept {
    return static_cast<std::size_t>(write_.value.load(std::memory_order_relaxed) + k) & mask_;
  }
  /// Publishes the next n filled slots. Precondition: n <= writable().
  void commit(std::size_t n) noexcept {
    // Release pairs with the acquire in readable(): slot contents written
    // before this store are visible to the consumer that sees the index.
    write_.value.store(write_.value.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }

  // ---- consumer side ----

  /// Published slots the consumer may read now: at least `want` if the
  /// producer has published that many. Reads the producer's index only when
  /// the cached copy shows fewer than `want`; the count may be lower than
  /// the true one, never higher.
  [[nodiscard]] std::size_t readable(std::size_t want = 1) noexcept {
    const std::uint64_t r = read_.value.load(std::memory_order_relaxed);
    if (write_cache_ - r < want) {
      // Acquire pairs with the release in commit().
      write_cache_ = write_.value.load(std::memory_order_acquire);
    }
    return static_cast<std::size_t>(write_cache_ - r);
  }
  /// Precondition: k < readable().
  [[nodiscard]] const T& read_slot(std::size_t k) const noexcept { return slots_[read_position(k)]; }
  [[nodiscard]] std::size_t read_position(std::size_t k) const noexcept {
    return static_cast<std::size_t>(read_.value.load(std::memory_order_relaxed) + k) & mask_;
  }
  /// Frees the next n slots. Precondition: n <= readable().
  void consume(std::size_t n) noexcept {
    // Release pairs with the acquire in writable().
    read_.value.store(read_.value.load(std::memory_order_relaxed) + n, std::memory_order_release);
  }

 private:
  struct alignas(kCacheLine) Index {
    std::atomic<std::uint64_t> value{0};
  };
  static_assert(sizeof(Index) == kCacheLine, "each index owns a cache line");
  static_assert(std::atomic<std::uint64_t>::is_always_lock_free);

  std::size_t mask_ = 0;
  std::unique_ptr<T[]> slots_;
  Index write_;  ///< written by the producer
  alignas(kCacheLine) std::uint64_t read_cache_ = 0;  ///< producer's copy of read_
  Index read_;   ///< written by the consumer
  alignas(kCacheLine) std::uint64_t write_cache_ = 0; ///< consumer's copy of write_
};

}  // namespace na64::eventbuilder
