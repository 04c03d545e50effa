"""keras2: effective learning rate and `effective_lr_bounds` against the float64 oracle.

The rows of tests/cases.py x its `BOUNDS`, as tests/keras3/test_effective_lr.py, on
tf_keras variables, dense gradients, a multiplier and a Keras-convention decay:
variables, slots and the per-element effective learning rate after a few updates.
"""
import numpy as np
import pytest
import tensorflow as tf
from cases import BOUNDS, case_id, rows, upper_bound
from helpers import FLOAT32_ALL, assert_bounds_active, check_effective_lr, small_model

from keras_adamw import keras2
from keras_adamw.keras2 import AdamW, NadamW
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

BOUNDED = rows("adamw", "adamw_amsgrad", "nadamw", "sgdw_momentum")


@pytest.mark.parametrize("bounds_case", sorted(BOUNDS))
@pytest.mark.parametrize("case", BOUNDED, ids=case_id)
def test_bounded_trajectory_and_effective_lr_match_oracle(case, bounds_case):
    check_effective_lr(case, BOUNDS[bounds_case], keras2,
                       small_model(tf_keras).trainable_variables, float32=FLOAT32_ALL)


def test_bounds_are_active_in_the_table():
    """Unbounded rates of the table's setup cross both bounds (so clipping is tested)."""
    optimizer = AdamW(learning_rate=0.01, lr_multipliers={"dense_2": 0.5}, init_verbose=False)
    assert_bounds_active(optimizer, small_model(tf_keras).trainable_variables)


@pytest.mark.parametrize("mode", ["function", "jit"])
def test_bounded_step_in_tf_function_and_xla_equals_eager(mode):
    """The bounded path (composite ops; SGDW's clipped scalar) compiles and agrees."""
    trajectories = []
    for compiled in (False, True):
        variables = small_model(tf_keras).trainable_variables
        optimizer = NadamW(learning_rate=0.01, effective_lr_bounds=(8e-3, upper_bound),
                           weight_decay=0.1, init_verbose=False)
        grads = [tf.ones_like(v) * (i + 1) for i, v in enumerate(variables)]

        def step(grads=grads, optimizer=optimizer, variables=variables):
            optimizer.apply_gradients(zip(grads, variables))

        if compiled:
            step = tf.function(step, jit_compile=mode == "jit")
        for _ in range(3):
            step()
        trajectories.append([v.numpy() for v in variables])
    for eager, compiled in zip(*trajectories):
        np.testing.assert_allclose(compiled, eager, rtol=1e-6)


def test_effective_lr_before_build_and_of_an_unknown_variable():
    model = small_model(tf_keras)
    optimizer = AdamW(init_verbose=False)
    kernel = model.trainable_variables[0]
    with pytest.raises(ValueError, match="built"):
        optimizer.effective_learning_rate(kernel)
    optimizer.apply_gradients([(tf.zeros_like(kernel), kernel)])
    with pytest.raises(KeyError, match="not updated by this optimizer"):
        optimizer.effective_learning_rate(model.trainable_variables[1])


@pytest.mark.parametrize("bounds, error", [((1e-2, 1e-3), ValueError), ((-1, None), ValueError),
                                           (0.1, TypeError), (("a", None), TypeError)])
def test_bad_bounds_name_the_argument(bounds, error):
    with pytest.raises(error, match="effective_lr_bounds"):
        AdamW(effective_lr_bounds=bounds)
