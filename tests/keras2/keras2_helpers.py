"""Shared pieces of the keras2 tests: variables, gradients, oracle settings."""
import numpy as np
import tensorflow as tf

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


def assert_close(actual, expected, rtol=1e-5, floor=1e-6, what=""):
    """`rtol` elementwise, with an absolute floor of `floor` times the tensor's scale.

    float32 rounding of an O(1) variable over many steps is absolute, so an
    element that crosses zero cannot meet a pure relative tolerance.
    """
    expected = np.asarray(expected, np.float64)
    atol = floor * float(np.max(np.abs(expected), initial=0.0))
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected, rtol=rtol,
                               atol=atol, err_msg=what)
