"""XLA-compiled per-variable updates: the rule and the decoupled decay in one pass.

TensorFlow's fused training kernels (`ResourceApplyAdam`, ...) cannot apply a
decoupled decay, and a separate in-place decay pass reads and writes theta once
more (and copies it: the pass's `delta` aliases the variable). Each function here
is one `tf.function(jit_compile=True)` that reads theta, the slots and the
gradient and writes theta and the slots; XLA fuses it into element-wise loops.

The `tf_compiled` path of `kernels.tf_paths` (both flavours, where the native
kernels do not run), with the resource handles
of the variable and its slots (a replica's component variables under
`tf.distribute`) and per-step scalars already cast to the variable's dtype, so
they work eagerly, inside `tf.function`, inlined into a `jit_compile=True` train
step, in TF1 graphs and per replica. Handles, not variables: with variable
arguments, a trace captured slot variables created during the caller's first
trace (Keras creates slots there) instead of taking them as inputs, and a later
optimizer's call reused that trace on the deleted variables. Traced about once
per dtype and static options (`reduce_retracing`), compiled once per shape. The
formulas are `keras_adamw.core.rules` (DESIGN.md section 4).
"""
import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.core import rules

TF_MATH = tf.math  # `sign` and `sqrt`, the namespace `core.rules` calls `xp`


def _compiled(function):
    """One XLA computation; Python `None`/`bool`/`float` arguments are static."""
    return tf.function(function, jit_compile=True, reduce_retracing=True, autograph=False)


def _read(handle, dtype):
    return tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype)


def _assign(handle, value):
    tf.raw_ops.AssignVariableOp(resource=handle, value=value)


def _updated(theta, delta, decay):
    """`theta + delta - (c_sign sign(theta) + c_linear theta)`, `decay = (c_sign, c_linear)`,
    summed in the order of the ops path (so both round alike)."""
    term = rules.decay_term(theta, decay[0], decay[1], TF_MATH)
    return theta + delta if term is None else theta + delta - term


def apply(update):
    """`update` (a `kernels.Update` of resource handles) in one compiled pass.

    Returns:
        A scalar to depend on.
    """
    s, h = update.scalars, update.hyper
    decay = (s.c_sign, s.c_linear)
    if update.kind == "sgdw":
        velocity = update.slots[0] if update.slots else None
        return sgdw(update.variable, velocity, update.grad, s.step_size, h.momentum, decay,
                    bool(h.nesterov))
    m, v, *vhat = update.slots
    return adam_family(update.variable, m, v, vhat[0] if vhat else None, update.grad,
                       s.step_size, s.nadam, decay, h.beta_1, h.beta_2, h.epsilon)


@_compiled
def adam_family(var, m, v, vhat, grad, step_size, nadam, decay, beta_1, beta_2, epsilon):
    """AdamW (amsgrad when `vhat` is a handle) or NadamW (`nadam` given) on one variable.

    ```
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2   (amsgrad: vhat = max(vhat, v))
    AdamW:   theta = theta - decay(theta) - step_size m / (sqrt(v or vhat) + eps)
    NadamW:  theta = theta - decay(theta) - step_size nadam_direction(m, v, g)
    ```

    Args:
        var, m, v: resource handles of the variable and its slots (`vhat`
            too, or None).
        grad: the dense gradient.
        step_size: `eta lr_v`, times `sqrt(1 - b2^t) / (1 - b1^t)` for AdamW; a
            scalar of the variable's dtype.
        nadam: `core.rules.NadamCoefficients` of this step (NadamW), or None.
        decay: `(c_sign, c_linear)` of `core.rules.decay_term`; each may be None.
        beta_1, beta_2, epsilon: Python floats (static), used as given: `1 - beta`
            is computed in Python, then rounded to the variable's dtype.

    Returns:
        A scalar to depend on.
    """
    dtype = grad.dtype
    theta = _read(var, dtype)
    m_new, v_new = rules.adam_moments(_read(m, dtype), _read(v, dtype), grad,
                                      beta_1, beta_2)
    epsilon = tf.constant(epsilon, dtype)
    if nadam is not None:
        direction = rules.nadam_direction(m_new, v_new, grad, nadam, epsilon, TF_MATH)
    else:
        v_used = v_new
        if vhat is not None:
            v_used = tf.maximum(_read(vhat, dtype), v_new)
            _assign(vhat, v_used)
        direction = rules.adam_direction(m_new, v_used, epsilon, TF_MATH)
    _assign(var, _updated(theta, -step_size * direction, decay))
    _assign(m, m_new)
    _assign(v, v_new)
    return tf.constant(True)


@_compiled
def sgdw(var, velocity, grad, step_size, momentum, decay, nesterov):
    """SGDW on one variable, Keras momentum convention.

    ```
    velocity = mu velocity - step_size g
    theta = theta - decay(theta) + velocity    (nesterov: + mu velocity - step_size g)
    ```
    Without a velocity (`momentum=0`): `theta = theta - decay(theta) - step_size g`.

    Args:
        var: the variable's resource handle.
        velocity: the momentum slot's handle, or None.
        step_size: `eta lr_v`.
        momentum: `mu`, a scalar tensor (a hyperparameter that may change).
        nesterov: Python bool (static).
        (others): as `adamw`.

    Returns:
        A scalar to depend on.
    """
    theta = _read(var, grad.dtype)
    if velocity is None:
        _, delta = rules.sgd_step(None, grad, step_size, 0, False)
    else:
        velocity_new, delta = rules.sgd_step(_read(velocity, grad.dtype), grad, step_size,
                                             momentum, nesterov)
        _assign(velocity, velocity_new)
    _assign(var, _updated(theta, delta, decay))
    return tf.constant(True)
