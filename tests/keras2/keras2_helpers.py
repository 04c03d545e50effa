"""Shared pieces of the keras2 tests: variables, gradients, oracle settings."""
import importlib.metadata

import numpy as np
import pytest
import tensorflow as tf

from keras_adamw.kernels import tf_xla_calls

# TensorFlow 2.12-2.15 (their keras is 2.x): no Keras 3 beside the Keras 2 flavour,
# no XLA FFI headers for the native custom calls (the XLA-compiled kernels run).
needs_keras3 = pytest.mark.skipif(
    int(importlib.metadata.version("keras").split(".")[0]) < 3,
    reason="Keras 3 is not installed with TensorFlow <= 2.15 (its keras is 2.x)")
needs_custom_calls = pytest.mark.skipif(
    not tf_xla_calls.available(),
    reason="TensorFlow <= 2.15 has no XLA FFI headers: no native custom calls")

SHAPES = {"dense/kernel": (5, 3), "dense/bias": (3,), "emb/embeddings": (8, 2)}
SPARSE_INDICES = np.array([1, 3, 1, 6, 3, 1])  # duplicates; rows 0, 2, 4, 5, 7 absent


def f32(x):
    """A hyperparameter as the float32 optimizer holds it, for the float64 oracle."""
    return float(np.float32(x))


def make_variables(seed=0):
    rng = np.random.default_rng(seed)
    return [tf.Variable(rng.normal(size=s).astype("float32"), name=n)
            for n, s in SHAPES.items()]


def make_gradients(steps, seed=1):
    """Per step: dense gradients of every variable, and sparse values of `emb`."""
    rng = np.random.default_rng(seed)
    dense = [[rng.normal(size=s).astype("float32") for s in SHAPES.values()]
             for _ in range(steps)]
    sparse = [rng.normal(size=(len(SPARSE_INDICES), 2)).astype("float32")
              for _ in range(steps)]
    return dense, sparse


def make_step(optimizer, variables, sparse, jit_compile=False):
    """One `apply_gradients` in a tf.function; `emb` gets IndexedSlices if sparse."""
    indices = tf.constant(SPARSE_INDICES)

    @tf.function(jit_compile=jit_compile)
    def step(grads, emb_values):
        if sparse:
            grads = grads[:2] + [tf.IndexedSlices(emb_values, indices,
                                                  tf.constant(SHAPES["emb/embeddings"]))]
        optimizer.apply_gradients(zip(grads, variables))

    return step


def assert_close(actual, expected, rtol=1e-5, floor=1e-6, what=""):
    """`rtol` elementwise, with an absolute floor of `floor` times the tensor's scale.

    float32 rounding of an O(1) variable over many steps is absolute, so an
    element that crosses zero cannot meet a pure relative tolerance.
    """
    expected = np.asarray(expected, np.float64)
    atol = floor * float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol,
                               atol=atol, err_msg=what)


def train_small_model(optimizer_factory, steps=8, mode="function"):
    """Trains a small Dense model for `steps` batches; returns weights and state.

    `mode`: "eager" (run_eagerly), "function" (tf.function), "jit" (XLA) through
    `fit`, or "graph" (`train_on_batch`; TF1 graph mode must already be on).
    """
    from keras_adamw.keras2.framework import keras2 as tf_keras

    rng = np.random.default_rng(5)
    x = rng.normal(size=(steps * 4, 3)).astype("float32")
    y = rng.normal(size=(steps * 4, 1)).astype("float32")
    model = tf_keras.Sequential([
        tf_keras.layers.Dense(4, activation="tanh", name="d1", input_shape=(3,),
                              kernel_regularizer=tf_keras.regularizers.L1L2(1e-3, 1e-2)),
        tf_keras.layers.Dense(1, name="d2")])
    model.set_weights([rng.normal(size=w.shape).astype("float32") * 0.5
                       for w in model.get_weights()])
    optimizer = optimizer_factory(model)
    options = {} if mode == "graph" else {"run_eagerly": mode == "eager",
                                              "jit_compile": mode == "jit"}
    model.compile(optimizer=optimizer, loss="mse", **options)
    if mode == "graph":
        for i in range(steps):
            model.train_on_batch(x[4 * i:4 * i + 4], y[4 * i:4 * i + 4])
    else:
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    get = tf_keras.backend.get_value
    state = {"iterations": int(get(optimizer.iterations)), "t_cur": int(get(optimizer.t_cur)),
             "eta_t": float(get(optimizer.eta_t)), "lr_t": float(get(optimizer.lr_t))}
    return [np.asarray(w) for w in model.get_weights()], state


def small_adamw(model):
    from keras_adamw.keras2 import AdamW

    return AdamW(learning_rate=0.01, model=model, lr_multipliers={"d1": 0.5},
                 use_cosine_annealing=True, total_iterations=5, weight_decay=0.01,
                 exclude_from_weight_decay=["bias"], init_verbose=False)
