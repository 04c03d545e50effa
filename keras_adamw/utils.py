"""keras-adamw 1.x helpers, for models and variables of either flavour."""
import random

import numpy as np


def _is_keras2(obj):
    return type(obj).__module__.startswith(("tf_keras", "keras.src.engine"))


def get_weight_decays(model, zero_penalties=False):
    """`{variable name: (l1, l2)}` from a model's L1/L2/L1L2 regularizers.

    Keys are `variable.path` for Keras 3 models and the variable name for
    tf_keras models, in layer order (see `fill_dict_in_order`).

    Args:
        model: a built Keras 3 or tf_keras model.
        zero_penalties: also zero the regularizers (the decoupled decay
            replaces the loss penalty).
    """
    if _is_keras2(model):
        from keras_adamw.keras2 import regularizers
    else:
        from keras_adamw.keras3 import regularizers
    return regularizers.get_weight_decays(model, zero_penalties)


def fill_dict_in_order(d, values):
    """Sets the values of `d` in its key order to `values`; returns `d`.

    Args:
        d: dict, e.g. from `get_weight_decays`.
        values: one value per key, e.g. `(l1, l2)` pairs.
    """
    if len(values) != len(d):
        raise ValueError(f"Argument `values` must have one value per key of `d` "
                         f"({len(d)}: {list(d)}). Received {len(values)} values.")
    for key, value in zip(list(d), values):
        d[key] = value
    return d


def reset_seeds(reset_graph_with_backend=None, verbose=0, seed=1):
    """Seeds Python, numpy and the Keras backend (`keras.utils.set_random_seed`).

    Args:
        reset_graph_with_backend: a backend module with `clear_session` (the
            keras-adamw 1.x argument); its session is cleared first.
        verbose: accepted for keras-adamw 1.x; logs at INFO level when set.
        seed: the seed.
    """
    import logging

    if reset_graph_with_backend is not None:
        reset_graph_with_backend.clear_session()
    random.seed(seed)
    np.random.seed(seed)
    try:
        import keras  # type: ignore[import-untyped]

        keras.utils.set_random_seed(seed)
    except ImportError:  # tf_keras only
        import tensorflow as tf  # type: ignore[import-untyped]

        tf.random.set_seed(seed)
    if verbose:
        logging.getLogger(__name__).info("random seeds reset to %d", seed)


def K_eval(x, backend=None):
    """A numpy value of a variable or tensor of any backend or flavour.

    Args:
        x: Keras 3 variable, tf/jax/torch tensor, tf_keras variable, number.
        backend: accepted for keras-adamw 1.x (`K_eval(x, K)`); a backend module
            with `get_value` is used for what numpy cannot read directly.
    """
    if hasattr(x, "value") and hasattr(x, "path"):  # keras.Variable
        x = x.value
    if hasattr(x, "numpy"):
        return _to_numpy(x)
    try:
        return np.asarray(x)
    except (TypeError, ValueError):
        if backend is not None and hasattr(backend, "get_value"):
            return np.asarray(backend.get_value(x))
        raise


def _to_numpy(x):
    if type(x).__module__.startswith("torch"):
        x = x.detach().cpu()
        if str(x.dtype) == "torch.bfloat16":  # numpy has no bfloat16: as Keras does
            import ml_dtypes
            import torch

            return x.to(torch.float32).numpy().astype(ml_dtypes.bfloat16)
        return x.numpy()
    return x.numpy()
