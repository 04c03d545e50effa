// XLA custom calls for keras_adamw (CPU): the updates of update_kernels.h inside
// a `jit_compile=True` TensorFlow function, and on JAX (built with
// -DKERAS_ADAMW_JAX against jaxlib's headers: keras_adamw/kernels/jax_calls.py).
//
// XLA compiles an update into element-wise loops, one per updated tensor (the
// second reading what the first wrote): 24 instead of 20 bytes per float32
// parameter for momentum SGD, 44 instead of 28 for Nadam, and it cannot fuse
// them on the CPU. These handlers do the whole update in one pass, in place:
// keras_adamw/kernels/tf_xla_calls.py emits them through TensorFlow's XlaCallModule
// with every updated tensor aliased to its output, registered with the XLA FFI
// of the TensorFlow that loads this library ("Host" platform); on JAX they are
// exported as C symbols and registered from Python.
//
// One call updates a group of variables (see GroupCall): per variable, the
// tensors to update and the gradient, then the per-step scalars of all of them
// as one [variables, count] matrix of their dtype (update_kernels.h orders
// them); attributes `decay_sign`, `decay_linear` and `nesterov` select the formula.

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "group_rules.h"
#include "xla/ffi/api/ffi.h"

#ifndef KERAS_ADAMW_JAX
extern "C" const XLA_FFI_Api* XLA_FFI_GetApi();  // TensorFlow's XLA runtime
#endif

namespace keras_adamw {
namespace {

namespace ffi = xla::ffi;

void RunJobs(ffi::ThreadPool* pool, const std::vector<Job>& jobs) {
  auto tasks = std::make_shared<Tasks>(jobs);
  const int64_t helpers = std::min<int64_t>(pool->num_threads(), tasks->count()) - 1;
  for (int64_t i = 0; i < helpers; ++i) {
    pool->Schedule([tasks] { tasks->Run(); });
  }
  tasks->Run();
  tasks->Wait();
}

// Calls `f(T{})` with T the element type (checked to be F32 or F64).
template <typename F>
void WithDtype(ffi::DataType dtype, F f) {
  if (dtype == ffi::DataType::F32) return f(float{});
  f(double{});
}

ffi::Error Invalid(const std::string& message) {
  return ffi::Error(ffi::ErrorCode::kInvalidArgument, "keras_adamw: " + message);
}

// Operand `index` as a buffer (the binding guarantees buffers; this checks the count).
ffi::ErrorOr<ffi::AnyBuffer> Operand(const ffi::RemainingArgs& args, size_t index) {
  return args.get<ffi::AnyBuffer>(index);
}

// Checks one variable's operands against its gradient; names the first mismatch.
ffi::Error CheckVariable(const ffi::AnyBuffer* tensors, const char* const* names, int count,
                         const ffi::AnyBuffer& grad, ffi::DataType dtype, size_t variable) {
  if (grad.element_type() != dtype) {
    return Invalid("the gradients of one call must share a dtype (variable " +
                   std::to_string(variable) + ")");
  }
  for (int i = 0; i < count; ++i) {
    if (tensors[i].element_type() != dtype ||
        tensors[i].element_count() != grad.element_count()) {
      return Invalid(std::string("`") + names[i] + "` of variable " + std::to_string(variable) +
                     " does not match its gradient's dtype and size");
    }
  }
  return ffi::Error::Success();
}

// Checks variable `k` of a call (see GroupCall) and passes the ranges of its
// update to `record`, to run with the other variables'.
template <typename Rule>
ffi::Error RecordVariable(const ffi::RemainingArgs& args, const ffi::RemainingRets& rets,
                          size_t k, const ffi::AnyBuffer& scalars, const Flags& flags,
                          const ParallelFor& record) {
  constexpr int kPerVariable = Rule::kUpdated + 1;
  constexpr int kCount = Rule::template Scalars<float>::kCount;
  const ffi::DataType dtype = scalars.element_type();
  std::vector<ffi::AnyBuffer> tensors;
  void* outputs[Rule::kUpdated];
  for (int i = 0; i < Rule::kUpdated; ++i) {
    auto operand = Operand(args, k * kPerVariable + i);
    auto result = rets.get<ffi::AnyBuffer>(k * Rule::kUpdated + i);
    if (operand.has_error()) return operand.error();
    if (result.has_error()) return result.error();
    tensors.push_back(*operand);
    outputs[i] = (*result)->untyped_data();
    if (outputs[i] != operand->untyped_data()) {
      // XLA aliases each result to its operand; should it not, start from the input.
      std::memcpy(outputs[i], operand->untyped_data(), operand->size_bytes());
    }
  }
  auto grad = Operand(args, k * kPerVariable + Rule::kUpdated);
  if (grad.has_error()) return grad.error();
  if (auto error = CheckVariable(tensors.data(), Rule::kNames, Rule::kUpdated, *grad, dtype, k);
      error.failure()) {
    return error;
  }
  WithDtype(dtype, [&](auto zero) {
    using T = decltype(zero);
    T* updated[Rule::kUpdated];
    for (int i = 0; i < Rule::kUpdated; ++i) updated[i] = static_cast<T*>(outputs[i]);
    Rule::template Apply<T>(record, updated, static_cast<const T*>(grad->untyped_data()),
                            grad->element_count(),
                            static_cast<const T*>(scalars.untyped_data()) + k * kCount, flags);
  });
  return ffi::Error::Success();
}

// One call updates many variables: operands are, per variable, its `kUpdated`
// tensors then its gradient, and last the scalars `[variables, kCount]`;
// results are the updated tensors in operand order, each aliased to its
// operand. Every variable's blocks go to the thread pool together, so many
// small variables use every thread (XLA runs its loops one by one).
template <typename Rule>
ffi::Error GroupCall(ffi::ThreadPool pool, ffi::RemainingArgs args, ffi::RemainingRets rets,
                     bool decay_sign, bool decay_linear, bool nesterov) {
  constexpr int kPerVariable = Rule::kUpdated + 1;
  if (args.size() < 1 || (args.size() - 1) % kPerVariable != 0 ||
      rets.size() != (args.size() - 1) / kPerVariable * Rule::kUpdated) {
    return Invalid("unexpected operand or result count");
  }
  const size_t variables = (args.size() - 1) / kPerVariable;
  auto scalars = Operand(args, args.size() - 1);
  if (scalars.has_error()) return scalars.error();
  if (variables == 0) return ffi::Error::Success();
  const ffi::DataType dtype = scalars->element_type();
  if (dtype != ffi::DataType::F32 && dtype != ffi::DataType::F64) {
    return Invalid("variables must be float32 or float64");
  }
  constexpr int kCount = Rule::template Scalars<float>::kCount;
  if (scalars->element_count() != static_cast<int64_t>(variables) * kCount) {
    return Invalid("expected " + std::to_string(kCount) + " scalars per variable");
  }
  std::vector<Job> jobs;
  const ParallelFor record = [&jobs](int64_t size, int64_t cycles, const Range& work) {
    jobs.push_back({size, cycles, work});
  };
  const Flags flags = {decay_sign, decay_linear, nesterov};
  for (size_t k = 0; k < variables; ++k) {
    if (auto error = RecordVariable<Rule>(args, rets, k, *scalars, flags, record);
        error.failure()) {
      return error;
    }
  }
  RunJobs(&pool, jobs);
  return ffi::Error::Success();
}

}  // namespace

#define KERAS_ADAMW_HANDLER(symbol, rule)                                         \
  XLA_FFI_DEFINE_HANDLER(symbol, GroupCall<rule>,                                 \
                         ffi::Ffi::Bind()                                         \
                             .Ctx<ffi::ThreadPool>()                              \
                             .RemainingArgs()                                     \
                             .RemainingRets()                                     \
                             .Attr<bool>("decay_sign")                            \
                             .Attr<bool>("decay_linear")                          \
                             .Attr<bool>("nesterov"))
KERAS_ADAMW_HANDLER(kAdamW, AdamWRule<false>);
KERAS_ADAMW_HANDLER(kAmsgrad, AdamWRule<true>);
KERAS_ADAMW_HANDLER(kNadamW, NadamWRule);
KERAS_ADAMW_HANDLER(kSgdW, SgdWRule<false>);
KERAS_ADAMW_HANDLER(kMomentum, SgdWRule<true>);
#undef KERAS_ADAMW_HANDLER

#ifdef KERAS_ADAMW_JAX
// For JAX: the handlers as C symbols, registered by keras_adamw/kernels/jax_calls.py.
extern "C" {
XLA_FFI_Handler* KerasAdamwAdamW() { return kAdamW; }
XLA_FFI_Handler* KerasAdamwAmsgrad() { return kAmsgrad; }
XLA_FFI_Handler* KerasAdamwNadamW() { return kNadamW; }
XLA_FFI_Handler* KerasAdamwSgdW() { return kSgdW; }
XLA_FFI_Handler* KerasAdamwMomentum() { return kMomentum; }
}
#else
// Names used by keras_adamw/kernels/tf_xla_calls.py.
XLA_FFI_REGISTER_HANDLER(XLA_FFI_GetApi(), "keras_adamw_adamw", "Host", kAdamW);
XLA_FFI_REGISTER_HANDLER(XLA_FFI_GetApi(), "keras_adamw_amsgrad", "Host", kAmsgrad);
XLA_FFI_REGISTER_HANDLER(XLA_FFI_GetApi(), "keras_adamw_nadamw", "Host", kNadamW);
XLA_FFI_REGISTER_HANDLER(XLA_FFI_GetApi(), "keras_adamw_sgdw", "Host", kSgdW);
XLA_FFI_REGISTER_HANDLER(XLA_FFI_GetApi(), "keras_adamw_momentum", "Host", kMomentum);
#endif

}  // namespace keras_adamw
