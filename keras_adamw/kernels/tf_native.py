"""Single-pass TensorFlow CPU kernels: AdamW, NadamW and SGDW with the decay in one pass.

TensorFlow's fused training ops cannot apply a decoupled decay (and none
expresses Nadam), and XLA compiles an update into one element-wise loop per
updated tensor (about 40 bytes per float32 AdamW parameter, against the 28 of
`ResourceApplyAdam`). The kernels of `update_kernels.h` read theta, the slots and
the gradient once and write theta and the slots once, with the per-step scalars
of `keras_adamw.core.rules` computed once per step by the optimizer; they run as
TensorFlow ops (`update_ops.cc`: this module's `apply`, one op per group of
variables of a step, `batch`) and, inside
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

import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.kernels import build as native_build
from keras_adamw.kernels import groups, scalars, tf_xla_calls
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


class _Queued:
    """One variable's update in a batch and its group key (target, dtype, flags)."""

    def __init__(self, update):
        self.update = update
        self.key = (scalars.target(update), update.grad.dtype,
                    tuple(sorted(scalars.flags(update).items())))


_QUEUE = groups.UpdateQueue()
# `KerasAdamwApplyGroup`'s rule attribute, by `scalars.target` name.
_GROUP_RULES = {"keras_adamw_adamw": "adamw", "keras_adamw_amsgrad": "amsgrad",
                "keras_adamw_nadamw": "nadamw", "keras_adamw_sgdw": "sgdw",
                "keras_adamw_momentum": "momentum"}


def batch():
    """Within: `apply` queues its variables; at the end, one op per (rule, dtype,
    flags) group updates them all (`KerasAdamwApplyGroup`), their blocks on the
    thread pool together: a step of many small variables costs one op, not
    one per variable. Yields the list that receives the emitted ops. Under a
    `tf.distribute` strategy or nested, each update is emitted at once."""
    return _QUEUE.batch(_emit, immediate=tf.distribute.has_strategy())


def apply(update):
    """Queues `update` (a `kernels.Update` of resource handles) in an open
    `batch`, else runs its op. Returns an op to depend on (a no-op when queued:
    the batch emits the update)."""
    emitted = _QUEUE.submit(_Queued(update), _emit)
    return tf.no_op() if emitted is None else emitted


def _emit(group):
    """The op of `group`: the variable's own op for one update, else one
    `KerasAdamwApplyGroup` with a `[variables, count]` table of scalars."""
    if len(group) == 1:
        return apply_one(group[0].update)
    target, dtype, flags = group[0].key
    handles = [h for queued in group for h in (queued.update.variable, *queued.update.slots)]
    return library().keras_adamw_apply_group(
        tensors=handles, grads=[queued.update.grad for queued in group],
        scalars=_scalar_table(group, dtype), rule=_GROUP_RULES[target], **dict(flags))


def _scalar_table(group, dtype):
    """Each distinct row of scalars packed and stacked once, then gathered per
    variable. Variables of one rule share their `VariableScalars` object in a
    step (the optimizers compute it once per rule and dtype), and one step's
    updates share their hyperparameters."""
    firsts, index = groups.distinct(group, lambda queued: id(queued.update.scalars))
    table = tf.stack([tf_xla_calls.scalar_vector(scalars.pack(queued.update), dtype)
                      for queued in firsts])
    return table if len(firsts) == len(group) else tf.gather(table, np.asarray(index))


def apply_one(update):
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
