"""Effective learning rate and `effective_lr_bounds` against the float64 oracle.

One case table (optimizer x bounds); each case runs a few updates on the backend
of this process and compares variables, slots and the per-element effective
learning rate with `reference.ReferenceOptimizer(effective_lr_bounds=...)`.
"""
import keras
import numpy as np
import pytest
from bound_cases import BOUNDS, upper_bound
from helpers import BACKEND, small_model, step_with_oracle
from reference import ReferenceOptimizer

import keras_adamw
from keras_adamw.utils import K_eval

STEPS = 8
OPTIMIZERS = {
    "adamw": ("adamw", keras_adamw.AdamW, {}),
    "adamw_amsgrad": ("adamw", keras_adamw.AdamW, {"amsgrad": True}),
    "nadamw": ("nadamw", keras_adamw.NadamW, {}),
    "sgdw_momentum": ("sgdw", keras_adamw.SGDW, {"momentum": 0.9}),
}




@pytest.mark.parametrize("bounds_case", sorted(BOUNDS))
@pytest.mark.parametrize("optimizer_case", sorted(OPTIMIZERS))
def test_bounded_trajectory_and_effective_lr_match_oracle(optimizer_case, bounds_case):
    kind, cls, kwargs = OPTIMIZERS[optimizer_case]
    bounds = BOUNDS[bounds_case]
    learning_rate = 0.05 if kind == "sgdw" else 0.01
    model = small_model()
    variables = model.trainable_variables
    optimizer = cls(learning_rate=learning_rate, effective_lr_bounds=bounds,
                    lr_multipliers={"dense_2": 0.5}, weight_decay=0.1, init_verbose=False,
                    **kwargs)
    multipliers = [1.0, 1.0, 0.5, 0.5]
    oracle_kwargs = {"learning_rate": learning_rate, "multipliers": multipliers,
                     "weight_decay": 0.1, "effective_lr_bounds": bounds, **kwargs}
    if kind != "sgdw":
        oracle_kwargs["epsilon"] = optimizer.epsilon
    if kind == "adamw" and BACKEND == "tensorflow" and bounds is None:
        oracle_kwargs["beta_1"], oracle_kwargs["beta_2"] = map(
            float, np.float32([0.9, 0.999]))  # TF's fused kernels (see test_oracle.py)
    oracle = ReferenceOptimizer(kind, [tuple(v.shape) for v in variables], **oracle_kwargs)
    step_with_oracle(optimizer, variables, oracle, STEPS)
    for i, variable in enumerate(variables):
        expected = oracle.effective_learning_rate(i, multipliers[i])
        actual = K_eval(optimizer.effective_learning_rate(variable))
        assert actual.shape == tuple(variable.shape)
        np.testing.assert_allclose(actual, expected, rtol=2e-5, err_msg=variable.path)


@pytest.mark.parametrize("cls", [keras_adamw.AdamW, keras_adamw.NadamW])
def test_bounds_are_active_in_the_table(cls):
    """Unbounded rates of the table's setup cross both bounds (so clipping is tested)."""
    model = small_model()
    variables = model.trainable_variables
    optimizer = cls(learning_rate=0.01, lr_multipliers={"dense_2": 0.5}, init_verbose=False)
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        optimizer.apply([rng.normal(size=v.shape).astype("float32") for v in variables],
                        variables)
    rates = np.concatenate([np.ravel(K_eval(optimizer.effective_learning_rate(v)))
                            for v in variables])
    lower, upper = BOUNDS["both"]
    assert rates.min() < lower and rates.max() > upper
    assert rates.max() > upper_bound(STEPS - 1)


def test_effective_lr_is_zero_before_the_first_update_and_needs_a_build():
    model = small_model()
    optimizer = keras_adamw.AdamW(effective_lr_bounds=(1e-3, 1e-2), init_verbose=False)
    kernel = model.trainable_variables[0]
    with pytest.raises(ValueError, match="built"):
        optimizer.effective_learning_rate(kernel)
    optimizer.build(model.trainable_variables)
    np.testing.assert_array_equal(K_eval(optimizer.effective_learning_rate(kernel)), 0.0)


@pytest.mark.parametrize("bounds, error", [((1e-2, 1e-3), ValueError), ((-1, None), ValueError),
                                           (0.1, TypeError), (("a", None), TypeError)])
def test_bad_bounds_name_the_argument(bounds, error):
    with pytest.raises(error, match="effective_lr_bounds"):
        keras_adamw.AdamW(effective_lr_bounds=bounds)


@pytest.mark.skipif(BACKEND != "torch", reason="torch multi-tensor path")
def test_torch_fast_path_is_kept_without_bounds_and_left_with_them(monkeypatch):
    from keras_adamw.kernels import torch_foreach

    calls = []
    original = torch_foreach.update
    monkeypatch.setattr(torch_foreach, "update", lambda *a: calls.append(1) or original(*a))
    model = small_model()
    grads = [keras.ops.ones(v.shape) for v in model.trainable_variables]
    keras_adamw.AdamW(init_verbose=False).apply(grads, model.trainable_variables)
    assert calls == [1]
    keras_adamw.AdamW(effective_lr_bounds=(0, 1), init_verbose=False).apply(
        grads, model.trainable_variables)
    assert calls == [1]
