"""Sparse gradients in each backend's own type give the numbers of the dense one.

TensorFlow `IndexedSlices` (repeated rows summed), JAX `BCOO` (what Keras's JAX
backend produces for sparse inputs) and torch sparse COO tensors, for every row
of the case table, on an embedding-like table next to a dense kernel: variables
and slots against the float64 oracle given the dense equivalents, after 12
updates (absent rows still decay and their moments still move, DESIGN.md section 4).
Without momentum and decay SGDW moves only the gradient's rows, as Keras's SGD does
(`kernels.keras3.subtract_sparse`): the same numbers, and that path is taken.
"""
import keras
import numpy as np
import pytest
from cases import case_id, rows
from helpers import (
    SPARSE_INDICES,
    as_float64,
    assert_matches_oracle,
    make_step,
    make_variables,
    oracle_for,
)
from keras3_helpers import BACKEND, float32_terms
from reference import densify

import keras_adamw
from keras_adamw.kernels import keras3 as kernels

SHAPES = {"table": (8, 3), "kernel": (3, 2)}
STEPS = 12
DECAYED = ({"weight_decay": 0.05, "lr_multipliers": {"table": 2.0}},
           {"weight_decay": 0.05, "multipliers": [2.0, 1.0]})
UNDECAYED = ({"lr_multipliers": {"table": 2.0}}, {"multipliers": [2.0, 1.0]})


def sparse_gradient(values, shape):
    """The gradient of `values` at `SPARSE_INDICES` rows, in the backend's sparse type."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.IndexedSlices(tf.constant(values, "float32"), tf.constant(SPARSE_INDICES),
                                tf.constant(shape, tf.int64))
    indices = np.stack([np.repeat(SPARSE_INDICES, shape[1]),
                        np.tile(np.arange(shape[1]), len(SPARSE_INDICES))], axis=1)
    flat = np.asarray(values, np.float32).reshape(-1)
    if BACKEND == "jax":
        from jax.experimental import sparse

        return sparse.BCOO((flat, indices), shape=shape)
    import torch

    return torch.sparse_coo_tensor(indices.T, flat, shape, check_invariants=True)


@pytest.mark.parametrize("extras", [DECAYED, UNDECAYED], ids=["decayed", "undecayed"])
@pytest.mark.parametrize("case", rows(), ids=case_id)
def test_sparse_gradients_give_the_dense_numbers(case, extras):
    run_sparse_steps(case, *extras)


@pytest.mark.parametrize("name, extras, rows_only", [
    ("sgdw", UNDECAYED, True), ("sgdw", DECAYED, False), ("sgdw_momentum", UNDECAYED, False)])
def test_plain_sgd_updates_only_the_gradient_rows(monkeypatch, name, extras, rows_only):
    """The row-only update runs exactly where the dense update touches only the rows."""
    calls = []
    subtract_sparse = kernels.subtract_sparse
    monkeypatch.setattr(kernels, "subtract_sparse", lambda optimizer, variable, *rest: (
        calls.append(variable.path), subtract_sparse(optimizer, variable, *rest)))
    run_sparse_steps(rows(name)[0], *extras)
    assert calls == (["table"] * STEPS if rows_only else [])


@pytest.mark.skipif(BACKEND != "tensorflow", reason="tf.function and XLA: TensorFlow")
@pytest.mark.parametrize("mode", ["function", "jit"])
@pytest.mark.parametrize("name, extras", [("sgdw", UNDECAYED), ("sgdw", DECAYED),
                                          ("sgdw_nesterov", DECAYED), ("adamw", DECAYED)],
                         ids=["sgdw-rows", "sgdw-decayed", "sgdw_nesterov", "adamw"])
def test_sparse_gradients_in_tf_function_and_xla(name, extras, mode):
    run_sparse_steps(rows(name)[0], *extras, mode=mode)


def run_sparse_steps(case, extras, extras_oracle, mode="eager"):
    """`STEPS` updates of a sparse table gradient and a dense kernel gradient (eager,
    in a `tf.function` or under XLA), compared with the oracle given their dense
    equivalents."""
    variables = make_variables(keras.Variable, SHAPES)
    optimizer = case.make(keras_adamw, **extras)
    step = make_step(optimizer, variables, mode)
    oracle = oracle_for(case, SHAPES.values(), float32=float32_terms(case), **extras_oracle)
    params = [as_float64(v) for v in variables]
    rng = np.random.default_rng(4)
    for _ in range(STEPS):
        values = rng.normal(size=(len(SPARSE_INDICES), SHAPES["table"][1]))
        kernel = rng.normal(size=SHAPES["kernel"])
        step([sparse_gradient(values, SHAPES["table"]),
              keras.ops.convert_to_tensor(kernel, "float32")])
        params = oracle.step(params, [densify(values, SPARSE_INDICES, SHAPES["table"]),
                                      kernel])
    assert_matches_oracle(optimizer, variables, oracle, params, case, what=case.name)
