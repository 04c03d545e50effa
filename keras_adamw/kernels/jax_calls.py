"""The native single-pass kernels on the JAX backend (CPU): XLA FFI custom calls.

XLA compiles an update into one element-wise loop per updated tensor, the next
reading what the previous wrote (24 instead of 20 bytes per float32 parameter
for momentum SGD, 44 instead of 28 for Nadam). The handlers of
`keras_adamw/kernels/xla_calls.cc` (the updates of `update_kernels.h`, shared
with the TensorFlow ops) do the whole update in one pass, in place: each
updated tensor is aliased to its result (`input_output_aliases`), so under a
`jit` that donates the optimizer state and the variables (as Keras's JAX
trainer does) XLA updates the buffers themselves. The optimizers queue their
variables in `batch()` and emit one call per group (same rule, dtype and decay
terms), whose blocks run on XLA's thread pool.

The library is compiled on first use against jaxlib's FFI headers into the cache
of `keras_adamw.kernels.build` (about 5 s), and registered with JAX. It runs on
float32/float64 variables of at least `MIN_SIZE` elements when JAX computes on
the CPU; elsewhere, for smaller variables, switched off
(`KERAS_ADAMW_NATIVE=0`, `optimizer.native_kernels = False`) or without a
compiler (one `RuntimeWarning`), the optimizers use Keras ops, with the same
numbers.
"""
import ctypes
import functools
import subprocess

import jax  # type: ignore[import-untyped]
import jax.numpy as jnp  # type: ignore[import-untyped]
import keras  # type: ignore[import-untyped]
import numpy as np
from keras import ops  # type: ignore[import-untyped]

from keras_adamw.kernels import build as native_build
from keras_adamw.kernels import groups, scalars

SOURCES = [native_build.SOURCE_DIR / "xla_calls.cc"]
DTYPES = ("float32", "float64")
# Smaller variables keep Keras ops: their data stays in cache, XLA runs their
# short loops concurrently, and the calls gained nothing measurable there
# (benchmarks/README.md has the figures).
MIN_SIZE = 1 << 16
# Registered names and the library's symbols returning their handlers.
TARGETS = {"keras_adamw_adamw": "KerasAdamwAdamW", "keras_adamw_amsgrad": "KerasAdamwAmsgrad",
           "keras_adamw_nadamw": "KerasAdamwNadamW", "keras_adamw_sgdw": "KerasAdamwSgdW",
           "keras_adamw_momentum": "KerasAdamwMomentum"}


def build_command(output):
    """The compiler call that builds the JAX library into `output`."""
    return (native_build.compiler() + native_build.OPTIMIZE + native_build.NATIVE_ARCH
            + ["-std=c++17", "-DKERAS_ADAMW_JAX", f"-I{jax.ffi.include_dir()}"]
            + [str(source) for source in SOURCES] + ["-o", str(output)])


def library_path():
    """The cached library for these sources, jaxlib and compiler."""
    return native_build.library_path("jax_calls", SOURCES, build_command("x"),
                                     [jax.__version__])


@functools.cache
def library():
    """The loaded library, its targets registered with JAX; None if switched off
    or it could not be built."""
    if native_build.switched_off():
        return None
    try:
        path = library_path()
        if not path.exists():
            native_build.compile_library(build_command, path, "JAX")
        loaded = ctypes.cdll.LoadLibrary(str(path))
        for name, symbol in TARGETS.items():
            handler = getattr(loaded, symbol)
            handler.restype = ctypes.c_void_p
            jax.ffi.register_ffi_target(name, jax.ffi.pycapsule(handler()), platform="cpu")
        return loaded
    except (OSError, subprocess.SubprocessError, AttributeError) as error:
        native_build.unavailable_warning("JAX", error, "variables update through Keras ops "
                                         "instead")
        return None


def usable(variable):
    """Whether the custom calls update `variable` (a Keras variable) here: float32
    or float64, at least `MIN_SIZE` elements, JAX on the CPU, library built."""
    size = int(np.prod(variable.shape))
    return (keras.backend.standardize_dtype(variable.dtype) in DTYPES and size >= MIN_SIZE
            and jax.default_backend() == "cpu" and library() is not None)


class _Update:
    """One variable's update: target, flags, the Keras variables it updates (the
    variable, then its slots), the gradient and the per-step scalars."""

    def __init__(self, optimizer, target, variables, grad, values, flags):
        self.optimizer, self.variables, self.grad, self.scalars = (
            optimizer, variables, grad, values)
        self.key = (target, keras.backend.standardize_dtype(variables[0].dtype),
                    tuple(sorted(flags.items())))


_QUEUE = groups.UpdateQueue()


def batch():
    """Within: the update functions queue their variables; at the end, one custom
    call per (rule, dtype, flags) group updates them all, in queue order (a
    call costs about 2 us more than an XLA loop, and one call spreads many
    small variables over every core). Nested, each update is emitted at once."""
    return _QUEUE.batch(_emit)


def _emit(group):
    """The custom call updating every variable of `group`, and the assignments."""
    target, dtype, attributes = group[0].key
    updated = len(group[0].variables)
    operands, aliases, results = [], {}, []
    for update in group:
        for variable in update.variables:
            aliases[len(operands)] = len(results)
            value = ops.convert_to_tensor(variable)
            operands.append(value)
            results.append(jax.ShapeDtypeStruct(value.shape, dtype))
        operands.append(jnp.asarray(update.grad, dtype))
    operands.append(_scalar_table(group, dtype))
    outputs = jax.ffi.ffi_call(target, results, input_output_aliases=aliases)(
        *operands, **dict(attributes))
    for i, update in enumerate(group):
        for j, variable in enumerate(update.variables):
            update.optimizer.assign(variable, outputs[i * updated + j])


def _scalar_table(group, dtype):
    """The scalars `[variables, count]`: each distinct row (variables of one rule
    share their scalars) stacked once, then gathered per variable."""
    firsts, index = groups.distinct(group, lambda update: tuple(
        id(x) if isinstance(x, jax.Array) else x for x in update.scalars))
    table = jnp.stack([jnp.stack([jnp.asarray(x, dtype) for x in update.scalars])
                       for update in firsts])
    return table if len(firsts) == len(group) else table[np.asarray(index)]


def apply(optimizer, update):
    """Queues `update` (a `kernels.Update` of Keras variables) in an open
    `batch`, else emits its custom call; `optimizer` assigns the results."""
    queued = _Update(optimizer, scalars.target(update), (update.variable, *update.slots),
                     update.grad, scalars.pack(update), scalars.flags(update))
    _QUEUE.submit(queued, _emit)
