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
from helpers import BACKEND
from reference import ReferenceOptimizer

import keras_adamw

pytestmark = pytest.mark.skipif(BACKEND != "jax", reason="the JAX custom calls")

STEPS = 30
SHAPES = {"a_kernel": (6, 5), "a_bias": (5,), "b_kernel": (5, 3), "table": (8, 3)}
LIBRARY = {"lr_multipliers": {"b_": 2.0}, "weight_decays": {"a_kernel": (1e-3, 2e-2)},
           "weight_decay": 0.05, "exclude_from_weight_decay": ["bias"],
           "use_cosine_annealing": True, "total_iterations": 12, "init_verbose": False}
ORACLE = {"multipliers": [1.0, 1.0, 2.0, 1.0],
          "l1_l2": [(1e-3, 2e-2), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)], "weight_decay": 0.05,
          "decay_mask": [True, False, True, True], "use_cosine_annealing": True,
          "total_iterations": 12}
# (optimizer, its arguments, the oracle's, the slots to compare)
CASES = {
    "adamw": (keras_adamw.AdamW, {"learning_rate": 0.01}, {}, ("m", "v")),
    "adamw-amsgrad": (keras_adamw.AdamW, {"learning_rate": 0.01, "amsgrad": True},
                      {"amsgrad": True}, ("m", "v", "vhat")),
    "nadamw": (keras_adamw.NadamW, {"learning_rate": 0.01}, {"schedule_decay": 0.004},
               ("m", "v")),
    "sgdw": (keras_adamw.SGDW, {"learning_rate": 0.05}, {}, ()),
    "sgdw-nesterov": (keras_adamw.SGDW, {"learning_rate": 0.05, "momentum": 0.9,
                                         "nesterov": True},
                      {"momentum": 0.9, "nesterov": True}, ("velocity",)),
}
SLOTS = {"m": "_momentums", "v": "_velocities", "vhat": "_velocity_hats",
         "velocity": "momentums"}


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
    cls, kwargs, oracle_kwargs, slots = CASES[case]
    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=shape), dtype=dtype, name=name)
                 for name, shape in SHAPES.items()]
    optimizer = cls(**kwargs, **LIBRARY)
    optimizer.build(variables)
    kind = "sgdw" if cls is keras_adamw.SGDW else "nadamw" if "nadamw" in case else "adamw"
    if kind != "sgdw":
        oracle_kwargs = {**oracle_kwargs, "epsilon": keras.config.epsilon()}
    oracle = ReferenceOptimizer(kind, list(SHAPES.values()),
                                learning_rate=kwargs["learning_rate"], **oracle_kwargs,
                                **ORACLE)
    params = [np.asarray(v.numpy(), np.float64) for v in variables]
    step = make_step(optimizer, variables, mode)
    for _ in range(STEPS):
        dense = [rng.normal(size=shape) for shape in SHAPES.values()]
        step([np.asarray(g, dtype) for g in dense])
        params = oracle.step(params, dense)
    for i, name in enumerate(SHAPES):
        assert_close(name, variables[i], params[i])
        for slot in slots:
            assert_close(f"{name}/{slot}", getattr(optimizer, SLOTS[slot])[i],
                         getattr(oracle, slot)[i])
    assert int(optimizer.iterations.numpy()) == STEPS
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


def assert_close(what, actual, expected):
    expected = np.asarray(expected, np.float64)
    scale = max(1e-30, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(np.asarray(actual.numpy(), np.float64), expected, rtol=1e-5,
                               atol=1e-6 * scale, err_msg=what)


@pytest.mark.parametrize("mode", ["eager", "jit"])
@pytest.mark.parametrize("case", CASES)
def test_matches_oracle(calls, case, mode):
    run(case, mode)
    # Three groups each step, by decay terms: a_kernel (both), a_bias (none,
    # excluded), b_kernel and table (the Keras-convention term only).
    assert len(calls) == 3 * (STEPS if mode == "eager" else 1)
    assert sorted(size for _, size in calls[:3]) == [1, 1, 2]


def test_float64(calls):
    import jax

    with jax.enable_x64(True):
        run("adamw-amsgrad", "jit", dtype="float64")
    assert calls


def test_native_kernels_off_uses_keras_ops(calls):
    cls, kwargs, _, _ = CASES["nadamw"]
    variables = [keras.Variable(np.ones((3, 2), "float32"), name="w")]
    optimizer = cls(**kwargs, weight_decay=0.05, init_verbose=False)
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
    from keras_adamw.kernels import build as native_build
    from keras_adamw.kernels import jax_calls

    monkeypatch.setenv(native_build.CACHE_DIR, str(tmp_path))
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.warns(RuntimeWarning, match=r"native JAX kernels are not available.*"
                                            r"Install a C\+\+ compiler"):
        assert jax_calls.library.__wrapped__() is None  # the cached library stays
    assert list(tmp_path.iterdir()) == []


def test_unavailable_kernels_leave_keras_ops_with_the_same_numbers(monkeypatch, calls):
    from keras_adamw.kernels import jax_calls

    with_calls = run("nadamw", "eager")
    monkeypatch.setattr(jax_calls, "library", lambda: None)
    calls.clear()
    without = run("nadamw", "eager")
    assert calls == []
    for a, b in zip(with_calls.variables, without.variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)
