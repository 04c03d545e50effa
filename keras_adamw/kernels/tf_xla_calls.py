"""The native kernels inside XLA: one in-place custom call per variable update.

Inside a `jit_compile=True` function, XLA compiles an update into one
element-wise loop per updated tensor, the next reading what the previous wrote,
and cannot fuse them on the CPU: 24 instead of 20 bytes per float32 parameter
for momentum SGD, 44 instead of 28 for NadamW. The handlers of `xla_calls.cc`
(registered with TensorFlow's XLA when the native library loads) do the whole
update in one pass. Each call is a StableHLO module run by TensorFlow's
`XlaCallModule`, with every updated tensor aliased to its output, so XLA updates
the variables' buffers in place (no copy). CPU only: `kernels.tf_paths` picks
this path for CPU float32/float64 variables inside XLA. `apply` takes what every
kernel takes (a `kernels.Update` of resource handles) and does the arithmetic of
`kernels.tf_compiled`.
"""
import functools
from pathlib import Path

import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.kernels import groups, scalars

try:  # private: TensorFlow's op that inlines a StableHLO module into XLA
    from tensorflow.compiler.tf2xla.ops import (  # type: ignore[import-untyped]
        gen_xla_ops as _xla_ops,
    )
except ImportError:  # moved: `available()` is False and the XLA kernels are used
    _xla_ops = None

# XlaCallModule's serialization version (TensorFlow reads 5 and later).
MODULE_VERSION = 9
_ELEMENT_TYPES = {tf.float32: "f32", tf.float64: "f64"}


@functools.cache
def has_ffi_headers():
    """Whether TensorFlow ships XLA's FFI headers (2.16 and later; 2.12-2.15 do not),
    so that `xla_calls.cc` compiles into the native library."""
    return (Path(tf.sysconfig.get_include()) / "xla" / "ffi" / "api" / "ffi.h").is_file()


def available():
    """Whether TensorFlow has the op that runs a custom call, and the custom calls
    are in the native library."""
    return (_xla_ops is not None and hasattr(_xla_ops, "xla_call_module")
            and has_ffi_headers())


@functools.cache
def module(target, sizes, element_type, updated, scalar_count, attributes):
    """StableHLO text: `target` updates variables of `sizes` elements in place.

    Operands are, per variable, its `updated` tensors and its gradient, then
    the scalars `[variables, scalar_count]`; the results are the updated
    tensors, each aliased to its operand. `attributes` are `(name, bool)` pairs
    for the handler.
    """
    operand_types, results, aliases = [], [], []
    for size in sizes:
        tensor = f"tensor<{size}x{element_type}>"
        for _ in range(updated):
            aliases.append((len(results), len(operand_types)))
            results.append(tensor)
            operand_types.append(tensor)
        operand_types.append(tensor)  # the gradient
    operand_types.append(f"tensor<{len(sizes)}x{scalar_count}x{element_type}>")
    operands = ", ".join(f"%arg{i}" for i in range(len(operand_types)))
    parameters = ", ".join(f"%arg{i}: {t}" for i, t in enumerate(operand_types))
    # A single result is not a tuple: its alias has no tuple index.
    alias_text = ", ".join(
        f"#stablehlo.output_operand_alias<output_tuple_indices = "
        f"{[] if len(results) == 1 else [result]}, operand_index = {operand}, "
        f"operand_tuple_indices = []>" for result, operand in aliases)
    config = ", ".join(f"{name} = {str(value).lower()}" for name, value in attributes)
    result_types = ", ".join(results)
    values = "%0" if len(results) == 1 else ", ".join(f"%0#{i}" for i in range(len(results)))
    count = "" if len(results) == 1 else f":{len(results)}"
    return f"""
module @keras_adamw attributes {{mhlo.num_partitions = 1 : i32, mhlo.num_replicas = 1 : i32}} {{
  func.func public @main({parameters}) -> ({result_types}) {{
    %0{count} = stablehlo.custom_call @{target}({operands}) {{
        api_version = 4 : i32, backend_config = {{{config}}},
        output_operand_aliases = [{alias_text}]}}
      : ({", ".join(operand_types)}) -> ({result_types})
    return {values} : {result_types}
  }}
}}"""


class _Update:
    """One variable's update: the custom call's target and flags, the handles of
    the tensors it updates, the gradient and the per-step scalars."""

    def __init__(self, target, handles, grad, values, flags):
        self.grad = tf.convert_to_tensor(grad)
        self.key = (target, self.grad.dtype, tuple(sorted(flags.items())))
        self.handles, self.scalars = handles, values


_QUEUE = groups.UpdateQueue()


def batch():
    """Within: the update functions queue their variables; at the end, one custom
    call per (rule, dtype, flags) group updates them all, in queue order.

    A custom call costs more than an XLA loop (about 2 us each), and the
    handler spreads a group's variables over the thread pool, where XLA runs
    its small loops one by one: 400 small variables take one call on every core
    instead of 400 calls on one. Yields the list that receives the emitted ops.
    Under a `tf.distribute` strategy (updates stay per replica) or nested in
    another batch, each update is emitted at once.
    """
    return _QUEUE.batch(_emit, immediate=tf.distribute.has_strategy())


def scalar_vector(values, dtype):
    """A variable's scalars: tensors cast, Python numbers rounded once."""
    return tf.stack([tf.cast(x, dtype) if tf.is_tensor(x) else tf.constant(x, dtype)
                     for x in values])


def _emit(group):
    """The custom call updating every variable of `group`, and the assignments."""
    target, dtype, attributes = group[0].key
    updated = len(group[0].handles)
    operands, shapes = [], []
    for update in group:
        # Read now, after any earlier group's update; the variable's static
        # shape (a sparse gradient's dense shape may be unknown).
        values = [tf.raw_ops.ReadVariableOp(resource=h, dtype=dtype) for h in update.handles]
        shapes.append(values[0].shape)
        size = values[0].shape.num_elements()
        operands += [tf.reshape(x, [size]) for x in values] + [tf.reshape(update.grad, [size])]
    operands.append(tf.stack([scalar_vector(u.scalars, dtype) for u in group]))
    sizes = tuple(shape.num_elements() for shape in shapes)
    text = module(target, sizes, _ELEMENT_TYPES[dtype], updated, len(group[0].scalars),
                  attributes)
    results = _xla_ops.xla_call_module(
        operands, version=MODULE_VERSION, module=text,
        Sout=[tf.TensorShape([size]) for size in sizes for _ in range(updated)],
        Tout=[dtype] * (updated * len(group)), platforms=["CPU"])
    targets = [(h, shape) for u, shape in zip(group, shapes) for h in u.handles]
    return tf.group([tf.raw_ops.AssignVariableOp(resource=h, value=tf.reshape(r, shape))
                     for (h, shape), r in zip(targets, results)])


def apply(update):
    """Queues `update` (a `kernels.Update` of resource handles) in an open
    `batch`, else emits its custom call. Returns an op to depend on (a no-op
    when queued: the batch emits the update)."""
    queued = _Update(scalars.target(update), (update.variable, *update.slots), update.grad,
                     scalars.pack(update), scalars.flags(update))
    emitted = _QUEUE.submit(queued, _emit)
    return tf.no_op() if emitted is None else emitted
