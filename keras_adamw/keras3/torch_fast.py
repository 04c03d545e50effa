"""Multi-tensor update of the Keras 3 optimizers on the torch backend.

Placeholder: the per-variable Keras loop (`update_step`), until the fused
multi-tensor kernels land (issue 4).
"""


def update(optimizer, grads, variables, step):
    """Applies one update to every variable; `step` holds the per-step scalars."""
    for grad, variable in zip(grads, variables):
        optimizer.update_step(grad, variable, None)
