"""TensorFlow's fused training kernels for the Keras 3 optimizers (TF backend).

One kernel per variable reads and writes each buffer once, where Keras's own
optimizers run a dozen element-wise ops. The kernels compute exactly DESIGN.md
section 4: the bias correction is passed through `lr` (beta powers 0 make the
kernel's own correction 1), and the decay, which the kernels cannot express, is
one in-place pass *before* the kernel; since the kernels read theta only to
update it, that equals `theta + delta - decay(theta before)`. A decayed or
amsgrad AdamW variable, every NadamW variable, and inside XLA every variable,
take one pass instead, rule and decay together: the native kernels
(`keras_adamw.native`; TensorFlow ops, or XLA custom calls inside `jit_compile`)
where they run, else XLA-compiled ones (`keras_adamw.tf_kernels`).
"""
import keras  # type: ignore[import-untyped]
import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.kernels import tf_native as native, tf_compiled as tf_kernels

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


def _native(variable, native_ok):
    """`native.kernels` for the variable, or None (`native_ok=False`)."""
    return native.kernels(_tf_variable(variable)) if native_ok else None


def adamw(variable, m, v, v_hat, grad, scalars, beta_1, beta_2, epsilon, native_ok=True):
    """AdamW's moments, step and decay (amsgrad with `v_hat`).

    Without a decay or amsgrad, outside XLA, the fused kernel (`adam`).
    Otherwise one pass that reads theta, the slots and the gradient once and
    writes theta and the slots: the native kernel where it runs, else
    `tf_kernels.adamw` (XLA). The fused kernel after a separate decay pass
    reads and writes theta twice and copies it (0.90x of Keras's AdamW on 400
    tensors / 2M parameters in `tf.function`, against 0.62x for the XLA pass),
    and `ResourceApplyAdamWithAmsgrad` has no XLA kernel (a `jit_compile` step
    failed). The betas are float32, as the fused kernel receives them (`tf.cast`
    of a Python float goes through float32) and as the bias correction in
    `step_size` is computed, so all paths agree. `native_ok=False` keeps off the
    native kernels.
    """
    step_size, c_sign, c_linear = scalars["step_size"], scalars["c_sign"], scalars["c_linear"]
    kernels = _native(variable, native_ok)
    if v_hat is None and c_sign is None and c_linear is None \
            and kernels is not native.xla_calls:
        adam(variable, m, v, grad, step_size, beta_1, beta_2, epsilon)
        return
    (kernels or tf_kernels).adamw(
        _handle(variable), _handle(m), _handle(v), None if v_hat is None else _handle(v_hat),
        grad, step_size, 1.0, (c_sign, c_linear), float(np.float32(beta_1)),
        float(np.float32(beta_2)), epsilon)


def nadamw(variable, m, v, grad, scalars, beta_1, beta_2, epsilon, native_ok=True):
    """NadamW's moments, step and decay in one pass (no fused TF op expresses
    Dozat's schedule): the native kernel where it runs, else `tf_kernels.nadamw`."""
    coefficients = {k: scalars[k] for k in ("grad_weight", "momentum_weight", "v_correction")}
    (_native(variable, native_ok) or tf_kernels).nadamw(
        _handle(variable), _handle(m), _handle(v), grad, scalars["step_size"], coefficients,
        (scalars["c_sign"], scalars["c_linear"]), beta_1, beta_2, epsilon)


def sgdw(variable, velocity, grad, step_size, momentum_, nesterov, c_sign, c_linear,
         native_ok=True):
    """Keras-convention momentum SGD and the decay: `vel = mu vel - lr g;
    theta += vel - decay(theta)`. One pass inside XLA (the native custom call
    for every variable, else `tf_kernels.sgdw` for a decayed one: a decay pass
    and the fused op there were 1.17x Keras's SGD on 400 tensors / 2M) and for
    a decayed variable outside it where the native op runs (`native_ok`);
    otherwise the decay pass, then the fused kernel (`momentum`)."""
    decayed = c_sign is not None or c_linear is not None
    kernels = _native(variable, native_ok)
    if kernels is None and decayed and native.in_xla_context():
        kernels = tf_kernels
    if kernels is not None and (decayed or kernels is native.xla_calls):
        # Through float32, as `momentum` casts it for the fused op.
        kernels.sgdw(_handle(variable), None if velocity is None else _handle(velocity), grad,
                     step_size, tf.cast(momentum_, grad.dtype), (c_sign, c_linear), nesterov)
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
