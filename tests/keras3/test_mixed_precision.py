"""Mixed precision and low-precision variables, on the backend of this process.

- `mixed_float16` (Keras wraps ours in `LossScaleOptimizer` at compile) and
  `mixed_bfloat16`: float32 variables, finite, the float32 trajectory to the
  compute dtype's resolution, `t_cur` advanced once per applied update.
- A skipped (overflowing) step of `LossScaleOptimizer` changes nothing of ours:
  weights, slots, iterations, t_cur, eta_t, lr_t; the next finite step is the
  oracle's first.
- float16/bfloat16 variables: the oracle's numbers to the dtype's resolution.
- A decay below the resolution of a variable's dtype warns once per dtype, at
  build (`keras_adamw.core.precision`).
"""
import warnings

import keras
import numpy as np
import pytest
from cases import CASES, EACH_OPTIMIZER, case_id, rows
from helpers import (
    LOW_PRECISION_EPSILON,
    as_float64,
    assert_low_precision_close,
    oracle_for,
    policy_scope,
    small_model,
    train_low_precision,
)
from keras3_helpers import BACKEND, numpy_values

import keras_adamw
from keras_adamw.core import matching, precision

EPSILON = LOW_PRECISION_EPSILON


def dtype_policy(name):
    return policy_scope(keras.config.set_dtype_policy, name)


def rounding_warnings(record):
    return [str(r.message) for r in record if "below the resolution" in str(r.message)]


# ---- core.precision: the check itself ---------------------------------------------


@pytest.mark.parametrize("factor, lost", [(0.49, True), (0.51, False)])
def test_half_epsilon_is_where_float16_loses_the_decay(factor, lost):
    """The premise: `theta - c theta` in float16 rounds back to theta, at theta just
    above 1, exactly when c < eps/2; `rounded_decays` flags the same c."""
    theta = np.float16(1 + EPSILON["float16"])
    c = factor * EPSILON["float16"]
    assert bool(theta - np.float16(c) * theta == theta) == lost
    rule = matching.VariableRule(l2=c)
    flagged = precision.rounded_decays(["v"], ["float16"], [rule], 1.0, None)
    assert flagged == ({"float16": [("v", pytest.approx(c))]} if lost else {})


def test_rounded_decays_per_convention_and_dtype():
    rules = [matching.VariableRule(decay_lambda=1e-4),                 # keras: 1e-7
             matching.VariableRule(multiplier=0.1, decay_lambda=1e-3),  # keras: 1e-7
             matching.VariableRule(l2=1e-6),                            # paper: 1e-6
             matching.VariableRule(l2=3e-3),                            # paper: 3e-3
             matching.VariableRule(l1=1e-9),                            # L1: absolute
             matching.VariableRule()]
    paths = [f"v{i}" for i in range(len(rules))]
    for dtype, expected in [("float16", ["v0", "v1", "v2"]), ("bfloat16", ["v0", "v1", "v2", "v3"]),
                            ("float32", []), ("int32", [])]:
        flagged = precision.rounded_decays(paths, [dtype] * 6, rules, 1.0, 1e-3)
        assert [p for p, _ in flagged.get(dtype, [])] == expected, dtype
    # eta_max scales the largest decay; an unknown learning rate skips lambda.
    assert precision.rounded_decays(["v"], ["float32"], [rules[2]], 0.05, 1e-3) == {
        "float32": [("v", pytest.approx(5e-8))]}
    assert precision.rounded_decays(paths, ["float16"] * 6, rules, 1.0, None) == {
        "float16": [("v2", pytest.approx(1e-6))]}


def test_moment_decays_that_round_to_one_are_refused():
    with pytest.raises(ValueError, match=r"Argument `beta_2` must be below 1 in bfloat16"
                                         r".*Received: beta_2=0.999.*mixed_bfloat16"):
        precision.check_moment_decays({"beta_1": 0.9, "beta_2": 0.999}, ["bfloat16"])
    with pytest.raises(ValueError, match="beta_2.*float16"):
        precision.check_moment_decays({"beta_2": 0.9999}, ["float16"])
    precision.check_moment_decays({"beta_1": 0.9, "beta_2": 0.999}, ["float16", "float32"])


# ---- the warning at build ---------------------------------------------------------


def test_build_warns_once_per_dtype_whose_decay_rounds_away():
    variables = [keras.Variable(np.ones((3, 2)), dtype=d, name=n)
                 for n, d in [("a", "float16"), ("b", "float16"), ("c", "float32"),
                              ("d", "bfloat16")]]
    optimizer = keras_adamw.AdamW(learning_rate=1e-3, weight_decay=1e-4, init_verbose=False)
    with pytest.warns(UserWarning) as record:
        optimizer.build(variables)
    messages = rounding_warnings(record)
    assert len(messages) == 2  # float16 and bfloat16, one warning each
    float16 = next(m for m in messages if "float16 variable" in m and "bfloat16" not in m)
    assert "'a'" in float16 and "'b'" in float16 and "'c'" not in float16
    assert "eps/2 = 0.000488" in float16 and "mixed_" in float16
    with warnings.catch_warnings(record=True) as again:
        warnings.simplefilter("always")
        optimizer.build(variables)  # built: no second warning
    assert not rounding_warnings(again)


def test_paper_decay_with_a_schedule_warns_and_mixed_policy_does_not():
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    low = [keras.Variable(np.ones(3), dtype="float16", name="w")]
    with pytest.warns(UserWarning, match=r"1 float16 variable.*'w' \(1e-05\)"):
        keras_adamw.AdamW(learning_rate=schedule, weight_decays={"w": (0, 1e-4)},
                          total_iterations=100, init_verbose=False).build(low)
    with dtype_policy("mixed_float16"), warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        model = small_model(keras)
        assert all(v.dtype == "float32" for v in model.trainable_variables)
        keras_adamw.AdamW(learning_rate=1e-3, weight_decay=1e-3, init_verbose=False).build(
            model.trainable_variables)
    assert not rounding_warnings(record)


# ---- mixed policies through fit -----------------------------------------------------


def fit_small_model(policy, steps=10):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4 * steps, 4)).astype("float32")
    y = rng.normal(size=(4 * steps, 2)).astype("float32")
    with dtype_policy(policy):
        model = small_model(keras)
        optimizer = keras_adamw.AdamW(
            learning_rate=0.01, lr_multipliers={"dense_1": 0.5}, weight_decay=0.05,
            weight_decays={"dense_2/kernel": (0, 0.02)}, total_iterations=4,
            use_cosine_annealing=True, init_verbose=False)
        model.compile(optimizer, loss="mse")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
    return model, optimizer


@pytest.mark.parametrize("policy, rtol", [("mixed_float16", 4e-3), ("mixed_bfloat16", 3e-2)])
def test_mixed_policy_follows_float32_training(policy, rtol):
    model, optimizer = fit_small_model(policy)
    if policy == "mixed_float16":
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        assert model.optimizer.inner_optimizer is optimizer
    else:
        assert model.optimizer is optimizer
    assert all(v.dtype == "float32" for v in model.trainable_variables)
    assert int(as_float64(optimizer.iterations)) == 10 and int(as_float64(optimizer.t_cur)) == 10 % 4
    reference, _ = fit_small_model("float32")
    for ours, theirs in zip(numpy_values(model.weights), numpy_values(reference.weights)):
        assert np.all(np.isfinite(ours))
        # Compute-dtype rounding of activations and gradients, not of the update.
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.max(np.abs(theirs)))


# ---- skipped steps --------------------------------------------------------------------


def optimizer_state(optimizer, variables):
    return [np.asarray(as_float64(v), np.float64) for v in [*variables, *optimizer.variables]]


def apply_through(wrapper, grads, variables):
    """`wrapper.apply`; on JAX its stateless form, which `fit` uses (Keras's stateful
    `LossScaleOptimizer.apply` raises UnexpectedTracerError on JAX, around Keras's
    own Adam too)."""
    if BACKEND != "jax":
        wrapper.apply(grads, variables)
        return
    values, state = wrapper.stateless_apply([v.value for v in wrapper.variables], grads,
                                            [v.value for v in variables])
    for variable, value in zip([*variables, *wrapper.variables], [*values, *state]):
        variable.assign(value)


def test_overflowing_step_changes_nothing_then_the_next_is_the_first():
    model = small_model(keras)
    variables = model.trainable_variables
    params = numpy_values(variables)
    optimizer = keras_adamw.AdamW(learning_rate=0.01, weight_decay=0.1, total_iterations=4,
                                  use_cosine_annealing=True, init_verbose=False)
    wrapper = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0 ** 10)
    wrapper.build(variables)
    before = optimizer_state(optimizer, variables)
    rng = np.random.default_rng(0)
    grads = [rng.normal(size=p.shape) for p in params]
    overflowing = [g.astype("float32") for g in grads]
    overflowing[1][0] = np.inf
    apply_through(wrapper, overflowing, variables)
    for a, b in zip(optimizer_state(optimizer, variables), before):
        np.testing.assert_array_equal(a, b)  # weights, slots, iterations, t_cur, eta_t, lr_t
    assert float(as_float64(wrapper.dynamic_scale)) == 2.0 ** 9
    apply_through(wrapper, [(g * 2.0 ** 9).astype("float32") for g in grads], variables)
    oracle = oracle_for(CASES["adamw"], [p.shape for p in params], weight_decay=0.1,
                        total_iterations=4, use_cosine_annealing=True)
    expected = oracle.step(params, grads)
    assert int(as_float64(optimizer.t_cur)) == oracle.t_cur == 1
    assert int(as_float64(optimizer.iterations)) == 1
    np.testing.assert_allclose(as_float64(optimizer.eta_t), oracle.eta_t, rtol=1e-6)
    for variable, value in zip(variables, expected):
        np.testing.assert_allclose(as_float64(variable), value, rtol=1e-5, atol=1e-6)


def test_fit_with_overflowing_loss_scale_skips_every_step():
    """float16 gradients of a loss scaled by 2^40 overflow: three skipped steps."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(12, 4)), rng.normal(size=(12, 2))
    with dtype_policy("mixed_float16"):
        model = small_model(keras)
        optimizer = keras_adamw.AdamW(learning_rate=0.01, weight_decay=0.1, total_iterations=4,
                                      use_cosine_annealing=True, init_verbose=False)
        wrapper = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=2.0 ** 40)
        model.compile(wrapper, loss="mse")
        before = numpy_values(model.weights)
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    assert float(as_float64(wrapper.dynamic_scale)) == 2.0 ** 37
    assert int(as_float64(optimizer.iterations)) == 0 and int(as_float64(optimizer.t_cur)) == 0
    np.testing.assert_allclose(as_float64(optimizer.eta_t), 1.0)
    for a, b in zip(numpy_values(model.weights), before):
        np.testing.assert_array_equal(a, b)


# ---- float16 / bfloat16 variables ---------------------------------------------------


@pytest.mark.parametrize("case", rows(*EACH_OPTIMIZER), ids=case_id)
@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_variables_follow_the_oracle(dtype, case):
    """8 updates with both decays and restarts; gradients of magnitude 0.1 to 1 (so
    that `(1 - b2) g^2` does not underflow float16, as it would for any Adam)."""
    optimizer, oracle, variables, params = train_low_precision(
        case, keras_adamw, keras.Variable, keras.ops.convert_to_tensor, dtype)
    assert int(as_float64(optimizer.t_cur)) == oracle.t_cur == 0
    assert all(keras.backend.standardize_dtype(v.dtype) == dtype for v in variables)
    assert_low_precision_close(variables, params, dtype)
