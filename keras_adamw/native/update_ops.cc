// Single-pass CPU kernels for keras_adamw: the update rule and the decoupled
// weight decay in one read and one write of every tensor.
//
// TensorFlow's fused training ops (ResourceApplyAdam, ResourceApplyKerasMomentum)
// cannot apply a decoupled decay; a separate decay pass reads and writes theta
// once more (36 instead of 28 bytes per float32 parameter for Adam). These ops
// take the per-step scalars computed once per step in Python
// (keras_adamw/core/rules.py, DESIGN.md section 4) and do, per element:
//
//   KerasAdamwApplyAdamw:  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//                     (amsgrad: vhat = max(vhat, v), used below)
//                     theta = theta - step m / (sqrt(v) + eps) - decay(theta)
//   KerasAdamwApplySgdw:   velocity = mu velocity - lr g
//                     theta = theta + velocity - decay(theta)
//                     (nesterov: + mu velocity - lr g; no velocity: - lr g)
//
// with decay(theta) = c_sign sign(theta) + c_linear theta from theta before
// the update. The arithmetic is written in the order of keras_adamw.tf_kernels
// (the XLA version of the same update), so both round alike.
//
// Built at first use by keras_adamw/native/__init__.py against the installed
// TensorFlow; CPU only, float32 and float64.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tensorflow/core/framework/op.h"
#include "tensorflow/core/framework/op_kernel.h"
#include "tensorflow/core/framework/resource_mgr.h"
#include "tensorflow/core/framework/resource_var.h"
#include "tensorflow/core/framework/shape_inference.h"

namespace tensorflow {
namespace {

// Estimated cycles per element (memory traffic mostly). The thread pool runs a
// range inline below about 1e5 cycles in all: a small variable is not worth a
// hand-off to another thread (a fused TensorFlow op decides the same way).
constexpr int64_t kAdamCycles = 10;
constexpr int64_t kSgdCycles = 5;

Status ScalarShape(shape_inference::InferenceContext* c) {
  return OkStatus();
}

REGISTER_OP("KerasAdamwApplyAdamw")
    .Input("var: resource")
    .Input("m: resource")
    .Input("v: resource")
    .Input("vhat: num_vhat * resource")
    .Input("grad: T")
    .Input("neg_step: T")
    .Input("beta_1: T")
    .Input("one_minus_beta_1: T")
    .Input("beta_2: T")
    .Input("one_minus_beta_2: T")
    .Input("epsilon: T")
    .Input("c_sign: T")
    .Input("c_linear: T")
    .Attr("T: {float, double}")
    .Attr("num_vhat: int >= 0 = 0")
    .Attr("decay_sign: bool = false")
    .Attr("decay_linear: bool = false")
    .SetShapeFn(ScalarShape)
    .Doc("AdamW (amsgrad with one vhat) and decoupled decay in one pass.");

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

template <typename T>
T Scalar(OpKernelContext* ctx, int index) {
  return ctx->input(index).scalar<T>()();
}

template <typename T>
inline T Sign(T x) {
  // Branch-free, so the loop vectorises; sign(NaN) is 0 here, but theta + delta
  // is NaN already.
  return T(x > T(0)) - T(x < T(0));
}

// theta + delta - (c_sign sign(theta) + c_linear theta), summed as tf_kernels.
template <typename T, bool kSign, bool kLinear>
inline T Decayed(T theta, T delta, T c_sign, T c_linear) {
  if (kSign && kLinear) return theta + delta - (c_sign * Sign(theta) + c_linear * theta);
  if (kSign) return theta + delta - c_sign * Sign(theta);
  if (kLinear) return theta + delta - c_linear * theta;
  return theta + delta;
}

void ParallelRange(OpKernelContext* ctx, int64_t size, int64_t cycles_per_element,
                   const std::function<void(int64_t, int64_t)>& work) {
  ctx->device()->tensorflow_cpu_worker_threads()->workers->ParallelFor(
      size, cycles_per_element, work);
}

// Per-step scalars of AdamW, in the variable's dtype.
template <typename T>
struct AdamWScalars {
  T neg_step, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon, c_sign, c_linear;
};

// One contiguous block; `__restrict__` lets the compiler vectorise the loop.
template <typename T, bool kAmsgrad, bool kSign, bool kLinear>
void AdamWBlock(T* __restrict__ theta, T* __restrict__ m, T* __restrict__ v,
                T* __restrict__ vhat, const T* __restrict__ g, int64_t size,
                const AdamWScalars<T> s) {
  for (int64_t i = 0; i < size; ++i) {
    const T m_new = s.beta_1 * m[i] + s.one_minus_beta_1 * g[i];
    const T v_new = s.beta_2 * v[i] + s.one_minus_beta_2 * g[i] * g[i];
    T v_used = v_new;
    if (kAmsgrad) {
      v_used = vhat[i] > v_new ? vhat[i] : v_new;
      vhat[i] = v_used;
    }
    const T direction = m_new / (std::sqrt(v_used) + s.epsilon);
    theta[i] = Decayed<T, kSign, kLinear>(theta[i], s.neg_step * direction, s.c_sign,
                                          s.c_linear);
    m[i] = m_new;
    v[i] = v_new;
  }
}

template <typename T, bool kAmsgrad, bool kSign, bool kLinear>
void AdamWRange(OpKernelContext* ctx, const std::vector<Tensor*>& vars, const Tensor& grad,
                const AdamWScalars<T>& scalars) {
  T* theta = vars[0]->flat<T>().data();
  T* m = vars[1]->flat<T>().data();
  T* v = vars[2]->flat<T>().data();
  T* vhat = kAmsgrad ? vars[3]->flat<T>().data() : nullptr;
  const T* g = grad.flat<T>().data();
  ParallelRange(ctx, grad.NumElements(), kAdamCycles, [&](int64_t begin, int64_t end) {
    AdamWBlock<T, kAmsgrad, kSign, kLinear>(
        theta + begin, m + begin, v + begin, kAmsgrad ? vhat + begin : nullptr,
        g + begin, end - begin, scalars);
  });
}

template <typename T, bool kAmsgrad>
void AdamWDispatch(OpKernelContext* ctx, const std::vector<Tensor*>& vars,
                   const Tensor& grad, const AdamWScalars<T>& s, bool sign, bool linear) {
  if (sign && linear) return AdamWRange<T, kAmsgrad, true, true>(ctx, vars, grad, s);
  if (sign) return AdamWRange<T, kAmsgrad, true, false>(ctx, vars, grad, s);
  if (linear) return AdamWRange<T, kAmsgrad, false, true>(ctx, vars, grad, s);
  AdamWRange<T, kAmsgrad, false, false>(ctx, vars, grad, s);
}

template <typename T>
class AdamWOp : public OpKernel {
 public:
  explicit AdamWOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_vhat", &num_vhat_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay_sign", &decay_sign_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay_linear", &decay_linear_));
    OP_REQUIRES(ctx, num_vhat_ <= 1,
                errors::InvalidArgument("keras_adamw: num_vhat is 0 or 1, got ", num_vhat_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(3 + num_vhat_);
    std::vector<int> inputs = {0, 1, 2};
    if (num_vhat_) inputs.push_back(3);
    LockedVariables locked;
    std::vector<Tensor*> vars;
    static const char* const kNames[] = {"var", "m", "v", "vhat"};
    OP_REQUIRES_OK(ctx, locked.AcquireWritable(ctx, inputs, kNames, grad, &vars));
    const int s = 4 + num_vhat_;  // first scalar input
    const AdamWScalars<T> scalars = {
        Scalar<T>(ctx, s),     Scalar<T>(ctx, s + 1), Scalar<T>(ctx, s + 2),
        Scalar<T>(ctx, s + 3), Scalar<T>(ctx, s + 4), Scalar<T>(ctx, s + 5),
        Scalar<T>(ctx, s + 6), Scalar<T>(ctx, s + 7)};
    if (num_vhat_) {
      AdamWDispatch<T, true>(ctx, vars, grad, scalars, decay_sign_, decay_linear_);
    } else {
      AdamWDispatch<T, false>(ctx, vars, grad, scalars, decay_sign_, decay_linear_);
    }
  }

 private:
  int num_vhat_;
  bool decay_sign_, decay_linear_;
};

// Per-step scalars of SGDW, in the variable's dtype.
template <typename T>
struct SgdWScalars {
  T lr, momentum, c_sign, c_linear;
};

template <typename T, int kMomentum, bool kSign, bool kLinear>
void SgdWBlock(T* __restrict__ theta, T* __restrict__ velocity, const T* __restrict__ g,
               int64_t size, const SgdWScalars<T> s) {
  // kMomentum: 0 none, 1 momentum, 2 Nesterov momentum.
  for (int64_t i = 0; i < size; ++i) {
    T delta;
    if (kMomentum == 0) {
      delta = -s.lr * g[i];
    } else {
      const T velocity_new = s.momentum * velocity[i] - s.lr * g[i];
      velocity[i] = velocity_new;
      delta = kMomentum == 2 ? s.momentum * velocity_new - s.lr * g[i] : velocity_new;
    }
    theta[i] = Decayed<T, kSign, kLinear>(theta[i], delta, s.c_sign, s.c_linear);
  }
}

template <typename T, int kMomentum, bool kSign, bool kLinear>
void SgdWRange(OpKernelContext* ctx, const std::vector<Tensor*>& vars, const Tensor& grad,
               const SgdWScalars<T>& scalars) {
  T* theta = vars[0]->flat<T>().data();
  T* velocity = kMomentum ? vars[1]->flat<T>().data() : nullptr;
  const T* g = grad.flat<T>().data();
  ParallelRange(ctx, grad.NumElements(), kSgdCycles, [&](int64_t begin, int64_t end) {
    SgdWBlock<T, kMomentum, kSign, kLinear>(theta + begin,
                                            kMomentum ? velocity + begin : nullptr,
                                            g + begin, end - begin, scalars);
  });
}

template <typename T, int kMomentum>
void SgdWDispatch(OpKernelContext* ctx, const std::vector<Tensor*>& vars,
                  const Tensor& grad, const SgdWScalars<T>& s, bool sign, bool linear) {
  if (sign && linear) return SgdWRange<T, kMomentum, true, true>(ctx, vars, grad, s);
  if (sign) return SgdWRange<T, kMomentum, true, false>(ctx, vars, grad, s);
  if (linear) return SgdWRange<T, kMomentum, false, true>(ctx, vars, grad, s);
  SgdWRange<T, kMomentum, false, false>(ctx, vars, grad, s);
}

template <typename T>
class SgdWOp : public OpKernel {
 public:
  explicit SgdWOp(OpKernelConstruction* ctx) : OpKernel(ctx) {
    OP_REQUIRES_OK(ctx, ctx->GetAttr("num_velocity", &num_velocity_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("nesterov", &nesterov_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay_sign", &decay_sign_));
    OP_REQUIRES_OK(ctx, ctx->GetAttr("decay_linear", &decay_linear_));
    OP_REQUIRES(ctx, num_velocity_ <= 1,
                errors::InvalidArgument("keras_adamw: num_velocity is 0 or 1, got ",
                                        num_velocity_));
  }

  void Compute(OpKernelContext* ctx) override {
    const Tensor& grad = ctx->input(1 + num_velocity_);
    std::vector<int> inputs = {0};
    if (num_velocity_) inputs.push_back(1);
    LockedVariables locked;
    std::vector<Tensor*> vars;
    static const char* const kNames[] = {"var", "velocity"};
    OP_REQUIRES_OK(ctx, locked.AcquireWritable(ctx, inputs, kNames, grad, &vars));
    const int s = 2 + num_velocity_;
    const SgdWScalars<T> scalars = {Scalar<T>(ctx, s), Scalar<T>(ctx, s + 1),
                                    Scalar<T>(ctx, s + 2), Scalar<T>(ctx, s + 3)};
    if (!num_velocity_) {
      SgdWDispatch<T, 0>(ctx, vars, grad, scalars, decay_sign_, decay_linear_);
    } else if (nesterov_) {
      SgdWDispatch<T, 2>(ctx, vars, grad, scalars, decay_sign_, decay_linear_);
    } else {
      SgdWDispatch<T, 1>(ctx, vars, grad, scalars, decay_sign_, decay_linear_);
    }
  }

 private:
  int num_velocity_;
  bool nesterov_, decay_sign_, decay_linear_;
};

#define REGISTER_KERNELS(T)                                                        \
  REGISTER_KERNEL_BUILDER(                                                         \
      Name("KerasAdamwApplyAdamw").Device(DEVICE_CPU).TypeConstraint<T>("T"),          \
      AdamWOp<T>);                                                                 \
  REGISTER_KERNEL_BUILDER(                                                         \
      Name("KerasAdamwApplySgdw").Device(DEVICE_CPU).TypeConstraint<T>("T"), SgdWOp<T>);
REGISTER_KERNELS(float)
REGISTER_KERNELS(double)
#undef REGISTER_KERNELS

}  // namespace
}  // namespace tensorflow
