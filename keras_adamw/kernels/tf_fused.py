"""TensorFlow's fused training ops, and the in-place decay pass before them.

One fused op per variable reads and writes each buffer once, where Keras's own
optimizers run a dozen element-wise ops. The ops compute exactly DESIGN.md
section 4 for a variable without decay: the bias correction is passed through
`step_size` (beta powers 0 make the op's own correction 1). The decay, which
the ops cannot express, is one in-place pass *before* the op (`decay_pass`):
the ops read theta only to update it, so that equals
`theta + delta - decay(theta before)`. `kernels.tf_paths` takes this path only
where nothing in one pass runs (see `kernels.PATHS`).
"""
import tensorflow as tf  # type: ignore[import-untyped]


def decay_pass(handle, dtype, c_sign, c_linear, use_locking=False):
    """`theta -= c_sign sign(theta) + c_linear theta` in place; the op (None: no decay)."""
    if c_sign is None and c_linear is None:
        return None
    theta = tf.raw_ops.ReadVariableOp(resource=handle, dtype=dtype)
    if c_sign is None:
        alpha, delta = c_linear, theta
    else:
        alpha = tf.ones([], theta.dtype)
        delta = c_sign * tf.sign(theta)
        if c_linear is not None:
            delta = delta + c_linear * theta
    return tf.raw_ops.ResourceApplyGradientDescent(var=handle, alpha=alpha, delta=delta,
                                                   use_locking=use_locking)


def apply(update):
    """AdamW (no amsgrad) or SGDW: the decay pass, then the fused op; returns the op."""
    s = update.scalars
    decay = decay_pass(update.variable, update.grad.dtype, s.c_sign, s.c_linear)
    with tf.control_dependencies([] if decay is None else [decay]):
        if update.kind == "adamw":
            return adam(update)
        return momentum(update)


def adam(update):
    """`m, v` moments and `theta -= step_size m / (sqrt(v) + eps)`, fused."""
    h, dtype = update.hyper, update.grad.dtype
    m, v = update.slots
    zero = tf.zeros([], dtype)
    return tf.raw_ops.ResourceApplyAdam(
        var=update.variable, m=m, v=v, beta1_power=zero, beta2_power=zero,
        lr=update.scalars.step_size, beta1=tf.cast(h.beta_1, dtype),
        beta2=tf.cast(h.beta_2, dtype), epsilon=tf.cast(h.epsilon, dtype), grad=update.grad)


def momentum(update):
    """Keras-convention momentum SGD, fused: `vel = mu vel - lr g; theta += vel`."""
    step_size = update.scalars.step_size
    if not update.slots:
        return tf.raw_ops.ResourceApplyGradientDescent(var=update.variable, alpha=step_size,
                                                       delta=update.grad)
    return tf.raw_ops.ResourceApplyKerasMomentum(
        var=update.variable, accum=update.slots[0], lr=step_size, grad=update.grad,
        momentum=update.hyper.momentum, use_nesterov=bool(update.hyper.nesterov))
