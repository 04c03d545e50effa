"""Single-pass TensorFlow CPU kernels: AdamW, NadamW and SGDW with the decay in one pass.

TensorFlow's fused training ops cannot apply a decoupled decay (and none
expresses Nadam), and XLA compiles an update into one element-wise loop per
updated tensor (about 40 bytes per float32 AdamW parameter, against the 28 of
`ResourceApplyAdam`). The kernels of `update_kernels.h` read theta, the slots and
the gradient once and write theta and the slots once, with the per-step scalars
of `keras_adamw.core.rules` computed once per step by the optimizer; they run as
TensorFlow ops (`update_ops.cc`: this module's `adamw`, `nadamw`, `sgdw`) and,
inside `jit_compile=True` functions, as XLA custom calls (`xla_calls.cc`,
`keras_adamw.native.xla_calls`). `kernels(variable)` picks.

The library is compiled on first use against the installed TensorFlow (about
20 s, with `g++`, or `$CXX`) into `$KERAS_ADAMW_CACHE_DIR` (default
`~/.cache/keras_adamw`; see `cache_dir`), named by a hash of the sources, the
TensorFlow version and the compiler, and loaded from there afterwards.
`KERAS_ADAMW_NATIVE=0` skips it; where it cannot be built, a `RuntimeWarning`
says why once and the optimizers use the XLA-compiled kernels
(`keras_adamw.tf_kernels`), with the same numbers. The kernels run on CPU
variables of float32 and float64.
"""
import functools
import subprocess
import sys

import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.kernels import build as native_build
from keras_adamw.kernels import tf_xla_calls as xla_calls
from keras_adamw.kernels.build import (  # noqa: F401 (part of this module's interface)
    CACHE_DIR,
    OPTIMIZE,
    SOURCE_DIR,
    SWITCH,
    cache_dir,
    compile_library,
    compiler,
    switched_off,
    unavailable_warning,
)

SOURCES = [SOURCE_DIR / "update_ops.cc", SOURCE_DIR / "xla_calls.cc"]  # shipped
HEADERS = native_build.HEADERS
DTYPES = (tf.float32, tf.float64)


def compiled_sources():
    """`SOURCES` that this TensorFlow compiles: the custom calls need XLA's FFI
    headers (TensorFlow >= 2.16); the TensorFlow ops build everywhere."""
    return SOURCES if xla_calls.has_ffi_headers() else SOURCES[:1]


def build_command(output):
    """The compiler call that builds `compiled_sources()` into `output`."""
    return (compiler() + OPTIMIZE + [str(source) for source in compiled_sources()]
            + ["-o", str(output)]
            + tf.sysconfig.get_compile_flags() + tf.sysconfig.get_link_flags())


def library_path():
    """The cached library for these sources, TensorFlow and compiler."""
    return native_build.library_path("update_ops", compiled_sources(), build_command("x"),
                                     [tf.__version__, tf.sysconfig.get_lib()])


def build(path):
    """Compiles the library into `path` (written whole, then renamed)."""
    compile_library(build_command, path, "TensorFlow")


@functools.cache
def library():
    """The loaded op library, or None (switched off, or it could not be built)."""
    if switched_off():
        return None
    try:
        path = library_path()
        if not path.exists():
            build(path)
        return tf.load_op_library(str(path))
    except (OSError, subprocess.SubprocessError, tf.errors.OpError) as error:
        unavailable_warning("TensorFlow", error, "decayed variables update through the "
                            "XLA-compiled kernels instead")
        return None


try:  # private: which graph XLA compiles
    from tensorflow.python.ops import (  # type: ignore[import-untyped]
        control_flow_util as _control_flow_util,
    )
except ImportError:  # TensorFlow moved it: `in_xla_context` then assumes XLA
    _control_flow_util = None


def in_xla_context():
    """Whether ops built now are compiled by XLA (a `jit_compile=True` function);
    True when TensorFlow cannot tell us (the XLA path always works)."""
    if _control_flow_util is None:
        return True
    return _control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


@functools.cache
def _device_type(device):
    """`"CPU"`, `"GPU"`, ... of a device string; None if unplaced (parsed once)."""
    return tf.DeviceSpec.from_string(device or "").device_type


def _on_cpu(device):
    device_type = _device_type(device)
    if device_type:
        return device_type == "CPU"
    return all(d.device_type == "CPU" for d in tf.config.list_logical_devices())


def kernels(variable):
    """The single-pass kernels that can update `variable` (a tf.Variable) here.

    This module's TensorFlow ops outside XLA, `xla_calls` (custom calls) inside
    a `jit_compile=True` function; None where neither runs: not a CPU variable
    of float32/float64, switched off or not built, or (inside XLA) a shape not
    fully known or a TensorFlow without `XlaCallModule`. Each has `adamw`,
    `nadamw` and `sgdw` with the signatures of `keras_adamw.tf_kernels`.
    """
    if (variable.dtype.base_dtype not in DTYPES or not _on_cpu(variable.device)
            or _control_flow_util is None or library() is None):
        return None
    if not in_xla_context():
        return sys.modules[__name__]
    if xla_calls.available() and variable.shape.is_fully_defined():
        return xla_calls
    return None


def _decay_inputs(decay, dtype):
    """`(c_sign, c_linear)` as tensors (0 where absent) and the op's flags."""
    c_sign, c_linear = decay
    zero = tf.zeros([], dtype)
    return ({"c_sign": zero if c_sign is None else c_sign,
             "c_linear": zero if c_linear is None else c_linear},
            {"decay_sign": c_sign is not None, "decay_linear": c_linear is not None})


def adamw(var, m, v, vhat, grad, lr, bias_correction, decay, beta_1, beta_2, epsilon):
    """AdamW on one variable in one pass (amsgrad when `vhat` is a handle); the
    signature of `tf_kernels.adamw`.

    ```
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2   (amsgrad: vhat = max(vhat, v))
    theta = theta - lr bias_correction m / (sqrt(v or vhat) + eps) - decay(theta)
    ```

    Args:
        var, m, v: resource handles of the variable and its slots (`vhat` too,
            or None).
        grad: the dense gradient.
        lr: `eta lr_v`, a scalar of the variable's dtype.
        bias_correction: `sqrt(1 - b2^t) / (1 - b1^t)` (scalar, or 1.0 when
            folded into `lr`).
        decay: `(c_sign, c_linear)` of `core.rules.decay_term`; each may be None.
        beta_1, beta_2, epsilon: Python floats; `1 - beta` is computed in
            Python, then rounded to the variable's dtype (as `tf_kernels.adamw`).

    Returns:
        The op.
    """
    dtype = grad.dtype
    scalars, flags = _decay_inputs(decay, dtype)
    return library().keras_adamw_apply_adamw(
        var=var, m=m, v=v, vhat=[] if vhat is None else [vhat], grad=grad,
        neg_step=-(lr * bias_correction), beta_1=tf.constant(beta_1, dtype),
        one_minus_beta_1=tf.constant(1.0 - beta_1, dtype), beta_2=tf.constant(beta_2, dtype),
        one_minus_beta_2=tf.constant(1.0 - beta_2, dtype),
        epsilon=tf.constant(epsilon, dtype), **scalars, **flags)


def nadamw(var, m, v, grad, lr, coefficients, decay, beta_1, beta_2, epsilon):
    """NadamW on one variable in one pass; the signature of `tf_kernels.nadamw`.

    ```
    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
    theta = theta - lr (w_g g + w_m m) / (sqrt(v c_v) + eps) - decay(theta)
    ```

    Args:
        coefficients: `grad_weight` (w_g), `momentum_weight` (w_m) and
            `v_correction` (c_v) of `core.rules.nadam_coefficients`.
        (others): as `adamw` (`lr` is `eta lr_v`).

    Returns:
        The op.
    """
    dtype = grad.dtype
    scalars, flags = _decay_inputs(decay, dtype)
    return library().keras_adamw_apply_nadamw(
        var=var, m=m, v=v, grad=grad, neg_step=-lr, beta_1=tf.constant(beta_1, dtype),
        one_minus_beta_1=tf.constant(1.0 - beta_1, dtype), beta_2=tf.constant(beta_2, dtype),
        one_minus_beta_2=tf.constant(1.0 - beta_2, dtype),
        epsilon=tf.constant(epsilon, dtype), grad_weight=coefficients["grad_weight"],
        momentum_weight=coefficients["momentum_weight"],
        v_correction=coefficients["v_correction"], **scalars, **flags)


def sgdw(var, velocity, grad, lr, momentum, decay, nesterov):
    """SGDW on one variable in one pass, Keras momentum convention; the signature
    of `tf_kernels.sgdw`.

    ```
    velocity = mu velocity - lr g
    theta = theta + velocity - decay(theta)    (nesterov: + mu velocity - lr g)
    ```
    Without a velocity: `theta = theta - lr g - decay(theta)`.

    Args:
        var: the variable's resource handle.
        velocity: the momentum slot's handle, or None.
        lr: `eta lr_v`, a scalar of the variable's dtype.
        momentum: `mu`, a scalar tensor or number (unused without a velocity).
        nesterov: Python bool.
        (others): as `adamw`.

    Returns:
        The op.
    """
    dtype = grad.dtype
    scalars, flags = _decay_inputs(decay, dtype)
    momentum = tf.zeros([], dtype) if velocity is None else tf.cast(momentum, dtype)
    return library().keras_adamw_apply_sgdw(
        var=var, velocity=[] if velocity is None else [velocity], grad=grad, lr=lr,
        momentum=momentum, nesterov=nesterov, **scalars, **flags)
