// TensorFlow CPU ops for keras_adamw: the update rule and the decoupled weight
// decay in one read and one write of every tensor (update_kernels.h).
//
// TensorFlow's fused training ops (ResourceApplyAdam, ResourceApplyKerasMomentum)
// cannot apply a decoupled decay; a separate decay pass reads and writes theta
// once more (36 instead of 28 bytes per float32 parameter for Adam), and no
// fused op expresses Nadam. KerasAdamwApplyAdamw, KerasAdamwApplyNadamw and
// KerasAdamwApplySgdw update resource variables in place, locked in address
// order, copy-on-write as TensorFlow's own training ops.
//
// Built at first use by keras_adamw/kernels/tf_native.py against the installed
// TensorFlow; CPU only, float32 and float64.

#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"
#include "group_rules.h"
#include "update_kernels.h"

namespace tensorflow {
namespace {

using keras_adamw::AdamW;
using keras_adamw::AdamWScalars;
using keras_adamw::NadamW;
using keras_adamw::NadamWScalars;
using keras_adamw::ParallelFor;
using keras_adamw::Range;
using keras_adamw::SgdW;
using keras_adamw::SgdWScalars;

Status ScalarShape(shape_inference::InferenceContext* c) {
  return OkStatus();
}

// The scalar inputs AdamW and NadamW share, in the order of AdamWScalars
// (update_kernels.h): written once, so the two ops cannot drift apart.
#define KERAS_ADAMW_ADAMW_SCALAR_INPUTS \
  .Input("neg_step: T")                 \
  .Input("beta_1: T")                   \
  .Input("one_minus_beta_1: T")         \
  .Input("beta_2: T")                   \
  .Input("one_minus_beta_2: T")         \
  .Input("epsilon: T")                  \
  .Input("c_sign: T")                   \
  .Input("c_linear: T")

REGISTER_OP("KerasAdamwApplyAdamw")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("vhat: num_vhat * resource")
    .Input("grad: T")
    KERAS_ADAMW_ADAMW_SCALAR_INPUTS
    .Attr("T: {float, double}")
    .Attr("num_vhat: int >= 0 = 0")
    .Attr("decay_sign: bool = false")
    .Attr("decay_linear: bool = false")
    .SetShapeFn(ScalarShape)
    .Doc("AdamW (amsgrad with one vhat) and decoupled decay in one pass.");

REGISTER_OP("KerasAdamwApplyNadamw")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("grad: T")
    KERAS_ADAMW_ADAMW_SCALAR_INPUTS
    .Input("grad_weight: T")
    .Input("momentum_weight: T")
    .Input("v_correction: T")
    .Attr("T: {float, double}")
    .Attr("decay_sign: bool = false")
    .Attr("decay_linear: bool = false")
    .SetShapeFn(ScalarShape)
    .Doc("NadamW (Dozat's schedule) and decoupled decay in one pass.");

#undef KERAS_ADAMW_ADAMW_SCALAR_INPUTS

REGISTER_OP("KerasAdamwApplySgdw")
    .Input("var: resource")
    .Input("velocity: num_velocity * resource")
    .Input("grad: T")
    .Input("lr: T")
    .Input("momentum: T")
    .Input("c_sign: T")
    .Input("c_linear: T")
    .Attr("T: {float, double}")
    .Attr("num_velocity: int >= 0 = 0")
    .Attr("nesterov: bool = false")
    .Attr("decay_sign: bool = false")
    .Attr("decay_linear: bool = false")
    .SetShapeFn(ScalarShape)
    .Doc("Keras-convention momentum SGD and decoupled decay in one pass.");

REGISTER_OP("KerasAdamwApplyGroup")
    .Input("tensors: num_tensors * resource")
    .Input("grads: num_variables * T")
    .Input("scalars: T")
    .Attr("T: {float, double}")
    .Attr("num_tensors: int >= 1")
    .Attr("num_variables: int >= 1")
    .Attr("rule: {'adamw', 'amsgrad', 'nadamw', 'sgdw', 'momentum'}")
    .Attr("decay_sign: bool = false")
    .Attr("decay_linear: bool = false")
    .Attr("nesterov: bool = false")
    .SetShapeFn(ScalarShape)
    .Doc("Many variables of one rule in one op: per variable its tensors (variable, "
         "then slots) in `tensors`, its gradient, its row of the [variables, count] "
         "`scalars`; their blocks run on the thread pool together.");

// The variables behind the resource inputs, locked for the update (in address
// order, as TensorFlow's training ops do, so concurrent updates cannot deadlock).
class LockedVariables {
 public:
  Status Acquire(OpKernelContext* ctx, const std::vector<int>& inputs) {
    for (int index : inputs) {
      core::RefCountPtr<Var> var;
      TF_RETURN_IF_ERROR(LookupResource(ctx, HandleFromInput(ctx, index), &var));
      vars_.push_back(var.release());
    }
    std::vector<Var*> order(vars_);
    std::sort(order.begin(), order.end());
    order.erase(std::unique(order.begin(), order.end()), order.end());
    if (order.size() != vars_.size()) {
      return errors::InvalidArgument("keras_adamw: a variable and its slots must be "
                                     "distinct variables");
    }
    for (Var* var : order) {
      var->mu()->lock();
      locked_.push_back(var);
    }
    return OkStatus();
  }

  // Acquire, then `Writable` for each: the tensors to update in place.
  // `names[i]` names input `inputs[i]` in errors.
  Status AcquireWritable(OpKernelContext* ctx, const std::vector<int>& inputs,
                         const char* const* names, const Tensor& grad,
                         std::vector<Tensor*>* tensors) {
    TF_RETURN_IF_ERROR(Acquire(ctx, inputs));
    tensors->resize(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      TF_RETURN_IF_ERROR(
          Writable(ctx, i, names[i], grad.dtype(), grad.shape(), &(*tensors)[i]));
    }
    return OkStatus();
  }

  ~LockedVariables() {
    for (auto it = locked_.rbegin(); it != locked_.rend(); ++it) (*it)->mu()->unlock();
    for (Var* var : vars_) var->Unref();
  }

  // The variable's tensor, made safe to write in place: a buffer shared with a
  // read (or any buffer in copy-on-read mode) is copied first, as TensorFlow's
  // PrepareToUpdateVariable does.
  Status Writable(OpKernelContext* ctx, int i, const char* name, DataType dtype,
                  const TensorShape& shape, Tensor** out) {
    Var* var = vars_[i];
    Tensor* tensor = var->tensor();
    if (!var->is_initialized) {
      return errors::FailedPrecondition("keras_adamw: `", name, "` is not initialized");
    }
    if (tensor->dtype() != dtype || tensor->shape() != shape) {
      return errors::InvalidArgument(
          "keras_adamw: `", name, "` has dtype ", DataTypeString(tensor->dtype()),
          " and shape ", tensor->shape().DebugString(), ", the gradient ",
          DataTypeString(dtype), " and ", shape.DebugString(),
          ": a variable, its slots and its gradient must match");
    }
    if (var->copy_on_read_mode.load() || !tensor->RefCountIsOne()) {
      Tensor copy;
      AllocatorAttributes attr;
      TF_RETURN_IF_ERROR(ctx->allocate_temp(dtype, shape, &copy, attr));
      std::memcpy(copy.data(), tensor->data(), tensor->TotalBytes());
      *tensor = copy;
    }
    *out = tensor;
    return OkStatus();
  }

 private:
  std::vector<Var*> vars_;
  std::vector<Var*> locked_;
};

// The op's scalar inputs from `first` on, in order.
template <typename Scalars, typename T>
Scalars ScalarInputs(OpKernelContext* ctx, int first) {
  T values[Scalars::kCount];
  for (int i = 0; i < Scalars::kCount; ++i) values[i] = ctx->input(first + i).scalar<T>()();
  return Scalars::From(values);
}

// TensorFlow's CPU thread pool, which runs a range inline below about 1e5
// cycles in all (as TensorFlow's fused ops decide).
ParallelFor ThreadPool(OpKernelContext* ctx) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  return [workers](int64_t size, int64_t cycles, const Range& work) {
    workers->ParallelFor(size, cycles, work);
  };
}

// An update op: the variables at `Inputs()` locked and writable, then `Update`.
class UpdateOp : public OpKernel {
 public:
  explicit UpdateOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay_sign", &decay_sign_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay_linear", &decay_linear_));
  }

  void Compute(OpKernelContext* ctx) override {
    const std::vector<int> inputs = Inputs();
    const Tensor& grad = ctx->input(inputs.size());  // after the resources
    LockedVariables locked;
    std::vector<Tensor*> vars;
    OP_REQUIRES_OK(ctx, locked.AcquireWritable(ctx, inputs, Names(), grad, &vars));
    Update(ctx, vars, grad, inputs.size() + 1);
  }

 protected:
  // The resource inputs to update (variable first), and their names in errors.
  virtual std::vector<int> Inputs() const = 0;
  virtual const char* const* Names() const = 0;
  // The update, with the scalar inputs from `first_scalar` on.
  virtual void Update(OpKernelContext* ctx, const std::vector<Tensor*>& vars,
                      const Tensor& grad, int first_scalar) = 0;

  bool decay_sign_, decay_linear_;
};

// An optional slot (`num_<slot>` resources, 0 or 1).
int OptionalSlot(OpKernelConstruction* ctx, const char* attr) {
  int count = 0;
  Status status = ctx->GetAttr(attr, &count);
  if (status.ok() && count > 1) {
    status = errors::InvalidArgument("keras_adamw: ", attr, " is 0 or 1, got ", count);
  }
  if (!status.ok()) ctx->SetStatus(status);
  return count;
}

template <typename T>
T* Data(Tensor* tensor) {
  return tensor->flat<T>().data();
}

template <typename T>
class AdamWOp : public UpdateOp {
 public:
  explicit AdamWOp(OpKernelConstruction* ctx)
      : UpdateOp(ctx), amsgrad_(OptionalSlot(ctx, "num_vhat")) {}

 protected:
  std::vector<int> Inputs() const override {
    return amsgrad_ ? std::vector<int>{0, 1, 2, 3} : std::vector<int>{0, 1, 2};
  }
  const char* const* Names() const override {
    static const char* const kNames[] = {"var", "m", "v", "vhat"};
    return kNames;
  }
  void Update(OpKernelContext* ctx, const std::vector<Tensor*>& vars, const Tensor& grad,
              int first_scalar) override {
    AdamW<T>(ThreadPool(ctx), Data<T>(vars[0]), Data<T>(vars[1]), Data<T>(vars[2]),
             amsgrad_ ? Data<T>(vars[3]) : nullptr, grad.flat<T>().data(), grad.NumElements(),
             ScalarInputs<AdamWScalars<T>, T>(ctx, first_scalar), decay_sign_, decay_linear_);
  }

 private:
  const int amsgrad_;
};

template <typename T>
class NadamWOp : public UpdateOp {
 public:
  using UpdateOp::UpdateOp;

 protected:
  std::vector<int> Inputs() const override { return {0, 1, 2}; }
  const char* const* Names() const override {
    static const char* const kNames[] = {"var", "m", "v"};
    return kNames;
  }
  void Update(OpKernelContext* ctx, const std::vector<Tensor*>& vars, const Tensor& grad,
              int first_scalar) override {
    NadamW<T>(ThreadPool(ctx), Data<T>(vars[0]), Data<T>(vars[1]), Data<T>(vars[2]),
              grad.flat<T>().data(), grad.NumElements(),
              ScalarInputs<NadamWScalars<T>, T>(ctx, first_scalar), decay_sign_,
              decay_linear_);
  }
};

template <typename T>
class SgdWOp : public UpdateOp {
 public:
  explicit SgdWOp(OpKernelConstruction* ctx)
      : UpdateOp(ctx), momentum_(OptionalSlot(ctx, "num_velocity")) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nesterov", &nesterov_));
  }

 protected:
  std::vector<int> Inputs() const override {
    return momentum_ ? std::vector<int>{0, 1} : std::vector<int>{0};
  }
  const char* const* Names() const override {
    static const char* const kNames[] = {"var", "velocity"};
    return kNames;
  }
  void Update(OpKernelContext* ctx, const std::vector<Tensor*>& vars, const Tensor& grad,
              int first_scalar) override {
    SgdW<T>(ThreadPool(ctx), Data<T>(vars[0]), momentum_ ? Data<T>(vars[1]) : nullptr,
            grad.flat<T>().data(), grad.NumElements(),
            ScalarInputs<SgdWScalars<T>, T>(ctx, first_scalar), nesterov_, decay_sign_,
            decay_linear_);
  }

 private:
  const int momentum_;
  bool nesterov_;
};

// Runs the blocks of `jobs` on the calling thread and TensorFlow's pool.
void RunJobs(OpKernelContext* ctx, const std::vector<keras_adamw::Job>& jobs) {
  auto* workers = ctx->device()->tensorflow_cpu_worker_threads()->workers;
  auto tasks = std::make_shared<keras_adamw::Tasks>(jobs);
  const int64_t helpers = std::min<int64_t>(workers->NumThreads(), tasks->count()) - 1;
  for (int64_t i = 0; i < helpers; ++i) workers->Schedule([tasks] { tasks->Run(); });
  tasks->Run();
  tasks->Wait();
}

// KerasAdamwApplyGroup for one rule (group_rules.h): the variables of many
// updates locked together (in address order), made writable, then updated.
template <typename Rule, typename T>
void ApplyGroup(OpKernelContext* ctx, const keras_adamw::Flags& flags) {
  constexpr int kUpdated = Rule::kUpdated;
  constexpr int kCount = Rule::template Scalars<T>::kCount;
  OpInputList grads;
  OP_REQUIRES_OK(ctx, ctx->input_list("grads", &grads));
  const int variables = grads.size();
  OP_REQUIRES(ctx, ctx->num_inputs() == variables * (kUpdated + 1) + 1,
              errors::InvalidArgument("keras_adamw: expected ", kUpdated,
                                      " tensors per gradient"));
  const Tensor& scalars = ctx->input(ctx->num_inputs() - 1);
  OP_REQUIRES(ctx, scalars.NumElements() == int64_t{variables} * kCount,
              errors::InvalidArgument("keras_adamw: expected ", kCount,
                                      " scalars per variable"));
  std::vector<int> inputs(variables * kUpdated);
  for (size_t i = 0; i < inputs.size(); ++i) inputs[i] = static_cast<int>(i);
  LockedVariables locked;
  OP_REQUIRES_OK(ctx, locked.Acquire(ctx, inputs));
  std::vector<keras_adamw::Job> jobs;
  const ParallelFor record = [&jobs](int64_t size, int64_t cycles, const Range& work) {
    jobs.push_back({size, cycles, work});
  };
  for (int k = 0; k < variables; ++k) {
    T* updated[kUpdated];
    for (int i = 0; i < kUpdated; ++i) {
      Tensor* tensor = nullptr;
      OP_REQUIRES_OK(ctx, locked.Writable(ctx, k * kUpdated + i, Rule::kNames[i],
                                          grads[k].dtype(), grads[k].shape(), &tensor));
      updated[i] = Data<T>(tensor);
    }
    Rule::template Apply<T>(record, updated, grads[k].flat<T>().data(), grads[k].NumElements(),
                            scalars.flat<T>().data() + int64_t{k} * kCount, flags);
  }
  RunJobs(ctx, jobs);
}

template <typename T>
class GroupOp : public OpKernel {
 public:
  explicit GroupOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("rule", &rule_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay_sign", &flags_.sign));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay_linear", &flags_.linear));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nesterov", &flags_.nesterov));
  }

  void Compute(OpKernelContext* ctx) override {
    using keras_adamw::AdamWRule;
    using keras_adamw::NadamWRule;
    using keras_adamw::SgdWRule;
    if (rule_ == "adamw") return ApplyGroup<AdamWRule<false>, T>(ctx, flags_);
    if (rule_ == "amsgrad") return ApplyGroup<AdamWRule<true>, T>(ctx, flags_);
    if (rule_ == "nadamw") return ApplyGroup<NadamWRule, T>(ctx, flags_);
    if (rule_ == "sgdw") return ApplyGroup<SgdWRule<false>, T>(ctx, flags_);
    ApplyGroup<SgdWRule<true>, T>(ctx, flags_);
  }

 private:
  std::string rule_;
  keras_adamw::Flags flags_;
};

#define REGISTER_KERNELS(T)                                                              \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("KerasAdamwApplyAdamw").Device(DEVICE_CPU).TypeConstraint<T>("T"), AdamWOp<T>);  \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("KerasAdamwApplyNadamw").Device(DEVICE_CPU).TypeConstraint<T>("T"),             \
      NadamWOp<T>);                                                                      \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("KerasAdamwApplySgdw").Device(DEVICE_CPU).TypeConstraint<T>("T"), SgdWOp<T>); \
  REGISTER_KERNEL_BUILDER(                                                               \
      Name("KerasAdamwApplyGroup").Device(DEVICE_CPU).TypeConstraint<T>("T"), GroupOp<T>);
REGISTER_KERNELS(float)
REGISTER_KERNELS(double)
#undef REGISTER_KERNELS

}  // namespace
}  // namespace tensorflow
