"""The Keras 3 pieces of the tests (the rest is tests/helpers.py): the backend,
native gradients, and the hyperparameters a backend's kernels take as float32."""
import keras
import numpy as np
from helpers import FLOAT32_BETAS, as_float64

BACKEND = keras.backend.backend()


def float32_terms(case):
    """The hyperparameters of `case` this backend rounds to float32 (the oracle's
    `float32`): TensorFlow's fused Adam kernels compute `1 - beta` in float32, so
    beta_2 is float32(0.999) = 0.99900001 there (as in tf_keras's Adam; 1.3e-5 in v),
    and AdamW's every other path on TensorFlow takes the same betas.

    Args:
        case: the `cases.Case` row.
    """
    adamw_on_tf = BACKEND == "tensorflow" and case.optimizer == "adamw"
    return FLOAT32_BETAS if adamw_on_tf else ()


def gradients(model, x, y):
    """Gradients of the mean squared error, in the backend's native form.

    On TensorFlow an Embedding gives `tf.IndexedSlices` (sparse); on JAX and
    torch every gradient is dense.
    """
    variables = model.trainable_variables
    x, y = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            loss = keras.ops.mean(keras.ops.square(model(x) - y))
        return tape.gradient(loss, [v.value for v in variables])
    if BACKEND == "jax":
        import jax

        def loss_fn(values):
            non_trainable = [v.value for v in model.non_trainable_variables]
            out, _ = model.stateless_call(values, non_trainable, x)
            return keras.ops.mean(keras.ops.square(out - y))

        return jax.grad(loss_fn)([v.value for v in variables])

    for v in variables:
        v.value.grad = None
    loss = keras.ops.mean(keras.ops.square(model(x) - y))
    loss.backward()
    return [v.value.grad.detach().clone() for v in variables]


def densified(grads):
    """Numpy float64 copies of native gradients (IndexedSlices summed per row)."""
    out = []
    for g in grads:
        if hasattr(g, "indices") and hasattr(g, "dense_shape"):
            import tensorflow as tf

            g = tf.convert_to_tensor(g)
        out.append(as_float64(g))
    return out


def numpy_values(values):
    """float64 numpy copies."""
    return [np.asarray(as_float64(v)) for v in values]
