"""tf_keras mixed precision and low-precision variables.

- `mixed_float16` (tf_keras wraps ours in its `LossScaleOptimizer` at compile)
  and `mixed_bfloat16`: float32 variables, finite, the float32 trajectory to the
  compute dtype's resolution, `t_cur` advanced once per applied update.
- Skipped (overflowing) steps: weights, slots, t_cur, eta_t and lr_t unchanged.
  tf_keras's `LossScaleOptimizer` still counts them in `iterations` (its own
  Adam's bias correction does the same); `t_cur` counts applied updates.
- float16 variables: the oracle's numbers to the dtype's resolution; bfloat16:
  SGDW likewise, AdamW/NadamW refused up front (beta_2 = 0.999 rounds to 1).
- A decay below the resolution of a variable's dtype warns once at build.
"""
import warnings

import numpy as np
import pytest
import tensorflow as tf
from cases import CASES
from helpers import (
    FLOAT32_ALL,
    assert_low_precision_close,
    policy_scope,
    train_low_precision,
)

from keras_adamw import keras2
from keras_adamw.keras2 import SGDW, AdamW
from keras_adamw.keras2.framework import (
    keras2 as tf_keras,  # tf_keras, or keras 2.x on TF < 2.16
)

get = tf_keras.backend.get_value


def global_policy(name):
    return policy_scope(tf_keras.mixed_precision.set_global_policy, name)


def fit_small_model(policy, wrap=None, steps=10):
    """Ten updates of a two-layer model with multipliers, both decays and restarts."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * steps, 3)).astype("float32")
    y = rng.normal(size=(4 * steps, 1)).astype("float32")
    with global_policy(policy):
        tf_keras.utils.set_random_seed(0)
        model = tf_keras.Sequential([
            tf_keras.layers.Dense(4, activation="tanh", name="d1", input_shape=(3,)),
            tf_keras.layers.Dense(1, name="d2")])
        optimizer = AdamW(learning_rate=0.01, lr_multipliers={"d1": 0.5}, weight_decay=0.05,
                          weight_decays={"d2/kernel": (0, 0.02)}, total_iterations=4,
                          use_cosine_annealing=True, init_verbose=False)
        model.compile(wrap(optimizer) if wrap else optimizer, loss="mse")
        initial = model.get_weights()
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return model, optimizer, initial


@pytest.mark.parametrize("policy, rtol", [("mixed_float16", 6e-3), ("mixed_bfloat16", 1e-1)])
def test_mixed_policy_follows_float32_training(policy, rtol):
    model, optimizer, _ = fit_small_model(policy)
    wrapper = tf_keras.mixed_precision.LossScaleOptimizer
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, wrapper) and model.optimizer.inner_optimizer is optimizer
    else:
        assert model.optimizer is optimizer
    assert all(v.dtype == tf.float32 for v in model.trainable_variables)
    assert get(optimizer.iterations) == 10 and get(optimizer.t_cur) == 10 % 4
    reference, _, _ = fit_small_model("float32")
    for ours, theirs in zip(model.get_weights(), reference.get_weights()):
        assert np.all(np.isfinite(ours))
        # Measured: 1.7e-3 (mixed_float16) and 4.7e-2 (mixed_bfloat16) of the scale.
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.max(np.abs(theirs)))


def test_overflowing_steps_leave_weights_and_schedule_unchanged():
    """float16 gradients of a loss scaled by 2^40 overflow for all ten steps."""
    def wrap(optimizer):
        return tf_keras.mixed_precision.LossScaleOptimizer(optimizer, initial_scale=2.0 ** 40)

    model, optimizer, initial = fit_small_model("mixed_float16", wrap)
    assert get(model.optimizer.loss_scale) == 2.0 ** 30
    assert get(optimizer.t_cur) == 0 and get(optimizer.eta_t) == 1.0
    assert get(optimizer.lr_t) == 0.0
    assert get(optimizer.iterations) == 10  # tf_keras's wrapper counts skipped steps
    for a, b in zip(model.get_weights(), initial):
        np.testing.assert_array_equal(a, b)
    for slot in optimizer.get_slot_names():
        for variable in model.trainable_variables:
            assert not np.any(optimizer.get_slot(variable, slot).numpy())


def train(row, dtype, xla_min_size, steps=8):
    def configure(optimizer):
        optimizer.xla_min_size = xla_min_size

    return train_low_precision(CASES[row], keras2, tf.Variable, tf.constant, dtype, steps,
                               FLOAT32_ALL, configure)


@pytest.mark.parametrize("xla_min_size", [0, None], ids=["compiled", "tf-ops"])
@pytest.mark.parametrize("row, dtype", [("adamw", "float16"), ("nadamw", "float16"),
                                        ("sgdw_momentum", "float16"),
                                        ("sgdw_momentum", "bfloat16")])
def test_low_precision_variables_follow_the_oracle(row, dtype, xla_min_size):
    """Gradients of magnitude 0.1 to 1, so that `(1 - b2) g^2` does not underflow
    float16 (it would for any Adam)."""
    optimizer, oracle, variables, params = train(row, dtype, xla_min_size)
    assert get(optimizer.t_cur) == oracle.t_cur == 0
    assert all(v.dtype == tf.as_dtype(dtype) for v in variables)
    assert_low_precision_close(variables, params, dtype)


@pytest.mark.parametrize("kind", ["adamw", "nadamw"])
def test_bfloat16_adam_variables_are_refused(kind):
    with pytest.raises(ValueError, match=r"Argument `beta_2` must be below 1 in bfloat16.*"
                                         r"Received: beta_2=0.999.*mixed_bfloat16"):
        train(kind, "bfloat16", 0, steps=1)


def test_build_warns_once_per_dtype_whose_decay_rounds_away():
    variables = [tf.Variable(np.ones((3, 2)), dtype=d, name=n)
                 for n, d in [("a", "float16"), ("b", "float16"), ("c", "float32")]]
    optimizer = SGDW(learning_rate=1e-3, weight_decay=1e-4, init_verbose=False)
    grads = [tf.ones_like(v) for v in variables]
    with pytest.warns(UserWarning, match="below the resolution") as record:
        optimizer.apply_gradients(zip(grads, variables))
    messages = [str(r.message) for r in record if "below the resolution" in str(r.message)]
    assert len(messages) == 1
    assert "2 float16 variable" in messages[0] and "'a'" in messages[0] and "'c'" not in messages[0]
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        optimizer.apply_gradients(zip(grads, variables))
    assert not [r for r in again if "below the resolution" in str(r.message)]
