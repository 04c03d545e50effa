"""Sparse gradients in each backend's own type give the numbers of the dense one.

TensorFlow `IndexedSlices` (repeated rows summed), JAX `BCOO` (what Keras's JAX
backend produces for sparse inputs) and torch sparse COO tensors, for every row
of the case table, on an embedding-like table next to a dense kernel: variables
and slots against the float64 oracle given the dense equivalents, after 12
updates (absent rows still decay and their moments still move, DESIGN.md section 4).
"""
import keras
import numpy as np
import pytest
from cases import case_id, rows
from helpers import (
    SPARSE_INDICES,
    as_float64,
    assert_matches_oracle,
    make_variables,
    oracle_for,
)
from keras3_helpers import BACKEND, float32_terms
from reference import densify

import keras_adamw

SHAPES = {"table": (8, 3), "kernel": (3, 2)}
STEPS = 12
EXTRAS = {"weight_decay": 0.05, "lr_multipliers": {"table": 2.0}}
EXTRAS_ORACLE = {"weight_decay": 0.05, "multipliers": [2.0, 1.0]}


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


@pytest.mark.parametrize("case", rows(), ids=case_id)
def test_sparse_gradients_give_the_dense_numbers(case):
    variables = make_variables(keras.Variable, SHAPES)
    optimizer = case.make(keras_adamw, **EXTRAS)
    oracle = oracle_for(case, SHAPES.values(), float32=float32_terms(case), **EXTRAS_ORACLE)
    params = [as_float64(v) for v in variables]
    rng = np.random.default_rng(4)
    for _ in range(STEPS):
        values = rng.normal(size=(len(SPARSE_INDICES), SHAPES["table"][1]))
        kernel = rng.normal(size=SHAPES["kernel"])
        optimizer.apply([sparse_gradient(values, SHAPES["table"]),
                         keras.ops.convert_to_tensor(kernel, "float32")], variables)
        params = oracle.step(params, [densify(values, SPARSE_INDICES, SHAPES["table"]),
                                      kernel])
    assert_matches_oracle(optimizer, variables, oracle, params, case, what=case.name)
