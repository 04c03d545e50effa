"""TensorFlow's fused training kernels for the Keras 3 optimizers (TF backend).

One kernel per variable reads and writes each buffer once, where Keras's own
optimizers run a dozen element-wise ops. The kernels compute exactly DESIGN.md
section 4: the bias correction is passed through `lr` (beta powers 0 make the
kernel's own correction 1), and the decay, which the kernels cannot express, is
one in-place pass *before* the kernel; since the kernels read theta only to
update it, that equals `theta + delta - decay(theta before)`. A decayed or
amsgrad AdamW variable and every NadamW variable take one XLA-compiled pass
instead (`keras_adamw.tf_kernels`), rule and decay together.
"""
import keras  # type: ignore[import-untyped]
import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw import native, tf_kernels

# The fused Adam kernels compute `1 - beta` in the variable's dtype: in bfloat16
# beta_2 = 0.999 rounds to 1 (the second moment never grows, the step explodes),
# in float16 `1 - beta_2` is 2% off. Other dtypes take the ops path.
ADAM_DTYPES = ("float32", "float64")


def _tf_variable(variable):
    """Keras's loop passes tf.Variables on TF; slots are Keras variables."""
    return variable.value if isinstance(variable, keras.Variable) else variable


def _handle(variable):
    return _tf_variable(variable).handle


def apply_decay(variable, c_sign, c_linear):
    """`theta -= c_sign sign(theta) + c_linear theta`, in place; nothing if no decay."""
    if c_sign is None and c_linear is None:
        return
    theta = tf.convert_to_tensor(_tf_variable(variable))
    if c_sign is None:
        alpha, delta = c_linear, theta
    else:
        alpha = tf.ones([], theta.dtype)
        delta = c_sign * tf.sign(theta)
        if c_linear is not None:
            delta = delta + c_linear * theta
    tf.raw_ops.ResourceApplyGradientDescent(var=_handle(variable), alpha=alpha, delta=delta)


def adam(variable, m, v, grad, step_size, beta_1, beta_2, epsilon):
    """`m, v` moments and `theta -= step_size m / (sqrt(v) + eps)`, fused."""
    zero = tf.zeros([], grad.dtype)
    tf.raw_ops.ResourceApplyAdam(
        var=_handle(variable), m=_handle(m), v=_handle(v), beta1_power=zero,
        beta2_power=zero, lr=step_size, beta1=tf.cast(beta_1, grad.dtype),
        beta2=tf.cast(beta_2, grad.dtype), epsilon=tf.cast(epsilon, grad.dtype), grad=grad)


def adamw(variable, m, v, v_hat, grad, scalars, beta_1, beta_2, epsilon, native_ok=True):
    """AdamW's moments, step and decay (amsgrad with `v_hat`).

    Without a decay or amsgrad, the fused kernel (`adam`). Otherwise one pass
    that reads theta, the slots and the gradient once and writes theta and the
    slots: the native op where it runs, else `tf_kernels.adamw` (XLA). The fused
    kernel after a separate decay pass reads and writes theta twice and copies
    it (0.90x of Keras's AdamW on 400 tensors / 2M parameters in `tf.function`,
    against 0.62x for the XLA pass), and `ResourceApplyAdamWithAmsgrad` has no
    XLA kernel (a `jit_compile` step failed). The betas are float32, as the
    fused kernel receives them (`tf.cast` of a Python float goes through
    float32) and as the bias correction in `step_size` is computed, so all
    paths agree. `native_ok=False` keeps off the native op.
    """
    step_size, c_sign, c_linear = scalars["step_size"], scalars["c_sign"], scalars["c_linear"]
    if v_hat is None and c_sign is None and c_linear is None:
        adam(variable, m, v, grad, step_size, beta_1, beta_2, epsilon)
        return
    kernels = native if native_ok and native.usable(_tf_variable(variable)) else tf_kernels
    kernels.adamw(_handle(variable), _handle(m), _handle(v),
                  None if v_hat is None else _handle(v_hat), grad, step_size, 1.0,
                  (c_sign, c_linear), float(np.float32(beta_1)), float(np.float32(beta_2)),
                  epsilon)


def nadamw(variable, m, v, grad, scalars, beta_1, beta_2, epsilon):
    """NadamW's moments, step and decay in one XLA-compiled pass (no fused TF op
    expresses Dozat's schedule; `tf_kernels.nadamw`)."""
    coefficients = {k: scalars[k] for k in ("grad_weight", "momentum_weight", "v_correction")}
    tf_kernels.nadamw(_handle(variable), _handle(m), _handle(v), grad, scalars["step_size"],
                      coefficients, (scalars["c_sign"], scalars["c_linear"]), beta_1, beta_2,
                      epsilon)


def sgdw(variable, velocity, grad, step_size, momentum_, nesterov, c_sign, c_linear,
         native_ok=True):
    """Keras-convention momentum SGD and the decay: `vel = mu vel - lr g;
    theta += vel - decay(theta)`. With a decay, one pass: the native op where it
    runs (and `native_ok`), `tf_kernels.sgdw` inside XLA (a decay pass and the
    fused op there were 1.17x Keras's SGD on 400 tensors / 2M); otherwise the
    decay pass, then the fused kernel (`momentum`)."""
    if c_sign is not None or c_linear is not None:
        kernels = (native if native_ok and native.usable(_tf_variable(variable))
                   else tf_kernels if native.in_xla_context() else None)
        if kernels is not None:
            # Through float32, as `momentum` casts it for the fused op.
            kernels.sgdw(_handle(variable), None if velocity is None else _handle(velocity),
                         grad, step_size, tf.cast(momentum_, grad.dtype), (c_sign, c_linear),
                         nesterov)
            return
    apply_decay(variable, c_sign, c_linear)
    momentum(variable, velocity, grad, step_size, momentum_, nesterov)


def momentum(variable, velocity, grad, step_size, momentum_, nesterov):
    """Keras-convention momentum SGD, fused: `vel = mu vel - lr g; theta += vel`."""
    if velocity is None:
        tf.raw_ops.ResourceApplyGradientDescent(var=_handle(variable), alpha=step_size,
                                                delta=grad)
        return
    tf.raw_ops.ResourceApplyKerasMomentum(
        var=_handle(variable), accum=_handle(velocity), lr=step_size, grad=grad,
        momentum=tf.cast(momentum_, grad.dtype), use_nesterov=nesterov)
