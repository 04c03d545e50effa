"""The kernel layer: every fast path of the optimizers, behind one interface.

An optimizer's `update_step` is the reference path (the update rule in the
framework's ops, `keras_adamw.core.rules`) plus one call here. A kernel
receives an `Update`: one kind of update ("adamw", "nadamw", "sgdw") of one
variable, its slots and gradient, the typed per-step scalars
(`core.step.VariableScalars`, in the variable's dtype) and the static
hyperparameters. Which path a variable takes is decided once, at build, from
its backend, device, dtype and size (`keras3.choose` for Keras 3,
`tf_paths.capabilities` for TensorFlow); only "inside XLA or not" is left for
trace time (`tf_paths.path`). `PATHS` lists every path; the "what runs where"
table of `docs/pages/speed.md` is generated from it (`paths_table`).

Modules:
    keras3: the Keras 3 dispatch per backend (the only backend-name branches).
    tf_paths: the TensorFlow ladder shared by both flavours.
    tf_fused: TensorFlow's fused training ops and the in-place decay pass.
    tf_native: the native TensorFlow ops (C++, `update_ops.cc`).
    tf_xla_calls: the native kernels as XLA custom calls inside `jit_compile`.
    tf_compiled: XLA-compiled single-pass updates (where no native kernel runs).
    jax_calls: the native kernels as XLA custom calls on the JAX backend.
    torch_native: the native kernels on torch's CPU tensors (one C call per group).
    torch_foreach: torch's fused multi-tensor kernels on the torch backend.
    scalars: the order of the native kernels' scalar vector (one packer).
    groups: per-step queue of updates emitted one call per group.
    build: compiling and caching the native libraries.
"""
from typing import Any, NamedTuple

from keras_adamw.core.step import VariableScalars


class Hyper(NamedTuple):
    """Static hyperparameters of an update (Python values, fixed at construction).

    Attributes:
        beta_1, beta_2, epsilon: AdamW and NadamW.
        momentum, nesterov: SGDW (`momentum` may be a tensor in tf_keras).
    """

    beta_1: float = 0.0
    beta_2: float = 0.0
    epsilon: float = 0.0
    momentum: Any = 0.0
    nesterov: bool = False


class Update(NamedTuple):
    """One variable's update, as every kernel receives it.

    Attributes:
        kind: "adamw", "nadamw" or "sgdw".
        variable: the variable (or its resource handle on TensorFlow).
        slots: `(m, v)` or `(m, v, vhat)` (amsgrad) for AdamW/NadamW,
            `(velocity,)` or `()` (no momentum) for SGDW; same form as `variable`.
        grad: the dense gradient, in the variable's dtype.
        scalars: `core.step.VariableScalars`.
        hyper: `Hyper`.
    """

    kind: str
    variable: Any
    slots: tuple
    grad: Any
    scalars: VariableScalars
    hyper: Hyper


class KernelPath(NamedTuple):
    """One way a variable can be updated, for `PATHS`."""

    name: str
    backend: str
    flavours: str
    runs: str
    module: str


# name | backend | flavours | where it runs | module
_TABLE = """
reference | any | both | bounds on (`effective_lr_bounds`, per element), float16 or \
bfloat16 AdamW/NadamW on TensorFlow, the fallback of every path | the optimizer's \
`update_step` (Keras 3) / `_apply_rule` (tf_keras)
tf_fused | tensorflow | both | AdamW without amsgrad and SGDW, no decay (or after an \
in-place decay pass where nothing below runs) | keras_adamw.kernels.tf_fused
tf_native | tensorflow | both | CPU float32/float64 outside XLA: decayed AdamW and SGDW, \
amsgrad, every NadamW; one op per group | keras_adamw.kernels.tf_native
tf_xla_call | tensorflow | both | CPU float32/float64 inside `jit_compile`: every \
variable, one call per group | keras_adamw.kernels.tf_xla_calls
tf_compiled | tensorflow | both | where the native kernels do not run (GPU, native off): \
what they would take; tf_keras from `xla_min_size` | keras_adamw.kernels.tf_compiled
jax_call | jax | keras3 | CPU float32/float64 of at least 2^16 elements, one call per \
group | keras_adamw.kernels.jax_calls
torch_native | torch | keras3 | contiguous CPU float32/float64 variables, one call per \
step for every rule and size; not under `torch.compile` (`jit_compile=True`) nor in \
`stateless_apply` | keras_adamw.kernels.torch_native
torch_foreach | torch | keras3 | the other variables of a fused dtype on CPU/CUDA (CUDA, \
float16, bfloat16, native off), one kernel sequence per group; not under \
`torch.compile` nor in `stateless_apply` | keras_adamw.kernels.torch_foreach
"""
PATHS = tuple(KernelPath(*(cell.strip() for cell in line.split("|")))
              for line in _TABLE.strip().splitlines())


def paths_table():
    """`PATHS` as the Markdown table of `docs/pages/speed.md` ("What runs where")."""
    rows = ["| path | backend | flavours | runs | module |", "|---|---|---|---|---|"]
    rows += [f"| `{p.name}` | {p.backend} | {p.flavours} | {p.runs} | {p.module} |"
             for p in PATHS]
    return "\n".join(rows)
