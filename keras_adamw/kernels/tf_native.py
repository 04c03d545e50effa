"""Single-pass TensorFlow CPU kernels: AdamW, NadamW and SGDW with the decay in one pass.

TensorFlow's fused training ops cannot apply a decoupled decay (and none
expresses Nadam), and XLA compiles an update into one element-wise loop per
updated tensor (about 40 bytes per float32 AdamW parameter, against the 28 of
`ResourceApplyAdam`). The kernels of `update_kernels.h` read theta, the slots and
the gradient once and write theta and the slots once, with the per-step scalars
of `keras_adamw.core.rules` computed once per step by the optimizer; they run as
TensorFlow ops (`update_ops.cc`: this module's `apply`) and, inside
`jit_compile=True` functions, as XLA custom calls (`xla_calls.cc`,
`kernels.tf_xla_calls`); `kernels.tf_paths` picks.

The library is compiled on first use against the installed TensorFlow (about
20 s, with `g++`, or `$CXX`) into `$KERAS_ADAMW_CACHE_DIR` (default
`~/.cache/keras_adamw`; see `cache_dir`), named by a hash of the sources, the
TensorFlow version and the compiler, and loaded from there afterwards.
`KERAS_ADAMW_NATIVE=0` skips it; where it cannot be built, a `RuntimeWarning`
says why once and the optimizers use the XLA-compiled kernels
(`kernels.tf_compiled`), with the same numbers. The kernels run on CPU
variables of float32 and float64.
"""
import functools
import subprocess

import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.kernels import build as native_build
from keras_adamw.kernels import scalars, tf_xla_calls
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
    return SOURCES if tf_xla_calls.has_ffi_headers() else SOURCES[:1]


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


def runs(dtype):
    """Whether the native ops can update a CPU variable of `dtype` (a `tf.DType`):
    float32/float64, and the library is built (compiled once, on first use)."""
    return dtype.base_dtype in DTYPES and library() is not None


_OPS = {"adamw": "keras_adamw_apply_adamw", "nadamw": "keras_adamw_apply_nadamw",
        "sgdw": "keras_adamw_apply_sgdw"}
_SLOT_INPUTS = {"adamw": ("m", "v", "vhat"), "nadamw": ("m", "v"), "sgdw": ("velocity",)}
# Slots passed as a list of 0 or 1 handles (optional inputs of the op).
_OPTIONAL_SLOTS = ("vhat", "velocity")


def apply(update):
    """`update` (a `kernels.Update` of resource handles) in one pass; returns the op.

    ```
    AdamW:   m, v moments (amsgrad: vhat = max(vhat, v));
             theta = theta - step_size m / (sqrt(v or vhat) + eps) - decay(theta)
    NadamW:  theta = theta - step_size (w_g g + w_m m) / (sqrt(v c_v) + eps) - decay(theta)
    SGDW:    velocity = mu velocity - lr g; theta = theta + velocity - decay(theta)
    ```
    The scalars are named as the op's inputs (`kernels.scalars`); Python
    numbers are rounded once to the variable's dtype.
    """
    dtype = update.grad.dtype
    inputs = {name: value if tf.is_tensor(value) else tf.constant(value, dtype)
              for name, value in scalars.named(update).items()}
    names = _SLOT_INPUTS[update.kind]
    for name in _OPTIONAL_SLOTS:
        if name in names:
            inputs[name] = []
    for name, slot in zip(names, update.slots):
        inputs[name] = [slot] if name in _OPTIONAL_SLOTS else slot
    flags = scalars.flags(update)
    if update.kind != "sgdw":
        del flags["nesterov"]
    return getattr(library(), _OPS[update.kind])(var=update.variable, grad=update.grad,
                                                 **inputs, **flags)
