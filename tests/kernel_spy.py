"""Which kernel path each update takes: a spy on the kernel layer's dispatch."""
import collections


def _recording(calls, function, name):
    def wrapper(update, *args):
        calls[name].append((update.kind, tuple(update.grad.shape)))
        return function(update, *args)
    return wrapper


def spy_tf_paths(monkeypatch):
    """`{path: [(kind, gradient shape), ...]}` of every TensorFlow kernel update
    from now on (both flavours; tf_keras's own fused ops are not kernels)."""
    from keras_adamw.kernels import tf_paths

    calls = collections.defaultdict(list)
    for name, function in list(tf_paths.KERNELS.items()):
        monkeypatch.setitem(tf_paths.KERNELS, name, _recording(calls, function, name))
    return calls


def spy_jax_calls(monkeypatch):
    """`[(kind, gradient shape), ...]` of every update the JAX custom calls take."""
    from keras_adamw.kernels import jax_calls

    calls = collections.defaultdict(list)
    original = jax_calls.apply
    monkeypatch.setattr(jax_calls, "apply", lambda optimizer, update: _recording(
        calls, lambda u: original(optimizer, u), "jax_call")(update))
    return calls["jax_call"]
