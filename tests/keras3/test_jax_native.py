"""Keras 3 AdamW, NadamW and SGDW on JAX: the native custom calls (`keras_adamw.kernels.jax_calls`).

Variables of at least `jax_calls.MIN_SIZE` elements are updated by one XLA FFI
custom call per group (rule, dtype, decay terms), in place. Here `MIN_SIZE` is
lowered so that small variables take the calls too, and every optimizer follows
the float64 oracle on variables and slots over 30 updates, applied eagerly and
by a jitted, donating `stateless_apply` (as Keras's JAX trainer runs it); the
calls are counted, and `native_kernels=False` keeps off them.
"""
import keras
import numpy as np
import pytest
from cases import CASES, case_id, on_path
from helpers import (
    KERNEL_EXTRAS,
    KERNEL_EXTRAS_ORACLE,
    KERNEL_SHAPES,
    as_float64,
    assert_matches_oracle,
    assert_missing_compiler_warns,
    make_variables,
    oracle_for,
)
from keras3_helpers import BACKEND

import keras_adamw

pytestmark = pytest.mark.skipif(BACKEND != "jax", reason="the JAX custom calls")

STEPS = 30
SHAPES = KERNEL_SHAPES
CALLS = on_path("jax_call")


@pytest.fixture
def calls(monkeypatch):
    """Every variable on the custom calls; returns the (target, group size) emitted."""
    from keras_adamw.kernels import jax_calls

    assert jax_calls.library() is not None, "the JAX kernels were not built"
    monkeypatch.setattr(jax_calls, "MIN_SIZE", 0)
    emitted = []
    emit = jax_calls._emit
    monkeypatch.setattr(jax_calls, "_emit",
                        lambda group: emitted.append((group[0].key[0], len(group)))
                        or emit(group))
    return emitted


def run(case, mode, dtype="float32"):
    """STEPS updates of the row's optimizer and the oracle; asserts they agree."""
    variables = make_variables(keras.Variable, SHAPES, dtype)
    optimizer = case.make(keras_adamw, **KERNEL_EXTRAS)
    optimizer.build(variables)
    oracle = oracle_for(case, SHAPES.values(), **KERNEL_EXTRAS_ORACLE)
    params = [as_float64(v) for v in variables]
    step = make_step(optimizer, variables, mode)
    rng = np.random.default_rng(0)
    for _ in range(STEPS):
        dense = [rng.normal(size=shape) for shape in SHAPES.values()]
        step([np.asarray(g, dtype) for g in dense])
        params = oracle.step(params, dense)
    assert_matches_oracle(optimizer, variables, oracle, params, case, what=case.name)
    return optimizer


def make_step(optimizer, variables, mode):
    """Eager `apply`, or a jitted `stateless_apply` donating state and variables."""
    if mode == "eager":
        return lambda grads: optimizer.apply(grads, variables)
    import jax

    apply = jax.jit(lambda o, g, t: optimizer.stateless_apply(o, g, t)[::-1],
                    donate_argnums=(0, 2))

    def step(grads):
        state, values = apply([v.value for v in optimizer.variables], grads,
                              [v.value for v in variables])
        for variable, value in zip(optimizer.variables, state):
            variable.assign(value)
        for variable, value in zip(variables, values):
            variable.assign(value)
    return step


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("case", CALLS, ids=case_id)
def test_matches_oracle(calls, case, mode):
    run(case, mode)
    # Three groups each step, by decay terms: a_kernel (both), a_bias (none,
    # excluded), b_kernel and table (the Keras-convention term only).
    assert len(calls) == 3 * (STEPS if mode == "eager" else 1)
    assert sorted(size for _, size in calls[:3]) == [1, 1, 2]


def test_float64(calls):
    import jax

    with jax.enable_x64(True):
        run(CASES["adamw_amsgrad"], "jit", dtype="float64")
    assert calls


def test_native_kernels_off_uses_keras_ops(calls):
    variables = [keras.Variable(np.ones((3, 2), "float32"), name="w")]
    optimizer = CASES["nadamw"].make(keras_adamw, weight_decay=0.05)
    optimizer.native_kernels = False
    optimizer.apply([np.ones((3, 2), "float32")], variables)
    assert calls == []


def test_small_variables_keep_keras_ops(monkeypatch, calls):
    """Below `MIN_SIZE` elements (the default), no call: XLA's loops are as fast."""
    from keras_adamw.kernels import jax_calls

    monkeypatch.setattr(jax_calls, "MIN_SIZE", 1 << 16)
    variables = [keras.Variable(np.ones((300, 300), "float32"), name="big"),
                 keras.Variable(np.ones((3,), "float32"), name="small")]
    optimizer = keras_adamw.AdamW(learning_rate=0.1, weight_decay=0.01, init_verbose=False)
    optimizer.apply([np.ones((300, 300), "float32"), np.ones((3,), "float32")], variables)
    assert calls == [("keras_adamw_adamw", 1)]


def test_without_a_compiler_a_warning_names_the_fix(monkeypatch, tmp_path):
    from keras_adamw.kernels import jax_calls

    assert_missing_compiler_warns(monkeypatch, tmp_path, jax_calls.library, "JAX")


def test_unavailable_kernels_leave_keras_ops_with_the_same_numbers(monkeypatch, calls):
    from keras_adamw.kernels import jax_calls

    with_calls = run(CASES["nadamw"], "eager")
    monkeypatch.setattr(jax_calls, "library", lambda: None)
    calls.clear()
    without = run(CASES["nadamw"], "eager")
    assert calls == []
    for a, b in zip(with_calls.variables, without.variables):
        np.testing.assert_allclose(as_float64(a), as_float64(b), rtol=1e-6, atol=1e-7)
