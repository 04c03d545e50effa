"""Keras 3 AdamW, NadamW and SGDW on TensorFlow: a decayed variable takes one pass.

A variable with a decay (every AdamW variable with amsgrad, every NadamW
variable) is updated by the native op `keras_adamw.kernels.tf_native` outside XLA, by
`keras_adamw.kernels.tf_compiled` (XLA) with `native_kernels=False` (rule and decay in
one pass either way; SGDW then takes a decay pass and the fused op), one
without by the fused `ResourceApplyAdam`; inside `jit_compile`, every variable
by the native custom calls (`keras_adamw.kernels.tf_xla_calls`). All follow the
float64 oracle on variables and slots after 30 updates (amsgrad on/off, float32
and float64, eager, `tf.function` and `jit_compile` steps, and an
`IndexedSlices` gradient with repeated rows on a decayed table).
"""
import keras
import numpy as np
import pytest
from helpers import BACKEND
from kernel_spy import spy_tf_paths
from reference import ReferenceOptimizer, densify

import keras_adamw
from keras_adamw.utils import K_eval

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="the compiled AdamW pass (keras_adamw.kernels.tf_compiled) is TensorFlow's")

STEPS = 30
SHAPES = {"a_kernel": (6, 5), "a_bias": (5,), "b_kernel": (5, 3), "table": (8, 3)}
SPARSE_INDICES = np.array([1, 3, 1, 6, 3, 1])  # duplicates; rows 0, 2, 4, 5, 7 absent
LIBRARY = {"learning_rate": 0.01, "lr_multipliers": {"b_": 2.0},
           "weight_decays": {"a_kernel": (1e-3, 2e-2)}, "weight_decay": 0.05,
           "exclude_from_weight_decay": ["bias"], "use_cosine_annealing": True,
           "total_iterations": 12, "init_verbose": False}
ORACLE = {"learning_rate": 0.01, "multipliers": [1.0, 1.0, 2.0, 1.0],
          "l1_l2": [(1e-3, 2e-2), (0.0, 0.0), (0.0, 0.0), (0.0, 0.0)], "weight_decay": 0.05,
          "decay_mask": [True, False, True, True], "use_cosine_annealing": True,
          "total_iterations": 12}
DECAYED = {"a_kernel", "b_kernel", "table"}  # a_bias is excluded: the fused kernel


def make_variables(dtype):
    rng = np.random.default_rng(0)
    return [keras.Variable(rng.normal(size=shape), dtype=dtype, name=name)
            for name, shape in SHAPES.items()]


def make_oracle(amsgrad):
    # Both paths take float32 betas on TensorFlow, also for float64 variables.
    return ReferenceOptimizer("adamw", list(SHAPES.values()), beta_1=float(np.float32(0.9)),
                              beta_2=float(np.float32(0.999)), epsilon=keras.config.epsilon(),
                              amsgrad=amsgrad, **ORACLE)


def make_step(optimizer, variables, mode):
    def step(grads):
        optimizer.apply(grads, variables)

    if mode == "eager":
        return step
    import tensorflow as tf

    return tf.function(step, jit_compile=(mode == "jit"))


def gradients(rng, dtype, sparse):
    """Native gradients (the table's as `IndexedSlices` if sparse) and float64 dense ones."""
    import tensorflow as tf

    dense = [rng.normal(size=shape) for shape in SHAPES.values()]
    native = [tf.constant(g, dtype) for g in dense]
    if sparse:
        values = rng.normal(size=(len(SPARSE_INDICES), SHAPES["table"][1]))
        native[3] = tf.IndexedSlices(tf.constant(values, dtype), tf.constant(SPARSE_INDICES),
                                     tf.constant(SHAPES["table"], tf.int64))
        dense[3] = densify(values, SPARSE_INDICES, SHAPES["table"])
    return native, dense


def assert_close(what, actual, expected):
    expected = np.asarray(expected, np.float64)
    scale = max(1e-30, float(np.max(np.abs(expected))))
    np.testing.assert_allclose(np.asarray(K_eval(actual), np.float64), expected, rtol=1e-5,
                               atol=1e-6 * scale, err_msg=what)


CASES = [("eager", False, "float32", False), ("eager", True, "float64", False),
         ("function", False, "float32", True), ("function", True, "float32", False),
         ("function", False, "float64", False), ("jit", True, "float32", True),
         ("jit", False, "float64", False)]


@pytest.mark.parametrize("native_kernels", [True, False], ids=["native", "xla"])
@pytest.mark.parametrize("mode,amsgrad,dtype,sparse", CASES,
                         ids=["-".join(map(str, case)) for case in CASES])
def test_matches_oracle(mode, amsgrad, dtype, sparse, native_kernels):
    variables = make_variables(dtype)
    optimizer = keras_adamw.AdamW(amsgrad=amsgrad, **LIBRARY)
    optimizer.native_kernels = native_kernels
    optimizer.build(variables)
    oracle = make_oracle(amsgrad)
    params = [np.asarray(K_eval(v), np.float64) for v in variables]
    step = make_step(optimizer, variables, mode)
    rng = np.random.default_rng(1)
    for _ in range(STEPS):
        native, dense = gradients(rng, dtype, sparse)
        step(native)
        params = oracle.step(params, dense)
    slots = {"m": (optimizer._momentums, oracle.m), "v": (optimizer._velocities, oracle.v)}
    if amsgrad:
        slots["vhat"] = (optimizer._velocity_hats, oracle.vhat)
    for i, name in enumerate(SHAPES):
        assert_close(name, variables[i], params[i])
        for slot, (ours, expected) in slots.items():
            assert_close(f"{name}/{slot}", ours[i], expected[i])
    assert int(K_eval(optimizer.iterations)) == STEPS
    assert int(K_eval(optimizer.t_cur)) == oracle.t_cur
    assert_close("eta_t", optimizer.eta_t, oracle.eta_t)
    assert_close("lr_t", optimizer.lr_t, oracle.lr_t)


@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("mode", ["eager", "function", "jit", "native_kernels=False"])
def test_decayed_variables_take_one_pass(monkeypatch, amsgrad, mode):
    """Native outside XLA, compiled when switched off; fused without a decay;
    amsgrad never fused (TensorFlow has no XLA kernel for
    `ResourceApplyAdamWithAmsgrad`); inside XLA, the custom call for every
    variable."""
    from keras_adamw.kernels import tf_native as native

    assert native.library() is not None, "the native ops were not built"
    calls = spy_tf_paths(monkeypatch)
    variables = make_variables("float32")
    optimizer = keras_adamw.AdamW(amsgrad=amsgrad, **LIBRARY)
    optimizer.native_kernels = mode != "native_kernels=False"
    optimizer.build(variables)
    step = make_step(optimizer, variables, mode if mode in ("function", "jit") else "eager")
    step([np.ones(shape, "float32") for shape in SHAPES.values()])
    one_pass = SHAPES if amsgrad or mode == "jit" else DECAYED
    path = {"jit": "tf_xla_call", "native_kernels=False": "tf_compiled"}.get(mode, "tf_native")
    shapes = {name: [shape for _, shape in updates] for name, updates in calls.items()}
    assert sorted(shapes.pop(path)) == sorted(SHAPES[name] for name in one_pass)
    fused = [] if amsgrad or mode == "jit" else [SHAPES["a_bias"]]
    assert shapes.pop("tf_fused", []) == fused
    assert not any(shapes.values()), shapes


SGD_LIBRARY = {**LIBRARY, "learning_rate": 0.05, "momentum": 0.9}
SGD_ORACLE = {**ORACLE, "learning_rate": 0.05, "momentum": float(np.float32(0.9))}


@pytest.mark.parametrize("native_kernels", [True, False], ids=["native", "decay-pass"])
@pytest.mark.parametrize("mode,nesterov,dtype", [("eager", False, "float32"),
                                                 ("function", True, "float32"),
                                                 ("function", False, "float64"),
                                                 ("jit", True, "float32"),
                                                 ("jit", False, "float64")])
def test_sgdw_matches_oracle(monkeypatch, mode, nesterov, dtype, native_kernels):
    """Decayed variables: the native op outside XLA, the decay pass and
    `ResourceApplyKerasMomentum` with `native_kernels=False` outside it,
    `tf_compiled` inside it; inside XLA with the native kernels, the custom
    call for every variable. All follow the oracle."""
    calls = spy_tf_paths(monkeypatch)
    variables = make_variables(dtype)
    optimizer = keras_adamw.SGDW(nesterov=nesterov, **SGD_LIBRARY)
    optimizer.native_kernels = native_kernels
    optimizer.build(variables)
    oracle = ReferenceOptimizer("sgdw", list(SHAPES.values()), nesterov=nesterov,
                                **SGD_ORACLE)
    params = [np.asarray(K_eval(v), np.float64) for v in variables]
    step = make_step(optimizer, variables, mode)
    rng = np.random.default_rng(2)
    for _ in range(STEPS):
        native, dense = gradients(rng, dtype, sparse=False)
        step(native)
        params = oracle.step(params, dense)
    for i, name in enumerate(SHAPES):
        assert_close(name, variables[i], params[i])
        assert_close(f"{name}/velocity", optimizer.momentums[i], oracle.velocity[i])
    jit = mode == "jit"
    per_step = (len(SHAPES) if jit and native_kernels else len(DECAYED)) * (
        STEPS if mode == "eager" else 1)
    path = ("tf_xla_call" if native_kernels else "tf_compiled") if jit else \
        "tf_native" if native_kernels else None
    single_pass = ("tf_native", "tf_xla_call", "tf_compiled")
    assert {k: len(calls[k]) for k in single_pass} == {
        k: per_step if k == path else 0 for k in single_pass}


@pytest.mark.parametrize("native_kernels", [True, False], ids=["native", "xla"])
@pytest.mark.parametrize("mode,dtype", [("eager", "float32"), ("function", "float64"),
                                        ("jit", "float32"), ("jit", "float64")])
def test_nadamw_matches_oracle(mode, dtype, native_kernels):
    """Every NadamW variable takes one pass: the native op or custom call, or
    `tf_compiled` with `native_kernels=False`."""
    variables = make_variables(dtype)
    optimizer = keras_adamw.NadamW(**LIBRARY)
    optimizer.native_kernels = native_kernels
    optimizer.build(variables)
    oracle = ReferenceOptimizer("nadamw", list(SHAPES.values()), beta_1=0.9, beta_2=0.999,
                                epsilon=keras.config.epsilon(), schedule_decay=0.004,
                                **ORACLE)
    params = [np.asarray(K_eval(v), np.float64) for v in variables]
    step = make_step(optimizer, variables, mode)
    rng = np.random.default_rng(3)
    for _ in range(STEPS):
        native, dense = gradients(rng, dtype, sparse=mode == "jit")
        step(native)
        params = oracle.step(params, dense)
    for i, name in enumerate(SHAPES):
        assert_close(name, variables[i], params[i])
        assert_close(f"{name}/m", optimizer._momentums[i], oracle.m[i])
        assert_close(f"{name}/v", optimizer._velocities[i], oracle.v[i])
