"""The native single-pass kernels (`keras_adamw.kernels.tf_native`): build, fallback, semantics.

The numbers of the native paths are checked against the oracle in
`test_keras2_oracle.py` (and `tests/keras3/test_tf_compiled_adamw.py`); here:
the TensorFlow ops and the XLA custom calls equal the XLA kernels they replace,
a batch of custom calls equals one call per variable and updates in place, a
tensor read before an update keeps its value, bad inputs fail with TensorFlow
errors that say what is wrong, the optimizers pick the native kernels only where
they can run, and a machine without a compiler gets a warning that names the fix
and the same numbers.
"""
import collections
import contextlib
import pathlib
import re
import tempfile
import warnings

import numpy as np
import pytest
import tensorflow as tf
from helpers import assert_close
from keras2_helpers import needs_custom_calls

from keras_adamw.core.rules import NadamCoefficients
from keras_adamw.core.step import VariableScalars
from keras_adamw.keras2 import SGDW, AdamW, NadamW
from keras_adamw.kernels import Hyper, Update, tf_compiled, tf_paths, tf_xla_calls
from keras_adamw.kernels import build as native_build
from keras_adamw.kernels import tf_native as native

SHAPE = (300, 7)
DECAYS = [(None, None), (None, 0.01), (0.002, None), (0.002, 0.01)]


@pytest.fixture(autouse=True)
def _library_built():
    assert native.library() is not None, "the native ops were not built on this machine"


def _variables(seed, count):
    rng = np.random.default_rng(seed)
    values = [rng.normal(size=SHAPE) for _ in range(count)]
    values[2:] = [np.abs(v) for v in values[2:]]  # second moments are not negative
    return [tf.Variable(v.astype("float32")) for v in values]


def _update(kind, handles, grad, step_size, decay, hyper, nadam=None):
    """A `kernels.Update` of resource handles (the variable, then its slots)."""
    c_sign, c_linear = (None if c is None else tf.constant(c, grad.dtype) for c in decay)
    scalars = VariableScalars(eta_lr=step_size, step_size=step_size, c_sign=c_sign,
                              c_linear=c_linear, nadam=nadam)
    return Update(kind, handles[0], tuple(handles[1:]), grad, scalars, hyper)


ADAM = Hyper(beta_1=0.8999999761581421, beta_2=0.9990000128746033, epsilon=1e-7)


# The native kernels and how they run: the TensorFlow ops eagerly, the custom
# calls in a `jit_compile=True` function.
NATIVE_PATHS = {"op": (native, False), "xla-call": (tf_xla_calls, True)}
PATH_PARAMS = ["op", pytest.param("xla-call", marks=needs_custom_calls)]


def _run(kernels, jit, update):
    """`update(kernels)` eagerly, or in a jit function when `jit`."""
    if not jit:
        update(kernels)
        return
    tf.function(lambda: update(kernels) and None, jit_compile=True, autograph=False)()


def _trajectories(seed, count, update, paths, steps=10):
    """Variables after `steps` calls of `update(kernels, variables, grad)`, per path."""
    runs = []
    for kernels, jit in paths:
        variables = _variables(seed, count)
        grads = np.random.default_rng(seed + 1).normal(size=(steps,) + SHAPE)
        for grad in grads.astype("float32"):
            _run(kernels, jit, lambda k, g=grad, x=variables: update(k, x, tf.constant(g)))
        runs.append([v.numpy() for v in variables])
    return runs


def _assert_same(runs):
    """Same arithmetic in the same order: after 10 steps equal to a few float32
    ulps of the tensor's scale (XLA's division and square root round alike up to
    an ulp)."""
    for ours, xla in zip(*runs):
        assert_close(ours, xla, rtol=1e-6, floor=3e-7)


@pytest.mark.parametrize("path", PATH_PARAMS)
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("decay", DECAYS, ids=str)
def test_adamw_equals_xla_kernel(decay, amsgrad, path):
    def update(kernels, variables, grad):
        handles = [v.handle for v in variables]
        return kernels.apply(_update("adamw", handles, grad,
                                     tf.constant(0.01) * tf.constant(0.3), decay, ADAM))

    _assert_same(_trajectories(0, 4 if amsgrad else 3, update,
                               [NATIVE_PATHS[path], (tf_compiled, False)]))


NADAM_COEFFICIENTS = NadamCoefficients(grad_weight=0.07, momentum_weight=0.86,
                                       v_correction=12.5)


@pytest.mark.parametrize("path", PATH_PARAMS)
@pytest.mark.parametrize("decay", DECAYS, ids=str)
def test_nadamw_equals_xla_kernel(decay, path):
    def update(kernels, variables, grad):
        nadam = NADAM_COEFFICIENTS.cast(tf.constant)
        return kernels.apply(_update("nadamw", [v.handle for v in variables], grad,
                                     tf.constant(0.01), decay,
                                     Hyper(beta_1=0.9, beta_2=0.999, epsilon=1e-7), nadam))

    _assert_same(_trajectories(6, 3, update, [NATIVE_PATHS[path], (tf_compiled, False)]))


def _sgdw_update(decay, momentum, nesterov):
    def update(kernels, variables, grad):
        var, velocity = variables
        handles = [var.handle] + ([] if momentum is None else [velocity.handle])
        hyper = Hyper(momentum=tf.constant(momentum or 0.0), nesterov=nesterov)
        return kernels.apply(_update("sgdw", handles, grad, tf.constant(0.05), decay, hyper))
    return update


@pytest.mark.parametrize("path", PATH_PARAMS)
@pytest.mark.parametrize("momentum,nesterov", [(None, False), (0.9, False), (0.9, True)])
@pytest.mark.parametrize("decay", DECAYS, ids=str)
def test_sgdw_equals_xla_kernel(decay, momentum, nesterov, path):
    _assert_same(_trajectories(2, 2, _sgdw_update(decay, momentum, nesterov),
                               [NATIVE_PATHS[path], (tf_compiled, False)]))


@needs_custom_calls
def test_a_batch_equals_one_call_per_variable_and_updates_in_place():
    """Variables of several shapes and rules in one batch: one custom call per
    (rule, dtype, flags) group, no copy of any buffer, and the numbers of one
    call per variable."""
    shapes = [(300, 7), (5,), (4, 3, 2), (0,)]
    rng = np.random.default_rng(8)
    starts = [rng.normal(size=shape) for shape in shapes]
    grads = [tf.constant(rng.normal(size=shape), tf.float32) for shape in shapes]
    # A different decay per variable (a per-variable scalar); the last two
    # without the linear term: another group.
    decays = [(None, 0.01), (None, 0.02), (0.003, None), (0.003, None)]

    def run(batched):
        variables = [[tf.Variable(np.abs(x).astype("float32")) for _ in range(3)]
                     for x in starts]

        @tf.function(jit_compile=True, autograph=False)
        def step():
            with tf_xla_calls.batch() if batched else contextlib.nullcontext():
                for (var, m, v), grad, decay in zip(variables, grads, decays):
                    tf_xla_calls.apply(_update("adamw", [var.handle, m.handle, v.handle], grad,
                                               tf.constant(0.01), decay,
                                               Hyper(beta_1=0.9, beta_2=0.999, epsilon=1e-7)))
                    tf_xla_calls.apply(_update("sgdw", [m.handle], grad, tf.constant(0.1),
                                               decay, Hyper()))

        step()
        return [[x.numpy() for x in triple] for triple in variables], step

    batched, step = run(True)
    hlo = step.experimental_get_compiler_ir()(stage="optimized_hlo")
    assert hlo.count("custom-call(") == 4  # (adamw, sgdw) x (two decay flag sets)
    assert hlo.count("output_to_operand_aliasing") == 4
    copied = re.findall(r"f32\[([\d,]*)\]\{[\d,]*\} copy\(", hlo)
    assert set(copied) <= {"0"}  # only the empty variable's (a constant to XLA)
    for ours, single in zip(batched, run(False)[0]):
        for a, b in zip(ours, single):
            np.testing.assert_array_equal(a, b)


def test_adamw_op_float64():
    var, m, v = (tf.Variable(np.full(SHAPE, x)) for x in (1.0, 0.5, 0.25))
    native.apply(_update("adamw", [var.handle, m.handle, v.handle], tf.ones(SHAPE, tf.float64),
                         tf.constant(0.1, tf.float64), (None, 0.01),
                         Hyper(beta_1=0.9, beta_2=0.999, epsilon=1e-7)))
    m_new, v_new = 0.9 * 0.5 + 0.1, 0.999 * 0.25 + 0.001
    expected = 1.0 - 0.1 * m_new / (np.sqrt(v_new) + 1e-7) - 0.01
    np.testing.assert_allclose(var.numpy(), expected, rtol=1e-15)
    np.testing.assert_allclose(m.numpy(), m_new, rtol=1e-15)
    np.testing.assert_allclose(v.numpy(), v_new, rtol=1e-15)


@pytest.mark.parametrize("mode", ["eager", "function"])
def test_a_value_read_before_the_update_keeps_it(mode):
    """The op writes in place only into a buffer nobody else holds (as
    TensorFlow's training ops, it copies a buffer shared with a read)."""
    var, velocity = _variables(4, 2)
    start, velocity_start = var.numpy(), velocity.numpy()

    def read_then_update():
        before = var.value()
        native.apply(_update("sgdw", [var.handle, velocity.handle], tf.ones(SHAPE),
                             tf.constant(0.5), (None, None),
                             Hyper(momentum=tf.constant(0.9))))
        with tf.control_dependencies([before]):
            return before, var.read_value()

    before, after = (tf.function(read_then_update) if mode == "function"
                     else read_then_update)()
    np.testing.assert_array_equal(before.numpy(), start)
    np.testing.assert_allclose(after.numpy(), start + (0.9 * velocity_start - 0.5),
                               rtol=1e-6, atol=1e-6)


def test_bad_inputs_fail_with_what_is_wrong():
    var, m, v = _variables(5, 3)
    wrong = tf.ones((3, 3))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"`var` has dtype float and shape \[300,7\], "
                             r"the gradient float and \[3,3\]"):
        native.apply(_update("adamw", [var.handle, m.handle, v.handle], wrong,
                             tf.constant(0.1), (None, None), ADAM))
    with pytest.raises(tf.errors.InvalidArgumentError, match="distinct variables"):
        native.apply(_update("adamw", [var.handle, var.handle, v.handle], tf.ones(SHAPE),
                             tf.constant(0.1), (None, None), ADAM))
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="`var` has dtype double.*the gradient float"):
        native.apply(_update("sgdw", [tf.Variable(np.ones(SHAPE)).handle], tf.ones(SHAPE),
                             tf.constant(0.1), (None, None), Hyper()))


def _trace_ops(optimizer, variables, jit_compile=False):
    @tf.function(jit_compile=jit_compile, autograph=False)
    def step():
        optimizer.apply_gradients([(tf.ones_like(v), v) for v in variables])

    step()
    return collections.Counter(
        op.type for op in step.get_concrete_function().graph.get_operations())


OPS = {AdamW: "KerasAdamwApplyAdamw", NadamW: "KerasAdamwApplyNadamw",
       SGDW: "KerasAdamwApplySgdw"}


@pytest.mark.parametrize("cls,options", [(AdamW, {}), (AdamW, {"amsgrad": True}),
                                         (NadamW, {}), (SGDW, {"momentum": 0.9})])
def test_optimizers_use_the_native_kernels_where_they_run(cls, options):
    """Outside XLA, the native op for decayed variables (every amsgrad AdamW
    and NadamW variable), the fused op for the others; inside `jit_compile`,
    one custom call per group for every variable; with `native_kernels=False`,
    neither."""
    make = lambda: [tf.Variable(tf.ones([200_000]), name="big/kernel"),
                    tf.Variable(tf.ones([3]), name="big/bias")]
    optimizer = cls(weight_decay=0.1, exclude_from_weight_decay=["bias"], init_verbose=False,
                    **options)
    fused = {"ResourceApplyAdam", "ResourceApplyAdamWithAmsgrad", "ResourceApplyKerasMomentum"}
    ops = _trace_ops(optimizer, make())
    assert ops[OPS[cls]] == (2 if cls is NadamW or options.get("amsgrad") else 1)
    assert ops["XlaCallModule"] == 0
    assert sum(ops[op] for op in fused) == (0 if cls is NadamW or options.get("amsgrad") else 1)
    ops = _trace_ops(optimizer, make(), jit_compile=True)
    assert ops[OPS[cls]] == 0
    if tf_xla_calls.available():  # one group with the decay, one without
        assert sum(ops[op] for op in fused) == 0 and ops["XlaCallModule"] == 2
    else:  # TensorFlow <= 2.15: the XLA-compiled kernels and fused ops run
        assert ops["XlaCallModule"] == 0
    optimizer = cls(weight_decay=0.1, init_verbose=False, **options)
    optimizer.native_kernels = False
    for jit_compile in (False, True):
        ops = _trace_ops(optimizer, make(), jit_compile=jit_compile)
        assert sum(ops[op] for op in OPS.values()) == ops["XlaCallModule"] == 0


def test_float16_variables_take_the_other_paths():
    variable = tf.Variable(tf.ones([4], tf.float16), name="h/kernel")
    assert not tf_paths.capabilities(variable, True, True, "always").native
    optimizer = SGDW(learning_rate=0.5, weight_decay=0.1, init_verbose=False)
    optimizer.apply_gradients([(tf.ones([4], tf.float16), variable)])
    np.testing.assert_allclose(variable.numpy(), 1 - 0.5 * 0.1 - 0.5, rtol=1e-3)


@pytest.fixture
def fresh_library(monkeypatch, tmp_path):
    """`native.library()` recomputed under this test's environment (an empty
    cache), then restored. Only a library that fails to build may be asked for:
    TensorFlow cannot load a second library registering the same ops."""
    monkeypatch.setenv(native.CACHE_DIR, str(tmp_path))
    native.library.cache_clear()
    yield
    monkeypatch.undo()
    native.library.cache_clear()


def _train_adamw():
    variables = [tf.Variable(tf.ones([50]), name="w/kernel")]
    optimizer = AdamW(learning_rate=0.1, weight_decay=0.1, init_verbose=False)
    for _ in range(3):
        optimizer.apply_gradients([(tf.fill([50], 0.5), variables[0])])
    return variables[0].numpy()


@pytest.fixture
def native_result():
    return _train_adamw()  # before `fresh_library` moves the cache


def test_without_a_compiler_a_warning_names_the_fix_and_numbers_stay(
        native_result, monkeypatch, fresh_library):
    monkeypatch.setenv("CXX", "/nonexistent/c++")
    with pytest.warns(RuntimeWarning, match=r"native TensorFlow kernels are not available.*"
                                            r"nonexistent.*Install a C\+\+ compiler.*"
                                            r"KERAS_ADAMW_NATIVE=0"):
        assert native.library() is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once
        assert_close(_train_adamw(), native_result, rtol=1e-6)


@pytest.mark.parametrize("value", ["0", "off", "False"])
def test_switched_off_without_a_warning(monkeypatch, fresh_library, value):
    monkeypatch.setenv(native.SWITCH, value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert native.library() is None
        assert not tf_paths.capabilities(tf.Variable(tf.ones([2])), True, True,
                                         "always").native


def test_an_unknown_switch_value_is_named(monkeypatch):
    monkeypatch.setenv(native.SWITCH, "disable")
    with pytest.warns(RuntimeWarning, match=r"KERAS_ADAMW_NATIVE='disable' is not "
                                            r"understood: set it to 0"):
        assert not native.switched_off()


def test_a_compiler_error_is_reported(monkeypatch, fresh_library):
    """A compiler that fails (here: `false`) is reported with its exit status."""
    monkeypatch.setenv("CXX", "false")
    with pytest.warns(RuntimeWarning, match="false exited with 1"):
        assert native.library() is None
    assert list(native.cache_dir().iterdir()) == []  # no partial library left


def test_built_once_into_the_cache(monkeypatch):
    """Loaded from the cache after the first build; the name tracks the source,
    TensorFlow and the compiler call."""
    path = native.library_path()
    assert path.exists()  # built by the first use (the autouse fixture)
    native.library.cache_clear()
    monkeypatch.setattr(native, "build", lambda path: pytest.fail("rebuilt"))
    assert native.library() is not None
    monkeypatch.setenv("CXX", "g++ -DKERAS_ADAMW_OTHER_BUILD")
    assert native.library_path() != path


def test_cache_directory(monkeypatch, tmp_path):
    """`$KERAS_ADAMW_CACHE_DIR`, else `$XDG_CACHE_HOME/keras_adamw`, else (not
    writable) a per-user directory under the system's temporary directory."""
    monkeypatch.delenv(native.CACHE_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert native.cache_dir() == tmp_path / "xdg" / "keras_adamw"
    monkeypatch.setattr(native_build, "_writable", lambda path: False)
    assert native.cache_dir().parent == pathlib.Path(tempfile.gettempdir())
    monkeypatch.setenv(native.CACHE_DIR, str(tmp_path / "mine"))
    assert native.cache_dir() == tmp_path / "mine"
