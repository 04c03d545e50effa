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
from cases import CASES
from helpers import (
    FLOAT32_ALL,
    FLOAT32_BETAS,
    KERNEL_EXTRAS,
    KERNEL_EXTRAS_ORACLE,
    KERNEL_SHAPES,
    SPARSE_INDICES,
    as_float64,
    assert_matches_oracle,
    indexed_slices,
    make_step,
    make_variables,
    oracle_for,
    spy_tf_paths,
)
from keras3_helpers import BACKEND
from reference import densify

import keras_adamw

pytestmark = pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="the compiled AdamW pass (keras_adamw.kernels.tf_compiled) is TensorFlow's")

STEPS = 30
SHAPES = KERNEL_SHAPES
LIBRARY = {"learning_rate": 0.01, **KERNEL_EXTRAS}
DECAYED = {"a_kernel", "b_kernel", "table"}  # a_bias is excluded: the fused kernel
# The TensorFlow kernel paths of `native_kernels=True` and `False`.
KERNEL_PATHS = {True: "tf_native", False: "tf_compiled"}


def variables_of(dtype):
    return make_variables(keras.Variable, SHAPES, dtype)


def build(case, variables, native_kernels, **extra):
    """The row's optimizer with the kernels' extras, on `native_kernels`, built."""
    assert KERNEL_PATHS[native_kernels] in case.paths, case.name
    optimizer = case.make(keras_adamw, **KERNEL_EXTRAS, **extra)
    optimizer.native_kernels = native_kernels
    optimizer.build(variables)
    return optimizer


def gradients(rng, dtype, sparse):
    """Native gradients (the table's as `IndexedSlices` if sparse) and float64 dense ones."""
    import tensorflow as tf

    dense = [rng.normal(size=shape) for shape in SHAPES.values()]
    native = [tf.constant(g, dtype) for g in dense]
    if sparse:
        values = rng.normal(size=(len(SPARSE_INDICES), SHAPES["table"][1]))
        native[3] = indexed_slices(values, SHAPES["table"], dtype)
        dense[3] = densify(values, SPARSE_INDICES, SHAPES["table"])
    return native, dense


def train(case, mode, dtype, native_kernels, sparse=False, seed=1, float32=()):
    """STEPS updates of the row's optimizer and the oracle; asserts they agree."""
    variables = variables_of(dtype)
    optimizer = build(case, variables, native_kernels)
    oracle = oracle_for(case, SHAPES.values(), float32=float32, **KERNEL_EXTRAS_ORACLE)
    params = [as_float64(v) for v in variables]
    step = make_step(optimizer, variables, mode)
    rng = np.random.default_rng(seed)
    for _ in range(STEPS):
        native, dense = gradients(rng, dtype, sparse)
        step(native)
        params = oracle.step(params, dense)
    assert_matches_oracle(optimizer, variables, oracle, params, case, what=case.name)
    return optimizer


# (mode, row, dtype, sparse)
RUNS = [("eager", "adamw", "float32", False), ("eager", "adamw_amsgrad", "float64", False),
        ("function", "adamw", "float32", True), ("function", "adamw_amsgrad", "float32", False),
        ("function", "adamw", "float64", False), ("jit", "adamw_amsgrad", "float32", True),
        ("jit", "adamw", "float64", False)]


@pytest.mark.parametrize("native_kernels", [True, False], ids=["native", "xla"])
@pytest.mark.parametrize("mode,row,dtype,sparse", RUNS,
                         ids=["-".join(map(str, run)) for run in RUNS])
def test_matches_oracle(mode, row, dtype, sparse, native_kernels):
    """Both paths take float32 betas on TensorFlow, also for float64 variables."""
    train(CASES[row], mode, dtype, native_kernels, sparse, float32=FLOAT32_BETAS)


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
    variables = variables_of("float32")
    optimizer = build(CASES["adamw_amsgrad" if amsgrad else "adamw"], variables,
                      native_kernels=mode != "native_kernels=False")
    step = make_step(optimizer, variables, mode if mode in ("function", "jit") else "eager")
    step([np.ones(shape, "float32") for shape in SHAPES.values()])
    one_pass = SHAPES if amsgrad or mode == "jit" else DECAYED
    path = {"jit": "tf_xla_call", "native_kernels=False": "tf_compiled"}.get(mode, "tf_native")
    shapes = {name: [shape for _, shape in updates] for name, updates in calls.items()}
    assert sorted(shapes.pop(path)) == sorted(SHAPES[name] for name in one_pass)
    fused = [] if amsgrad or mode == "jit" else [SHAPES["a_bias"]]
    assert shapes.pop("tf_fused", []) == fused
    assert not any(shapes.values()), shapes


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
    row = CASES["sgdw_nesterov" if nesterov else "sgdw_momentum"]
    train(row, mode, dtype, native_kernels, seed=2, float32=FLOAT32_ALL)
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
    train(CASES["nadamw"], mode, dtype, native_kernels, sparse=mode == "jit", seed=3)


@pytest.mark.parametrize("row", ["adamw_amsgrad", "nadamw", "sgdw_momentum"])
def test_a_step_of_many_native_variables_is_one_group_op(row):
    """Outside XLA, the native updates of one rule kind, dtype and decay terms are
    one `KerasAdamwApplyGroup` op (two scalar rows here: one multiplier differs)."""
    case = CASES[row]
    shapes = {f"w{i}": (3, 4) for i in range(6)}
    variables = make_variables(keras.Variable, shapes, "float32")
    optimizer = case.make(keras_adamw, weight_decay=0.05, lr_multipliers={"w0": 2.0})
    oracle = oracle_for(case, shapes.values(), weight_decay=0.05,
                        multipliers=[2.0] + [1.0] * 5, decay_mask=[True] * 6,
                        float32={"sgdw": FLOAT32_ALL, "adamw": FLOAT32_BETAS}.get(
                            case.optimizer, ()))
    step = make_step(optimizer, variables, "function")
    params = [as_float64(v) for v in variables]
    rng = np.random.default_rng(3)
    for _ in range(10):
        dense = [rng.normal(size=shape) for shape in shapes.values()]
        native = [keras.ops.convert_to_tensor(g, "float32") for g in dense]
        step(native)
        params = oracle.step(params, dense)
    types = [op.type for op in step.get_concrete_function(native).graph.get_operations()]
    assert [t for t in types if t.startswith("KerasAdamw")] == ["KerasAdamwApplyGroup"]
    assert_matches_oracle(optimizer, variables, oracle, params, case, what=row)


def test_the_group_op_names_a_slot_that_does_not_match():
    import tensorflow as tf

    from keras_adamw.kernels import tf_native

    theta, m, v = (tf.Variable(tf.zeros(shape)) for shape in [(4,), (5,), (4,)])
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"`m` has dtype float and "
                                                             r"shape \[5\]"):
        tf_native.library().keras_adamw_apply_group(
            tensors=[theta.handle, m.handle, v.handle], grads=[tf.ones(4)],
            scalars=tf.zeros((1, 8)), rule="adamw")
