"""The Keras 3 side of the kernel layer: per backend, the path of each variable.

The only module of the Keras 3 flavour that branches on the backend's name.
`choose` decides a variable's path once (its first update, where its device
is known); `run_step` wraps one step's per-variable loop (one custom call per
group on TensorFlow and JAX, torch's multi-tensor kernels); `apply` runs one
variable's `kernels.Update`.
"""
import keras  # type: ignore[import-untyped]
from keras import ops  # type: ignore[import-untyped]
from keras.src.backend.common.stateless_scope import (  # type: ignore[import-untyped]
    in_stateless_scope,
)

BACKEND = keras.backend.backend()
if BACKEND == "tensorflow":
    import tensorflow as tf  # type: ignore[import-untyped]

    from keras_adamw.kernels import tf_paths
elif BACKEND == "jax":
    from jax.experimental import sparse as jax_sparse  # type: ignore[import-untyped]

    from keras_adamw.kernels import jax_calls


def choose(optimizer, variable):
    """The path of `variable`: `tf_paths.Capabilities` (TensorFlow), "jax_call",
    or None (the reference ops). Per-element bounds keep the reference ops,
    except SGDW, whose bounded rate is a scalar; so does `decay_to="init"`."""
    if optimizer._settings.effective_lr_bounds is not None and optimizer._kind != "sgdw":
        return None
    if optimizer._variable_rule(variable).decay_to_init:
        return None  # the kernels decay theta itself
    if BACKEND == "tensorflow":
        return _tf_capabilities(optimizer, variable)
    if BACKEND == "jax" and optimizer.native_kernels and jax_calls.usable(variable):
        return "jax_call"
    return None


def _tf_capabilities(optimizer, variable):
    """AdamW/NadamW variables of float32/float64 (the fused ops' `1 - beta` in
    float16 is off), every SGDW variable."""
    kind = optimizer._kind
    if kind != "sgdw" and keras.backend.standardize_dtype(variable.dtype) not in (
            "float32", "float64"):
        return None
    fused = kind == "sgdw" or (kind == "adamw" and not optimizer.amsgrad)
    tf_variable = variable.value if isinstance(variable, keras.Variable) else variable
    return tf_paths.capabilities(tf_variable, optimizer.native_kernels, fused,
                                 "xla" if kind == "sgdw" else "always")


def apply(optimizer, choice, update):
    """Runs `update` on the chosen path; False where the reference ops must."""
    if choice == "jax_call":
        jax_calls.apply(optimizer, update)
        return True
    path = tf_paths.path(choice, update.scalars.decayed)
    if path is None and not choice.fused:
        return False
    handles = update._replace(variable=_handle(update.variable),
                              slots=tuple(_handle(s) for s in update.slots))
    tf_paths.apply(path or "tf_fused", handles)
    return True


def _handle(variable):
    """Keras's loop passes tf.Variables on TensorFlow; slots are Keras variables."""
    return (variable.value if isinstance(variable, keras.Variable) else variable).handle


def run_step(optimizer, grads, variables, loop):
    """One step's updates: `loop()` (Keras's per-variable loop), in a batch of
    custom calls on TensorFlow and JAX; torch's kernels on torch (the loop where
    bounds are on, and under `torch.compile`, which traces Keras ops and cannot
    trace the kernels' in-place writes).

    Returns:
        The step's `core.step.Step` in Python floats where the update read it on
        the host (torch's eager path), else None.
    """
    if BACKEND == "torch" and optimizer._settings.effective_lr_bounds is None:
        from keras_adamw.kernels import torch_foreach

        # In `stateless_apply` the variables' values are the scope's, and the
        # update must return new values: the reference ops do that.
        if torch_foreach.eager() and not in_stateless_scope():
            return torch_foreach.update(optimizer, grads, variables, optimizer._step)
    if BACKEND == "tensorflow":
        with tf_paths.batch():
            loop()
        return None
    if BACKEND == "jax":
        with jax_calls.batch():
            loop()
        return None
    loop()
    return None


def adam_betas(beta_1, beta_2):
    """The betas AdamW's kernels and bias correction use: float32 on TensorFlow
    (its fused ops receive them so), as given elsewhere."""
    if BACKEND == "tensorflow":
        return tf_paths.float32_betas(beta_1, beta_2)
    return beta_1, beta_2


def eager_float(variable):
    """A scalar variable's value as a float, read eagerly: on TensorFlow the
    optimizer is built inside the first traced step."""
    if BACKEND == "tensorflow":
        with tf.init_scope():
            return float(variable.numpy())
    return float(variable.value)  # a 0-d jax or torch tensor


def eager_copy(target, source):
    """`target.assign(source)` now, also while a step is being traced (TensorFlow
    builds an optimizer inside the first traced step)."""
    if BACKEND == "tensorflow":
        with tf.init_scope():
            target.assign(source.value)
        return
    target.assign(ops.copy(source.value))  # a buffer of its own: JAX donates both


def set_scalar(variable, value):
    """Writes a Python number into a scalar optimizer variable, eagerly: on torch
    into its tensor (`fill_`, what Keras's `assign` does after checks that cost
    more than the write here), elsewhere by `assign`."""
    if BACKEND == "torch":
        import torch

        with torch.no_grad():
            variable.value.fill_(value)
        return
    variable.assign(value)


def is_sparse(gradient):
    """Whether `gradient` is the backend's sparse type (`IndexedSlices`, JAX
    sparse arrays, torch sparse tensors)."""
    if BACKEND == "tensorflow":
        return isinstance(gradient, tf.IndexedSlices)
    if BACKEND == "jax":
        return isinstance(gradient, jax_sparse.JAXSparse)
    return getattr(gradient, "is_sparse", False)  # torch's sparse COO tensors


def subtract_sparse(optimizer, variable, gradient, scale):
    """`variable -= scale * gradient` on the gradient's entries only (repeated rows
    add up, as in the dense sum): a scatter on TensorFlow (Keras's `assign_sub`
    of `IndexedSlices`), Keras's sparse ops on JAX, torch's sparse `add_`."""
    if BACKEND == "torch":
        import torch

        with torch.no_grad():
            variable.value.add_(gradient.to(variable.value.dtype) * -scale)
        return
    optimizer.assign_sub(variable, ops.multiply(ops.cast(gradient, variable.dtype), scale))


def dense_gradient(gradient, dtype):
    """The dense equivalent of a gradient: `IndexedSlices` rows are summed, JAX
    `BCOO` and torch sparse tensors made dense.

    DESIGN.md section 4: sparse gradients give the numbers of the dense one, so
    repeated rows are summed first and absent rows still decay their moments.
    """
    if BACKEND == "tensorflow" and isinstance(gradient, tf.IndexedSlices):
        gradient = tf.convert_to_tensor(gradient)
    elif BACKEND == "jax" and isinstance(gradient, jax_sparse.JAXSparse):
        gradient = gradient.todense()  # BCOO: what Keras's JAX backend gives
    elif BACKEND == "torch" and getattr(gradient, "is_sparse", False):
        gradient = gradient.to_dense()
    return ops.cast(gradient, dtype)
