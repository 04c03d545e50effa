"""Effective learning rate and `effective_lr_bounds` against the float64 oracle.

The rows of tests/cases.py x its `BOUNDS`; each case runs a few updates on the backend
of this process and compares variables, slots and the per-element effective
learning rate with `reference.ReferenceOptimizer(effective_lr_bounds=...)`.
"""
import keras
import numpy as np
import pytest
from cases import BOUNDS, case_id, rows
from helpers import as_float64, assert_bounds_active, check_effective_lr, small_model
from keras3_helpers import BACKEND, float32_terms

import keras_adamw

BOUNDED = rows("adamw", "adamw_amsgrad", "nadamw", "sgdw_momentum")


@pytest.mark.parametrize("bounds_case", sorted(BOUNDS))
@pytest.mark.parametrize("case", BOUNDED, ids=case_id)
def test_bounded_trajectory_and_effective_lr_match_oracle(case, bounds_case):
    bounds = BOUNDS[bounds_case]
    check_effective_lr(case, bounds, keras_adamw, small_model(keras).trainable_variables,
                       float32=float32_terms(case))


@pytest.mark.parametrize("cls", [keras_adamw.AdamW, keras_adamw.NadamW])
def test_bounds_are_active_in_the_table(cls):
    """Unbounded rates of the table's setup cross both bounds (so clipping is tested)."""
    optimizer = cls(learning_rate=0.01, lr_multipliers={"dense_2": 0.5}, init_verbose=False)
    assert_bounds_active(optimizer, small_model(keras).trainable_variables)


def test_effective_lr_is_zero_before_the_first_update_and_needs_a_build():
    model = small_model(keras)
    optimizer = keras_adamw.AdamW(effective_lr_bounds=(1e-3, 1e-2), init_verbose=False)
    kernel = model.trainable_variables[0]
    with pytest.raises(ValueError, match="built"):
        optimizer.effective_learning_rate(kernel)
    optimizer.build(model.trainable_variables)
    np.testing.assert_array_equal(as_float64(optimizer.effective_learning_rate(kernel)), 0.0)


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
    model = small_model(keras)
    grads = [keras.ops.ones(v.shape) for v in model.trainable_variables]
    keras_adamw.AdamW(init_verbose=False).apply(grads, model.trainable_variables)
    assert calls == [1]
    keras_adamw.AdamW(effective_lr_bounds=(0, 1), init_verbose=False).apply(
        grads, model.trainable_variables)
    assert calls == [1]
