"""The Keras 2 pieces of the tests (the rest is tests/helpers.py): skip marks, the
variables of the oracle tests and their training loop, a small `fit`."""
import importlib.metadata

import numpy as np
import pytest
import tensorflow as tf
from helpers import (
    FLOAT32_ALL,
    SPARSE_INDICES,
    as_float64,
    indexed_slices,
    make_gradients,
    make_step,
    make_variables,
    oracle_for,
)
from reference import densify

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


def gradient_steps(steps, sparse=False):
    """Per step, our gradients of the `SHAPES` variables and the oracle's float64 ones.

    Args:
        steps: how many steps.
        sparse: whether `emb` gets `IndexedSlices` with repeated rows.

    Yields:
        `(grads, expected)`: tensors (an `IndexedSlices` for `emb` if sparse) and
        the same as dense float64 arrays.
    """
    dense, sparse_values = make_gradients(SHAPES.values(), steps)
    for i in range(steps):
        grads = [tf.constant(g) for g in dense[i]]
        expected = [g.astype(np.float64) for g in dense[i]]
        if sparse:
            grads[2] = indexed_slices(sparse_values[i], SHAPES["emb/embeddings"])
            expected[2] = densify(sparse_values[i], SPARSE_INDICES, SHAPES["emb/embeddings"])
        yield grads, expected


def train(optimizer, steps, sparse=False):
    """`steps` updates of new `SHAPES` variables in a `tf.function`; the variables."""
    variables = make_variables(tf.Variable, SHAPES)
    step = make_step(optimizer, variables, "function")
    for grads, _ in gradient_steps(steps, sparse):
        step(grads)
    return variables


def train_against_oracle(optimizer, case, steps, sparse=False, jit_compile=False,
                         restart_at=None, **oracle_extra):
    """`steps` updates of `optimizer` (of row `case`) and of the oracle.

    Args:
        optimizer: ours, for the variables of `SHAPES`.
        case: its `cases.Case` row.
        steps: how many updates, in a `tf.function`.
        sparse: whether `emb` gets `IndexedSlices` with repeated rows.
        jit_compile: whether the step is XLA-compiled.
        restart_at: the step before which `t_cur` is set to -1 (a manual restart).
        **oracle_extra: the oracle's terms of the optimizer's extra settings;
            `anchored`: the names of `SHAPES` that decay toward their start.

    Returns:
        `(variables, oracle, params)`: ours, the oracle, the oracle's values.
    """
    from keras_adamw.keras2.framework import keras2 as tf_keras

    variables = make_variables(tf.Variable, SHAPES)
    params = [as_float64(v) for v in variables]
    anchored = oracle_extra.pop("anchored", ())  # decay_to="init": theta_0 = the start
    if anchored:
        oracle_extra["anchors"] = [p if name in anchored else None
                                   for name, p in zip(SHAPES, params)]
    oracle = oracle_for(case, SHAPES.values(), float32=FLOAT32_ALL, **oracle_extra)
    step = make_step(optimizer, variables, "jit" if jit_compile else "function")
    for i, (grads, expected) in enumerate(gradient_steps(steps, sparse)):
        if restart_at == i:
            tf_keras.backend.set_value(optimizer.t_cur, -1)
            oracle.set_t_cur(-1)
        step(grads)
        params = oracle.step(params, expected)
    return variables, oracle, params


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
