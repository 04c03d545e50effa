// What a group call of the native kernels shares, whoever calls it: the
// per-variable rules (tensors, scalars, flags -> the update of
// update_kernels.h) and the tasks that spread many variables' blocks over
// threads. Used by the XLA custom calls (xla_calls.cc, XLA's thread pool) and
// the host calls (host_calls.cc, for torch; its own threads).

#ifndef KERAS_ADAMW_KERNELS_GROUP_RULES_H_
#define KERAS_ADAMW_KERNELS_GROUP_RULES_H_

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <vector>

#include "update_kernels.h"

namespace keras_adamw {

// Elements per task of the thread pool, from about 2.5e5 cycles of work.
constexpr int64_t kCyclesPerTask = 1 << 18;

// The decay and momentum flags of a call.
struct Flags {
  bool sign, linear, nesterov;
};

// A range of one variable's update, recorded to run with the others.
struct Job {
  int64_t size, cycles;
  Range work;
};

// The tasks of a call (blocks of its jobs), taken by the calling thread and the
// pool's threads alike. The caller waits only for tasks another thread has
// already taken, so a pool busy with other work cannot deadlock it; a thread
// that starts after the work is done finds nothing to take (it shares this
// state, not the caller's stack).
class Tasks {
 public:
  explicit Tasks(const std::vector<Job>& jobs) {
    for (const Job& job : jobs) {
      const int64_t block = std::max<int64_t>(1, kCyclesPerTask / job.cycles);
      for (int64_t begin = 0; begin < job.size; begin += block) {
        tasks_.push_back({job.work, begin, std::min(job.size, begin + block)});
      }
    }
  }

  int64_t count() const { return static_cast<int64_t>(tasks_.size()); }

  void Run() {
    for (int64_t i = next_.fetch_add(1); i < count(); i = next_.fetch_add(1)) {
      tasks_[i].work(tasks_[i].begin, tasks_[i].end);
      std::lock_guard<std::mutex> lock(mutex_);
      if (++done_ == count()) finished_.notify_all();
    }
  }

  void Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    finished_.wait(lock, [this] { return done_ == count(); });
  }

 private:
  struct Task {
    Range work;
    int64_t begin, end;
  };
  std::vector<Task> tasks_;
  std::atomic<int64_t> next_{0};
  std::mutex mutex_;
  std::condition_variable finished_;
  int64_t done_ = 0;
};

// The per-variable kernels of update_kernels.h, by rule: `kUpdated` tensors
// (variable, then slots) and `Scalars::kCount` scalars per variable.
template <bool kAmsgrad>
struct AdamWRule {
  static constexpr int kUpdated = kAmsgrad ? 4 : 3;
  static constexpr const char* kNames[] = {"var", "m", "v", "vhat"};
  template <typename T>
  using Scalars = AdamWScalars<T>;
  template <typename T>
  static void Apply(const ParallelFor& run, T* const* t, const T* g, int64_t size,
                    const T* s, const Flags& flags) {
    AdamW<T>(run, t[0], t[1], t[2], kAmsgrad ? t[3] : nullptr, g, size, Scalars<T>::From(s),
             flags.sign, flags.linear);
  }
};

struct NadamWRule {
  static constexpr int kUpdated = 3;
  static constexpr const char* kNames[] = {"var", "m", "v"};
  template <typename T>
  using Scalars = NadamWScalars<T>;
  template <typename T>
  static void Apply(const ParallelFor& run, T* const* t, const T* g, int64_t size,
                    const T* s, const Flags& flags) {
    NadamW<T>(run, t[0], t[1], t[2], g, size, Scalars<T>::From(s), flags.sign, flags.linear);
  }
};

template <bool kMomentum>
struct SgdWRule {
  static constexpr int kUpdated = kMomentum ? 2 : 1;
  static constexpr const char* kNames[] = {"var", "velocity"};
  template <typename T>
  using Scalars = SgdWScalars<T>;
  template <typename T>
  static void Apply(const ParallelFor& run, T* const* t, const T* g, int64_t size,
                    const T* s, const Flags& flags) {
    SgdW<T>(run, t[0], kMomentum ? t[1] : nullptr, g, size, Scalars<T>::From(s),
            flags.nesterov, flags.sign, flags.linear);
  }
};

}  // namespace keras_adamw

#endif  // KERAS_ADAMW_KERNELS_GROUP_RULES_H_
