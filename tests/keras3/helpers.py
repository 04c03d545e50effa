"""Backend-neutral helpers of the Keras 3 tests: models, gradients, numpy views."""
import keras
import numpy as np

from keras_adamw.utils import K_eval

BACKEND = keras.backend.backend()


def small_model(seed=0, with_embedding=False):
    """Two named Dense layers (paths `dense_1/...`, `dense_2/...`), optionally an Embedding."""
    keras.utils.set_random_seed(seed)
    if with_embedding:
        inputs = keras.Input((5,), dtype="int32")
        x = keras.layers.Embedding(12, 4, name="embedding")(inputs)
        x = keras.layers.Flatten()(x)
    else:
        inputs = keras.Input((4,))
        x = inputs
    x = keras.layers.Dense(6, activation="tanh", name="dense_1")(x)
    outputs = keras.layers.Dense(2, name="dense_2")(x)
    return keras.Model(inputs, outputs)


def numpy_values(variables):
    return [np.asarray(K_eval(v), dtype=np.float64) for v in variables]


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
        out.append(np.asarray(K_eval(g), dtype=np.float64))
    return out


def step_with_oracle(optimizer, variables, oracle, steps, seed=0):
    """`steps` updates of random float64 gradients (float32 to ours) on both; asserts
    the variables equal the oracle's (rtol 1e-5) and returns the oracle's values."""
    params = numpy_values(variables)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        dense = [rng.normal(size=p.shape) for p in params]
        optimizer.apply([g.astype("float32") for g in dense], variables)
        params = oracle.step(params, dense)
    for variable, expected in zip(variables, params):
        np.testing.assert_allclose(K_eval(variable), expected, rtol=1e-5, atol=1e-6,
                                   err_msg=variable.path)
    return params
