// The native kernels on plain host buffers, for a framework without an XLA or
// TensorFlow runtime to call them: keras_adamw/kernels/torch_native.py calls
// KerasAdamwHostGroup through ctypes with the data pointers of torch's CPU
// tensors (contiguous, float32 or float64), once per step and group.
//
// One call updates many variables in place, each by the rule of the call
// (update_kernels.h), with its own row of scalars and its own decay flags, so
// variables of different multipliers and decays share a call. The blocks of
// every variable are spread over `threads` threads (the caller and helpers
// started for the call): many small tensors cost one pass over their bytes,
// not a fork and join each. Built with -fopenmp and loaded into a process where
// torch has loaded its libgomp.so.1, the parallel region runs on torch's own
// OpenMP threads.

#include <cstdint>
#include <vector>

#include "group_rules.h"

namespace keras_adamw {
namespace {

// Runs the jobs' blocks on up to `threads` threads of the OpenMP pool.
void RunJobs(const std::vector<Job>& jobs, int threads) {
  Tasks tasks(jobs);
  const int team = static_cast<int>(std::min<int64_t>(threads, tasks.count()));
#pragma omp parallel num_threads(team) if (team > 1)
  tasks.Run();
}

// Records every variable's update: per variable, `Rule::kUpdated` tensors and
// its gradient in `tensors`, `sizes[k]` elements, `Scalars::kCount` scalars in
// row k of `scalars`, flags bit 0 sign decay, bit 1 linear decay, bit 2 Nesterov.
template <typename Rule, typename T>
void RecordAll(int64_t variables, void* const* tensors, const int64_t* sizes,
               const void* scalars, const uint8_t* flags, const ParallelFor& record) {
  constexpr int kPerVariable = Rule::kUpdated + 1;
  constexpr int kCount = Rule::template Scalars<T>::kCount;
  const T* rows = static_cast<const T*>(scalars);
  for (int64_t k = 0; k < variables; ++k) {
    T* updated[Rule::kUpdated];
    for (int i = 0; i < Rule::kUpdated; ++i) {
      updated[i] = static_cast<T*>(tensors[k * kPerVariable + i]);
    }
    const Flags variable_flags = {(flags[k] & 1) != 0, (flags[k] & 2) != 0,
                                  (flags[k] & 4) != 0};
    Rule::template Apply<T>(record, updated,
                            static_cast<const T*>(tensors[k * kPerVariable + Rule::kUpdated]),
                            sizes[k], rows + k * kCount, variable_flags);
  }
}

template <typename Rule>
void GroupCall(bool is_double, int64_t variables, void* const* tensors, const int64_t* sizes,
               const void* scalars, const uint8_t* flags, int threads) {
  std::vector<Job> jobs;
  const ParallelFor record = [&jobs](int64_t size, int64_t cycles, const Range& work) {
    jobs.push_back({size, cycles, work});
  };
  if (is_double) {
    RecordAll<Rule, double>(variables, tensors, sizes, scalars, flags, record);
  } else {
    RecordAll<Rule, float>(variables, tensors, sizes, scalars, flags, record);
  }
  RunJobs(jobs, threads);
}

}  // namespace
}  // namespace keras_adamw

// `rule`: 0 AdamW, 1 AdamW amsgrad, 2 NadamW, 3 SGDW, 4 SGDW with momentum (the
// order of RULES in torch_native.py). Returns 0, or 1 for an unknown rule.
extern "C" int KerasAdamwHostGroup(int rule, int is_double, int64_t variables,
                                   void* const* tensors, const int64_t* sizes,
                                   const void* scalars, const uint8_t* flags, int threads) {
  using namespace keras_adamw;
  switch (rule) {
    case 0: GroupCall<AdamWRule<false>>(is_double, variables, tensors, sizes, scalars, flags,
                                        threads); return 0;
    case 1: GroupCall<AdamWRule<true>>(is_double, variables, tensors, sizes, scalars, flags,
                                       threads); return 0;
    case 2: GroupCall<NadamWRule>(is_double, variables, tensors, sizes, scalars, flags,
                                  threads); return 0;
    case 3: GroupCall<SgdWRule<false>>(is_double, variables, tensors, sizes, scalars, flags,
                                       threads); return 0;
    case 4: GroupCall<SgdWRule<true>>(is_double, variables, tensors, sizes, scalars, flags,
                                      threads); return 0;
    default: return 1;
  }
}
