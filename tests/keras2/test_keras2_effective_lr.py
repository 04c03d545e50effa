"""keras2: effective learning rate and `effective_lr_bounds` against the float64 oracle.

The case table of tests/keras3/test_effective_lr.py (optimizer x bounds) on
tf_keras variables, dense gradients, a multiplier and a Keras-convention decay:
variables, slots and the per-element effective learning rate after a few updates.
"""
import numpy as np
import pytest
import tensorflow as tf
from bound_cases import BOUNDS, upper_bound
from helpers import assert_close, f32
from reference import ReferenceOptimizer

from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

STEPS = 8
OPTIMIZERS = {
    "adamw": ("adamw", AdamW, {}),
    "adamw_amsgrad": ("adamw", AdamW, {"amsgrad": True}),
    "nadamw": ("nadamw", NadamW, {}),
    "sgdw_momentum": ("sgdw", SGDW, {"momentum": 0.9}),
}


MULTIPLIERS = [1.0, 1.0, 0.5, 0.5]


def small_model():
    tf_keras.utils.set_random_seed(0)
    return tf_keras.Sequential([tf_keras.layers.Dense(3, name="dense_1", input_shape=(4,)),
                                tf_keras.layers.Dense(2, name="dense_2")])


def oracle_for(kind, optimizer, params, learning_rate, bounds, kwargs):
    oracle_kwargs = {"learning_rate": f32(learning_rate), "multipliers": MULTIPLIERS,
                     "weight_decay": 0.1, "effective_lr_bounds": bounds, **kwargs}
    if kind == "sgdw":
        oracle_kwargs["momentum"] = f32(kwargs["momentum"])
    else:
        oracle_kwargs.update(beta_1=f32(0.9), beta_2=f32(0.999), epsilon=f32(optimizer.epsilon))
    return ReferenceOptimizer(kind, [p.shape for p in params], **oracle_kwargs)


@pytest.mark.parametrize("bounds_case", sorted(BOUNDS))
@pytest.mark.parametrize("optimizer_case", sorted(OPTIMIZERS))
def test_bounded_trajectory_and_effective_lr_match_oracle(optimizer_case, bounds_case):
    kind, cls, kwargs = OPTIMIZERS[optimizer_case]
    bounds = BOUNDS[bounds_case]
    learning_rate = 0.05 if kind == "sgdw" else 0.01
    variables = small_model().trainable_variables
    optimizer = cls(learning_rate=learning_rate, effective_lr_bounds=bounds,
                    lr_multipliers={"dense_2": 0.5}, weight_decay=0.1, init_verbose=False,
                    **kwargs)
    params = [v.numpy().astype(np.float64) for v in variables]
    oracle = oracle_for(kind, optimizer, params, learning_rate, bounds, kwargs)
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        dense = [rng.normal(size=p.shape) for p in params]
        optimizer.apply_gradients(zip([g.astype("float32") for g in dense], variables))
        params = oracle.step(params, dense)
    for i, (variable, expected) in enumerate(zip(variables, params)):
        assert_close(variable.numpy(), expected, what=variable.name)
        rate = optimizer.effective_learning_rate(variable).numpy()
        assert rate.shape == tuple(variable.shape)
        assert_close(rate, oracle.effective_learning_rate(i, MULTIPLIERS[i]),
                     rtol=2e-5, what=f"effective lr of {variable.name}")


def test_bounds_are_active_in_the_table():
    """Unbounded rates of the table's setup cross both bounds (so clipping is tested)."""
    variables = small_model().trainable_variables
    optimizer = AdamW(learning_rate=0.01, lr_multipliers={"dense_2": 0.5}, init_verbose=False)
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        optimizer.apply_gradients(
            (rng.normal(size=v.shape).astype("float32"), v) for v in variables)
    rates = np.concatenate([np.ravel(optimizer.effective_learning_rate(v)) for v in variables])
    lower, upper = BOUNDS["both"]
    assert rates.min() < lower and rates.max() > upper
    assert rates.max() > upper_bound(STEPS - 1)


@pytest.mark.parametrize("mode", ["function", "jit"])
def test_bounded_step_in_tf_function_and_xla_equals_eager(mode):
    """The bounded path (composite ops; SGDW's clipped scalar) compiles and agrees."""
    trajectories = []
    for compiled in (False, True):
        variables = small_model().trainable_variables
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
    model = small_model()
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
