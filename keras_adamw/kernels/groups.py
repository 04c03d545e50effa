"""Per-variable updates queued during a step and emitted in groups.

The native custom calls (`kernels.tf_xla_calls` on TensorFlow,
`kernels.jax_calls` on JAX) update many variables in one call: the
optimizer opens a batch around its per-variable loop, each update is queued,
and at the end one call per group (equal `key`: rule, dtype, flags) is emitted,
groups in the order of their first update. Framework-neutral.
"""
import contextlib
import threading


class UpdateQueue:
    """The open batch of one thread (tracing is per thread)."""

    def __init__(self):
        self._local = threading.local()

    def _updates(self):
        return getattr(self._local, "updates", None)

    @contextlib.contextmanager
    def batch(self, emit, immediate=False):
        """Within: `submit` queues; at the end, `emit(group)` per group. Yields
        the list that receives what `emit` returns. Nested, or with
        `immediate`, each update is emitted at once."""
        emitted = []
        if immediate or self._updates() is not None:
            yield emitted
            return
        self._local.updates = []
        try:
            yield emitted
            updates = self._local.updates
        finally:
            self._local.updates = None
        groups = {}
        for update in updates:
            groups.setdefault(update.key, []).append(update)
        emitted.extend(emit(group) for group in groups.values())

    def submit(self, update, emit):
        """Queues `update` (with a `key`) in the open batch, else returns `emit([update])`."""
        updates = self._updates()
        if updates is None:
            return emit([update])
        updates.append(update)
        return None


def distinct(items, key):
    """`(firsts, index)`: the first item of each distinct `key(item)`, in order,
    and per item the position of its key in `firsts` (a group's scalar table
    stacks each distinct row once, then gathers it per variable)."""
    positions, firsts, index = {}, [], []
    for item in items:
        k = key(item)
        if k not in positions:
            positions[k] = len(firsts)
            firsts.append(item)
        index.append(positions[k])
    return firsts, index
