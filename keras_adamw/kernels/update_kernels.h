// The element-wise updates of keras_adamw, one read and one write of every
// tensor, shared by the TensorFlow ops (update_ops.cc) and the XLA custom calls
// (xla_calls.cc). Per element, with the per-step scalars computed once per step
// in Python (keras_adamw/core/rules.py, docs/pages/algorithms.md):
//
//   AdamW:   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//            (amsgrad: vhat = max(vhat, v), used below)
//            theta = theta - step m / (sqrt(v) + eps) - decay(theta)
//   NadamW:  m, v as AdamW;  m_bar = w_g g + w_m m
//            theta = theta - step m_bar / (sqrt(v c_v) + eps) - decay(theta)
//   SGDW:    velocity = mu velocity - lr g
//            theta = theta + velocity - decay(theta)
//            (nesterov: + mu velocity - lr g; no velocity: - lr g)
//
// with decay(theta) = c_sign sign(theta) + c_linear theta from theta before the
// update. The arithmetic is in the order of keras_adamw.kernels.tf_compiled
// (the XLA version of the same updates), so both round alike.

#ifndef KERAS_ADAMW_KERNELS_UPDATE_KERNELS_H_
#define KERAS_ADAMW_KERNELS_UPDATE_KERNELS_H_

#include <cmath>
#include <cstdint>
#include <functional>
#include <type_traits>

namespace keras_adamw {

// Estimated cycles per element (memory traffic mostly), for the thread pools'
// decision to split a range: a small variable is not worth a hand-off.
constexpr int64_t kAdamCycles = 10;
constexpr int64_t kSgdCycles = 5;

// Runs `work(begin, end)` over blocks covering [0, size), perhaps in parallel.
using Range = std::function<void(int64_t, int64_t)>;
using ParallelFor = std::function<void(int64_t size, int64_t cycles_per_element,
                                       const Range& work)>;

template <typename T>
inline T Sign(T x) {
  // Branch-free, so the loop vectorises; sign(NaN) is 0 here, but theta + delta
  // is NaN already.
  return T(x > T(0)) - T(x < T(0));
}

// theta + delta - (c_sign sign(theta) + c_linear theta), summed as tf_compiled.
template <typename T, bool kSign, bool kLinear>
inline T Decayed(T theta, T delta, T c_sign, T c_linear) {
  if (kSign && kLinear) return theta + delta - (c_sign * Sign(theta) + c_linear * theta);
  if (kSign) return theta + delta - c_sign * Sign(theta);
  if (kLinear) return theta + delta - c_linear * theta;
  return theta + delta;
}

// Calls `f(sign, linear)` with the decay flags as compile-time constants.
template <typename F>
void WithDecayFlags(bool sign, bool linear, F f) {
  using Yes = std::true_type;
  using No = std::false_type;
  if (sign && linear) return f(Yes{}, Yes{});
  if (sign) return f(Yes{}, No{});
  if (linear) return f(No{}, Yes{});
  f(No{}, No{});
}

// Per-step scalars, in the variable's dtype, in the order the callers pass them:
// the order of keras_adamw/kernels/scalars.py LAYOUTS; a test checks it.
template <typename T>
struct AdamWScalars {
  static constexpr int kCount = 8;
  T neg_step, beta_1, one_minus_beta_1, beta_2, one_minus_beta_2, epsilon, c_sign, c_linear;
  static AdamWScalars From(const T* s) { return {s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]}; }
};

template <typename T>
struct NadamWScalars {
  static constexpr int kCount = 11;
  AdamWScalars<T> adam;  // the first eight, as AdamW
  T grad_weight, momentum_weight, v_correction;
  static NadamWScalars From(const T* s) {
    return {AdamWScalars<T>::From(s), s[8], s[9], s[10]};
  }
};

template <typename T>
struct SgdWScalars {
  static constexpr int kCount = 4;
  T lr, momentum, c_sign, c_linear;
  static SgdWScalars From(const T* s) { return {s[0], s[1], s[2], s[3]}; }
};

// One contiguous block each; `__restrict__` lets the compiler vectorise.
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

template <typename T, bool kSign, bool kLinear>
void NadamWBlock(T* __restrict__ theta, T* __restrict__ m, T* __restrict__ v,
                 const T* __restrict__ g, int64_t size, const NadamWScalars<T> n) {
  const AdamWScalars<T>& s = n.adam;
  for (int64_t i = 0; i < size; ++i) {
    const T m_new = s.beta_1 * m[i] + s.one_minus_beta_1 * g[i];
    const T v_new = s.beta_2 * v[i] + s.one_minus_beta_2 * g[i] * g[i];
    const T m_bar = n.grad_weight * g[i] + n.momentum_weight * m_new;
    const T direction = m_bar / (std::sqrt(v_new * n.v_correction) + s.epsilon);
    theta[i] = Decayed<T, kSign, kLinear>(theta[i], s.neg_step * direction, s.c_sign,
                                          s.c_linear);
    m[i] = m_new;
    v[i] = v_new;
  }
}

// kMomentum: 0 none, 1 momentum, 2 Nesterov momentum.
template <typename T, int kMomentum, bool kSign, bool kLinear>
void SgdWBlock(T* __restrict__ theta, T* __restrict__ velocity, const T* __restrict__ g,
               int64_t size, const SgdWScalars<T> s) {
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

// Whole-tensor updates in place (`vhat`/`velocity` null when absent). The
// ranges passed to `parallel` hold copies of what they use, so a caller may
// keep them to run later (xla_calls.cc runs many variables' ranges together).
template <typename T>
void AdamW(const ParallelFor& parallel, T* theta, T* m, T* v, T* vhat, const T* g,
           int64_t size, const AdamWScalars<T>& s, bool sign, bool linear) {
  WithDecayFlags(sign, linear, [&](auto sign_flag, auto linear_flag) {
    constexpr bool kSign = decltype(sign_flag)::value;
    constexpr bool kLinear = decltype(linear_flag)::value;
    parallel(size, kAdamCycles, [=](int64_t b, int64_t e) {
      if (vhat) {
        AdamWBlock<T, true, kSign, kLinear>(theta + b, m + b, v + b, vhat + b, g + b, e - b, s);
      } else {
        AdamWBlock<T, false, kSign, kLinear>(theta + b, m + b, v + b, nullptr, g + b, e - b,
                                             s);
      }
    });
  });
}

template <typename T>
void NadamW(const ParallelFor& parallel, T* theta, T* m, T* v, const T* g, int64_t size,
            const NadamWScalars<T>& s, bool sign, bool linear) {
  WithDecayFlags(sign, linear, [&](auto sign_flag, auto linear_flag) {
    constexpr bool kSign = decltype(sign_flag)::value;
    constexpr bool kLinear = decltype(linear_flag)::value;
    parallel(size, kAdamCycles, [=](int64_t b, int64_t e) {
      NadamWBlock<T, kSign, kLinear>(theta + b, m + b, v + b, g + b, e - b, s);
    });
  });
}

template <typename T>
void SgdW(const ParallelFor& parallel, T* theta, T* velocity, const T* g, int64_t size,
          const SgdWScalars<T>& s, bool nesterov, bool sign, bool linear) {
  WithDecayFlags(sign, linear, [&](auto sign_flag, auto linear_flag) {
    constexpr bool kSign = decltype(sign_flag)::value;
    constexpr bool kLinear = decltype(linear_flag)::value;
    parallel(size, kSgdCycles, [=](int64_t b, int64_t e) {
      if (!velocity) {
        SgdWBlock<T, 0, kSign, kLinear>(theta + b, nullptr, g + b, e - b, s);
      } else if (nesterov) {
        SgdWBlock<T, 2, kSign, kLinear>(theta + b, velocity + b, g + b, e - b, s);
      } else {
        SgdWBlock<T, 1, kSign, kLinear>(theta + b, velocity + b, g + b, e - b, s);
      }
    });
  });
}

}  // namespace keras_adamw

#endif  // KERAS_ADAMW_KERNELS_UPDATE_KERNELS_H_
