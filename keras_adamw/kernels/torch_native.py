"""The native single-pass kernels on the torch backend (CPU): one C call per group.

torch's fused kernels update a tensor in one pass only for Adam; SGD with our
decay takes two (`torch_foreach.axpby_`), NadamW four, and every tensor costs a
fork and join of torch's threads, so a model of many small tensors pays per
tensor, not per byte. Here the updates of `update_kernels.h` (the TensorFlow
ops and XLA custom calls run the same ones) update every CPU variable of a
step in place, one pass each, through `host_calls.cc`: one ctypes call per
(rule kind, dtype) group, each variable with its own scalar row and decay
flags, its blocks spread over up to `torch.get_num_threads()` threads of the
OpenMP pool torch's own kernels use: the library is built with `-fopenmp` and
loaded after torch, so it binds to the `libgomp.so.1` torch ships, whose threads
are still spinning from the backward pass when the step starts (helper threads
of our own would compete with them for the cores).

The library is compiled on first use into the cache of `keras_adamw.kernels.build`
(a second or two), without torch's headers (a compiler without OpenMP cannot
build it: torch's multi-tensor kernels run then). It takes contiguous float32/float64
CPU tensors, eagerly (not under `torch.compile`); elsewhere (CUDA, float16,
bfloat16), switched off (`KERAS_ADAMW_NATIVE=0`, `optimizer.native_kernels =
False`) or without a compiler (one `RuntimeWarning`), torch's multi-tensor
kernels run (`kernels.torch_foreach`), with the same numbers.
"""
import ctypes
import dataclasses
import functools
import subprocess

import numpy as np
import torch

from keras_adamw.core.step import variable_scalars
from keras_adamw.kernels import Update
from keras_adamw.kernels import build as native_build
from keras_adamw.kernels import scalars as kernel_scalars

SOURCES = [native_build.SOURCE_DIR / "host_calls.cc"]
# The C rule codes of `KerasAdamwHostGroup`, by `scalars.target` name.
RULES = {"keras_adamw_adamw": 0, "keras_adamw_amsgrad": 1, "keras_adamw_nadamw": 2,
         "keras_adamw_sgdw": 3, "keras_adamw_momentum": 4}
DTYPES = {torch.float32: np.float32, torch.float64: np.float64}
# The per-variable flag bits of `host_calls.cc`.
FLAG_BITS = {"decay_sign": 1, "decay_linear": 2, "nesterov": 4}


def build_command(output):
    """The compiler call that builds the host library into `output`."""
    return (native_build.compiler() + native_build.OPTIMIZE + native_build.NATIVE_ARCH
            + ["-std=c++17", "-fopenmp"] + [str(source) for source in SOURCES]
            + ["-o", str(output)])


@functools.cache
def library():
    """The loaded library's group call; None if switched off or not buildable."""
    if native_build.switched_off():
        return None
    try:
        path = native_build.library_path("host_calls", SOURCES, build_command("x"))
        if not path.exists():
            native_build.compile_library(build_command, path, "torch")
        call = ctypes.CDLL(str(path)).KerasAdamwHostGroup
    except (OSError, subprocess.SubprocessError, AttributeError) as error:
        native_build.unavailable_warning("torch", error, "variables update through "
                                         "torch's multi-tensor kernels instead")
        return None
    call.restype = ctypes.c_int
    call.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64] + [ctypes.c_void_p] * 4 + [
        ctypes.c_int]
    return call


def usable(param, slots):
    """Whether the host call updates `param` and its `slots` (tensors): contiguous
    float32/float64 CPU tensors of one dtype, library built."""
    tensors = [param, *slots]
    return (param.device.type == "cpu" and param.dtype in DTYPES
            and all(t.dtype == param.dtype and t.device == param.device and t.is_contiguous()
                    for t in tensors) and library() is not None)


@dataclasses.dataclass
class HostGroup:
    """Variables of one call: same rule kind, slot set and dtype.

    Attributes:
        target: the `scalars.target` name of the kind and slot set.
        dtype: the variables' torch dtype.
        slots: the slot names of each variable (for `scalars.pack`).
        indices: their positions in the list of variables (and gradients).
        rules: the distinct `core.matching.VariableRule`s of the variables.
        row_index: per variable, its rule's position in `rules`.
        tensors: the tensors whose addresses `pointers` holds.
        pointers: `[variables, tensors]` addresses: the variable, its slots,
            then its gradient (filled per step).
        sizes: elements per variable.
        flags: per variable, its decay and Nesterov flag bits (fixed by its
            rule; set at the first call).
    """

    target: str
    dtype: torch.dtype
    slots: tuple
    indices: list = dataclasses.field(default_factory=list)
    rules: list = dataclasses.field(default_factory=list)
    row_index: list = dataclasses.field(default_factory=list)
    tensors: list = dataclasses.field(default_factory=list)
    pointers: list = dataclasses.field(default_factory=list)
    sizes: list = dataclasses.field(default_factory=list)
    flags: object = None

    def add(self, index, rule, tensors):
        """Adds the variable at `index` (its tensors: variable, then slots;
        Keras updates torch variables in place, so their addresses stay)."""
        if rule not in self.rules:
            self.rules.append(rule)
        self.indices.append(index)
        self.row_index.append(self.rules.index(rule))
        self.tensors.extend(tensors)  # alive as long as their addresses are used
        self.pointers.append([t.data_ptr() for t in tensors] + [0])
        self.sizes.append(tensors[0].numel())

    def freeze(self):
        """The lists as the arrays the call reads."""
        self.row_index = np.array(self.row_index, np.intp)
        self.pointers = np.array(self.pointers, np.uint64)
        self.sizes = np.array(self.sizes, np.int64)


def group_key(kind, param, slots):
    """`(target, dtype, slot names)`: variables that can share a call."""
    names = tuple(slots)
    target = kernel_scalars.target(Update(kind, None, names, None, None, None))
    return target, param.dtype, names


def run(optimizer, group, grads, step):
    """Updates the group's variables with one call.

    Args:
        optimizer: the Keras 3 optimizer (its `_kind` and `_step_hyper`).
        group: a `HostGroup`.
        grads: the step's gradients (contiguous, the variables' dtype), all of
            them; the group's are taken by index.
        step: the `core.step.Step` with Python floats (`torch_foreach.host_step`).
    """
    table, flags = _scalar_rows(optimizer, group, step)
    pointers = group.pointers
    pointers[:, -1] = [grads[i].data_ptr() for i in group.indices]
    status = library()(RULES[group.target], int(group.dtype == torch.float64),
                       len(group.indices), pointers.ctypes.data, group.sizes.ctypes.data,
                       table.ctypes.data, flags.ctypes.data, torch.get_num_threads())
    if status:
        raise RuntimeError(f"keras_adamw: the host kernels rejected rule {group.target!r}")


def _scalar_rows(optimizer, group, step):
    """The `[variables, count]` scalars in the group's dtype and the flag bytes:
    one row per distinct rule (`scalars.pack`), gathered per variable."""
    updates = [Update(optimizer._kind, None, group.slots, None,
                      variable_scalars(step, rule, float), optimizer._step_hyper)
               for rule in group.rules]
    if group.flags is None:
        group.flags = np.array([sum(bit for name, bit in FLAG_BITS.items()
                                    if kernel_scalars.flags(update)[name])
                                for update in updates], np.uint8)[group.row_index]
    table = np.array([kernel_scalars.pack(update) for update in updates],
                     DTYPES[group.dtype])[group.row_index]
    return table, group.flags
