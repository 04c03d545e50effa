"""The TensorFlow ladder of both flavours: which kernel updates a variable.

What a variable can take is decided once, at build (`capabilities`: the
`native_kernels` switch, its device, dtype and shape, whether a fused op
expresses the rule, when the compiled pass may run); only "inside XLA or not"
is left for trace time (`path`). In order of preference:

```
tf_xla_call   inside jit_compile, where the native kernels run (every variable)
tf_fused      no decay, and a fused TensorFlow op expresses the rule
tf_native     outside XLA, where the native kernels run
tf_compiled   the XLA-compiled single pass, where allowed
fallback      the flavour's rule ops after an in-place decay pass
```
"""
import contextlib
import functools
from typing import NamedTuple

import numpy as np
import tensorflow as tf  # type: ignore[import-untyped]

from keras_adamw.kernels import tf_compiled, tf_fused, tf_native, tf_xla_calls

try:  # private: which graph XLA compiles
    from tensorflow.python.ops import (  # type: ignore[import-untyped]
        control_flow_util as _control_flow_util,
    )
except ImportError:  # TensorFlow moved it: `in_xla_context` then assumes XLA
    _control_flow_util = None

# The fused Adam ops compute `1 - beta` in the variable's dtype: in bfloat16
# beta_2 = 0.999 rounds to 1 (the second moment never grows, the step explodes),
# in float16 `1 - beta_2` is 2% off. Other dtypes take the reference path.
ADAM_DTYPES = (tf.float32, tf.float64)
KERNELS = {"tf_xla_call": tf_xla_calls.apply, "tf_native": tf_native.apply,
           "tf_compiled": tf_compiled.apply, "tf_fused": tf_fused.apply}


class Capabilities(NamedTuple):
    """What one variable can take, decided at build.

    Attributes:
        native: the native kernels run on it (switch on, CPU, float32/64, built).
        xla_call: inside XLA too (custom calls available, shape fully defined).
        fused: a fused op expresses its rule (AdamW without amsgrad, SGDW).
        compiled: when the compiled pass may run: "always", "xla" (inside XLA
            only) or "never".
    """

    native: bool
    xla_call: bool
    fused: bool
    compiled: str


def capabilities(variable, native_kernels, fused, compiled):
    """`Capabilities` of `variable` (a tf.Variable, or a distributed one)."""
    native = bool(native_kernels) and _control_flow_util is not None \
        and _on_cpu(variable.device) and tf_native.runs(variable.dtype)
    xla_call = native and tf_xla_calls.available() and variable.shape.is_fully_defined()
    return Capabilities(native, xla_call, fused, compiled)


def path(capabilities_, decayed):
    """The path of a variable with these capabilities, in the graph built now;
    None for the flavour's fallback (rule ops after a decay pass)."""
    in_xla = in_xla_context()
    if in_xla and capabilities_.xla_call:
        return "tf_xla_call"
    if not decayed and capabilities_.fused:
        return "tf_fused"
    if capabilities_.native and not in_xla:
        return "tf_native"
    if capabilities_.compiled == "always" or (capabilities_.compiled == "xla" and in_xla):
        return "tf_compiled"
    return None


def apply(path_, update):
    """Runs `update` (a `kernels.Update` of resource handles) on `path_`; the op."""
    if update.kind == "sgdw":  # through float32, as the fused op receives it
        update = update._replace(hyper=update.hyper._replace(
            momentum=tf.cast(update.hyper.momentum, update.grad.dtype)))
    return KERNELS[path_](update)


@contextlib.contextmanager
def batch():
    """Around a step's per-variable updates: the native updates are queued and
    emitted at the end, one op or custom call per group (`tf_native.batch`,
    `tf_xla_calls.batch`). Yields the list that receives the emitted ops."""
    emitted = []
    with tf_xla_calls.batch() as xla_calls, tf_native.batch() as native_ops:
        yield emitted
    emitted.extend(xla_calls + native_ops)


def float32_betas(beta_1, beta_2):
    """The betas as the fused ops receive them (`tf.cast` of a Python float goes
    through float32), so every path and the bias correction agree."""
    return float(np.float32(beta_1)), float(np.float32(beta_2))


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
